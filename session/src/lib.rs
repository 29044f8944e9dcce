//! # Tessera: typed, change-tracked sessions for axum
//!
//! Tessera is the successor of Node's express-session for Rust services. Derive
//! [`SessionData`] on your own struct, read and write its fields through the
//! [`Session`] extractor, and the [`SessionLayer`] persists only the fields that really
//! changed, before the response leaves.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tessera::{MemoryStore, Secret, Session, SessionData, SessionLayer};
//!
//! #[derive(SessionData, Default)]
//! #[session(name = "sid", cookie(max_age = "30m", same_site = "lax"),
//!           resave = false, save_uninitialized = false)]
//! struct Visit {
//!     views: u64,
//!     #[session(rename = "cartItems")]
//!     cart: Vec<String>,
//! }
//!
//! async fn index(mut session: Session<Visit>) -> String {
//!     *session.views += 1; // marks only `views` as touched
//!     format!("views: {}", *session.views)
//! }
//!
//! # fn main() -> Result<(), tessera::ConfigError> {
//! let layer = SessionLayer::<Visit>::new(Secret::new("a long, random secret of 32 bytes or more")?)
//!     .with_store(MemoryStore::default());
//! let app: Router = Router::new().route("/", get(index)).layer(layer);
//! # Ok(()) }
//! ```
//!
//! ## Compatibility with express-session
//!
//! - The cookie is `s:` + id + `.` + base64(HMAC-SHA256(secret, id)), URL-encoded,
//!   byte-for-byte what express-session sends; several secrets rotate (sign with the
//!   first, verify with any).
//! - A stored [`Record`] is laid out like express-session's stored object
//!   (`{"cookie":{...},"views":1}`), so Node and Rust services can share one store.
//! - The options and their defaults are express-session's: see [`SessionOptions`].
//!
//! ## Stores
//!
//! The [`MemoryStore`] is the default. Shared stores implement [`SessionStore`]; the
//! [`store`] module states the contract (atomic per record, no lost update, no
//! resurrection, the store's own expiry) and walks through implementing one. The
//! `tessera-store-tests` crate checks a store against it.
//!
//! ## Beyond express-session
//!
//! - **Idle and absolute timeouts** together: `#[session(idle_timeout = "30m",
//!   absolute_timeout = "12h")]`, or [`SessionOptions::with_idle_timeout`] and
//!   [`SessionOptions::with_absolute_timeout`]. The creation time is kept in the record's
//!   [`META_KEY`] entry, which Node services keep intact.
//! - **A user's sessions**: [`Session::set_user`] at login, then
//!   [`SessionAdmin::user_sessions`] ("your devices") and
//!   [`SessionAdmin::destroy_user_sessions`] ("log out everywhere else") on the store.
//! - **API clients** carry the signed id in a header instead of a cookie:
//!   `#[session(id_header = "X-Session-Id")]`, see [`SessionOptions::with_id_header`] for
//!   which wins and what it means for CSRF.
//! - Tests travel in time without sleeping: [`SessionLayer::with_clock`].
//!
//! ## Attribute reference
//!
//! `#[derive(SessionData)]` reads `#[session(...)]` on the struct (the options) and on
//! fields. Every option is checked at compile time by the same rules that
//! [`SessionOptions`] applies at run time to values from configuration
//! ([`SessionOptions::set`], [`SessionOptions::with_config`], [`SessionOptions::with_env`]
//! with its prefix, for example `SESSION_COOKIE_MAX_AGE`). Durations are written with a
//! unit (`"90s"`, `"30m"`, `"12h"`, `"7d"`, `"1500ms"`); a bare number is refused,
//! because express counts milliseconds where a Rust reader expects seconds.
//!
//! | attribute | forms | default | express-session | run-time setter | config key (env suffix) |
//! |---|---|---|---|---|---|
//! | `name` (alias `key`) | `name = "sid"` | `"connect.sid"` | `name` | [`SessionOptions::with_name`] | `name` (`NAME`) |
//! | `cookie(max_age)` | `cookie(max_age = "30m")` | none: a browser-session cookie | `cookie.maxAge` (ms) | [`SessionOptions::with_max_age`] | `cookie.max_age` (`COOKIE_MAX_AGE`) |
//! | `cookie(expires)` | `cookie(expires = "2027-01-01T00:00:00Z")` | none | `cookie.expires` | [`SessionOptions::with_expires`] | `cookie.expires` (`COOKIE_EXPIRES`) |
//! | `cookie(path)` | `cookie(path = "/app")` | `"/"` | `cookie.path` | [`SessionOptions::with_path`] | `cookie.path` (`COOKIE_PATH`) |
//! | `cookie(domain)` | `cookie(domain = "example.com")` | none: host-only | `cookie.domain` | [`SessionOptions::with_domain`] | `cookie.domain` (`COOKIE_DOMAIN`) |
//! | `cookie(http_only)` | `cookie(http_only = false)` | `true` | `cookie.httpOnly` | [`SessionOptions::with_http_only`] | `cookie.http_only` (`COOKIE_HTTP_ONLY`) |
//! | `cookie(secure)` | `cookie(secure = true)`, `false`, `"auto"` | `false` | `cookie.secure` | [`SessionOptions::with_secure`] | `cookie.secure` (`COOKIE_SECURE`) |
//! | `cookie(same_site)` | `"strict"`, `"lax"`, `"none"`, `"auto"` | not sent | `cookie.sameSite` | [`SessionOptions::with_same_site`] | `cookie.same_site` (`COOKIE_SAME_SITE`) |
//! | `cookie(partitioned)` | `cookie(partitioned = true)` | `false` | `cookie.partitioned` | [`SessionOptions::with_partitioned`] | `cookie.partitioned` (`COOKIE_PARTITIONED`) |
//! | `cookie(priority)` | `"low"`, `"medium"`, `"high"` | not sent | `cookie.priority` | [`SessionOptions::with_priority`] | `cookie.priority` (`COOKIE_PRIORITY`) |
//! | `rolling` | `rolling`, `rolling = true` | `false` | `rolling` | [`SessionOptions::with_rolling`] | `rolling` (`ROLLING`) |
//! | `resave` | `resave = false` | `true` (with a start-up warning, as express) | `resave` | [`SessionOptions::with_resave`] | `resave` (`RESAVE`) |
//! | `save_uninitialized` | `save_uninitialized = false` | `true` (with a warning) | `saveUninitialized` | [`SessionOptions::with_save_uninitialized`] | `save_uninitialized` (`SAVE_UNINITIALIZED`) |
//! | `unset` | `"keep"`, `"destroy"` | `"keep"` | `unset` | [`SessionOptions::with_unset`] | `unset` (`UNSET`) |
//! | `proxy` | `proxy = true` | unset: the connection only | `proxy` | [`SessionOptions::with_proxy`] | `proxy` (`PROXY`) |
//! | `idle_timeout` | `idle_timeout = "30m"` | none | (`maxAge` with `rolling`) | [`SessionOptions::with_idle_timeout`] | `idle_timeout` (`IDLE_TIMEOUT`) |
//! | `absolute_timeout` | `absolute_timeout = "12h"` | none | — | [`SessionOptions::with_absolute_timeout`] | `absolute_timeout` (`ABSOLUTE_TIMEOUT`) |
//! | `id_header` | `id_header = "X-Session-Id"` | none: cookies only | — | [`SessionOptions::with_id_header`] | `id_header` (`ID_HEADER`) |
//!
//! Combinations that browsers reject are compile errors too: `same_site = "none"` or
//! `partitioned` without `secure = true`, `__Host-` and `__Secure-` names without it, a
//! `__Host-` cookie with a domain or a path other than `/`, `max_age` with `expires`,
//! `idle_timeout` with a cookie lifetime or `rolling = false`, and an `absolute_timeout`
//! shorter than the `idle_timeout`. Secrets, the store, `genid` and `signature` are
//! run-time values: [`SessionLayer::new`], [`SessionLayer::with_store`],
//! [`SessionLayer::with_genid`], [`SessionLayer::with_signer`].
//!
//! On fields: `#[session(rename = "cartItems")]` stores the field under another key,
//! `#[session(skip)]` keeps it out of the store (its `Default` on every load), and
//! `#[session(flatten)]` on one `serde_json::Map<String, Value>` field receives the
//! stored keys the struct does not declare. The keys `cookie` and `_tessera`
//! ([`META_KEY`]) are reserved.
//!
//! ```
//! use tessera::SessionData;
//!
//! #[derive(SessionData, Default)]
//! #[session(
//!     name = "__Host-sid",
//!     cookie(path = "/", http_only = true, secure = true, same_site = "lax", priority = "high"),
//!     idle_timeout = "30m",
//!     absolute_timeout = "12h",
//!     resave = false,
//!     save_uninitialized = false,
//!     unset = "destroy",
//!     proxy = true
//! )]
//! struct Account {
//!     user: Option<String>,
//!     #[session(rename = "cartItems")]
//!     cart: Vec<String>,
//!     #[session(skip)]
//!     scratch: u32,
//!     #[session(flatten)]
//!     rest: serde_json::Map<String, serde_json::Value>,
//! }
//! ```
//!
//! ## Deliberate differences
//!
//! - The session is persisted before the response is returned (no redirect race), and
//!   a failed store write becomes a 500 response and a `tracing` error.
//! - The store is asked for the session on the first extraction of [`Session`]: a
//!   request whose handler never extracts it makes no store call and gets no cookie.
//! - A changed session sends only its changed fields to the store ([`SessionStore::patch`]);
//!   `resave` renews the stored cookie through an empty patch instead of overwriting the
//!   fields, so a slow request never undoes another request's change or resurrects a
//!   destroyed session.
//! - [`Session::destroy`] also clears the browser cookie.
//! - A cookie change from the handler ([`Session::cookie_mut`]) is stored and sent.
//! - An explicitly saved new session gets its cookie even with `save_uninitialized` off.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
// The rooms: the derive's runtime half (`data/`: the tracked view, the stored record
// and its baseline text, Tessera's record entry), the cookie (`cookie/`: the model and
// codec, the signing, the cache of verified values), the layer (`layer/`), the session
// and its extractor (`session/`), the stores (`store/`), and express-session's decisions
// (`decide.rs`).
mod cookie;
pub(crate) use cookie::{signing, verified};
pub(crate) use data::{baseline, meta, record};
mod data;
mod decide;
mod gate;
mod layer;
mod options;
pub(crate) use tessera_rules as rules;
mod session;
pub mod store;
mod time;

