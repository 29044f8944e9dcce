//! The signed cookie: express-session's known answers, and every way a cookie can be bad.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::get;
use tessera::{Priority, Secret, Session, SessionData, SessionLayer, SessionOptions, SessionStore};
use tessera_tests::{Browser, Recording, id_of, send};

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
}

async fn bump(mut s: Session<Visit>) -> String {
    *s.views += 1;
    s.views.to_string()
}

fn app(store: Recording, options: SessionOptions, genid: Option<&'static str>) -> Router {
    let mut layer =
        SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
            .with_store(store)
            .with_options(options);
    if let Some(id) = genid {
        layer = layer.with_genid(move |_| id.to_owned());
    }
    Router::new().route("/", get(bump)).layer(layer)
}

async fn first_cookie(options: SessionOptions, id: &'static str) -> String {
    let app = app(Recording::default(), options, Some(id));
    send(&app, Request::get("/").body(Body::empty()).unwrap())
        .await
        .set_cookie()
        .unwrap()
}

#[tokio::test]
async fn known_answer_cookie_for_id_abc_matches_express_session() {
    assert_eq!(
        first_cookie(SessionOptions::default(), "abc").await,
        "connect.sid=s%3Aabc.BpxCrWRpvZMh%2Fwk%2Fdjl34N%2Bm%2BVQEU7K%2F5WenLwJCgFU; Path=/; HttpOnly"
    );
}

#[tokio::test]
async fn known_answer_cookies_for_express_suite_vectors() {
    let c = first_cookie(SessionOptions::default(), "apple").await;
    assert!(
        c.starts_with("connect.sid=s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU;"),
        "{c}"
    );
    let c = first_cookie(SessionOptions::default(), "%").await;
    assert!(
        c.starts_with("connect.sid=s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g;"),
        "{c}"
    );
    let c = first_cookie(SessionOptions::default(), "/foo").await;
    assert!(
        c.starts_with("connect.sid=s%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ;"),
        "{c}"
    );
}

#[tokio::test]
async fn cookie_with_every_attribute_follows_express_attribute_order() {
    let opts = SessionOptions::default()
        .with_max_age(Some(Duration::from_secs(60)))
        .unwrap()
        .with_same_site(Some("lax".parse().unwrap()))
        .with_domain(Some("example.com"))
        .unwrap()
        .with_priority(Some(Priority::High))
        .with_partitioned(true);
    let c = first_cookie(opts, "abc").await;
    let (head, rest) = c.split_once("; Expires=").unwrap();
    assert_eq!(
        head,
        "connect.sid=s%3Aabc.BpxCrWRpvZMh%2Fwk%2Fdjl34N%2Bm%2BVQEU7K%2F5WenLwJCgFU; Domain=example.com; Path=/"
    );
    assert!(
        rest.ends_with(" GMT; HttpOnly; Partitioned; Priority=High; SameSite=Lax"),
        "{rest}"
    );
}

#[tokio::test]
async fn cookie_name_option_names_the_cookie() {
    let c = first_cookie(SessionOptions::default().with_name("sid").unwrap(), "abc").await;
    assert!(c.starts_with("sid=s%3Aabc."), "{c}");
}

#[tokio::test]
async fn default_ids_are_32_url_safe_characters_and_unique() {
    let app = app(Recording::default(), SessionOptions::default(), None);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let c = send(&app, Request::get("/").body(Body::empty()).unwrap())
            .await
            .set_cookie()
            .unwrap();
        let id = id_of(&c);
        assert_eq!(id.len(), 32, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
        assert!(seen.insert(id));
    }
}

#[tokio::test]
async fn genid_receives_the_request_parts() {
    let layer = SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_genid(|parts| parts.uri.path().trim_start_matches('/').to_owned());
    let app = Router::new().route("/{*rest}", get(bump)).layer(layer);
    let c = send(
        &app,
        Request::get("/from-path").body(Body::empty()).unwrap(),
    )
    .await
    .set_cookie()
    .unwrap();
    assert_eq!(id_of(&c), "from-path");
}

#[tokio::test]
async fn genid_returning_an_empty_id_is_a_500_not_a_bogus_session() {
    let store = Recording::default();
    let app = app(store.clone(), SessionOptions::default(), Some(""));
    let r = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.set_cookie(), None);
    assert_eq!(store.calls.set.load(Ordering::SeqCst), 0);
}

