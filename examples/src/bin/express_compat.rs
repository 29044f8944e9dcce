//! The express-session comparison server. Prints `listening P` when ready.
//! `cargo run -p tessera-examples --bin express_compat -- --port 4000 --store memory --secret s`
//! (`--store redis [--redis-url URL] [--prefix sess:] [--ttl SECONDS]` shares sessions with
//! connect-redis).

use tessera_examples::compat::{Config, app};

#[tokio::main]
async fn main() {
    tessera_examples::init_tracing();
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("express_compat: {e}");
            std::process::exit(2);
        }
    };
    let router = match app(&config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("express_compat: {e}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind((config.host.as_str(), config.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "express_compat: cannot listen on {}:{}: {e}",
                config.host, config.port
            );
            std::process::exit(1);
        }
    };
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(config.port);
    println!("listening {port}");
    if let Err(e) = axum::serve(listener, router).await {
        eprintln!("express_compat: {e}");
        std::process::exit(1);
    }
}
