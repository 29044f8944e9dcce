//! The login example: `rotate_id` at login (a new id: no session fixation), "remember me"
//! (a 30-day cookie), `destroy` at logout, a protected page that sends visitors to the
//! login form, preferences that two tabs can change at once, and "your devices": the
//! sessions of the logged-in user (`set_user` at login, `SessionAdmin::user_sessions`),
//! with "log out everywhere else" (`SessionAdmin::destroy_user_sessions`). Run:
//! `cargo run -p tessera-examples --bin login`, then log in as alice / wonderland.

use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::{Form, Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tessera::{MemoryStore, Session, SessionAdmin, SessionData, SessionLayer, SessionOptions};

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
            "<p id=hello>Hello {user}.</p> <a href=\"/private\">private page</a> \
             <a id=devices href=\"/devices\">your devices</a>{prefs}\
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

async fn login(
    mut session: Session<Auth>,
    headers: HeaderMap,
    Form(c): Form<Credentials>,
) -> Response {
    // A real service checks a password hash; the demo knows one user.
    if c.user != "alice" || c.password != "wonderland" {
        return (StatusCode::UNAUTHORIZED, "wrong user or password").into_response();
    }
    // A new id for the logged-in session: whoever knew the old one (a planted cookie)
    // does not know this one.
    if let Err(e) = session.rotate_id().await {
        return e.into_response();
    }
    // Tie the session to the user, for "your devices" and "log out everywhere else".
    session.set_user(c.user.clone());
    session.set_user_agent(
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
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

/// "Your devices": every live session of the logged-in user, this one marked.
async fn devices(Extension(store): Extension<MemoryStore>, session: Session<Auth>) -> Response {
    let Some(user) = session.user() else {
        return Redirect::to("/").into_response();
    };
    let mut sessions = match store.user_sessions(user).await {
        Ok(sessions) => sessions,
        Err(e) => return tessera::SessionError::from(e).into_response(),
    };
    sessions.sort_by_key(|s| s.last_seen);
    let rows: String = sessions
        .iter()
        .rev()
        .map(|s| {
            let this = if s.id == session.id() {
                " <b>(this device)</b>"
            } else {
                ""
            };
            let seen = s.last_seen.map_or_else(
                || "at an unknown time".to_owned(),
                |t| {
                    let ago = std::time::SystemTime::now()
                        .duration_since(t)
                        .unwrap_or_default();
                    format!("{} min ago", ago.as_secs() / 60)
                },
            );
            format!(
                "<li class=device>{}{this}, last seen {seen}</li>",
                html_escape(s.user_agent.as_deref().unwrap_or("unknown device"))
            )
        })
        .collect();
    Html(format!(
        "<p>Your devices:</p><ul id=devices>{rows}</ul>\
         <form method=post action=/devices/logout-others>\
         <button id=logout-others>log out everywhere else</button></form>"
    ))
    .into_response()
}

/// "Log out everywhere else": the user's other sessions end on their next request.
async fn logout_others(
    Extension(store): Extension<MemoryStore>,
    session: Session<Auth>,
) -> Response {
    let Some(user) = session.user() else {
        return Redirect::to("/").into_response();
    };
    match store.destroy_user_sessions(user, Some(session.id())).await {
        Ok(n) => {
            tracing::info!(ended = n, "logged out everywhere else");
            Redirect::to("/devices").into_response()
        }
        Err(e) => tessera::SessionError::from(e).into_response(),
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
    let store = MemoryStore::default();
    let layer = SessionLayer::<Auth>::new(secret)
        .with_store(store.clone())
        .with_options(options);
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/private", get(private))
        .route("/logout", post(logout))
        .route("/devices", get(devices))
        .route("/devices/logout-others", post(logout_others))
        .route("/prefs/{name}", get(set_pref))
        .layer(layer)
        .layer(Extension(store))
}
