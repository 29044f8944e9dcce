//! The per-user session index through the public API: "your devices" and "log out
//! everywhere else", on two app instances sharing one store, on every store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::routing::get;
use tessera::{MemoryStore, Secret, Session, SessionAdmin, SessionData, SessionLayer};
use tessera_tests::services::{drop_postgres_table, postgres_store, redis_store};
use tessera_tests::{Browser, id_of};
use tokio::sync::Notify;

#[derive(SessionData, Default)]
#[session(resave = false, save_uninitialized = false)]
struct Account {
    name: String,
    cart: Vec<String>,
}

fn secret() -> Secret {
    Secret::new("a test secret that is long enough to sign").unwrap()
}

async fn login(
    Path(user): Path<String>,
    headers: axum::http::HeaderMap,
    mut s: Session<Account>,
) -> Result<String, tessera::SessionError> {
    s.rotate_id().await?;
    s.set_user(user.clone());
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    s.set_user_agent(agent);
    s.name.set(user);
    Ok(s.id().to_owned())
}

async fn me(s: Session<Account>) -> (StatusCode, String) {
    match s.user() {
        Some(user) => (StatusCode::OK, user.to_owned()),
        None => (StatusCode::UNAUTHORIZED, "not logged in".to_owned()),
    }
}

async fn devices<S: SessionAdmin>(State(store): State<Arc<S>>, s: Session<Account>) -> String {
    let user = s.user().unwrap_or_default().to_owned();
    let mut listed: Vec<String> = store
        .user_sessions(&user)
        .await
        .unwrap()
        .into_iter()
        .map(|info| {
            let this = if info.id == s.id() {
                " (this device)"
            } else {
                ""
            };
            format!("{}{this}", info.user_agent.unwrap_or_default())
        })
        .collect();
    listed.sort();
    listed.join("\n")
}

async fn logout_others<S: SessionAdmin>(
    State(store): State<Arc<S>>,
    s: Session<Account>,
) -> String {
    let user = s.user().unwrap_or_default().to_owned();
    let n = store
        .destroy_user_sessions(&user, Some(s.id()))
        .await
        .unwrap();
    n.to_string()
}

async fn add_to_cart(mut s: Session<Account>) -> String {
    s.cart.push("book".into());
    s.cart.len().to_string()
}

async fn forget(mut s: Session<Account>) -> &'static str {
    s.clear_user();
    "anonymous again"
}

async fn logout(mut s: Session<Account>) -> &'static str {
    s.destroy().await.unwrap();
    "bye"
}

/// One app instance: its own layer, on the shared store `store`.
fn instance<S: SessionAdmin + Clone>(store: &S) -> Router {
    let layer = SessionLayer::<Account>::new(secret()).with_store(store.clone());
    Router::new()
        .route("/login/{user}", get(login))
        .route("/me", get(me))
        .route("/devices", get(devices::<S>))
        .route("/logout-others", get(logout_others::<S>))
        .route("/cart", get(add_to_cart))
        .route("/forget", get(forget))
        .route("/logout", get(logout))
        .layer(layer)
        .with_state(Arc::new(store.clone()))
}

