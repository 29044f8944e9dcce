//! The servers of the network-store benchmark: the same "views" demo as the in-memory
//! one, on Redis (`REDIS_URL`, database 15 unless the URL names one), Redis Cluster
//! (`REDIS_CLUSTER_URLS`, comma-separated; for the per-user index's round trips) or
//! PostgreSQL (`DATABASE_URL`): Tessera (both Redis layouts), and, with the `peers` feature,
//! tower-sessions 0.14 with tower-sessions-redis-store and tower-sessions-sqlx-store.
//!
//! All are configured alike: no resave, no saving of uninitialized sessions, no
//! rolling, a signed browser-session cookie. Tessera sets `touch_after` to 60 s, so
//! that a read-only request is not touched on every request (tower-sessions never
//! touches on a read; express-session always does).

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tessera::{Secret, Session, SessionData, SessionLayer, SessionOptions, SessionStore};
use tessera_postgres::PostgresStore;
use tessera_redis::{Layout, RedisStore};

/// A network server of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetKind {
    /// Tessera on Redis, connect-redis' layout.
    TesseraRedis,
    /// Tessera on Redis, one hash per session.
    TesseraRedisHash,
    /// Tessera on Redis Cluster, connect-redis' layout.
    TesseraRedisCluster,
    /// Tessera on Redis Cluster, one hash per session.
    TesseraRedisClusterHash,
    /// Tessera on PostgreSQL, connect-pg-simple's table.
    TesseraPg,
    /// tower-sessions 0.14 with tower-sessions-redis-store 0.16 (fred).
    TowerSessionsRedis,
    /// tower-sessions 0.14 with tower-sessions-sqlx-store 0.15.
    TowerSessionsPg,
}

impl std::str::FromStr for NetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "tessera-redis" => Self::TesseraRedis,
            "tessera-redis-hash" => Self::TesseraRedisHash,
            "tessera-redis-cluster" => Self::TesseraRedisCluster,
            "tessera-redis-cluster-hash" => Self::TesseraRedisClusterHash,
            "tessera-pg" => Self::TesseraPg,
            "tower-sessions-redis" => Self::TowerSessionsRedis,
            "tower-sessions-pg" => Self::TowerSessionsPg,
            other => return Err(format!("unknown network server `{other}`")),
        })
    }
}

/// The Redis URL of the benchmark: `REDIS_URL`, on database 15 unless it names one.
pub fn redis_url() -> String {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let after_host = url.trim_start_matches("redis://");
    if after_host.contains('/') {
        url
    } else {
        format!("{url}/15")
    }
}

/// The Redis Cluster nodes of the benchmark: `REDIS_CLUSTER_URLS`, comma-separated
/// (`.ci/redis-cluster start` prints them).
pub fn redis_cluster_urls() -> Vec<String> {
    std::env::var("REDIS_CLUSTER_URLS")
        .unwrap_or_else(|_| {
            "redis://127.0.0.1:7101,redis://127.0.0.1:7102,redis://127.0.0.1:7103".to_owned()
        })
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// The PostgreSQL URL of the benchmark: `DATABASE_URL`.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/tessera_bench".to_owned())
}

#[derive(SessionData, Default)]
#[session(resave = false, save_uninitialized = false)]
struct Views {
    views: u64,
}

fn tessera(store: impl SessionStore) -> Router {
    let secret = match Secret::new("a benchmark secret that is long enough") {
        Ok(s) => s,
        Err(e) => unreachable!("literal secret: {e}"),
    };
    let options = SessionOptions::default()
        .with_resave(false)
        .with_save_uninitialized(false)
        .with_touch_after(Some(Duration::from_secs(60)));
    let layer = SessionLayer::<Views>::new(secret)
        .with_store(store)
        .with_options(options);
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
        // A session tied to a user, for the per-user index's round trips.
        .route(
            "/login",
            get(|mut s: Session<Views>| async move {
                s.set_user("bench-user");
                "logged in"
            }),
        )
        .layer(layer)
}

/// The server of `kind`, connected to its store.
///
/// # Errors
///
/// A message when the store cannot be reached, or `kind` needs the `peers` feature.
pub async fn app(kind: NetKind) -> Result<Router, String> {
    let app = match kind {
        NetKind::TesseraRedis
        | NetKind::TesseraRedisHash
        | NetKind::TesseraRedisCluster
        | NetKind::TesseraRedisClusterHash => {
            let hash = matches!(
                kind,
                NetKind::TesseraRedisHash | NetKind::TesseraRedisClusterHash
            );
            let connected = if matches!(
                kind,
                NetKind::TesseraRedisCluster | NetKind::TesseraRedisClusterHash
            ) {
                RedisStore::connect_cluster(&redis_cluster_urls()).await
            } else {
                RedisStore::connect(&redis_url()).await
            };
            let store = connected.map_err(|e| e.to_string())?;
            tessera(if hash {
                store.with_prefix("bench:h:").with_layout(Layout::Hash)
            } else {
                store
                    .with_prefix("bench:t:")
                    .with_layout(Layout::ConnectRedis)
            })
        }
        NetKind::TesseraPg => {
            let store = PostgresStore::from_url(&database_url())
                .map_err(|e| e.to_string())?
                .table("session")
                .create_table_if_missing(true)
                .build()
                .await
                .map_err(|e| e.to_string())?;
            tessera(store)
        }
        NetKind::TowerSessionsRedis | NetKind::TowerSessionsPg => peers::app(kind).await?,
    };
    Ok(app.with_state(()))
}

#[cfg(feature = "peers")]
mod peers {
    use super::*;
    use tower_sessions_014::cookie::Key;
    use tower_sessions_014::{Session, SessionManagerLayer, SessionStore};

    fn with<S: SessionStore + Clone>(store: S) -> Router {
        let layer = SessionManagerLayer::new(store)
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

    pub(super) async fn app(kind: NetKind) -> Result<Router, String> {
        match kind {
            NetKind::TowerSessionsRedis => {
                use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
                let config = Config::from_url(&redis_url()).map_err(|e| e.to_string())?;
                let pool = Pool::new(config, None, None, None, 6).map_err(|e| e.to_string())?;
                pool.init().await.map_err(|e| e.to_string())?;
                Ok(with(tower_sessions_redis_store::RedisStore::new(pool)))
            }
            NetKind::TowerSessionsPg => {
                let pool = sqlx_pool().await?;
                let store = tower_sessions_sqlx_store::PostgresStore::new(pool);
                store.migrate().await.map_err(|e| e.to_string())?;
                Ok(with(store))
            }
            other => Err(format!("{other:?} is not a peer")),
        }
    }

    /// A pool as an application would make it: up to 10 connections (sqlx's default
    /// does not ping a connection before each use).
    async fn sqlx_pool() -> Result<tower_sessions_sqlx_store::sqlx::PgPool, String> {
        tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions::new()
            .max_connections(10)
            .connect(&database_url())
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(not(feature = "peers"))]
mod peers {
    use super::*;

    pub(super) async fn app(kind: NetKind) -> Result<Router, String> {
        Err(format!(
            "{kind:?} needs the peers: cargo build -p tessera-bench --features peers"
        ))
    }
}