async fn with_cookie(store: &Recording, cookie: &str) -> tessera_tests::Reply {
    let app = app(store.clone(), SessionOptions::default(), None);
    send(
        &app,
        Request::get("/")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn tampered_cookie_starts_a_fresh_session_without_a_store_lookup() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), SessionOptions::default(), None));
    b.get("/").await;
    let good = b.cookie.clone().unwrap();
    let id = id_of(&good);
    // Flip one character of the signature.
    let mut bad = good.clone().into_bytes();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let gets = store.calls.get.load(Ordering::SeqCst);
    let r = with_cookie(&store, &bad).await;
    assert_eq!(r.body, "1");
    assert_ne!(id_of(&r.set_cookie().unwrap()), id);
    assert_eq!(
        store.calls.get.load(Ordering::SeqCst),
        gets,
        "no store lookup"
    );
}

#[tokio::test]
async fn cookie_signed_with_another_secret_is_rejected() {
    let other = SessionLayer::<Visit>::new(Secret::short_for_migration("another secret").unwrap());
    let foreign = send(
        &Router::new().route("/", get(bump)).layer(other),
        Request::get("/").body(Body::empty()).unwrap(),
    )
    .await
    .set_cookie()
    .unwrap();
    let store = Recording::default();
    let r = with_cookie(&store, foreign.split(';').next().unwrap()).await;
    assert_eq!(r.body, "1");
    assert_eq!(store.calls.get.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unsigned_malformed_and_oversized_cookies_start_fresh_sessions() {
    let store = Recording::default();
    let long = format!("connect.sid=s%3A{}.sig", "a".repeat(10_000));
    for cookie in [
        "connect.sid=abc",
        "connect.sid=s%3Aabc",
        "connect.sid=s%3A.",
        "connect.sid=%E0%A4%A",
        "connect.sid=",
        "connect.sid",
        "=;;=;",
        long.as_str(),
    ] {
        let r = with_cookie(&store, cookie).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "1"), "{cookie}");
        assert!(r.set_cookie().is_some(), "{cookie}");
    }
    assert_eq!(store.calls.get.load(Ordering::SeqCst), 0, "never looked up");
}

#[tokio::test]
async fn first_occurrence_of_a_duplicated_cookie_wins() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), SessionOptions::default(), None));
    b.get("/").await;
    let good = b.cookie.clone().unwrap();
    let r = with_cookie(&store, &format!("connect.sid=bogus; {good}")).await;
    assert_eq!(r.body, "1", "the bogus first value wins: a new session");
    let r = with_cookie(&store, &format!("{good}; connect.sid=bogus")).await;
    assert_eq!(r.body, "2");
}

#[tokio::test]
async fn raw_unencoded_signed_value_is_accepted_like_express() {
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone(), SessionOptions::default(), None));
    b.get("/").await;
    let raw = b
        .cookie
        .clone()
        .unwrap()
        .replace("%3A", ":")
        .replace("%2F", "/")
        .replace("%2B", "+");
    assert_eq!(with_cookie(&store, &raw).await.body, "2");
}

#[tokio::test]
async fn validly_signed_unknown_id_is_never_adopted() {
    let store = Recording::default();
    // A cookie for id "attacker-chosen", validly signed (e.g. leaked secret or replay of
    // a destroyed session): the session must get a new id.
    let planted = first_cookie(SessionOptions::default(), "attacker-chosen").await;
    let r = with_cookie(&store, planted.split(';').next().unwrap()).await;
    assert_eq!(store.calls.get.load(Ordering::SeqCst), 1, "looked up once");
    let id = id_of(&r.set_cookie().unwrap());
    assert_ne!(id, "attacker-chosen");
    assert_eq!(id.len(), 32);
}

#[tokio::test]
async fn expired_session_gets_a_new_id() {
    let store = Recording::default();
    let opts = SessionOptions::default()
        .with_max_age(Some(Duration::from_millis(30)))
        .unwrap();
    let mut b = Browser::new(app(store.clone(), opts, None));
    let first = id_of(&b.get("/").await.set_cookie().unwrap());
    tokio::time::sleep(Duration::from_millis(60)).await;
    let r = b.get("/").await;
    assert_eq!(r.body, "1");
    assert_ne!(id_of(&r.set_cookie().unwrap()), first);
    assert!(store.inner.get(&first).await.unwrap().is_none());
}

