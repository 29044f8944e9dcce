//! The request lifecycle, option by option, against express-session's rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use serde_json::json;
use tessera::{
    MemoryStore, Secret, Secure, Session, SessionAdmin, SessionData, SessionLayer, SessionOptions,
    StoreErrorPolicy, Unset,
};
use tessera_tests::{Browser, Recording, id_of, send};

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
    name: String,
}

fn secret() -> Secret {
    Secret::short_for_migration("keyboard cat").unwrap()
}

async fn bump(mut s: Session<Visit>) -> String {
    *s.views += 1;
    s.views.to_string()
}

async fn read(s: Session<Visit>) -> String {
    s.views.to_string()
}

async fn same(mut s: Session<Visit>) -> String {
    // Borrow mutably, write back the same value.
    let v = *s.views;
    s.views.set(v);
    s.name.push_str("");
    v.to_string()
}

async fn optional(s: Option<Session<Visit>>) -> String {
    match s {
        Some(s) => format!("session {}", s.id()),
        None => "no session".to_owned(),
    }
}

fn app_with(store: Recording, options: SessionOptions) -> Router {
    let layer = SessionLayer::<Visit>::new(secret())
        .with_store(store)
        .with_options(options);
    Router::new()
        .route("/bump", get(bump))
        .route("/read", get(read))
        .route("/same", get(same))
        .route("/optional", get(optional))
        .route("/foo/bump", get(bump))
        .route("/foo/optional", get(optional))
        .layer(layer)
}

fn express_defaults() -> SessionOptions {
    SessionOptions::default()
}

fn lean() -> SessionOptions {
    SessionOptions::default()
        .with_resave(false)
        .with_save_uninitialized(false)
}

#[tokio::test]
async fn session_persists_across_requests() {
    let mut b = Browser::new(app_with(Recording::default(), lean()));
    assert_eq!(b.get("/bump").await.body, "1");
    assert_eq!(b.get("/bump").await.body, "2");
    assert_eq!(b.get("/read").await.body, "2");
}

#[tokio::test]
async fn save_uninitialized_true_stores_and_sends_cookie_for_a_new_untouched_session() {
    let store = Recording::default();
    let b = Browser::new(app_with(store.clone(), express_defaults()));
    let r = send(&b.app, Request::get("/read").body(Body::empty()).unwrap()).await;
    let cookie = r.set_cookie().expect("cookie for an uninitialized session");
    let id = id_of(&cookie);
    let rec = store.record(&id).await.expect("stored");
    assert_eq!(rec.fields["views"], json!(0));
}

#[tokio::test]
async fn save_uninitialized_false_neither_stores_nor_sends_cookie_for_untouched_session() {
    let store = Recording::default();
    let b = Browser::new(app_with(store.clone(), lean()));
    let r = send(&b.app, Request::get("/read").body(Body::empty()).unwrap()).await;
    assert_eq!(r.set_cookie(), None);
    let (_, set, patch, _, touch) = store.calls.snapshot();
    assert_eq!((set, patch, touch), (0, 0, 0));
}

#[tokio::test]
async fn save_uninitialized_false_still_saves_a_modified_new_session() {
    let store = Recording::default();
    let mut b = Browser::new(app_with(store.clone(), lean()));
    let r = b.get("/bump").await;
    let id = id_of(&r.set_cookie().expect("cookie"));
    assert_eq!(store.record(&id).await.unwrap().fields["views"], json!(1));
}

