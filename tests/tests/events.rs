//! Bad input and failures leave a `tracing` event, not only a defined HTTP outcome.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::get;
use tessera::{Secret, Session, SessionData, SessionLayer, SessionOptions};
use tessera_tests::{Browser, Recording, send};

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (out, tracing::subscriber::set_default(subscriber))
}

fn app(store: Recording) -> Router {
    async fn bump(mut s: Session<Visit>) -> String {
        *s.views += 1;
        s.views.to_string()
    }
    let layer = SessionLayer::<Visit>::new(Secret::new("keyboard cat").unwrap())
        .with_store(store)
        .with_options(
            SessionOptions::default()
                .resave(false)
                .save_uninitialized(false),
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
