//! Sessions for API clients: the signed id in a request header (`id_header`) instead of
//! a cookie, sent back in the same header when it is new or changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use tessera::{MemoryStore, Secret, Session, SessionData, SessionLayer, SessionStore};
use tessera_tests::services::{drop_postgres_table, postgres_store, redis_store};
use tessera_tests::{Reply, id_of, send};

#[derive(SessionData, Default)]
#[session(id_header = "X-Session-Id", resave = false, save_uninitialized = false)]
struct Client {
    views: u64,
}

fn secret() -> Secret {
    Secret::new("a test secret that is long enough to sign").unwrap()
}

async fn bump(mut s: Session<Client>) -> String {
    *s.views += 1;
    s.views.to_string()
}

async fn read(s: Session<Client>) -> String {
    s.views.to_string()
}

async fn rotate(mut s: Session<Client>) -> String {
    s.rotate_id().await.unwrap();
    s.views.to_string()
}

fn app<S: SessionStore>(store: S) -> Router {
    Router::new()
        .route("/bump", get(bump))
        .route("/read", get(read))
        .route("/rotate", get(rotate))
        .layer(SessionLayer::<Client>::new(secret()).with_store(store))
}

async fn call(app: &Router, path: &str, session: Option<&str>, cookie: Option<&str>) -> Reply {
    let mut req = Request::get(path);
    if let Some(id) = session {
        req = req.header("x-session-id", id);
    }
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    send(app, req.body(Body::empty()).unwrap()).await
}

fn header_id(reply: &Reply) -> Option<String> {
    reply
        .headers
        .get("x-session-id")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn an_api_client_carries_its_session_in_the_header<S: SessionStore>(store: S) {
    let app = app(store);
    // An empty header asks for a session over the header.
    let first = call(&app, "/bump", Some(""), None).await;
    assert_eq!(first.body, "1");
    assert!(
        first.set_cookies().is_empty(),
        "a cookie was set for an API client"
    );
    let token = header_id(&first).expect("no session id in the response header");
    assert!(
        token.starts_with("s%3A"),
        "not the cookie's signed format: {token}"
    );
    // The token names the session; an unchanged id is not sent again.
    let second = call(&app, "/bump", Some(&token), None).await;
    assert_eq!(second.body, "2");
    assert_eq!(header_id(&second), None);
    assert!(second.set_cookies().is_empty());
    // A new id goes back in the header.
    let rotated = call(&app, "/rotate", Some(&token), None).await;
    let new_token = header_id(&rotated).expect("the rotated id was not sent");
    assert_ne!(
        id_of(&format!("x={new_token}")),
        id_of(&format!("x={token}"))
    );
    assert_eq!(call(&app, "/read", Some(&new_token), None).await.body, "2");
    assert_eq!(call(&app, "/read", Some(&token), None).await.body, "0");
}

#[tokio::test]
async fn an_api_client_carries_its_session_in_the_header_on_the_memory_store() {
    an_api_client_carries_its_session_in_the_header(MemoryStore::default()).await;
}

#[tokio::test]
async fn an_api_client_carries_its_session_in_the_header_on_redis() {
    let test = "an_api_client_carries_its_session_in_the_header_on_redis";
    if let Some(store) = redis_store(test).await {
        an_api_client_carries_its_session_in_the_header(store).await;
    }
}

#[tokio::test]
async fn an_api_client_carries_its_session_in_the_header_on_postgres() {
    let test = "an_api_client_carries_its_session_in_the_header_on_postgres";
    if let Some(store) = postgres_store(test).await {
        an_api_client_carries_its_session_in_the_header(store.clone()).await;
        drop_postgres_table(&store).await;
    }
}

#[tokio::test]
async fn a_browser_without_the_header_keeps_using_the_cookie() {
    let app = app(MemoryStore::default());
    let first = call(&app, "/bump", None, None).await;
    let cookie = first.set_cookie().expect("a browser gets a cookie");
    assert_eq!(header_id(&first), None, "the id leaked into a header");
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(call(&app, "/bump", None, Some(&pair)).await.body, "2");
}

#[tokio::test]
async fn the_header_wins_over_the_cookie_and_the_cookie_value_works_as_the_header() {
    let app = app(MemoryStore::default());
    // A browser session with 3 views...
    let mut cookie = String::new();
    for _ in 0..3 {
        let reply = call(
            &app,
            "/bump",
            None,
            (!cookie.is_empty()).then_some(&*cookie),
        )
        .await;
        if let Some(c) = reply.set_cookie() {
            cookie = c.split(';').next().unwrap().to_owned();
        }
    }
    // ...and an API session with 1.
    let token = header_id(&call(&app, "/bump", Some(""), None).await).unwrap();
    // Both sent: the header is what the client chose; the cookie came by itself.
    let both = call(&app, "/read", Some(&token), Some(&cookie)).await;
    assert_eq!(both.body, "1");
    // The signed value is the same format: the cookie's value works as the header.
    let value = cookie.split_once('=').unwrap().1;
    assert_eq!(call(&app, "/read", Some(value), None).await.body, "3");
}

#[tokio::test]
async fn a_tampered_or_foreign_header_starts_a_fresh_session_never_adopting_the_id() {
    let store = MemoryStore::default();
    let app = app(store.clone());
    let token = header_id(&call(&app, "/bump", Some(""), None).await).unwrap();
    let id = id_of(&format!("x={token}"));
    let tampered = format!("{}x", &token[..token.len() - 1]);
    for bad in [
        tampered.as_str(),
        "s:attacker-chosen-id",
        "garbage",
        &"x".repeat(5000),
    ] {
        let reply = call(&app, "/bump", Some(bad), None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "1", "{bad:.40}: the session was found");
        let fresh = header_id(&reply).expect("a fresh session gets a new id");
        let fresh_id = id_of(&format!("x={fresh}"));
        assert_ne!(fresh_id, id);
        assert_ne!(fresh_id, "attacker-chosen-id");
    }
}