#[tokio::test]
async fn writing_back_the_same_value_is_not_a_modification() {
    let store = Recording::default();
    let b = Browser::new(app_with(store.clone(), lean()));
    let r = send(&b.app, Request::get("/same").body(Body::empty()).unwrap()).await;
    assert_eq!(
        r.set_cookie(),
        None,
        "an unmodified new session is not saved"
    );
    assert_eq!(store.calls.set.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unmodified_loaded_session_gets_no_set_cookie_and_is_touched_with_resave_off() {
    let store = Recording::default();
    let mut b = Browser::new(app_with(
        store.clone(),
        lean().with_max_age(Some(Duration::from_secs(60))).unwrap(),
    ));
    b.get("/bump").await;
    let before = store.calls.snapshot();
    let r = b.get("/read").await;
    assert_eq!(r.set_cookie(), None);
    let after = store.calls.snapshot();
    assert_eq!(after.1 - before.1, 0, "no set");
    assert_eq!(after.2 - before.2, 0, "no patch");
    assert_eq!(after.4 - before.4, 1, "one touch");
}

#[tokio::test]
async fn resave_true_rewrites_an_unmodified_session_without_touching_its_fields() {
    let store = Recording::default();
    let mut b = Browser::new(app_with(store.clone(), express_defaults()));
    b.get("/bump").await;
    let before = store.calls.snapshot();
    b.get("/read").await;
    let after = store.calls.snapshot();
    assert_eq!(
        after.2 - before.2,
        1,
        "resave writes (as a field-less patch)"
    );
    let patch = store.last_patch.lock().unwrap().clone().unwrap();
    assert!(patch.changes.is_empty());
}

#[tokio::test]
async fn a_changed_session_sends_only_its_changed_fields() {
    let store = Recording::default();
    let mut b = Browser::new(app_with(store.clone(), lean()));
    b.get("/bump").await;
    b.get("/bump").await;
    let patch = store.last_patch.lock().unwrap().clone().unwrap();
    assert_eq!(
        patch.changes,
        vec![tessera::FieldChange::set("views", json!(2))]
    );
}

#[tokio::test]
async fn modified_session_with_max_age_resends_cookie_but_browser_session_cookie_does_not() {
    let mut b = Browser::new(app_with(
        Recording::default(),
        lean().with_max_age(Some(Duration::from_secs(60))).unwrap(),
    ));
    b.get("/bump").await;
    assert!(b.get("/bump").await.set_cookie().is_some());

    let mut b = Browser::new(app_with(Recording::default(), lean()));
    b.get("/bump").await;
    let r = b.get("/bump").await;
    assert_eq!(r.body, "2");
    assert_eq!(r.set_cookie(), None);
}

#[tokio::test]
async fn rolling_sends_the_cookie_on_every_response_of_a_loaded_session() {
    let mut b = Browser::new(app_with(
        Recording::default(),
        lean()
            .with_rolling(true)
            .with_max_age(Some(Duration::from_secs(60)))
            .unwrap(),
    ));
    b.get("/bump").await;
    assert!(b.get("/read").await.set_cookie().is_some());
    assert!(b.get("/read").await.set_cookie().is_some());
}

#[tokio::test]
async fn rolling_does_not_force_a_cookie_for_an_uninitialized_session_when_save_uninitialized_is_off()
 {
    let b = Browser::new(app_with(Recording::default(), lean().with_rolling(true)));
    let r = send(&b.app, Request::get("/read").body(Body::empty()).unwrap()).await;
    assert_eq!(r.set_cookie(), None);
}

#[tokio::test]
async fn cookie_path_gate_gives_no_session_outside_the_path() {
    let store = Recording::default();
    let b = Browser::new(app_with(store.clone(), lean().with_path("/foo").unwrap()));
    let r = send(
        &b.app,
        Request::get("/optional").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.body, "no session");
    let r = send(&b.app, Request::get("/bump").body(Body::empty()).unwrap()).await;
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Session<T> without a session"
    );
    let r = send(
        &b.app,
        Request::get("/foo/bump").body(Body::empty()).unwrap(),
    )
    .await;
    let sc = r.set_cookie().unwrap();
    assert!(sc.contains("; Path=/foo;"), "{sc}");
}

#[tokio::test]
async fn secure_cookie_is_not_sent_over_plain_http_but_the_session_is_stored() {
    let store = Recording::default();
    let b = Browser::new(app_with(store.clone(), lean().with_secure(Secure::Always)));
    let r = send(&b.app, Request::get("/bump").body(Body::empty()).unwrap()).await;
    assert_eq!(r.set_cookie(), None);
    assert_eq!(store.calls.set.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn proxy_true_trusts_x_forwarded_proto_first_value() {
    let app = app_with(
        Recording::default(),
        lean().with_secure(Secure::Always).with_proxy(Some(true)),
    );
    let req = Request::get("/bump")
        .header("x-forwarded-proto", " HTTPS , http")
        .body(Body::empty())
        .unwrap();
    let sc = send(&app, req)
        .await
        .set_cookie()
        .expect("secure cookie behind https proxy");
    assert!(sc.contains("; Secure"), "{sc}");
    let req = Request::get("/bump")
        .header("x-forwarded-proto", "http, https")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.set_cookie(), None);
}

#[tokio::test]
async fn proxy_unset_or_false_ignores_x_forwarded_proto() {
    for proxy in [None, Some(false)] {
        let app = app_with(
            Recording::default(),
            lean().with_secure(Secure::Always).with_proxy(proxy),
        );
        let req = Request::get("/bump")
            .header("x-forwarded-proto", "https")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.set_cookie(), None, "{proxy:?}");
    }
}

#[tokio::test]
async fn secure_auto_and_same_site_auto_follow_the_request() {
    let opts = lean()
        .with_secure(Secure::Auto)
        .with_same_site(Some("auto".parse().unwrap()))
        .with_proxy(Some(true));
    let app = app_with(Recording::default(), opts);
    let req = Request::get("/bump")
        .header("x-forwarded-proto", "https")
        .body(Body::empty())
        .unwrap();
    let sc = send(&app, req).await.set_cookie().unwrap();
    assert!(sc.ends_with("; HttpOnly; Secure; SameSite=None"), "{sc}");
    let sc = send(&app, Request::get("/bump").body(Body::empty()).unwrap())
        .await
        .set_cookie()
        .unwrap();
    assert!(sc.ends_with("; HttpOnly; SameSite=Lax"), "{sc}");
}

#[tokio::test]
async fn a_request_over_tls_counts_as_secure() {
    let app = app_with(Recording::default(), lean().with_secure(Secure::Auto));
    let mut req = Request::get("/bump").body(Body::empty()).unwrap();
    req.extensions_mut().insert(tessera::SecureConnection);
    let sc = send(&app, req).await.set_cookie().unwrap();
    assert!(sc.contains("; Secure"), "{sc}");
}

#[tokio::test]
async fn store_failure_on_load_answers_500_by_default() {
    let store = Recording::default();
    let mut b = Browser::new(app_with(store.clone(), lean()));
    b.get("/bump").await;
    store.fail_reads.store(true, Ordering::SeqCst);
    let r = b.get("/bump").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.set_cookie(), None);
}

