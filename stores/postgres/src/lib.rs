//! # tessera-postgres: Tessera sessions in PostgreSQL, shared with connect-pg-simple
//!
//! A [`tessera::SessionStore`] on connect-pg-simple's table, so that Node services on
//! connect-pg-simple and Rust services on Tessera share their users' sessions during a
//! migration, and an application keeps its sessions in the database it already runs.
//!
//! ```no_run
//! use tessera::{Secret, SessionData, SessionLayer};
//! use tessera_postgres::PostgresStore;
//!
//! #[derive(SessionData, Default)]
//! struct Visit { views: u64 }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::from_url("postgres://app@127.0.0.1/app")?
//!     .create_table_if_missing(true)
//!     .build()
//!     .await?;
//! let layer = SessionLayer::<Visit>::new(Secret::from_env("SESSION_SECRET")?).with_store(store);
//! # Ok(()) }
//! ```
//!
//! ## The table
//!
//! connect-pg-simple 10's, by default `"session"` in the connection's search path (both
//! names can be changed, and are quoted). [`Builder::create_table_if_missing`]
//! runs this DDL; migration tools can run it as it stands:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS "session" (
//!   "sid" varchar NOT NULL COLLATE "default",
//!   "sess" json NOT NULL,
//!   "expire" timestamp(6) NOT NULL,
//!   CONSTRAINT "session_pkey" PRIMARY KEY ("sid")
//! );
//! CREATE INDEX IF NOT EXISTS "IDX_session_expire" ON "session" ("expire");
//! CREATE INDEX IF NOT EXISTS "IDX_session_tessera_user" ON "session"
//!   ((sess -> '_tessera' ->> 'user')) WHERE (sess -> '_tessera' ->> 'user') IS NOT NULL;
//! ```
//!
//! The last index is Tessera's per-user index ([`tessera::SessionAdmin::user_sessions`],
//! "log out everywhere"). It adds no column: it indexes the `user` of the record's
//! `_tessera` entry ([`tessera::META_KEY`]), which Node services keep as it is, so
//! connect-pg-simple's three columns and statements stay unchanged. It is partial, so
//! it holds rows of sessions tied to a user only; rows without a user cost PostgreSQL
//! one look into their `_tessera` entry per write. Revoking a user's sessions is one
//! `DELETE` by that expression, atomic per row: a patch waiting on a row's lock finds
//! no row afterwards and writes nothing, and a row whose id just moved
//! (`rotate_id`) keeps its entry and is found under its new id. Without the index the
//! per-user operations still work, by scanning the table.
//!
//! `sess` is `json`, not `jsonb`: PostgreSQL keeps its text byte for byte, so what
//! Node wrote (key order, spacing, escapes, `1.50`) is what Node reads back after a Rust
//! write, and the other way round.
//!
//! ## Expiry, and the time-zone trap
//!
//! As connect-pg-simple: `expire` is the cookie's `expires` rounded up to whole seconds,
//! or now plus the store's `ttl` (one day) for a browser-session cookie, and a row is
//! live while `expire >= ceil(now)`. A touch moves `expire` only.
//!
//! `expire` is a `timestamp` without time zone, written as `to_timestamp(seconds)`:
//! PostgreSQL turns it into the wall-clock time of the *connection's* `TimeZone`.
//! node-pg connections use the database's default zone, while many Rust drivers (sqlx
//! among them) ask for UTC, and a connection's zone can be changed at any time, so the
//! two sides would disagree by the zone's offset. This store therefore never
//! relies on the connection's zone: every statement converts explicitly
//! (`to_timestamp($s) AT TIME ZONE $zone`), with the zone that Node's connections use:
//! the database's default, read once at start-up (the per-database and per-role settings,
//! then the server's configuration when the role may read it), or set with
//! [`Builder::time_zone`].
//!
//! ## Atomic patches
//!
//! A patch is one `UPDATE` that sends only the changes and the cookie: PostgreSQL takes
//! the stored text apart with `json_each` (which keeps each value's text byte for byte,
//! key order and repeated keys included) and puts it together as
//! [`tessera::Patch::apply_to_json`] does, under the row's lock. Concurrent patches of
//! different fields all survive without a retry, and a changed session costs two round
//! trips: the load and the patch. (jsonb's `||` would merge fields too, but it rewrites
//! the whole text: key order, spacing and numbers change, which breaks the
//! byte-for-byte promise above.)
//!
//! Id rotation is one `UPDATE … SET sid` of a live row.
//!
//! ## The driver
//!
//! [tokio-postgres](https://docs.rs/tokio-postgres), without TLS (connect over a trusted
//! network or a Unix socket). The store keeps a few connections of its own (eight by
//! default, [`Builder::connections`]), each shared by every request that lands on it:
//! tokio-postgres pipelines the statements of concurrent requests on one connection,
//! writing them together and reading their answers together, and each connection
//! prepares the store's statements once, so that a statement is one round trip.
//!
//! sqlx was the first choice, since many axum applications already hold a `PgPool`.
//! It measured clearly slower here, which the issue that asked for this store allowed
//! for: in an axum handler that runs one `SELECT` of a session row, under 32 concurrent
//! connections on this project's benchmark machine, sqlx cost about 55 µs of server CPU
//! per request over bare axum (its connections are taken one request at a time, and a
//! pooled one is pinged on every return to the pool, a second round trip), and
//! tokio-postgres 20 to 28 µs. A session store runs one short statement per request, so
//! that difference is most of its cost. The application keeps its own pool, whichever
//! driver it uses; the store needs only its few connections.
//!
//! A connection that broke, or whose statement timed out, is replaced on its next use, so
//! the store recovers by itself after a database restart.
//!
//! Expired rows are deleted by a background task on a jittered interval (15 minutes by
//! default; [`Builder::prune_interval`]), never on the request path. It stops
//! when the last handle to the store is dropped.
//!
//! ## This crate's files
//!
//! `lib.rs` is the store: its statements (each next to the rule it keeps), its builder
//! and its `SessionStore` and `SessionAdmin` implementations (a long file: about a third
//! of it is this documentation); the pipelined connections are in `clients.rs`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tessera::store::{Outcome, SessionAdmin, SessionInfo, SessionStore, StoreError};
use tessera::{LoadedRecord, Patch, RecordView, SessionCookie, Touch};
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row};