/// A signer that can revoke every signature it made (say, a signing key held elsewhere).
#[derive(Clone, Default)]
struct Revocable {
    revoked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    verifications: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl tessera::Signer for Revocable {
    fn sign(&self, value: &str, secret: &Secret) -> String {
        tessera::HmacSigner.sign(value, secret)
    }
    fn unsign<'a>(&self, signed: &'a str, secret: &Secret) -> Option<&'a str> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        if self.revoked.load(Ordering::SeqCst) {
            return None;
        }
        tessera::HmacSigner.unsign(signed, secret)
    }
}

#[tokio::test]
async fn custom_signer_verifies_every_request_so_it_can_revoke_a_cookie() {
    let signer = Revocable::default();
    let layer = SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(Recording::default())
        .with_signer(signer.clone());
    let mut b = Browser::new(Router::new().route("/", get(bump)).layer(layer));
    assert_eq!(b.get("/").await.body, "1");
    assert_eq!(b.get("/").await.body, "2");
    assert_eq!(b.get("/").await.body, "3");
    assert_eq!(signer.verifications.load(Ordering::SeqCst), 2);
    signer.revoked.store(true, Ordering::SeqCst);
    assert_eq!(
        b.get("/").await.body,
        "1",
        "a revoked cookie starts a fresh session"
    );
}

#[tokio::test]
async fn a_remembered_cookie_stops_verifying_when_the_secret_changes() {
    let store = Recording::default();
    let layer = |secret: &str| {
        SessionLayer::<Visit>::new(Secret::short_for_migration(secret).unwrap())
            .with_store(store.clone())
    };
    let old = Router::new()
        .route("/", get(bump))
        .layer(layer("old secret"));
    let mut b = Browser::new(old);
    assert_eq!(b.get("/").await.body, "1");
    assert_eq!(b.get("/").await.body, "2");
    // The same browser and store behind a layer with another secret.
    b.app = Router::new()
        .route("/", get(bump))
        .layer(layer("new secret"));
    assert_eq!(b.get("/").await.body, "1");
}

/// A key-versioned signer: `v1:` + the signed value, so that the value it verifies is not
/// a prefix of the string it signed.
struct Versioned;

impl tessera::Signer for Versioned {
    fn sign(&self, value: &str, secret: &Secret) -> String {
        format!("v1:{}", tessera::HmacSigner.sign(value, secret))
    }
    fn unsign<'a>(&self, signed: &'a str, secret: &Secret) -> Option<&'a str> {
        tessera::HmacSigner.unsign(signed.strip_prefix("v1:")?, secret)
    }
}

#[tokio::test]
async fn a_custom_signer_whose_value_is_not_a_prefix_of_what_it_signed_keeps_the_session() {
    for id in ["plain-id", "non-ascii-é-ü-id"] {
        let store = Recording::default();
        let layer =
            SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
                .with_store(store.clone())
                .with_signer(Versioned)
                .with_genid(move |_| id.to_owned());
        let mut b = Browser::new(Router::new().route("/", get(bump)).layer(layer));
        let first = b.get("/").await;
        assert_eq!(first.body, "1");
        assert!(first.set_cookie().unwrap().contains("v1%3A"), "{id}");
        assert_eq!(b.get("/").await.body, "2", "{id}: the session was kept");
        assert_eq!(b.get("/").await.body, "3", "{id}");
        assert!(store.inner.get(id).await.unwrap().is_some(), "{id}");
    }
}

/// A browser holding the session `victim` (one view) on a store another writer shares,
/// behind a `rolling` layer.
async fn victim() -> (std::sync::Arc<tessera_tests::naive::NaiveStore>, Browser) {
    let store = std::sync::Arc::new(tessera_tests::naive::NaiveStore::default());
    let layer = SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(std::sync::Arc::clone(&store))
        .with_options(SessionOptions::default().with_rolling(true))
        .with_genid(|_| "victim".to_owned());
    let mut b = Browser::new(Router::new().route("/", get(bump)).layer(layer));
    assert_eq!(b.get("/").await.body, "1");
    (store, b)
}

