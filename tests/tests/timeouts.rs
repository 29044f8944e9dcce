//! Idle and absolute timeouts (OWASP's two session limits), with a clock the tests move
//! by hand: nothing here sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tessera::{
    MemoryStore, Secret, Session, SessionAdmin, SessionData, SessionLayer, SessionOptions,
    SessionStore,
};
use tessera_tests::services::{ManualClock, drop_postgres_table, postgres_store, redis_store};
use tessera_tests::{Browser, Captured, id_of};

const MINUTE: Duration = Duration::from_secs(60);

#[derive(SessionData, Default)]
#[session(
    idle_timeout = "30m",
    absolute_timeout = "2h",
    resave = false,
    save_uninitialized = false
)]
struct Visit {
    views: u64,
}

fn secret() -> Secret {
    Secret::new("a test secret that is long enough to sign").unwrap()
}

async fn bump(mut s: Session<Visit>) -> String {
    *s.views += 1;
    s.views.to_string()
}

async fn rotate(mut s: Session<Visit>) -> String {
    s.rotate_id().await.unwrap();
    *s.views += 1;
    s.views.to_string()
}

async fn regenerate(mut s: Session<Visit>) -> String {
    s.regenerate().await.unwrap();
    *s.views += 1;
    s.views.to_string()
}

fn app<S: SessionStore>(store: S, clock: &ManualClock) -> Router {
    let layer = SessionLayer::<Visit>::new(secret())
        .with_store(store)
        .with_clock(clock.reader());
    Router::new()
        .route("/bump", get(bump))
        .route("/rotate", get(rotate))
        .route("/regenerate", get(regenerate))
        .layer(layer)
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    tessera_tests::capture_events(tracing::Level::INFO)
}

#[tokio::test]
async fn an_idle_session_ends_after_the_idle_timeout_and_every_request_renews_it() {
    let clock = ManualClock::default();
    // The store expires the idle session: it reads the same clock.
    let store = MemoryStore::default().with_clock(clock.reader());
    let mut browser = Browser::new(app(store, &clock));
    let first = browser.get("/bump").await;
    assert_eq!(first.body, "1");
    let set_cookie = first.set_cookie().unwrap();
    // express-session's cookie: `Expires`, 30 minutes ahead on the layer's clock.
    let expires = httpdate::fmt_http_date(clock.now() + 30 * MINUTE);
    assert!(
        set_cookie.contains(&format!("Expires={expires}")),
        "{set_cookie}"
    );
    let id = id_of(&set_cookie);
    for views in 2..=5 {
        // 29 minutes of quiet, again and again: each request renews the 30 minutes.
        clock.advance(29 * MINUTE);
        let reply = browser.get("/bump").await;
        assert_eq!(reply.body, views.to_string());
        // `rolling`: the renewed cookie goes out every time.
        assert_eq!(id_of(&reply.set_cookie().unwrap()), id);
    }
    let (events, _guard) = capture();
    clock.advance(31 * MINUTE);
    let reply = browser.get("/bump").await;
    assert_eq!(
        reply.body, "1",
        "an idle session was used after its timeout"
    );
    assert_ne!(
        id_of(&reply.set_cookie().unwrap()),
        id,
        "the idle id was kept"
    );
    assert!(
        events.text().contains("session not in the store"),
        "no event for the idle session: {}",
        events.text()
    );
}

/// `requests` requests, 20 minutes apart: the session `id` stays, and keeps counting.
async fn busy(
    browser: &mut Browser,
    clock: &ManualClock,
    id: &str,
    requests: u64,
    views: &mut u64,
) {
    for _ in 0..requests {
        clock.advance(20 * MINUTE);
        let reply = browser.get("/bump").await;
        *views += 1;
        assert_eq!(
            reply.body,
            views.to_string(),
            "a busy session was cut short"
        );
        assert_eq!(id_of(&reply.set_cookie().unwrap()), id);
    }
}

async fn the_absolute_timeout_counts_from_creation_through_rotate_id<S>(store: S)
where
    S: SessionAdmin + Clone,
{
    let clock = ManualClock::default();
    let mut browser = Browser::new(app(store.clone(), &clock));
    assert_eq!(browser.get("/bump").await.body, "1");
    // A login 20 minutes in: a new id, the same creation time.
    clock.advance(20 * MINUTE);
    let rotated = browser.get("/rotate").await;
    assert_eq!(rotated.body, "2");
    let id = id_of(&rotated.set_cookie().unwrap());
    let stored = store.get(&id).await.unwrap().unwrap();
    assert!(stored.created().is_some(), "no creation time in the record");
    let mut views = 2;
    // 20 + 4 × 20 + 19 = 119 minutes since creation: still the same session.
    busy(&mut browser, &clock, &id, 4, &mut views).await;
    clock.advance(19 * MINUTE);
    assert_eq!(browser.get("/bump").await.body, (views + 1).to_string());
    let (events, _guard) = capture();
    // Two hours and a minute after creation, active all along: over.
    clock.advance(2 * MINUTE);
    let reply = browser.get("/bump").await;
    assert_eq!(reply.body, "1", "a session outlived its absolute timeout");
    assert_ne!(id_of(&reply.set_cookie().unwrap()), id);
    assert!(
        store.get(&id).await.unwrap().is_none(),
        "the session past its absolute timeout is still stored"
    );
    assert!(
        events.text().contains("absolute timeout"),
        "no event for the absolute timeout: {}",
        events.text()
    );
}

