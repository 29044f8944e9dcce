//! The secret rules: 32 bytes at least, and a named way to keep a short express secret
//! that warns once. Its own test binary: the warning is once per process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera::{ConfigError, Secret};
use tessera_tests::Captured;

#[test]
fn a_short_secret_is_refused_unless_named_for_migration_which_warns_once() {
    assert!(matches!(
        Secret::new("keyboard cat"),
        Err(ConfigError::ShortSecret { len: 12, min: 32 })
    ));
    assert!(matches!(Secret::new(""), Err(ConfigError::EmptySecret)));
    assert!(Secret::new([7u8; 32]).is_ok());
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    assert!(Secret::short_for_migration("keyboard cat").is_ok());
    assert!(Secret::short_for_migration("another cat").is_ok());
    assert!(matches!(
        Secret::short_for_migration(""),
        Err(ConfigError::EmptySecret)
    ));
    let log = out.text();
    assert_eq!(
        log.matches("a session secret shorter than 32 bytes is in use")
            .count(),
        1,
        "{log}"
    );
}