mod clients;

/// Why the store could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connection URL could not be read.
    #[error("PostgreSQL session store: invalid connection URL")]
    Url(#[source] tokio_postgres::Error),
    /// Connecting, or a start-up statement, failed.
    #[error("PostgreSQL session store: {what}")]
    Database {
        /// What was being done.
        what: &'static str,
        /// What tokio-postgres said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database did not answer within the store's timeout while starting.
    #[error("PostgreSQL session store: {what} timed out after {timeout:?}")]
    Timeout {
        /// What was being done.
        what: &'static str,
        /// The timeout.
        timeout: Duration,
    },
}

/// Why a store call failed (kept as the source of [`StoreError::Backend`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresStoreError {
    /// The statement failed, or the connection did.
    #[error("PostgreSQL statement `{statement}` failed")]
    Database {
        /// Which statement.
        statement: &'static str,
        /// What tokio-postgres said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database did not answer within the store's timeout.
    #[error("PostgreSQL statement `{statement}` timed out after {timeout:?}")]
    Timeout {
        /// Which statement.
        statement: &'static str,
        /// The timeout.
        timeout: Duration,
    },
}

/// A [`SessionStore`] on connect-pg-simple's table. Cloning gives another handle to the
/// same connections.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The connections the statements run on (see `clients.rs`).
    clients: clients::Clients,
    table: String,
    ttl: Duration,
    timeout: Duration,
    zone: String,
    statements: Arc<Statements>,
    prune: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.prune.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// The statements, with the table name quoted in.
struct Statements {
    get: String,
    upsert: String,
    delete: String,
    patch: String,
    touch: String,
    rotate: String,
    destroy: String,
    prune: String,
    count: String,
    ids: String,
    clear: String,
    user_sessions: String,
    destroy_user: String,
}

/// The user a row's session is tied to: the `user` of its `_tessera` entry
/// ([`tessera::META_KEY`]), the expression of the partial per-user index.
const USER_OF: &str = "(sess -> '_tessera' ->> 'user')";

/// `$zone`'s wall clock at Unix time `$seconds`, as a `timestamp`.
fn at(seconds: usize, zone: usize) -> String {
    format!("(to_timestamp(${seconds}) AT TIME ZONE ${zone})")
}

impl Statements {
    fn new(table: &str) -> Self {
        let live = |now: usize, zone: usize| format!("expire >= {}", at(now, zone));
        Self {
            get: format!(
                "SELECT sess::text, extract(epoch FROM expire AT TIME ZONE $3)::float8 \
                 FROM {table} WHERE sid = $1 AND {}",
                live(2, 3)
            ),
            upsert: format!(
                "INSERT INTO {table} (sid, sess, expire) VALUES ($1, $2::text::json, {}) \
                 ON CONFLICT (sid) DO UPDATE SET sess = EXCLUDED.sess, expire = EXCLUDED.expire",
                at(3, 4)
            ),
            delete: format!("DELETE FROM {table} WHERE sid = $1"),
            // One statement, atomic under the row lock, with only the changes sent: the
            // stored text is taken apart by json_each (which keeps each value's text byte
            // for byte, order and repeated keys included) and put together the way
            // `Patch::apply_to_json` does: the cookie first, every other entry as
            // "key":value with changed values replaced, then the added keys, each at the
            // place of its last change.
            patch: format!(
                "WITH ch AS (SELECT c.key, c.value, c.ord \
                             FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS c(key, value, ord)), \
                      last AS (SELECT DISTINCT ON (key) key, value, ord FROM ch ORDER BY key, ord DESC) \
                 UPDATE {table} SET expire = {}, sess = ( \
                   '{{\"cookie\":' || $2 || coalesce(( \
                     SELECT string_agg(',' || to_json(x.key)::text || ':' || x.value, '' ORDER BY x.pos) \
                     FROM ( \
                       SELECT e.key, coalesce(l.value, e.value::text) AS value, e.ord AS pos \
                       FROM json_each({table}.sess) WITH ORDINALITY AS e(key, value, ord) \
                       LEFT JOIN last l ON l.key = e.key \
                       WHERE e.key <> 'cookie' AND (l.key IS NULL OR l.value IS NOT NULL) \
                       UNION ALL \
                       SELECT l.key, l.value, 9000000000000 + l.ord FROM last l \
                       WHERE l.value IS NOT NULL AND l.key <> 'cookie' \
                         AND NOT EXISTS (SELECT 1 FROM json_each({table}.sess) e2 WHERE e2.key = l.key) \
                     ) x), '') || '}}')::json \
                 WHERE sid = $1 AND {}",
                at(5, 7),
                live(6, 7)
            ),
            touch: format!(
                "UPDATE {table} SET expire = {} WHERE sid = $1 AND {}",
                at(2, 4),
                live(3, 4)
            ),
            rotate: format!(
                "UPDATE {table} SET sid = $2 WHERE sid = $1 AND {}",
                live(3, 4)
            ),
            destroy: format!(
                "DELETE FROM {table} WHERE sid = $1 RETURNING {}",
                live(2, 3)
            ),
            prune: format!("DELETE FROM {table} WHERE expire < {}", at(1, 2)),
            count: format!("SELECT count(*) FROM {table} WHERE {}", live(1, 2)),
            ids: format!("SELECT sid FROM {table} WHERE {}", live(1, 2)),
            clear: format!("DELETE FROM {table}"),
            user_sessions: format!(
                "SELECT sid, sess::text, extract(epoch FROM expire AT TIME ZONE $3)::float8 \
                 FROM {table} WHERE {USER_OF} = $1 AND {}",
                live(2, 3)
            ),
            destroy_user: format!(
                "DELETE FROM {table} WHERE {USER_OF} = $1 AND sid IS DISTINCT FROM $2 AND {}",
                live(3, 4)
            ),
        }
    }
}

/// A quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Seconds since the epoch, rounded up (connect-pg-simple's `Math.ceil(ms / 1000)`).
fn ceil_secs(t: SystemTime) -> f64 {
    let ms = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i128,
        Err(e) => -(e.duration().as_millis() as i128),
    };
    (ms.div_euclid(1000) + i128::from(ms.rem_euclid(1000) != 0)) as f64
}

