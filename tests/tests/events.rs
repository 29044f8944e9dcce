//! Bad input and failures leave a `tracing` event, not only a defined HTTP outcome.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::get;
use tessera::{Secret, Session, SessionData, SessionLayer, SessionOptions};
use tessera_tests::{Browser, Captured, Recording, send};

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    tessera_tests::capture_events(tracing::Level::DEBUG)
}

fn app(store: Recording) -> Router {
    async fn bump(mut s: Session<Visit>) -> String {
        *s.views += 1;
        s.views.to_string()
    }
    let layer = SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(store)
        .with_options(
            SessionOptions::default()
                .with_resave(false)
                .with_save_uninitialized(false),
        );
    Router::new().route("/", get(bump)).layer(layer)
}

#[tokio::test]
async fn tampered_cookie_leaves_an_info_event() {
    let (out, _guard) = capture();
    let store = Recording::default();
    let app = app(store);
    let req = Request::get("/")
        .header(header::COOKIE, "connect.sid=s%3Aabc.not-a-signature")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.body, "1");
    let log = out.text();
    assert!(
        log.contains("INFO") && log.contains("signature does not verify"),
        "{log}"
    );
    assert!(!log.contains("abc"), "session ids are not logged: {log}");
}

#[tokio::test]
async fn failed_store_write_leaves_an_error_event() {
    let (out, _guard) = capture();
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone()));
    b.get("/").await;
    store.fail_writes.store(true, Ordering::SeqCst);
    assert_eq!(b.get("/").await.status, 500);
    let log = out.text();
    assert!(
        log.contains("ERROR") && log.contains("failed to persist the session"),
        "{log}"
    );
}

#[tokio::test]
async fn undecodable_stored_field_leaves_a_warning_naming_the_field() {
    let (out, _guard) = capture();
    let store = Recording::default();
    let mut b = Browser::new(app(store.clone()));
    b.get("/").await;
    let id = tessera_tests::id_of(b.cookie.as_deref().unwrap());
    let mut rec = store.record(&id).await.unwrap();
    rec.fields.insert("views".into(), serde_json::json!("many"));
    store.put(&id, &rec).await;
    assert_eq!(b.get("/").await.body, "1");
    let log = out.text();
    assert!(
        log.contains("WARN") && log.contains("field=\"views\""),
        "{log}"
    );
}

#[tokio::test]
async fn a_flood_of_bad_cookies_logs_a_few_events_not_one_per_request() {
    let (out, _guard) = capture();
    let app = app(Recording::default());
    for i in 0..500 {
        let req = Request::get("/")
            .header(
                header::COOKIE,
                format!("connect.sid=s%3Aid{i}.not-a-signature"),
            )
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.body, "1");
    }
    let log = out.text();
    let lines = log.matches("signature does not verify").count();
    assert!((1..=10).contains(&lines), "{lines} lines:\n{log}");
}

#[tokio::test]
async fn a_secure_cookie_held_back_over_plain_http_warns_once_with_the_fix() {
    let (out, _guard) = capture();
    let layer = SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(Recording::default())
        .with_options(
            SessionOptions::default()
                .with_resave(false)
                .with_save_uninitialized(true)
                .with_secure(tessera::Secure::Always),
        );
    async fn bump(mut s: Session<Visit>) -> String {
        *s.views += 1;
        s.views.to_string()
    }
    let app = Router::new().route("/", get(bump)).layer(layer);
    for _ in 0..5 {
        let r = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
        assert_eq!(r.set_cookie(), None);
    }
    let log = out.text();
    let warnings = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("Secure session cookie"))
        .count();
    assert_eq!(warnings, 1, "{log}");
    assert!(
        log.contains("proxy = true") && log.contains("secure = \"auto\""),
        "{log}"
    );
}

#[test]
fn implicit_resave_and_save_uninitialized_warn_once_as_express_does() {
    let (out, _guard) = capture();
    let implicit = SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap());
    let _app: Router = Router::new()
        .route("/a", get(|| async { "a" }))
        .route("/b", get(|| async { "b" }))
        .layer(implicit);
    let log = out.text();
    assert_eq!(log.matches("undefined resave option").count(), 1, "{log}");
    assert_eq!(
        log.matches("undefined saveUninitialized option").count(),
        1,
        "{log}"
    );
    let (out, _guard) = capture();
    let explicit = SessionLayer::<Visit>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_options(
            SessionOptions::default()
                .with_resave(true)
                .with_save_uninitialized(true),
        );
    let _app: Router = Router::new()
        .route("/a", get(|| async { "a" }))
        .layer(explicit);
    assert!(!out.text().contains("undefined"), "{}", out.text());
}
