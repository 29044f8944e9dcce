//! The store contract, through the public API: the conformance suite rejects a naive
//! store, id changes racing a logout never bring a session back, a slow request never
//! resurrects a destroyed session, and the store is asked only when a handler extracts
//! the session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use tessera::{
    Secret, Session, SessionAdmin, SessionData, SessionError, SessionLayer, SessionOptions,
};
use tessera_tests::naive::NaiveStore;
use tessera_tests::{Browser, Recording, id_of, send};
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_rejects_a_naive_read_modify_write_store() {
    let report = tessera_store_tests::Suite::new(NaiveStore::default())
        .run_with_admin()
        .await;
    let expected = [
        "concurrent_patches_of_64_fields_all_survive",
        "patches_racing_a_destroy_never_resurrect_it",
        "a_rotation_racing_a_destroy_never_resurrects_it",
        // Its index ignores rotations, and trusts entries without reading the records.
        "the_user_tie_follows_rotations_and_patches",
        "a_stale_index_entry_never_revokes_another_users_session",
        "revocation_racing_patches_and_rotations_never_resurrects",
    ];
    for check in expected {
        assert!(
            report.failed(check),
            "the naive store passed {check}:\n{report}"
        );
    }
    // One call at a time, its other rules hold: the suite fails it for these only.
    assert_eq!(report.failures.len(), expected.len(), "{report}");
}

#[derive(SessionData, Default)]
struct Account {
    views: u64,
    user: Option<String>,
}

/// Lets a test hold a handler after it extracted its session, run another request, and
/// then let the handler go on.
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl Gate {
    async fn pass(&self) {
        self.entered.notify_one();
        self.release.notified().await;
    }
}

fn outcome(result: Result<(), SessionError>) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(SessionError::Gone) => (StatusCode::CONFLICT, "gone".to_owned()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn app(store: Recording, options: SessionOptions, gate: Gate) -> Router {
    let layer = SessionLayer::<Account>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(store)
        .with_options(options);
    let (g1, g2, g3) = (gate.clone(), gate.clone(), gate);
    Router::new()
        .route(
            "/bump",
            get(|mut s: Session<Account>| async move {
                *s.views += 1;
                s.views.to_string()
            }),
        )
        .route(
            "/logout",
            get(|mut s: Session<Account>| async move {
                s.destroy().await.unwrap();
                "bye"
            }),
        )
        .route(
            "/slow-login",
            get(|mut s: Session<Account>| async move {
                g1.pass().await;
                let result = s.rotate_id().await;
                if result.is_ok() {
                    s.user.set(Some("alice".into()));
                }
                outcome(result)
            }),
        )
        .route(
            "/slow-regenerate",
            get(|mut s: Session<Account>| async move {
                let views = *s.views;
                g2.pass().await;
                let result = s.regenerate().await;
                if result.is_ok() {
                    // Carry data over, as login handlers do with a cart.
                    s.views.set(views);
                    s.user.set(Some("alice".into()));
                }
                outcome(result)
            }),
        )
        .route(
            "/slow-bump",
            get(|s: Session<Account>| async move {
                let mut s = s;
                g3.pass().await;
                *s.views += 10;
                s.views.to_string()
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(layer)
}

fn lean() -> SessionOptions {
    SessionOptions::default()
        .with_resave(false)
        .with_save_uninitialized(false)
}

/// Starts `path` with the browser's cookie, waits until its handler holds the session,
/// logs out with the same cookie, then lets the first request finish.
async fn race_with_logout(b: &mut Browser, gate: &Gate, path: &str) -> tessera_tests::Reply {
    let cookie = b.cookie.clone().unwrap();
    let app = b.app.clone();
    let req = Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    let slow = tokio::spawn(async move { send(&app, req).await });
    gate.entered.notified().await;
    assert_eq!(b.get("/logout").await.body, "bye");
    gate.release.notify_one();
    slow.await.unwrap()
}

/// Every stored session's `user`.
async fn users(store: &Recording) -> Vec<Option<serde_json::Value>> {
    let mut out = Vec::new();
    for id in store.inner.ids().await.unwrap() {
        if let Some(r) = store.record(&id).await {
            out.push(r.fields.get("user").cloned());
        }
    }
    out
}

#[tokio::test]
async fn rotate_id_after_a_concurrent_logout_never_brings_the_session_back() {
    let (store, gate) = (Recording::default(), Gate::default());
    let mut b = Browser::new(app(store.clone(), lean(), gate.clone()));
    b.get("/bump").await;
    let r = race_with_logout(&mut b, &gate, "/slow-login").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::CONFLICT, "gone"));
    // No live session under any id, and the rotated cookie is never handed out.
    assert_eq!(
        store.inner.len().await.unwrap(),
        0,
        "{:?}",
        users(&store).await
    );
    for sc in r.set_cookies() {
        assert!(sc.contains("Expires=Thu, 01 Jan 1970"), "{sc}");
    }
}

#[tokio::test]
async fn regenerate_after_a_concurrent_logout_never_starts_a_session_from_it() {
    let (store, gate) = (Recording::default(), Gate::default());
    let mut b = Browser::new(app(store.clone(), lean(), gate.clone()));
    b.get("/bump").await;
    let r = race_with_logout(&mut b, &gate, "/slow-regenerate").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::CONFLICT, "gone"));
    assert_eq!(
        store.inner.len().await.unwrap(),
        0,
        "{:?}",
        users(&store).await
    );
}