#[tokio::test]
async fn the_absolute_timeout_counts_from_creation_through_rotate_id_on_the_memory_store() {
    the_absolute_timeout_counts_from_creation_through_rotate_id(MemoryStore::default()).await;
}

#[tokio::test]
async fn the_absolute_timeout_counts_from_creation_through_rotate_id_on_redis() {
    let test = "the_absolute_timeout_counts_from_creation_through_rotate_id_on_redis";
    if let Some(store) = redis_store(test).await {
        the_absolute_timeout_counts_from_creation_through_rotate_id(store).await;
    }
}

#[tokio::test]
async fn the_absolute_timeout_counts_from_creation_through_rotate_id_on_postgres() {
    let test = "the_absolute_timeout_counts_from_creation_through_rotate_id_on_postgres";
    if let Some(store) = postgres_store(test).await {
        the_absolute_timeout_counts_from_creation_through_rotate_id(store.clone()).await;
        drop_postgres_table(&store).await;
    }
}

#[tokio::test]
async fn the_cookie_and_the_stored_record_expire_at_the_absolute_timeout_however_busy_the_session()
{
    let clock = ManualClock::default();
    let store = MemoryStore::default().with_clock(clock.reader());
    let mut browser = Browser::new(app(store.clone(), &clock));
    let created = clock.now();
    let first = browser.get("/bump").await;
    let id = id_of(&first.set_cookie().unwrap());
    let expires_at = |at: std::time::SystemTime| format!("Expires={}", httpdate::fmt_http_date(at));
    let mut views = 1;
    // 80 minutes in, the idle timeout's renewal (110 minutes) is within the 2 hours.
    busy(&mut browser, &clock, &id, 3, &mut views).await;
    clock.advance(20 * MINUTE);
    let renewed = browser.get("/bump").await.set_cookie().unwrap();
    assert!(
        renewed.contains(&expires_at(created + 110 * MINUTE)),
        "{renewed}"
    );
    // 100 minutes in, it would be 130 minutes: the cookie ends at the absolute timeout.
    clock.advance(20 * MINUTE);
    let capped = browser.get("/bump").await.set_cookie().unwrap();
    assert!(
        capped.contains(&expires_at(created + 120 * MINUTE)),
        "the cookie outlives the absolute timeout: {capped}"
    );
    // So does the record: the store drops it at the deadline, with no request needed.
    clock.advance(19 * MINUTE);
    let stored = store
        .get(&id)
        .await
        .unwrap()
        .expect("the session ended early");
    let deadline = created + 120 * MINUTE;
    let stored_expiry = stored.cookie().expires().unwrap();
    // Stored in milliseconds, as express does.
    assert!(
        stored_expiry <= deadline
            && deadline.duration_since(stored_expiry).unwrap() < Duration::from_millis(1),
        "the record expires at {stored_expiry:?}, not at the absolute timeout {deadline:?}"
    );
    clock.advance(MINUTE + Duration::from_secs(1));
    assert!(
        store.get(&id).await.unwrap().is_none(),
        "the store keeps a session past its absolute timeout"
    );
}

#[tokio::test]
async fn a_remember_me_saved_mid_request_or_a_touch_is_still_cut_at_the_absolute_timeout() {
    let clock = ManualClock::default();
    let store = MemoryStore::default().with_clock(clock.reader());
    let seen = store.clone();
    // "Remember me" for 30 days, saved at once: what the store holds right after the
    // save, before the end of the request writes again.
    let remember = move |mut s: Session<Visit>| {
        let store = seen.clone();
        async move {
            s.cookie_mut()
                .set_max_age(Some(Duration::from_secs(30 * 86_400)));
            s.save().await.unwrap();
            let stored = store.get(s.id()).await.unwrap().unwrap();
            httpdate::fmt_http_date(stored.cookie().expires().unwrap())
        }
    };
    let layer = SessionLayer::<Visit>::new(secret())
        .with_store(store)
        .with_clock(clock.reader());
    // What a handler sees after renewing the session by hand.
    let touched = |mut s: Session<Visit>| async move {
        s.touch();
        httpdate::fmt_http_date(s.cookie().expires().unwrap())
    };
    let mut browser = Browser::new(
        Router::new()
            .route("/bump", get(bump))
            .route("/remember", get(remember))
            .route("/touch", get(touched))
            .layer(layer),
    );
    let created = clock.now();
    browser.get("/bump").await;
    clock.advance(10 * MINUTE);
    let reply = browser.get("/remember").await;
    let deadline = httpdate::fmt_http_date(created + 120 * MINUTE);
    assert_eq!(
        reply.body, deadline,
        "the saved record outlives the absolute timeout"
    );
    let set_cookie = reply.set_cookie().unwrap();
    assert!(
        set_cookie.contains(&format!("Expires={deadline}")),
        "{set_cookie}"
    );
    clock.advance(20 * MINUTE);
    assert_eq!(
        browser.get("/touch").await.body,
        deadline,
        "touch renews past the absolute timeout"
    );
}