async fn login_as(browser: &mut Browser, user: &str, agent: &str) -> String {
    let reply = browser
        .request(
            axum::http::Request::get(format!("/login/{user}")).header(header::USER_AGENT, agent),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

async fn five_logins_then_log_out_everywhere_else<S: SessionAdmin + Clone>(a: S, b: S) {
    let (app_a, app_b) = (instance(&a), instance(&b));
    let user = tessera_tests::services::unique("alice");
    let mut browsers: Vec<Browser> = (0..5)
        .map(|i| {
            Browser::new(if i % 2 == 0 {
                app_a.clone()
            } else {
                app_b.clone()
            })
        })
        .collect();
    for (i, browser) in browsers.iter_mut().enumerate() {
        login_as(browser, &user, &format!("device-{i}")).await;
    }
    // Another user's session, which nothing here may touch.
    let mut bob = Browser::new(app_b.clone());
    login_as(&mut bob, "bob", "bob's phone").await;

    let listed = browsers[0].get("/devices").await.body;
    assert_eq!(
        listed,
        "device-0 (this device)\ndevice-1\ndevice-2\ndevice-3\ndevice-4"
    );
    assert_eq!(browsers[0].get("/logout-others").await.body, "4");
    // The next request of every other device, on either instance, is logged out.
    for (i, browser) in browsers.iter_mut().enumerate().skip(1) {
        browser.app = if i % 2 == 0 {
            app_b.clone()
        } else {
            app_a.clone()
        };
        let reply = browser.get("/me").await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "device {i}: {}",
            reply.body
        );
    }
    browsers[0].app = app_b.clone();
    assert_eq!(browsers[0].get("/me").await.body, user);
    assert_eq!(
        browsers[0].get("/devices").await.body,
        "device-0 (this device)"
    );
    assert_eq!(bob.get("/me").await.body, "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_logins_on_two_instances_then_log_out_everywhere_else_on_the_memory_store() {
    let store = MemoryStore::default();
    five_logins_then_log_out_everywhere_else(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_logins_on_two_instances_then_log_out_everywhere_else_on_redis() {
    let test = "five_logins_on_two_instances_then_log_out_everywhere_else_on_redis";
    let Some(a) = redis_store(test).await else {
        return;
    };
    // The second instance has a connection of its own, on the same keys.
    let b = redis_store(test).await.unwrap().with_prefix(a.key(""));
    five_logins_then_log_out_everywhere_else(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_logins_on_two_instances_then_log_out_everywhere_else_on_postgres() {
    let test = "five_logins_on_two_instances_then_log_out_everywhere_else_on_postgres";
    let Some(a) = postgres_store(test).await else {
        return;
    };
    let b = tessera_postgres::PostgresStore::from_url(&tessera_tests::services::database_url())
        .unwrap()
        .table(a.table().trim_matches('"'))
        .build()
        .await
        .unwrap();
    five_logins_then_log_out_everywhere_else(a.clone(), b).await;
    drop_postgres_table(&a).await;
}

/// Holds a handler after it changed its session, until the test lets it go on.
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

async fn a_revocation_racing_a_change_never_resurrects_the_session<S>(store: S)
where
    S: SessionAdmin + Clone,
{
    let gate = Gate::default();
    let held = gate.clone();
    let app = instance(&store).route(
        "/slow-change",
        get(move |mut s: Session<Account>| {
            let held = held.clone();
            async move {
                s.cart.push("held".into());
                held.entered.notify_one();
                held.release.notified().await;
                "changed"
            }
        })
        .layer(SessionLayer::<Account>::new(secret()).with_store(store.clone())),
    );
    let user = tessera_tests::services::unique("carol");
    let mut laptop = Browser::new(app.clone());
    let mut phone = Browser::new(app.clone());
    login_as(&mut laptop, &user, "laptop").await;
    let phone_id = login_as(&mut phone, &user, "phone").await;
    let cookie = phone.cookie.clone().unwrap();
    let slow = tokio::spawn({
        let app = app.clone();
        async move {
            let mut phone = Browser::new(app);
            phone.cookie = Some(cookie);
            phone.get("/slow-change").await
        }
    });
    gate.entered.notified().await;
    // The phone's request holds its session with a change; the laptop revokes it.
    assert_eq!(laptop.get("/logout-others").await.body, "1");
    gate.release.notify_one();
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, StatusCode::OK);
    assert!(
        store.get(&phone_id).await.unwrap().is_none(),
        "the revoked session was written back by the request that held it"
    );
    assert_eq!(phone.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        laptop.get("/devices").await.body,
        "laptop (this device)",
        "the revoked session is listed again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_racing_a_change_never_resurrects_the_session_on_the_memory_store() {
    a_revocation_racing_a_change_never_resurrects_the_session(MemoryStore::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_racing_a_change_never_resurrects_the_session_on_redis() {
    let test = "a_revocation_racing_a_change_never_resurrects_the_session_on_redis";
    if let Some(store) = redis_store(test).await {
        a_revocation_racing_a_change_never_resurrects_the_session(store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_racing_a_change_never_resurrects_the_session_on_postgres() {
    let test = "a_revocation_racing_a_change_never_resurrects_the_session_on_postgres";
    if let Some(store) = postgres_store(test).await {
        a_revocation_racing_a_change_never_resurrects_the_session(store.clone()).await;
        drop_postgres_table(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_tie_moves_with_rotate_id_and_ends_with_clear_user_or_destroy() {
    let store = MemoryStore::default();
    let app = instance(&store);
    let user = tessera_tests::services::unique("dave");
    let mut browser = Browser::new(app.clone());
    // Logging in on an anonymous session with a cart: a patch ties it.
    browser.get("/cart").await;
    let anonymous = id_of(&browser.cookie.clone().unwrap());
    let id = login_as(&mut browser, &user, "desktop").await;
    assert_ne!(id, anonymous, "login rotates the id");
    let listed = store.user_sessions(&user).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert!(listed[0].created.is_some() && listed[0].user_agent.is_some());
    // Logging in again rotates again: the tie follows, the old id is not listed.
    let id2 = login_as(&mut browser, &user, "desktop").await;
    let ids: Vec<String> = store
        .user_sessions(&user)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, vec![id2]);
    // A logout that keeps the cart unties the session...
    assert_eq!(browser.get("/forget").await.body, "anonymous again");
    assert!(store.user_sessions(&user).await.unwrap().is_empty());
    assert_eq!(browser.get("/cart").await.body, "2", "the cart survived");
    // ...and a logout that destroys it leaves nothing either.
    login_as(&mut browser, &user, "desktop").await;
    browser.get("/logout").await;
    assert!(store.user_sessions(&user).await.unwrap().is_empty());
    assert_eq!(store.destroy_user_sessions(&user, None).await.unwrap(), 0);
}

#[tokio::test]
async fn set_user_refuses_an_oversized_id_and_leaves_the_session_untied() {
    let store = MemoryStore::default();
    let huge = "u".repeat(513);
    let mut browser = Browser::new(instance(&store));
    let reply = login_as(&mut browser, &huge, "desktop").await;
    assert!(!reply.is_empty());
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert!(store.user_sessions(&huge).await.unwrap().is_empty());
}