#[tokio::test]
async fn a_slow_request_never_resurrects_a_session_destroyed_meanwhile() {
    // With resave on, a read-only slow request would rewrite the session; with it off,
    // a changing one would patch it: neither recreates it.
    for options in [lean(), SessionOptions::default().with_rolling(true)] {
        let (store, gate) = (Recording::default(), Gate::default());
        let mut b = Browser::new(app(store.clone(), options, gate.clone()));
        b.get("/bump").await;
        let r = race_with_logout(&mut b, &gate, "/slow-bump").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, "11", "the handler ran on the session it loaded");
        assert_eq!(store.inner.len().await.unwrap(), 0, "resurrected");
        assert!(
            r.set_cookie().is_none(),
            "no cookie for a destroyed session"
        );
    }
}

#[tokio::test]
async fn rotate_id_is_one_store_operation_and_the_old_cookie_stops_working() {
    let store = Recording::default();
    let gate = Gate::default();
    gate.release.notify_one();
    let mut b = Browser::new(app(store.clone(), lean(), gate));
    b.get("/bump").await;
    let old_cookie = b.cookie.clone().unwrap();
    let before = store.calls.snapshot();
    let r = b.get("/slow-login").await;
    assert_eq!(r.body, "ok");
    let after = store.calls.snapshot();
    assert_eq!(store.calls.rotate.load(Ordering::SeqCst), 1);
    assert_eq!(
        (after.1 - before.1, after.3 - before.3),
        (0, 0),
        "no set, no destroy"
    );
    let new = id_of(&r.set_cookie().unwrap());
    assert_eq!(
        store.record(&new).await.unwrap().fields["user"],
        serde_json::json!("alice")
    );
    // The old cookie names nothing now: a fresh session with a new id.
    let mut stale = Browser::new(b.app.clone());
    stale.cookie = Some(old_cookie.clone());
    let r = stale.get("/bump").await;
    assert_eq!(r.body, "1");
    assert_ne!(id_of(&r.set_cookie().unwrap()), id_of(&old_cookie));
}

#[tokio::test]
async fn a_request_that_never_extracts_the_session_makes_no_store_call() {
    let store = Recording::default();
    // express-session's defaults would store and send a cookie for every request.
    let mut b = Browser::new(app(
        store.clone(),
        SessionOptions::default(),
        Gate::default(),
    ));
    b.get("/bump").await;
    let before = store.calls.total();
    assert!(b.cookie.is_some());
    for _ in 0..5 {
        let r = b.get("/health").await;
        assert_eq!(r.body, "ok");
        assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    }
    let r = send(&b.app, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert!(
        r.set_cookies().is_empty(),
        "no session for a cookieless request either"
    );
    assert_eq!(
        store.calls.total(),
        before,
        "health checks cost no store call"
    );
    // A request that does extract loads once and, with resave, writes once.
    b.get("/bump").await;
    assert_eq!(store.calls.total() - before, 2);
}

#[tokio::test]
async fn the_store_is_read_once_per_request_however_often_the_session_is_extracted() {
    let store = Recording::default();
    let layer = SessionLayer::<Account>::new(Secret::short_for_migration("keyboard cat").unwrap())
        .with_store(store.clone())
        .with_options(lean());
    async fn twice(req: axum::extract::Request) -> String {
        let (mut parts, _) = req.into_parts();
        use axum::extract::FromRequestParts;
        let mut first = Session::<Account>::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        *first.views += 1;
        drop(first);
        let second = Session::<Account>::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        second.views.to_string()
    }
    let mut b = Browser::new(Router::new().route("/", get(twice)).layer(layer));
    assert_eq!(b.get("/").await.body, "1");
    let before = store.calls.get.load(Ordering::SeqCst);
    assert_eq!(b.get("/").await.body, "2");
    assert_eq!(store.calls.get.load(Ordering::SeqCst) - before, 1);
}