#[tokio::test]
async fn store_failure_on_load_can_continue_without_a_session() {
    let store = Recording::default();
    let mut b = Browser::new(app_with(
        store.clone(),
        lean().with_store_error_policy(StoreErrorPolicy::ContinueWithoutSession),
    ));
    b.get("/bump").await;
    store.fail_reads.store(true, Ordering::SeqCst);
    let r = b.get("/optional").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "no session"));
}

#[tokio::test]
async fn store_failure_can_answer_503_with_retry_after_on_load_and_on_save() {
    let store = Recording::default();
    let policy = StoreErrorPolicy::ServiceUnavailable {
        retry_after: Duration::from_secs(7),
    };
    let mut b = Browser::new(app_with(
        store.clone(),
        lean().with_store_error_policy(policy),
    ));
    b.get("/bump").await;
    store.fail_reads.store(true, Ordering::SeqCst);
    let r = b.get("/bump").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["retry-after"], "7");
    assert_eq!(r.set_cookie(), None);
    let rejection = tessera::SessionRejection::RetryLater {
        retry_after_secs: 7,
    };
    assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body, "session store unavailable");
    assert_eq!(
        tessera::SessionRejection::StoreUnavailable.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        tessera::SessionRejection::StoreUnavailable.body_text(),
        "session store unavailable"
    );
    store.fail_reads.store(false, Ordering::SeqCst);
    store.fail_writes.store(true, Ordering::SeqCst);
    let r = b.get("/bump").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["retry-after"], "7");
    store.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(
        b.get("/read").await.body,
        "1",
        "the failed change was not stored"
    );
}

#[tokio::test]
async fn failed_store_write_becomes_a_500_not_a_silent_loss() {
    let store = Recording::default();
    let mut b = Browser::new(app_with(store.clone(), lean()));
    b.get("/bump").await;
    store.fail_writes.store(true, Ordering::SeqCst);
    let r = b.get("/bump").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    store.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(
        b.get("/read").await.body,
        "1",
        "the failed change was not stored"
    );
}

#[tokio::test]
async fn corrupt_stored_record_starts_a_fresh_session_with_a_new_id() {
    let store = Recording::default();
    let mut b = Browser::new(app_with(store.clone(), lean()));
    let first = id_of(&b.get("/bump").await.set_cookie().unwrap());
    store.corrupt_reads.store(true, Ordering::SeqCst);
    let r = b.get("/bump").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "1");
    assert_ne!(id_of(&r.set_cookie().unwrap()), first);
}

#[tokio::test]
async fn session_is_persisted_before_the_response_is_returned() {
    let store = Recording::default();
    let app = app_with(store.clone(), lean());
    let r = send(&app, Request::get("/bump").body(Body::empty()).unwrap()).await;
    // No waiting: the record must already be there when the response is in hand.
    let id = id_of(&r.set_cookie().unwrap());
    assert!(store.record(&id).await.is_some());
}

#[tokio::test]
async fn unset_keep_leaves_the_stored_session_alone() {
    async fn unset(mut s: Session<Visit>) -> &'static str {
        *s.views += 100;
        s.unset();
        "unset"
    }
    let store = Recording::default();
    let layer = SessionLayer::<Visit>::new(secret())
        .with_store(store.clone())
        .with_options(lean());
    let app = Router::new()
        .route("/bump", get(bump))
        .route("/unset", get(unset))
        .layer(layer);
    let mut b = Browser::new(app);
    b.get("/bump").await;
    let r = b.get("/unset").await;
    assert_eq!(r.set_cookie(), None);
    assert_eq!(b.get("/bump").await.body, "2");
}

