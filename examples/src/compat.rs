//! A server that behaves like a small express-session app, so the two can be compared
//! request by request. Flags mirror express-session's options; see [`Config::from_args`].

use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use tessera::{
    MemoryStore, Secret, Secrets, Session, SessionData, SessionError, SessionLayer, SessionOptions,
    SessionStore,
};
use tessera_postgres::PostgresStore;
use tessera_redis::RedisStore;

/// The session of the comparison server: every key lives in the flatten map, so the
/// data looks exactly like an express `req.session` without its cookie.
#[derive(SessionData, Default)]
pub struct Data {
    /// All session keys.
    #[session(flatten)]
    pub data: Map<String, Value>,
}

/// Where the sessions live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// The in-process `MemoryStore`.
    Memory,
    /// Redis in connect-redis' layout (`--store redis`).
    Redis {
        /// `--redis-url` (default `REDIS_URL`, or `redis://127.0.0.1:6379`).
        url: String,
        /// `--prefix` (default `sess:`).
        prefix: String,
        /// `--ttl SECONDS` for browser-session records (default 86400).
        ttl: Option<u64>,
    },
    /// PostgreSQL in connect-pg-simple's table (`--store pg`).
    Pg {
        /// `--pg-url` (default `DATABASE_URL`, or
        /// `postgres://postgres:postgres@127.0.0.1:5432/sessions`).
        url: String,
        /// `--table` (default `session`), created if missing.
        table: String,
        /// `--ttl SECONDS` for browser-session records (default 86400).
        ttl: Option<u64>,
    },
}

/// The parsed command line.
#[derive(Debug)]
pub struct Config {
    /// `--port`.
    pub port: u16,
    /// `--host` (default 127.0.0.1).
    pub host: String,
    /// `--secret`, in order.
    pub secrets: Vec<String>,
    /// `--store` and its flags.
    pub store: StoreConfig,
    /// Everything else, as session options.
    pub options: SessionOptions,
}

impl Config {
    /// Parses `--port P --store memory|redis|pg --secret S [--secret S2 …]
    /// [--redis-url URL] [--prefix P] [--pg-url URL] [--table T] [--ttl SECONDS]
    /// [--name N] [--max-age MS]
    /// [--rolling] [--resave] [--save-uninitialized] [--same-site lax|strict|none]
    /// [--secure true|false|auto] [--proxy true|false] [--domain D] [--path P]
    /// [--unset keep|destroy] [--http-only true|false] [--partitioned]
    /// [--priority low|medium|high] [--host H]`. The switches turn an option on; without
    /// them it is off.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut args = args.into_iter();
        let mut port = None;
        let mut host = "127.0.0.1".to_owned();
        let mut secrets = Vec::new();
        let mut store = "memory".to_owned();
        let mut redis_url = std::env::var("REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
        let mut prefix = "sess:".to_owned();
        let mut pg_url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres:postgres@127.0.0.1:5432/sessions".to_owned());
        let mut table = "session".to_owned();
        let mut ttl = None;
        let mut o = SessionOptions::default()
            .with_resave(false)
            .with_save_uninitialized(false)
            .with_rolling(false);
        let e = |e: tessera::ConfigError| e.to_string();
        let c = |e: tessera::ChoiceError| e.to_string();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--port" => {
                    port = Some(
                        value()?
                            .parse::<u16>()
                            .map_err(|e| format!("--port: {e}"))?,
                    )
                }
                "--host" => host = value()?,
                "--store" => store = value()?,
                "--redis-url" => redis_url = value()?,
                "--prefix" => prefix = value()?,
                "--pg-url" => pg_url = value()?,
                "--table" => table = value()?,
                "--ttl" => {
                    ttl = Some(value()?.parse::<u64>().map_err(|e| format!("--ttl: {e}"))?);
                }
                "--secret" => secrets.push(value()?),
                "--name" => o = o.with_name(&value()?).map_err(e)?,
                "--max-age" => {
                    let ms: u64 = value()?.parse().map_err(|e| format!("--max-age: {e}"))?;
                    o = o.with_max_age(Some(Duration::from_millis(ms))).map_err(e)?;
                }
                "--rolling" => o = o.with_rolling(true),
                "--resave" => o = o.with_resave(true),
                "--save-uninitialized" => o = o.with_save_uninitialized(true),
                "--partitioned" => o = o.with_partitioned(true),
                "--same-site" => o = o.with_same_site(Some(value()?.parse().map_err(c)?)),
                "--secure" => o = o.with_secure(value()?.parse().map_err(c)?),
                "--proxy" => {
                    let v = value()?;
                    o = o.with_proxy(Some(match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(format!("--proxy {v}: expected true or false")),
                    }));
                }
                "--domain" => o = o.with_domain(Some(&value()?)).map_err(e)?,
                "--path" => o = o.with_path(&value()?).map_err(e)?,
                "--unset" => o = o.with_unset(value()?.parse().map_err(c)?),
                "--http-only" => {
                    let v = value()?;
                    o = o.with_http_only(match v.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(format!("--http-only {v}: expected true or false")),
                    });
                }
                "--priority" => o = o.with_priority(Some(value()?.parse().map_err(c)?)),
                other => return Err(format!("unknown flag {other}")),
            }
        }
        if secrets.is_empty() {
            return Err("at least one --secret is required".to_owned());
        }
        let store = match store.as_str() {
            "memory" => StoreConfig::Memory,
            "redis" => StoreConfig::Redis {
                url: redis_url,
                prefix,
                ttl,
            },
            "pg" => StoreConfig::Pg {
                url: pg_url,
                table,
                ttl,
            },
            other => return Err(format!("--store {other}: expected memory, redis or pg")),
        };
        Ok(Self {
            port: port.ok_or("--port is required")?,
            host,
            secrets,
            store,
            options: o,
        })
    }

    fn secrets(&self) -> Result<Secrets, String> {
        let list = self
            .secrets
            .iter()
            .map(Secret::short_for_migration)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Secrets::new(list).map_err(|e| e.to_string())
    }
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

