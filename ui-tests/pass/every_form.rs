//! Every valid spelling of every option, with the options they produce checked at run time.
use std::time::Duration;

use tessera::{Priority, SameSite, Secure, SessionData, SessionOptions, Unset};

#[derive(SessionData, Default)]
#[session(cookie(secure))]
struct BareSecure {
    a: u8,
}

#[derive(SessionData, Default)]
#[session(cookie(secure = false, same_site = "strict", priority = "low", http_only = false))]
struct Plain {
    a: u8,
}

#[derive(SessionData, Default)]
#[session(cookie(secure = "auto", same_site = "auto", priority = "medium"))]
struct Auto {
    a: u8,
}

#[derive(SessionData, Default)]
#[session(
    name = "__Host-sid",
    cookie(secure = true, same_site = "none", partitioned, path = "/", max_age = "90s")
)]
struct HostPrefixed {
    a: u8,
}

#[derive(SessionData, Default)]
#[session(
    key = "__Secure-sid",
    cookie(secure = true, domain = ".example.com", path = "/app", max_age = "1h"),
    unset = "keep",
    rolling = false,
    resave = true,
    save_uninitialized = true,
    proxy = false
)]
struct SecurePrefixed {
    a: u8,
}

#[derive(SessionData, Default)]
#[session(cookie(max_age = "500ms", same_site = "LAX"), unset = "Destroy")]
struct CaseInsensitive {
    a: u8,
}

#[derive(SessionData, Default)]
struct NoOptions {
    a: u8,
}

fn main() {
    let o = BareSecure::options();
    assert_eq!(o, SessionOptions::default().with_secure(Secure::Always));
    let o = Plain::options();
    assert_eq!(
        o,
        SessionOptions::default()
            .with_secure(Secure::Never)
            .with_same_site(Some(SameSite::Strict))
            .with_priority(Some(Priority::Low))
            .with_http_only(false)
    );
    let o = Auto::options();
    assert_eq!(
        o,
        SessionOptions::default()
            .with_secure(Secure::Auto)
            .with_same_site(Some(SameSite::Auto))
            .with_priority(Some(Priority::Medium))
    );
    let o = HostPrefixed::options();
    assert_eq!(o.name(), "__Host-sid");
    assert!(o.validate().is_ok());
    let o = SecurePrefixed::options();
    assert_eq!(o.name(), "__Secure-sid");
    assert_eq!(o.path(), "/app");
    let o = CaseInsensitive::options();
    assert_eq!(
        o,
        SessionOptions::default()
            .with_max_age(Some(Duration::from_millis(500)))
            .unwrap()
            .with_same_site(Some(SameSite::Lax))
            .with_unset(Unset::Destroy)
    );
    assert_eq!(NoOptions::options(), SessionOptions::default());
}
