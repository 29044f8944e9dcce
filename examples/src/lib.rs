//! Shared pieces of the tessera examples, and the express-session comparison server
//! ([`compat`]) as a library so that tests can drive it in process.

pub mod compat;
pub mod counter;
pub mod guide;
pub mod login;
pub mod readme;

use tessera::Secret;

/// The secret from `SESSION_SECRET`, or a fixed development secret with a warning.
pub fn secret_from_env_or_dev() -> Secret {
    match Secret::from_env("SESSION_SECRET") {
        Ok(s) => s,
        Err(e @ tessera::ConfigError::ShortSecret { .. }) => {
            eprintln!("SESSION_SECRET: {e}");
            std::process::exit(2);
        }
        Err(_) => {
            eprintln!(
                "SESSION_SECRET is not set: using a development secret (never do this in production)"
            );
            match Secret::new("tessera development secret: never use it in production") {
                Ok(s) => s,
                Err(e) => unreachable!("a non-empty literal secret is valid: {e}"),
            }
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), in colour only on a terminal.
pub fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