pub use cookie::{MAX_COOKIE_AGE, SessionCookie};
pub use data::{__private, EncodeError, Field, SessionData};
pub use layer::{SecureConnection, SessionLayer, SessionService};
pub use meta::META_KEY;
pub use options::{
    ConfigError, CookieOptions, LimitError, Priority, SameSite, Secure, SessionOptions,
    StoreErrorPolicy, Unset,
};
pub use record::{
    COOKIE_KEY, FieldChange, Fields, LoadedRecord, Patch, Record, RecordError, RecordView, Touch,
};
pub use session::{Session, SessionError, SessionRejection};
pub use signing::{HmacSigner, Secret, Secrets, Signer};
pub use store::memory::{MemoryStats, MemoryStore};
pub use store::{BoxError, Outcome, SessionAdmin, SessionInfo, SessionStore, StoreError};
pub use tessera_macros::SessionData;
pub use tessera_rules::ChoiceError;

/// The option rules, exposed for the fuzz targets in `fuzz/`. Not a public API.
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::rules::{
        check_cookie_domain, check_cookie_name, check_cookie_path, parse_duration_ms,
    };
}

/// Internals exposed for the criterion benchmarks in `bench/`. Not a public API.
#[doc(hidden)]
pub mod __bench {
    use http::HeaderMap;

    /// Finds a cookie in the request headers (first occurrence wins).
    pub fn find_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
        crate::cookie::find_cookie(headers, name).map(|c| c.into_owned())
    }

    /// Reads the session id of a cookie value as sent the way the layer does with the
    /// default signer: from the values this thread verified before, else decoded and
    /// verified (and then remembered).
    pub fn read_signed_cookie(secrets: &crate::Secrets, raw: &str) -> Option<String> {
        if let Some(id) = crate::verified::remembered_id(secrets, raw.as_bytes()) {
            return Some(id);
        }
        let decoded = crate::cookie::decode_cookie_value(raw.as_bytes())?;
        let signed = decoded.strip_prefix("s:")?;
        crate::verified::unsign_remembering(secrets, raw.as_bytes(), signed).map(str::to_owned)
    }

    /// A default session id (24 random bytes, base64url).
    pub fn generate_id() -> String {
        crate::layer::default_id().unwrap_or_default()
    }

    /// Renders the `Set-Cookie` value of `cookie` for `name` and an already signed value.
    pub fn render_set_cookie(cookie: &crate::SessionCookie, name: &str, signed: &str) -> String {
        cookie.render(name, signed)
    }
}