#[tokio::test]
async fn regenerate_starts_the_absolute_timeout_again() {
    let clock = ManualClock::default();
    let mut browser = Browser::new(app(MemoryStore::default(), &clock));
    browser.get("/bump").await;
    clock.advance(20 * MINUTE);
    browser.get("/bump").await;
    clock.advance(20 * MINUTE);
    // 40 minutes in: a fresh session (regenerate drops the data, then counts 1).
    let fresh = browser.get("/regenerate").await;
    assert_eq!(fresh.body, "1");
    let id = id_of(&fresh.set_cookie().unwrap());
    let mut views = 1;
    // 2 h 20 min after the first creation, 1 h 40 min after the regeneration: alive.
    busy(&mut browser, &clock, &id, 5, &mut views).await;
    clock.advance(19 * MINUTE);
    assert_eq!(browser.get("/bump").await.body, (views + 1).to_string());
    // 2 h 1 min after the regeneration: over.
    clock.advance(2 * MINUTE);
    let reply = browser.get("/bump").await;
    assert_eq!(reply.body, "1");
    assert_ne!(id_of(&reply.set_cookie().unwrap()), id);
}

#[derive(SessionData, Default)]
#[session(resave = false, save_uninitialized = false)]
struct Plain {
    views: u64,
}

async fn bump_plain(mut s: Session<Plain>) -> String {
    *s.views += 1;
    s.views.to_string()
}

#[tokio::test]
async fn a_stored_session_without_a_creation_time_is_counted_from_the_first_request_that_sees_it() {
    // Sessions written before the option was on (or by Node) have no creation time.
    let store = MemoryStore::default();
    let clock = ManualClock::default();
    let before = Router::new().route("/bump", get(bump_plain)).layer(
        SessionLayer::<Plain>::new(secret())
            .with_store(store.clone())
            .with_clock(clock.reader()),
    );
    let mut browser = Browser::new(before);
    let id = id_of(&browser.get("/bump").await.set_cookie().unwrap());
    assert!(store.get(&id).await.unwrap().unwrap().created().is_none());

    let options = SessionOptions::default()
        .with_resave(false)
        .with_save_uninitialized(false)
        .with_max_age(Some(Duration::from_secs(24 * 3600)))
        .unwrap()
        .with_absolute_timeout(Some(Duration::from_secs(3600)))
        .unwrap();
    browser.app = Router::new().route("/bump", get(bump_plain)).layer(
        SessionLayer::<Plain>::new(secret())
            .with_store(store.clone())
            .with_options(options)
            .with_clock(clock.reader()),
    );
    clock.advance(10 * MINUTE);
    assert_eq!(browser.get("/bump").await.body, "2");
    let created = store.get(&id).await.unwrap().unwrap().created().unwrap();
    assert_eq!(
        created,
        clock.now().into_time_ms(),
        "stamped with this request's time"
    );
    clock.advance(59 * MINUTE);
    assert_eq!(browser.get("/bump").await.body, "3");
    clock.advance(2 * MINUTE);
    assert_eq!(
        browser.get("/bump").await.body,
        "1",
        "counted from the stamp"
    );
}

/// Milliseconds precision, as the record keeps it.
trait IntoTimeMs {
    fn into_time_ms(self) -> std::time::SystemTime;
}

impl IntoTimeMs for std::time::SystemTime {
    fn into_time_ms(self) -> std::time::SystemTime {
        let ms = self
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap())
    }
}

#[test]
fn timeouts_from_configuration_follow_the_attribute_rules() {
    let o = SessionOptions::default()
        .with_config([("idle_timeout", "30m"), ("absolute_timeout", "12h")])
        .unwrap();
    assert!(o.validate().is_ok());
    let err = SessionOptions::default()
        .with_config([("idle_timeout", "2h"), ("absolute_timeout", "30m")])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("(30m) is shorter than `idle_timeout` (2h)"),
        "{err}"
    );
    let err = SessionOptions::default()
        .with_config([("idle_timeout", "30m"), ("cookie.max_age", "1h")])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`idle_timeout` sets the cookie's max-age"),
        "{err}"
    );
    let err = SessionOptions::default()
        .with_config([("idle_timeout", "30m"), ("rolling", "false")])
        .unwrap_err();
    assert!(
        err.to_string().contains("remove `rolling = false`"),
        "{err}"
    );
    let err = SessionOptions::default()
        .set("idleTimeout", "1800")
        .unwrap_err();
    assert!(err.to_string().contains("\"30m\""), "{err}");
}
