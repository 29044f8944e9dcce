//! The login example: `rotate_id` at login (a new id: no session fixation), `destroy` at logout,
//! and a protected page. Run: `cargo run -p tessera-examples --bin login`,
//! then log in as alice / wonderland.

use axum::Router;
use axum::extract::Form;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tessera::{MemoryStore, Session, SessionData, SessionLayer};

/// What the login example keeps in a session.
#[derive(SessionData, Default)]
#[session(
    name = "sid",
    cookie(max_age = "30m", same_site = "lax", secure = "auto"),
    rolling,
    resave = false,
    save_uninitialized = false
)]
pub struct Auth {
    /// The logged-in user.
    pub user: Option<String>,
}

#[derive(Deserialize)]
struct Credentials {
    user: String,
    password: String,
}

async fn home(session: Session<Auth>) -> Html<String> {
    match &*session.user {
        Some(user) => Html(format!(
            "<p>Hello {user}. <a href=\"/private\">private page</a></p>\
             <form method=post action=/logout><button>log out</button></form>"
        )),
        None => Html(
            "<form method=post action=/login>\
             <input name=user placeholder=user> <input name=password type=password placeholder=password>\
             <button>log in</button></form>"
                .to_owned(),
        ),
    }
}

async fn login(mut session: Session<Auth>, Form(c): Form<Credentials>) -> Response {
    // A real service checks a password hash; the demo knows one user.
    if c.user != "alice" || c.password != "wonderland" {
        return (StatusCode::UNAUTHORIZED, "wrong user or password").into_response();
    }
    if let Err(e) = session.rotate_id().await {
        return e.into_response();
    }
    session.user.set(Some(c.user));
    Redirect::to("/private").into_response()
}

async fn private(session: Session<Auth>) -> Response {
    match &*session.user {
        Some(user) => Html(format!("<p>Only {user} can see this.</p>")).into_response(),
        None => (StatusCode::UNAUTHORIZED, "log in first").into_response(),
    }
}

async fn logout(mut session: Session<Auth>) -> Response {
    match session.destroy().await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => e.into_response(),
    }
}

/// The login app, also used by the tests.
pub fn app(secret: tessera::Secret) -> Router {
    let layer = SessionLayer::<Auth>::new(secret).with_store(MemoryStore::default());
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/private", get(private))
        .route("/logout", post(logout))
        .layer(layer)
}
