//! The login example: `rotate_id` at login (a new id: no session fixation), "remember me"
//! (a 30-day cookie), `destroy` at logout, a protected page that sends visitors to the
//! login form, and preferences that two tabs can change at once. Run:
//! `cargo run -p tessera-examples --bin login`, then log in as alice / wonderland.

use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tessera::{MemoryStore, Session, SessionData, SessionLayer, SessionOptions};

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
    /// A display preference, kept before and after login.
    pub theme: Option<String>,
    /// Another one, so that two tabs can change different fields at once.
    pub language: Option<String>,
}

/// How long "remember me" keeps a user logged in.
pub const REMEMBER_FOR: Duration = Duration::from_secs(30 * 86_400);

#[derive(Deserialize)]
struct Credentials {
    user: String,
    password: String,
    #[serde(default)]
    remember: Option<String>,
}

async fn home(session: Session<Auth>) -> Html<String> {
    let prefs = format!(
        "<p id=prefs>theme: {}, language: {}</p>",
        session.theme.as_deref().unwrap_or("-"),
        session.language.as_deref().unwrap_or("-")
    );
    match &*session.user {
        Some(user) => Html(format!(
            "<p id=hello>Hello {user}.</p> <a href=\"/private\">private page</a>{prefs}\
             <form method=post action=/logout><button id=logout>log out</button></form>"
        )),
        None => Html(format!(
            "<form method=post action=/login>\
             <input id=user name=user placeholder=user> \
             <input id=password name=password type=password placeholder=password> \
             <label><input id=remember name=remember type=checkbox value=on> remember me</label> \
             <button id=login>log in</button></form>{prefs}"
        )),
    }
}

async fn login(mut session: Session<Auth>, Form(c): Form<Credentials>) -> Response {
    // A real service checks a password hash; the demo knows one user.
    if c.user != "alice" || c.password != "wonderland" {
        return (StatusCode::UNAUTHORIZED, "wrong user or password").into_response();
    }
    // A new id for the logged-in session: whoever knew the old one (a planted cookie)
    // does not know this one.
    if let Err(e) = session.rotate_id().await {
        return e.into_response();
    }
    session.user.set(Some(c.user));
    if c.remember.is_some() {
        session.cookie_mut().set_max_age(Some(REMEMBER_FOR));
    }
    Redirect::to("/private").into_response()
}

async fn private(session: Session<Auth>) -> Response {
    match &*session.user {
        Some(user) => Html(format!("<p id=private>Only {user} can see this.</p>")).into_response(),
        None => Redirect::to("/").into_response(),
    }
}

async fn logout(mut session: Session<Auth>) -> Response {
    match session.destroy().await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct Pref {
    value: String,
    /// Milliseconds to wait after loading the session and before changing it: lets a
    /// demo (and the browser test) show two tabs changing different fields at once.
    #[serde(default)]
    delay: u64,
}

async fn set_pref(
    mut session: Session<Auth>,
    Path(name): Path<String>,
    Query(p): Query<Pref>,
) -> Response {
    tokio::time::sleep(Duration::from_millis(p.delay.min(2_000))).await;
    match name.as_str() {
        "theme" => session.theme.set(Some(p.value)),
        "language" => session.language.set(Some(p.value)),
        _ => return (StatusCode::NOT_FOUND, "no such preference").into_response(),
    }
    "saved".into_response()
}

/// The login app on its own `MemoryStore`, with the options declared on [`Auth`].
pub fn app(secret: tessera::Secret) -> Router {
    app_with(secret, Auth::options())
}

/// The login app with other options (the browser test runs it over HTTPS with
/// `SameSite=None`).
pub fn app_with(secret: tessera::Secret, options: SessionOptions) -> Router {
    let layer = SessionLayer::<Auth>::new(secret)
        .with_store(MemoryStore::default())
        .with_options(options);
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/private", get(private))
        .route("/logout", post(logout))
        .route("/prefs/{name}", get(set_pref))
        .layer(layer)
}