#[tokio::test]
async fn stored_cookie_attributes_from_another_writer_never_reach_the_set_cookie_header() {
    let injected = [
        r#""domain":"example.com; Domain=evil.example","path":"/""#,
        r#""domain":"example.com\r\nSet-Cookie: x=1","path":"/""#,
        r#""path":"/; Domain=evil.example; SameSite=None""#,
        r#""path":"relative""#,
        r#""path":17"#,
        r#""domain":["evil.example"],"path":"/""#,
    ];
    for attributes in injected {
        let (store, mut b) = victim().await;
        store.put_text(
            "victim",
            &format!(
                r#"{{"cookie":{{"originalMaxAge":null,"expires":null,"httpOnly":true,{attributes}}},"views":41}}"#
            ),
        );
        let r = b.get("/").await;
        assert_eq!(
            r.body, "1",
            "{attributes}: the record is corrupt, a fresh session"
        );
        let cookie = r.set_cookie().unwrap();
        assert!(!cookie.contains("evil"), "{attributes}: {cookie}");
        assert!(!cookie.contains("SameSite"), "{attributes}: {cookie}");
        assert_eq!(cookie.matches("; Path=").count(), 1, "{cookie}");
    }
}

#[tokio::test]
async fn a_stored_cookie_with_a_valid_domain_and_path_is_kept() {
    let (store, mut b) = victim().await;
    store.put_text(
        "victim",
        r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"domain":".example.com","path":"/"},"views":41}"#,
    );
    let r = b.get("/").await;
    assert_eq!(r.body, "42");
    assert!(
        r.set_cookie()
            .unwrap()
            .contains("; Domain=.example.com; Path=/")
    );
}

#[tokio::test]
async fn a_huge_stored_max_age_is_cut_to_the_longest_cookie_age_and_never_overflows() {
    for max_age in [
        "1e300",
        "-1e300",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        let (store, mut b) = victim().await;
        store.put_text(
            "victim",
            &format!(
                r#"{{"cookie":{{"originalMaxAge":{max_age},"expires":"2030-01-01T00:00:00.000Z","httpOnly":true,"path":"/"}},"views":41}}"#
            ),
        );
        // `rolling` renews the expiry from the stored max-age: now + at most 400 days.
        let r = b.get("/").await;
        assert_eq!(r.body, "42", "{max_age}");
        let got = tessera::SessionStore::get(&*store, "victim").await.unwrap();
        if max_age.starts_with('-') {
            // Renewed into the past: the session is gone.
            assert!(got.is_none(), "{max_age}");
            continue;
        }
        let cookie = got.unwrap().cookie().clone();
        let left = cookie.max_age().unwrap();
        assert!(left <= tessera::MAX_COOKIE_AGE, "{max_age}: {left:?}");
        assert!(
            left > tessera::MAX_COOKIE_AGE - Duration::from_secs(60),
            "{max_age}: {left:?}"
        );
        assert_eq!(
            cookie.original_max_age_ms(),
            Some(tessera::MAX_COOKIE_AGE.as_millis() as i64)
        );
    }
}

#[test]
fn cookie_setters_saturate_and_cut_to_the_longest_cookie_age() {
    let mut cookie = tessera::SessionCookie::default();
    cookie.set_max_age_ms(Some(i64::MAX));
    assert_eq!(
        cookie.original_max_age_ms(),
        Some(tessera::MAX_COOKIE_AGE.as_millis() as i64)
    );
    assert!(cookie.max_age().unwrap() <= tessera::MAX_COOKIE_AGE);
    cookie.set_max_age_ms(Some(i64::MIN));
    assert_eq!(cookie.max_age(), Some(Duration::ZERO));
    cookie.set_max_age(Some(Duration::MAX));
    assert!(cookie.max_age().unwrap() <= tessera::MAX_COOKIE_AGE);
    cookie.set_expires(Some(
        std::time::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4),
    ));
    assert!(cookie.max_age().unwrap() <= tessera::MAX_COOKIE_AGE);
    cookie.set_expires(Some(std::time::UNIX_EPOCH));
    assert_eq!(cookie.max_age(), Some(Duration::ZERO));
}
