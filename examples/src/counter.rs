//! The counter example: express-session's "views" demo: counts your visits in a session that expires after a
//! minute of inactivity. Run: `cargo run -p tessera-examples --bin counter`.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use tessera::{MemoryStore, Session, SessionData, SessionLayer};

/// The counter's session.
#[derive(SessionData, Default)]
#[session(cookie(max_age = "1m"), resave = false, save_uninitialized = false)]
pub struct Visit {
    /// Requests seen in this session.
    pub views: u64,
}

async fn index(mut session: Session<Visit>) -> Html<String> {
    *session.views += 1;
    if *session.views == 1 {
        return Html("welcome to the session demo. refresh!".to_owned());
    }
    let expires_in = session.cookie().max_age().map_or(0, |d| d.as_secs());
    Html(format!(
        "<p>views: {}</p><p>expires in: {expires_in}s</p>",
        *session.views
    ))
}

/// The counter app, also used by the tests.
pub fn app(secret: tessera::Secret) -> Router {
    let layer = SessionLayer::<Visit>::new(secret).with_store(MemoryStore::default());
    Router::new().route("/", get(index)).layer(layer)
}