fn no_session() -> Response {
    Json(json!({ "noSession": true })).into_response()
}

fn data_of(session: &mut Session<Data>) -> Response {
    match session.to_json() {
        Ok(map) => Json(Value::Object(map)).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn views(session: Option<Session<Data>>) -> Response {
    let Some(mut s) = session else {
        return no_session();
    };
    let views = s.data.get("views").and_then(Value::as_u64).unwrap_or(0) + 1;
    s.data.insert("views".to_owned(), json!(views));
    Json(json!({ "views": views, "id": s.id(), "maxAge": s.cookie().max_age_ms() })).into_response()
}

async fn set(
    session: Option<Session<Data>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let Some(mut s) = session else {
        return no_session();
    };
    for (k, v) in pairs {
        let value = serde_json::from_str(&v).unwrap_or(Value::String(v));
        s.data.insert(k, value);
    }
    data_of(&mut s)
}

async fn get_data(session: Option<Session<Data>>) -> Response {
    let Some(mut s) = session else {
        return no_session();
    };
    data_of(&mut s)
}

async fn regenerate(session: Option<Session<Data>>) -> Response {
    let Some(mut s) = session else {
        return no_session();
    };
    let old = s.id().to_owned();
    match s.regenerate().await {
        Ok(()) => Json(json!({ "old": old, "id": s.id() })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Tessera only (express has no such method): a new id, the data kept.
async fn rotate(session: Option<Session<Data>>) -> Response {
    let Some(mut s) = session else {
        return no_session();
    };
    let old = s.id().to_owned();
    match s.rotate_id().await {
        Ok(()) => Json(json!({ "old": old, "id": s.id() })).into_response(),
        Err(SessionError::Gone) => error(StatusCode::CONFLICT, "the session is gone"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn destroy(session: Option<Session<Data>>) -> Response {
    let Some(mut s) = session else {
        return no_session();
    };
    let id = s.id().to_owned();
    match s.destroy().await {
        Ok(()) => Json(json!({ "destroyed": id })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn id(session: Option<Session<Data>>) -> Response {
    let Some(s) = session else {
        return no_session();
    };
    (
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        s.id().to_owned(),
    )
        .into_response()
}

async fn unset(session: Option<Session<Data>>) -> Response {
    let Some(mut s) = session else {
        return no_session();
    };
    s.unset();
    Json(json!({ "unset": true })).into_response()
}

async fn reload(session: Option<Session<Data>>) -> Response {
    let Some(mut s) = session else {
        return no_session();
    };
    match s.reload().await {
        Ok(()) => data_of(&mut s),
        // express-session's message, exactly.
        Err(SessionError::NotFound) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "failed to load session")
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn save(session: Option<Session<Data>>) -> Response {
    let Some(mut s) = session else {
        return no_session();
    };
    match s.save().await {
        Ok(()) => data_of(&mut s),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn touch(session: Option<Session<Data>>) -> Response {
    let Some(mut s) = session else {
        return no_session();
    };
    s.touch();
    Json(json!({ "maxAge": s.cookie().max_age_ms() })).into_response()
}

async fn cookie(
    session: Option<Session<Data>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let Some(mut s) = session else {
        return no_session();
    };
    let raw = q
        .iter()
        .find(|(k, _)| k == "maxAge")
        .map(|(_, v)| v.as_str())
        .unwrap_or("null");
    let max_age = if raw == "null" {
        None
    } else {
        match raw.parse::<f64>() {
            Ok(ms) if ms.is_finite() => Some(ms as i64),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("maxAge must be a number, not {raw:?}"),
                );
            }
        }
    };
    s.cookie_mut().set_max_age_ms(max_age);
    Json(json!({ "maxAge": s.cookie().max_age_ms() })).into_response()
}

async fn not_found(session: Option<Session<Data>>, req: Request) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "notFound": req.uri().path(), "hasSession": session.is_some() })),
    )
        .into_response()
}

fn routes(prefix: &str, router: Router) -> Router {
    router
        .route(&format!("{prefix}/views"), get(views))
        .route(&format!("{prefix}/set"), get(set))
        .route(&format!("{prefix}/get"), get(get_data))
        .route(&format!("{prefix}/regenerate"), get(regenerate))
        .route(&format!("{prefix}/rotate"), get(rotate))
        .route(&format!("{prefix}/destroy"), get(destroy))
        .route(&format!("{prefix}/id"), get(id))
        .route(&format!("{prefix}/unset"), get(unset))
        .route(&format!("{prefix}/reload"), get(reload))
        .route(&format!("{prefix}/save"), get(save))
        .route(&format!("{prefix}/touch"), get(touch))
        .route(&format!("{prefix}/cookie"), get(cookie))
}

/// The comparison app for `config`, connected to its store.
///
/// # Errors
///
/// A message when the secrets are invalid or the store cannot be reached.
pub async fn app(config: &Config) -> Result<Router, String> {
    match &config.store {
        StoreConfig::Memory => app_on(config, MemoryStore::default()),
        StoreConfig::Redis { url, prefix, ttl } => {
            let mut store = RedisStore::connect(url)
                .await
                .map_err(|e| format!("--store redis: {} ({url})", chain(&e)))?
                .with_prefix(prefix.clone());
            if let Some(ttl) = ttl {
                store = store.with_ttl(Duration::from_secs(*ttl));
            }
            app_on(config, store)
        }
        StoreConfig::Pg { url, table, ttl } => {
            let mut builder = PostgresStore::from_url(url)
                .map_err(|e| format!("--store pg: {} ({url})", chain(&e)))?
                .table(table)
                .create_table_if_missing(true);
            if let Some(ttl) = ttl {
                builder = builder.ttl(Duration::from_secs(*ttl));
            }
            let store = builder
                .build()
                .await
                .map_err(|e| format!("--store pg: {}", chain(&e)))?;
            app_on(config, store)
        }
    }
}

/// An error and its sources, on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn app_on(config: &Config, store: impl SessionStore) -> Result<Router, String> {
    let layer = SessionLayer::<Data>::new(config.secrets()?)
        .with_store(store)
        .with_options(config.options.clone());
    let mut router = routes("", Router::new());
    let path = config.options.path().trim_end_matches('/');
    if !path.is_empty() {
        router = routes(path, router);
    }
    Ok(router.fallback(not_found).layer(layer))
}