#[tokio::test]
async fn unset_destroy_destroys_the_stored_session() {
    async fn unset(mut s: Session<Visit>) -> &'static str {
        s.unset();
        "unset"
    }
    let store = Recording::default();
    let layer = SessionLayer::<Visit>::new(secret())
        .with_store(store.clone())
        .with_options(lean().with_unset(Unset::Destroy));
    let app = Router::new()
        .route("/bump", get(bump))
        .route("/unset", get(unset))
        .layer(layer);
    let mut b = Browser::new(app);
    let id = id_of(&b.get("/bump").await.set_cookie().unwrap());
    b.get("/unset").await;
    assert!(store.record(&id).await.is_none());
}

#[tokio::test]
async fn secret_rotation_reads_old_cookies_and_signs_with_the_new_secret() {
    let store = MemoryStore::default();
    let old = SessionLayer::<Visit>::new(Secret::short_for_migration("old").unwrap())
        .with_store(store.clone())
        .with_options(lean().with_rolling(true));
    let mut b = Browser::new(Router::new().route("/bump", get(bump)).layer(old));
    let old_cookie = b.get("/bump").await.set_cookie().unwrap();
    let rotated = SessionLayer::<Visit>::new(
        tessera::Secrets::new([
            Secret::short_for_migration("new").unwrap(),
            Secret::short_for_migration("old").unwrap(),
        ])
        .unwrap(),
    )
    .with_store(store.clone())
    .with_options(lean().with_rolling(true));
    b.app = Router::new().route("/bump", get(bump)).layer(rotated);
    let r = b.get("/bump").await;
    assert_eq!(r.body, "2", "old cookie still verifies");
    let new_cookie = r.set_cookie().unwrap();
    assert_eq!(id_of(&new_cookie), id_of(&old_cookie));
    assert_ne!(
        new_cookie.split(';').next(),
        old_cookie.split(';').next(),
        "re-signed with the new secret"
    );
}

#[tokio::test]
async fn many_concurrent_requests_changing_different_fields_all_survive() {
    #[derive(SessionData, Default)]
    struct Bag {
        #[session(flatten)]
        keys: serde_json::Map<String, serde_json::Value>,
    }
    async fn put(
        mut s: Session<Bag>,
        axum::extract::Path(k): axum::extract::Path<String>,
    ) -> &'static str {
        // Yield so that the requests really overlap.
        tokio::task::yield_now().await;
        s.keys.insert(k, json!(true));
        "ok"
    }
    async fn all(mut s: Session<Bag>) -> String {
        serde_json::Value::Object(s.to_json().unwrap()).to_string()
    }
    let store = MemoryStore::default();
    let layer = SessionLayer::<Bag>::new(secret())
        .with_store(store.clone())
        .with_options(lean());
    let app = Router::new()
        .route("/put/{k}", get(put))
        .route("/all", get(all))
        .layer(layer);
    let mut b = Browser::new(app.clone());
    b.get("/put/seed").await;
    let cookie = b.cookie.clone().unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let app = app.clone();
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::get(format!("/put/k{i}"))
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap();
            send(&app, req).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let data: serde_json::Value = serde_json::from_str(&b.get("/all").await.body).unwrap();
    let keys = data.as_object().unwrap();
    assert_eq!(keys.len(), 65, "{keys:?}");
    for i in 0..64 {
        assert_eq!(keys[&format!("k{i}")], json!(true));
    }
    assert_eq!(store.len().await.unwrap(), 1);
}

#[tokio::test]
async fn touch_after_skips_touches_that_would_move_the_expiry_less_than_it() {
    let store = Recording::default();
    let opts = |after| {
        lean()
            .with_max_age(Some(Duration::from_secs(60)))
            .unwrap()
            .with_touch_after(after)
    };
    for (after, moved) in [(Some(Duration::from_secs(30)), false), (None, true)] {
        let mut b = Browser::new(app_with(store.clone(), opts(after)));
        b.get("/bump").await;
        let id = tessera_tests::id_of(b.cookie.as_ref().unwrap());
        let deadline = |s: &Recording| {
            let s = s.clone();
            let id = id.clone();
            async move {
                tessera::SessionStore::get(&s.inner, &id)
                    .await
                    .unwrap()
                    .unwrap()
                    .deadline()
                    .unwrap()
            }
        };
        let before = deadline(&store).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        b.get("/read").await;
        let after_read = deadline(&store).await;
        assert_eq!(after_read > before, moved, "touch_after {after:?}");
    }
}
