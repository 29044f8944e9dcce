//! The three servers of the HTTP load benchmark (`bench/run.sh`), each serving
//! express-session's "views" demo: bare axum, Tessera, and tower-sessions.
//!
//! All are configured alike: no resave, no saving of uninitialized sessions, no rolling,
//! a signed browser-session cookie, an in-memory store, tokio's multi-thread runtime.

use axum::Router;
use axum::routing::get;

pub mod network;

/// Which server to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No session at all: the floor.
    Bare,
    /// Tessera with its MemoryStore.
    Tessera,
    /// tower-sessions with signed cookies and its MemoryStore.
    TowerSessions,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bare" => Ok(Self::Bare),
            "tessera" => Ok(Self::Tessera),
            "tower-sessions" => Ok(Self::TowerSessions),
            other => Err(format!(
                "unknown server `{other}`: bare, tessera or tower-sessions"
            )),
        }
    }
}

/// `GET /` increments `views`; `GET /read` only reads it.
///
/// The router is prepared with `with_state(())`, as `axum::serve` does, so that its routes
/// (and their layers) are built once instead of on every call: in-process benchmarks then
/// measure what a served request costs.
pub fn app(kind: Kind) -> Router {
    let app = match kind {
        Kind::Bare => bare::app(),
        Kind::Tessera => with_tessera::app(),
        Kind::TowerSessions => with_tower_sessions::app(),
    };
    app.with_state(())
}

mod bare {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    static VIEWS: AtomicU64 = AtomicU64::new(0);

    pub fn app() -> Router {
        Router::new()
            .route(
                "/",
                get(|| async { format!("views: {}", VIEWS.fetch_add(1, Ordering::Relaxed) + 1) }),
            )
            .route(
                "/read",
                get(|| async { format!("views: {}", VIEWS.load(Ordering::Relaxed)) }),
            )
    }
}

mod with_tessera {
    use super::*;
    use tessera::{MemoryStore, Secret, Session, SessionData, SessionLayer};

    #[derive(SessionData, Default)]
    #[session(resave = false, save_uninitialized = false)]
    struct Views {
        views: u64,
    }

    /// A session with many keys besides `views` (the hostile-input scenarios K2000 and
    /// K8000 of `bench/instructions.sh`).
    #[derive(SessionData, Default)]
    #[session(resave = false, save_uninitialized = false)]
    struct Wide {
        views: u64,
        #[session(flatten)]
        rest: serde_json::Map<String, serde_json::Value>,
    }

    fn secret() -> Secret {
        match Secret::new("a benchmark secret that is long enough") {
            Ok(s) => s,
            Err(e) => unreachable!("literal secret: {e}"),
        }
    }

    pub fn app() -> Router {
        let layer = SessionLayer::<Views>::new(secret()).with_store(MemoryStore::default());
        Router::new()
            .route(
                "/",
                get(|mut s: Session<Views>| async move {
                    *s.views += 1;
                    format!("views: {}", *s.views)
                }),
            )
            .route(
                "/read",
                get(|s: Session<Views>| async move { format!("views: {}", *s.views) }),
            )
            // The session of scenarios U and U-read: tied to a user (the per-user index).
            .route(
                "/login",
                get(|mut s: Session<Views>| async move {
                    s.set_user("bench-user");
                    s.set_user_agent(Some("bench/1"));
                    "logged in"
                }),
            )
            .layer(layer)
            .merge(wide())
    }

    /// The routes on a session with many keys, under their own layer.
    fn wide() -> Router {
        let layer = SessionLayer::<Wide>::new(secret()).with_store(MemoryStore::default());
        Router::new()
            .route(
                "/wide/fill/{n}",
                get(
                    |mut s: Session<Wide>, axum::extract::Path(n): axum::extract::Path<usize>| async move {
                        for i in 0..n {
                            s.rest.insert(format!("key{i}"), serde_json::json!(i));
                        }
                        "filled"
                    },
                ),
            )
            .route(
                "/wide",
                get(|mut s: Session<Wide>| async move {
                    *s.views += 1;
                    format!("views: {}", *s.views)
                }),
            )
            .layer(layer)
    }
}

mod with_tower_sessions {
    use super::*;
    use tower_sessions::cookie::Key;
    use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

    pub fn app() -> Router {
        let layer = SessionManagerLayer::new(MemoryStore::default())
            .with_secure(false)
            .with_signed(Key::from(&[7u8; 64]));
        Router::new()
            .route(
                "/",
                get(|s: Session| async move {
                    let views = s.get::<u64>("views").await.ok().flatten().unwrap_or(0) + 1;
                    let _ = s.insert("views", views).await;
                    format!("views: {views}")
                }),
            )
            .route(
                "/read",
                get(|s: Session| async move {
                    let views = s.get::<u64>("views").await.ok().flatten().unwrap_or(0);
                    format!("views: {views}")
                }),
            )
            .layer(layer)
    }
}