/// The settings of a store being built.
#[derive(Clone, Debug)]
pub struct Builder {
    config: Config,
    schema: Option<String>,
    table: String,
    ttl: Duration,
    timeout: Duration,
    zone: Option<String>,
    prune_every: Option<Duration>,
    create_table: bool,
    connections: usize,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/database`, or tokio-postgres'
    /// `key=value` form) with connect-pg-simple's defaults: table `session`, one-day
    /// TTL, pruning every 15 minutes.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when the URL is invalid or the database does not answer.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::from_url(url)?.build().await
    }

    /// A store on the database of `url`, configured by the returned [`Builder`].
    ///
    /// # Errors
    ///
    /// [`ConnectError::Url`] when the URL is invalid.
    pub fn from_url(url: &str) -> Result<Builder, ConnectError> {
        url.parse::<Config>()
            .map(Self::from_config)
            .map_err(ConnectError::Url)
    }

    /// A store on the database of a tokio-postgres `config` (for settings a URL cannot
    /// carry), configured by the returned [`Builder`].
    pub fn from_config(config: Config) -> Builder {
        Builder {
            config,
            schema: None,
            table: "session".to_owned(),
            ttl: Duration::from_secs(86_400),
            timeout: Duration::from_secs(2),
            zone: None,
            prune_every: Some(Duration::from_secs(15 * 60)),
            create_table: false,
            connections: 8,
        }
    }

    /// The quoted table name.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// The zone `expire` is kept in.
    pub fn time_zone(&self) -> &str {
        &self.inner.zone
    }

    /// Deletes every expired row now; returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when the statement fails.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        prune_now(&self.inner).await
    }

    fn now(&self) -> f64 {
        ceil_secs(SystemTime::now())
    }

    /// The `expire` of a record with `cookie`, in seconds since the epoch, rounded up.
    fn expire(&self, cookie: &SessionCookie) -> f64 {
        match cookie.expires() {
            Some(at) => ceil_secs(at),
            None => ceil_secs(SystemTime::now() + self.inner.ttl),
        }
    }

    fn expired(&self, cookie: &SessionCookie) -> bool {
        cookie.expires().is_some_and(|at| at <= SystemTime::now())
    }

    /// Runs `statement` on the next connection, within the timeout.
    async fn run<T>(
        &self,
        statement: &'static str,
        call: impl AsyncFnOnce(&clients::Conn) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        run(&self.inner, statement, call).await
    }
}

/// Runs `statement` on the next connection of `inner`, within its timeout; a connection
/// that failed or did not answer in time is retired.
async fn run<T>(
    inner: &Inner,
    statement: &'static str,
    call: impl AsyncFnOnce(&clients::Conn) -> Result<T, tokio_postgres::Error>,
) -> Result<T, StoreError> {
    let deadline = tokio::time::Instant::now() + inner.timeout;
    let timed_out = || {
        StoreError::backend(PostgresStoreError::Timeout {
            statement,
            timeout: inner.timeout,
        })
    };
    let failed = |source| StoreError::backend(PostgresStoreError::Database { statement, source });
    let lease = match tokio::time::timeout_at(deadline, inner.clients.get()).await {
        Ok(Ok(lease)) => lease,
        Ok(Err(source)) => return Err(failed(source)),
        Err(_) => return Err(timed_out()),
    };
    match tokio::time::timeout_at(deadline, call(&lease.conn)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => {
            if source.as_db_error().is_none() {
                // Not an error the database reported: the connection itself failed.
                inner.clients.failed(&lease);
            }
            Err(failed(source))
        }
        Err(_) => {
            // The statements of other requests are queued behind this one on its
            // connection (a row lock held elsewhere, a stalled server): new requests go to
            // a new connection, and the server gives up on this statement by itself
            // (`statement_timeout` is set to the store's timeout).
            inner.clients.failed(&lease);
            Err(timed_out())
        }
    }
}

async fn prune_now(inner: &Inner) -> Result<u64, StoreError> {
    let now = ceil_secs(SystemTime::now());
    let sql = &inner.statements.prune;
    let zone = &inner.zone;
    run(inner, "prune", async |c| {
        c.client.execute(sql.as_str(), &[&now, zone]).await
    })
    .await
}

/// The DDL of the table `table` (quoted, maybe with its schema) named `bare`. The
/// constraint and index names follow connect-pg-simple's for the default table.
fn ddl(table: &str, bare: &str) -> [String; 3] {
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
             \"sid\" varchar NOT NULL COLLATE \"default\", \
             \"sess\" json NOT NULL, \
             \"expire\" timestamp(6) NOT NULL, \
             CONSTRAINT {} PRIMARY KEY (\"sid\"))",
            quote(&format!("{bare}_pkey"))
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} (\"expire\")",
            quote(&format!("IDX_{bare}_expire"))
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} ({USER_OF}) WHERE {USER_OF} IS NOT NULL",
            quote(&format!("IDX_{bare}_tessera_user"))
        ),
    ]
}

impl Builder {
    /// The schema of the table (the search path's by default).
    pub fn schema(mut self, schema: &str) -> Self {
        self.schema = Some(schema.to_owned());
        self
    }

    /// The table name (connect-pg-simple's `tableName`, `session` by default).
    pub fn table(mut self, table: &str) -> Self {
        self.table = table.to_owned();
        self
    }

    /// How long a browser-session record lives (connect-pg-simple's `ttl`, one day).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The statement timeout, connecting included (two seconds by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The zone `expire` is kept in (the database's default zone, read at start-up,
    /// unless set here).
    pub fn time_zone(mut self, zone: &str) -> Self {
        self.zone = Some(zone.to_owned());
        self
    }

    /// How often expired rows are deleted (jittered to 50–150 %), or never with `None`
    /// (15 minutes by default).
    pub fn prune_interval(mut self, every: Option<Duration>) -> Self {
        self.prune_every = every;
        self
    }

    /// Creates the table and its index when they are missing (connect-pg-simple's
    /// `createTableIfMissing`; off by default). The DDL is in the crate docs.
    pub fn create_table_if_missing(mut self, on: bool) -> Self {
        self.create_table = on;
        self
    }

    /// How many connections the store keeps (at least one; eight by default). Each
    /// carries the statements of many concurrent requests; more of them let more
    /// writes commit in parallel.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }

    /// Builds the store: connects, creates the table if asked, reads the database's
    /// default time zone (unless set), prepares the statements and starts the pruning
    /// task.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when the database does not answer, or does not know the zone.
    pub async fn build(self) -> Result<PostgresStore, ConnectError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.start()).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout {
                what: "starting",
                timeout,
            }),
        }
    }

    async fn start(self) -> Result<PostgresStore, ConnectError> {
        let failed = |what| move |source| ConnectError::Database { what, source };
        let table = match &self.schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(&self.table)),
            None => quote(&self.table),
        };
        let client = clients::connect(&self.config)
            .await
            .map_err(failed("connecting"))?;
        if self.create_table {
            for statement in ddl(&table, &self.table) {
                client
                    .batch_execute(&statement)
                    .await
                    .map_err(failed("creating the session table"))?;
            }
        }
        let zone = match self.zone {
            Some(zone) => zone,
            None => default_time_zone(&client).await?,
        };
        // Check the zone once, so that a typo fails here and not on every request.
        client
            .execute("SELECT now() AT TIME ZONE $1::text", &[&zone])
            .await
            .map_err(failed("checking the time zone"))?;
        let statements = Arc::new(Statements::new(&table));
        let clients = clients::Clients::new(
            self.config,
            Arc::clone(&statements),
            self.timeout,
            self.connections,
            client,
        )
        .await
        .map_err(failed("preparing the statements"))?;
        let inner = Arc::new(Inner {
            statements,
            clients,
            table,
            ttl: self.ttl,
            timeout: self.timeout,
            zone,
            prune: Mutex::new(None),
        });
        if let Some(every) = self.prune_every {
            let task = tokio::spawn(prune_loop(Arc::downgrade(&inner), every));
            *inner.prune.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
        Ok(PostgresStore { inner })
    }
}

/// Deletes expired rows every `every` (jittered) until the store is dropped.
async fn prune_loop(store: Weak<Inner>, every: Duration) {
    loop {
        // 50 % to 150 % of the interval, so that a fleet does not prune in step.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let jitter = 0.5 + f64::from(nanos % 1_000_000) / 1_000_000.0;
        tokio::time::sleep(every.mul_f64(jitter)).await;
        let Some(inner) = store.upgrade() else {
            return;
        };
        match prune_now(&inner).await {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "pruned expired sessions"),
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "could not prune expired sessions"
            ),
        }
    }
}

/// The zone node-pg connections get: the per-database and per-role settings, then the
/// server configuration (when the role may read it), then UTC.
async fn default_time_zone(client: &Client) -> Result<String, ConnectError> {
    let db_role = client
        .query_opt(
            "SELECT substring(c FROM position('=' IN c) + 1) \
             FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) AS c \
             WHERE lower(split_part(c, '=', 1)) = 'timezone' \
               AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())) \
               AND s.setrole IN (0, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)) \
             ORDER BY (s.setdatabase <> 0 AND s.setrole <> 0) DESC, (s.setrole <> 0) DESC \
             LIMIT 1",
            &[],
        )
        .await
        .map_err(|source| ConnectError::Database {
            what: "reading the database's time zone",
            source,
        })?;
    if let Some(row) = db_role {
        return row
            .try_get::<_, String>(0)
            .map_err(|source| ConnectError::Database {
                what: "reading the database's time zone",
                source,
            });
    }
    let file = client
        .query_opt(
            "SELECT setting FROM pg_catalog.pg_file_settings \
             WHERE lower(name) = 'timezone' AND applied ORDER BY seqno DESC LIMIT 1",
            &[],
        )
        .await
        .and_then(|row| row.map(|row| row.try_get::<_, String>(0)).transpose());
    match file {
        Ok(Some(zone)) => Ok(zone),
        Ok(None) => Ok("UTC".to_owned()),
        Err(error) => {
            tracing::warn!(
                %error,
                "cannot read the server's default TimeZone; keeping `expire` in UTC \
                 (set Builder::time_zone if Node services use another zone)"
            );
            Ok("UTC".to_owned())
        }
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.inner.table)
            .field("ttl", &self.inner.ttl)
            .field("time_zone", &self.inner.zone)
            .finish_non_exhaustive()
    }
}

/// Whether a statement that changes one row found it.
fn outcome(rows: u64) -> Outcome {
    if rows > 0 {
        Outcome::Applied
    } else {
        Outcome::Missing
    }
}

impl SessionStore for PostgresStore {
    async fn get(&self, id: &str) -> Result<Option<LoadedRecord>, StoreError> {
        let (now, zone) = (self.now(), &self.inner.zone);
        let row: Option<Row> = self
            .run("get", async |c| {
                c.client.query_opt(&c.st.get, &[&id, &now, zone]).await
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (text, expire): (String, f64) =
            (|| Ok((row.try_get(0)?, row.try_get(1)?)))().map_err(|source| {
                StoreError::backend(PostgresStoreError::Database {
                    statement: "get",
                    source,
                })
            })?;
        let loaded = LoadedRecord::from_json(text.into_bytes()).map_err(StoreError::Corrupt)?;
        Ok(Some(match Duration::try_from_secs_f64(expire) {
            Ok(since_epoch) => loaded.with_deadline(UNIX_EPOCH + since_epoch),
            Err(_) => loaded,
        }))
    }

    async fn set(&self, id: &str, record: RecordView<'_>) -> Result<(), StoreError> {
        if self.expired(record.cookie()) {
            return self
                .run("delete", async |c| {
                    c.client.execute(&c.st.delete, &[&id]).await
                })
                .await
                .map(|_| ());
        }
        let text = record.to_json().map_err(StoreError::Corrupt)?;
        let (expire, zone) = (self.expire(record.cookie()), &self.inner.zone);
        self.run("upsert", async |c| {
            c.client
                .execute(&c.st.upsert, &[&id, &text, &expire, zone])
                .await
        })
        .await
        .map(|_| ())
    }

    async fn patch(&self, id: &str, patch: Patch<'_>) -> Result<Outcome, StoreError> {
        if self.expired(patch.cookie()) {
            return self.destroy(id).await;
        }
        let mut keys = Vec::with_capacity(patch.changes().len());
        let mut values = Vec::with_capacity(patch.changes().len());
        for change in patch.changes() {
            keys.push(change.key.as_str());
            values.push(
                change
                    .value
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(tessera::RecordError::Json(e)))?,
            );
        }
        let cookie = patch.cookie().to_json();
        let (expire, now, zone) = (self.expire(patch.cookie()), self.now(), &self.inner.zone);
        let params: [&(dyn ToSql + Sync); 7] = [&id, &cookie, &keys, &values, &expire, &now, zone];
        self.run("patch", async |c| {
            c.client.execute(&c.st.patch, &params).await
        })
        .await
        .map(outcome)
    }

    async fn touch(&self, id: &str, touch: Touch<'_>) -> Result<Outcome, StoreError> {
        if !touch.is_due(self.inner.ttl) {
            return Ok(Outcome::Applied);
        }
        let cookie = touch.cookie();
        if self.expired(cookie) {
            return self.destroy(id).await;
        }
        let (expire, now, zone) = (self.expire(cookie), self.now(), &self.inner.zone);
        self.run("touch", async |c| {
            c.client
                .execute(&c.st.touch, &[&id, &expire, &now, zone])
                .await
        })
        .await
        .map(outcome)
    }

    async fn rotate(
        &self,
        from: &str,
        to: &str,
        _user: Option<&str>,
    ) -> Result<Outcome, StoreError> {
        // The row moves with its `_tessera` entry, so the per-user index follows.
        let (now, zone) = (self.now(), &self.inner.zone);
        self.run("rotate", async |c| {
            c.client
                .execute(&c.st.rotate, &[&from, &to, &now, zone])
                .await
        })
        .await
        .map(outcome)
    }

    async fn destroy(&self, id: &str) -> Result<Outcome, StoreError> {
        let (now, zone) = (self.now(), &self.inner.zone);
        let row = self
            .run("destroy", async |c| {
                c.client.query_opt(&c.st.destroy, &[&id, &now, zone]).await
            })
            .await?;
        let live = row.is_some_and(|row| row.try_get::<_, bool>(0).unwrap_or(false));
        Ok(if live {
            Outcome::Applied
        } else {
            Outcome::Missing
        })
    }
}

impl SessionAdmin for PostgresStore {
    async fn len(&self) -> Result<usize, StoreError> {
        let (now, zone, sql) = (self.now(), &self.inner.zone, &self.inner.statements.count);
        let n: i64 = self
            .run("count", async |c| {
                c.client
                    .query_one(sql.as_str(), &[&now, zone])
                    .await?
                    .try_get(0)
            })
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let (now, zone, sql) = (self.now(), &self.inner.zone, &self.inner.statements.ids);
        self.run("ids", async |c| {
            c.client
                .query(sql.as_str(), &[&now, zone])
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect()
        })
        .await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        let sql = &self.inner.statements.clear;
        self.run("clear", async |c| c.client.batch_execute(sql).await)
            .await
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>, StoreError> {
        let (now, zone, sql) = (
            self.now(),
            &self.inner.zone,
            &self.inner.statements.user_sessions,
        );
        let rows = self
            .run("user sessions", async |c| {
                c.client.query(sql.as_str(), &[&user, &now, zone]).await
            })
            .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            let (id, text, expire): (String, String, f64) =
                (|| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))().map_err(
                    |source| {
                        StoreError::backend(PostgresStoreError::Database {
                            statement: "user sessions",
                            source,
                        })
                    },
                )?;
            // A row whose text does not decode is skipped here; loading it starts a
            // fresh session, as for any corrupt record.
            let Ok(loaded) = LoadedRecord::from_json(text.into_bytes()) else {
                continue;
            };
            let loaded = match Duration::try_from_secs_f64(expire) {
                Ok(since_epoch) => loaded.with_deadline(UNIX_EPOCH + since_epoch),
                Err(_) => loaded,
            };
            found.push(SessionInfo::from_record(id, &loaded));
        }
        Ok(found)
    }

    async fn destroy_user_sessions(
        &self,
        user: &str,
        except: Option<&str>,
    ) -> Result<usize, StoreError> {
        // One statement: every row tied to the user, under its row lock. A patch that
        // waits on that lock then finds no row, and writes nothing.
        let (now, zone, sql) = (
            self.now(),
            &self.inner.zone,
            &self.inner.statements.destroy_user,
        );
        let n = self
            .run("destroy user sessions", async |c| {
                c.client
                    .execute(sql.as_str(), &[&user, &except, &now, zone])
                    .await
            })
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_their_quotes_doubled() {
        assert_eq!(quote("session"), "\"session\"");
        assert_eq!(
            quote("a\"; DROP TABLE x; --"),
            "\"a\"\"; DROP TABLE x; --\""
        );
    }

    #[test]
    fn expire_is_rounded_up_to_whole_seconds() {
        let t = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(ceil_secs(t(1_000)), 1.0);
        assert_eq!(ceil_secs(t(1_001)), 2.0);
        assert_eq!(ceil_secs(t(1_999)), 2.0);
        assert_eq!(ceil_secs(UNIX_EPOCH - Duration::from_millis(1_500)), -1.0);
    }

    #[test]
    fn the_ddl_names_its_constraint_and_index_like_connect_pg_simple() {
        let [table, index, user_index] = ddl("\"session\"", "session");
        assert!(
            user_index.contains("(sess -> '_tessera' ->> 'user')) WHERE"),
            "{user_index}"
        );
        assert!(
            table.contains("CONSTRAINT \"session_pkey\" PRIMARY KEY (\"sid\")"),
            "{table}"
        );
        assert!(table.contains("\"sess\" json NOT NULL"), "{table}");
        assert!(
            table.contains("\"expire\" timestamp(6) NOT NULL"),
            "{table}"
        );
        assert_eq!(
            index,
            "CREATE INDEX IF NOT EXISTS \"IDX_session_expire\" ON \"session\" (\"expire\")"
        );
    }
}
