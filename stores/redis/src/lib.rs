//! # tessera-redis: Tessera sessions in Redis, shared with connect-redis
//!
//! A [`tessera::SessionStore`] on Redis or Redis Cluster, for fleets of app instances
//! that share their users' sessions, Node services with connect-redis among them.
//!
//! ```no_run
//! use tessera::{Secret, SessionData, SessionLayer};
//! use tessera_redis::RedisStore;
//!
//! #[derive(SessionData, Default)]
//! struct Visit { views: u64 }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
//! let layer = SessionLayer::<Visit>::new(Secret::from_env("SESSION_SECRET")?).with_store(store);
//! # Ok(()) }
//! ```
//!
//! ## Two layouts
//!
//! - [`Layout::ConnectRedis`] (the default) stores each session exactly as connect-redis 9
//!   does: the key is the prefix (`sess:` by default) and the id, the value is
//!   express-session's compact JSON text, `"cookie"` first, and the TTL is whole seconds,
//!   rounded up, from the cookie's `expires`, or the store's `ttl` (one day) for a
//!   browser-session cookie. A touch is an `EXPIRE` that leaves the text alone. Node and
//!   Rust services read and write the same keys during a migration. A load reads the
//!   text and the key's TTL in one script, so that with the layer's `touch_after` a
//!   read-only request costs one round trip.
//!
//!   A patch is applied inside Redis by a script that sends only the changes: it finds
//!   the top-level entries of the stored text with a scanner (no `cjson`, which would
//!   rewrite numbers, escape `/` and turn `[]` into `{}`), copies every unchanged value
//!   byte for byte, and writes the text that `tessera::Patch::apply_to_json` would
//!   write. It is atomic, so concurrent patches of different fields all survive without
//!   retries, and a changed session costs two round trips: the load and the patch. A
//!   text the scanner declines (a key with escapes) is patched in Rust instead, and
//!   written by a script only if the stored text still hashes (`redis.sha1hex`) to the
//!   one it was applied to, retried on conflict.
//! - [`Layout::Hash`] keeps one Redis hash per session: a field per session field (its
//!   JSON text) and one for the cookie. A patch sends only the changed fields, so a
//!   one-field change of a 10 KB session sends a few dozen bytes. Node services cannot
//!   read it: choose it for fleets of Tessera services only.
//!
//! ## Redis Cluster
//!
//! Every operation touches one key, so it runs on the one node that owns the key's slot
//! (for the per-user sets, see below). The exception is moving a session to a new id
//! (`rotate_id`), whose two keys live in different slots: on a single node it is one
//! `RENAME`; on a cluster the old key is
//! taken out (`DUMP`, `PTTL` and `DEL`, in one script) and then restored under the new
//! key. A request on the old id after the first step sees no session, as after any
//! rotation; if the second step fails, the session is lost (the user logs in again), and
//! never duplicated.
//!
//! ## The per-user index
//!
//! A session tied to a user (`tessera::Session::set_user`) is also a member of the
//! user's set, [`RedisStore::user_key`]: the prefix, `user:` and the user id
//! (`sess:user:user-42`). The set lives at least as long as the user's longest session
//! (each write and touch of such a session extends it, never shortens it) and at least
//! the store's `ttl`. Sessions without a user never touch a set. Listing a user's
//! sessions reads each member's record and prunes the members whose session expired,
//! was destroyed, moved, or is no longer tied to that user.
//!
//! A revocation (`destroy_user_sessions`) takes each id out of the set, leaving a
//! tombstone (`!<ms>:<id>`, kept a minute), and then deletes the session only if its
//! record still names the user (a script on the session's key), so an index entry that
//! went stale never ends someone else's session. It reads the set again until no new
//! id appears. A session that moves to a new id (`rotate_id`) meanwhile adds the new id
//! to the set and then looks for a tombstone of either id: if it finds one, it deletes
//! the new key and answers `Missing`, so a move never carries a session out of a
//! revocation. A request that still holds a revoked session cannot write it back: a
//! patch never recreates a key.
//!
//! On Redis Cluster the user's set and the sessions live in different slots, so none of
//! this is one script: every step above is a single-key command or script on its own
//! node, and the ordering (tombstone before delete, new id in the set before the
//! tombstone check) is what makes it safe. Round trips for a session with a user: a
//! touch is one script on one node and two calls on a cluster; a patch is one script on
//! one node (the set is kept in it) and two calls on a cluster; a new session with a
//! user (`set`) and a move are two calls.
//!
//! ## The client
//!
//! [redis-rs](https://docs.rs/redis): one multiplexed, pipelined connection shared by
//! every request, replaced after a failure or a Redis restart (`conn.rs` says why not
//! its `ConnectionManager`), and its async cluster client, which reconnects by itself.
//! It was chosen over fred for its smaller dependency tree (tokio, no extra runtime
//! machinery) and because a script that is not yet cached on a node is loaded and
//! retried for you; in the benchmark it also costs less CPU per command than
//! tower-sessions-redis-store on fred. Every call is bounded by a
//! timeout ([`RedisStore::with_timeout`], one second by default), so a hung Redis becomes
//! the layer's `StoreErrorPolicy` answer rather than a hung request.
//!
//! ## This crate's files
//!
//! `lib.rs` is the store and its `SessionStore` implementation (a long file: about a
//! third of it is this documentation, and every operation reads best beside the others
//! it must stay atomic with); the Lua scripts are in `scripts.rs`, the connection that
//! reconnects in `conn.rs`, and administration and the per-user index in `admin.rs`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, RedisFuture, ScriptInvocation, Value};
use tessera::store::{Outcome, SessionStore, StoreError};
use tessera::{LoadedRecord, Patch, RecordView, SessionCookie, Touch};

mod admin;
mod conn;
mod scripts;

/// The fields of a session hash, as `HGETALL` answers them.
type HashFields = Vec<(Vec<u8>, Vec<u8>)>;

/// How sessions are laid out in Redis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// connect-redis' layout: one string key per session holding express-session's
    /// JSON text. Node services share it.
    #[default]
    ConnectRedis,
    /// One hash per session, a field per session field: patches send only what
    /// changed. For fleets of Tessera services only.
    Hash,
}

/// Why the store could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL or the first connection failed.
    #[error("could not connect to Redis")]
    Redis(#[from] redis::RedisError),
}

/// Why a store call failed (kept as the source of [`StoreError::Backend`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// Redis answered with an error, or the connection failed.
    #[error("Redis command `{command}` failed")]
    Redis {
        /// The command or script.
        command: &'static str,
        /// What redis-rs said.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not answer within the store's timeout.
    #[error("Redis command `{command}` timed out after {timeout:?}")]
    Timeout {
        /// The command or script.
        command: &'static str,
        /// The timeout.
        timeout: Duration,
    },
    /// Redis answered something the store did not write.
    #[error("unexpected answer to `{0}`")]
    Unexpected(&'static str),
    /// Other writers changed the session faster than a patch could be applied.
    #[error("the session changed under {0} patch attempts in a row")]
    Contention(usize),
}

#[derive(Clone)]
enum Conn {
    Single(conn::Single),
    Cluster(ClusterConnection),
}

/// The connection one call uses.
enum Live {
    /// A single server's connection, and its generation.
    Single(u64, MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Live {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(_, c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(_, c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(_, c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A [`SessionStore`] on Redis or Redis Cluster. Cloning gives another handle to the
/// same connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    settings: Arc<Settings>,
}

#[derive(Clone, Debug)]
struct Settings {
    prefix: String,
    ttl: Duration,
    layout: Layout,
    timeout: Duration,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &matches!(self.conn, Conn::Cluster(_)))
            .field("settings", &self.settings)
            .finish()
    }
}

/// How many times a patch is applied again to a text another writer changed meanwhile.
/// Every conflict means another write to the session succeeded, so `n` concurrent
/// writers of one session need at most `n` attempts each; this bounds a pathological
/// case, not a normal one.
const PATCH_ATTEMPTS: usize = 100;

impl RedisStore {
    /// Connects to one Redis server (`redis://host:port/db`).
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when the URL is invalid or the server does not answer.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::from_client(redis::Client::open(url)?).await
    }

    /// Connects through an existing redis-rs client (one server). The store keeps one
    /// multiplexed connection, shared by every request and replaced after a failure.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when the server does not answer.
    pub async fn from_client(client: redis::Client) -> Result<Self, ConnectError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(None);
        Ok(Self::with_conn(Conn::Single(
            conn::Single::connect(client, config).await?,
        )))
    }

    /// Shares an existing multiplexed connection of the application (one server);
    /// `client` makes a new one if it fails.
    pub fn from_connection(client: redis::Client, connection: MultiplexedConnection) -> Self {
        Self::with_conn(Conn::Single(conn::Single::from_connection(
            client, connection,
        )))
    }

    /// Connects to a Redis Cluster through any of its nodes.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] when no node answers or the cluster is not usable.
    pub async fn connect_cluster(
        nodes: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, ConnectError> {
        let nodes: Vec<String> = nodes.into_iter().map(|n| n.as_ref().to_owned()).collect();
        let client = ClusterClient::builder(nodes)
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(1))
            .build()?;
        Ok(Self::from_cluster_connection(
            client.get_async_connection().await?,
        ))
    }

    /// Uses an existing cluster connection, shared with the application.
    pub fn from_cluster_connection(conn: ClusterConnection) -> Self {
        Self::with_conn(Conn::Cluster(conn))
    }

    fn with_conn(conn: Conn) -> Self {
        Self {
            conn,
            settings: Arc::new(Settings {
                prefix: "sess:".to_owned(),
                ttl: Duration::from_secs(86_400),
                layout: Layout::ConnectRedis,
                timeout: Duration::from_secs(1),
            }),
        }
    }

    fn settings_mut(&mut self) -> &mut Settings {
        Arc::make_mut(&mut self.settings)
    }

    /// The key prefix (connect-redis' `prefix`, `sess:` by default).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings_mut().prefix = prefix.into();
        self
    }

    /// How long a browser-session record (no `expires`) lives (connect-redis' `ttl`,
    /// one day by default). Whole seconds in the connect-redis layout.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.settings_mut().ttl = ttl;
        self
    }

    /// The layout (connect-redis' by default).
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.settings_mut().layout = layout;
        self
    }

    /// How long a call may wait for Redis (one second by default).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.settings_mut().timeout = timeout;
        self
    }

    /// The layout in use.
    pub fn layout(&self) -> Layout {
        self.settings.layout
    }

    /// The key of session `id`.
    pub fn key(&self, id: &str) -> String {
        let mut key = String::with_capacity(self.settings.prefix.len() + id.len());
        key.push_str(&self.settings.prefix);
        key.push_str(id);
        key
    }

    /// The key of `user`'s set of session ids (the per-user index):
    /// the prefix, `user:` and the user id.
    pub fn user_key(&self, user: &str) -> String {
        format!("{}user:{user}", self.settings.prefix)
    }

    /// The least lifetime of a user's set that holds a session with `cookie`.
    fn index_ttl_ms(&self, cookie: &SessionCookie) -> i64 {
        self.ttl_ms(cookie)
            .max(i64::try_from(self.settings.ttl.as_millis()).unwrap_or(i64::MAX))
    }

    /// Adds `id` to `user`'s set, which then lives at least as long as the session.
    async fn index(&self, user: &str, id: &str, cookie: &SessionCookie) -> Result<(), StoreError> {
        let mut call = scripts::INDEX.key(self.user_key(user));
        call.arg(id).arg(self.index_ttl_ms(cookie));
        self.eval::<i64>("index", &call).await.map(|_| ())
    }

    /// The expiry precision of the layout: whole seconds for connect-redis' text keys
    /// (their TTL is rounded up, as connect-redis does), milliseconds for hashes.
    pub fn expiry_precision(&self) -> Duration {
        match self.settings.layout {
            Layout::ConnectRedis => Duration::from_secs(1),
            Layout::Hash => Duration::from_millis(1),
        }
    }

    /// Time left for a record with `cookie`, in milliseconds: to its `expires`, or the
    /// store's TTL. Zero or less means expired.
    fn ttl_ms(&self, cookie: &SessionCookie) -> i64 {
        match cookie.expires() {
            Some(at) => match at.duration_since(SystemTime::now()) {
                Ok(left) => i64::try_from(left.as_millis()).unwrap_or(i64::MAX),
                Err(past) => -i64::try_from(past.duration().as_millis()).unwrap_or(i64::MAX),
            },
            None => i64::try_from(self.settings.ttl.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// connect-redis' TTL: whole seconds, rounded up.
    fn ttl_secs(&self, cookie: &SessionCookie) -> i64 {
        let ms = self.ttl_ms(cookie);
        ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0)
    }

    /// The connection for one call.
    async fn live(&self, command: &'static str) -> Result<Live, StoreError> {
        match &self.conn {
            Conn::Single(single) => match single.get().await {
                Ok((generation, c)) => Ok(Live::Single(generation, c)),
                Err(source) => Err(StoreError::backend(RedisStoreError::Redis {
                    command,
                    source,
                })),
            },
            Conn::Cluster(c) => Ok(Live::Cluster(c.clone())),
        }
    }

    /// Marks the connection of `live` broken after `answer`, if the connection failed
    /// or did not answer in time: the next call connects again.
    fn settle<T>(
        &self,
        live: &Live,
        answer: &Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) {
        if let (Conn::Single(single), Live::Single(generation, _)) = (&self.conn, live) {
            let broken = match answer {
                Ok(Err(e)) => conn::is_connection_error(e),
                Ok(Ok(_)) => false,
                Err(_) => true,
            };
            if broken {
                single.failed(*generation);
            }
        }
    }

    async fn run<T: FromRedisValue>(
        &self,
        command: &'static str,
        cmd: &Cmd,
    ) -> Result<T, StoreError> {
        let mut live = self.live(command).await?;
        let timeout = self.settings.timeout;
        let answer = tokio::time::timeout(timeout, cmd.query_async::<T>(&mut live)).await;
        self.settle(&live, &answer);
        finish(command, timeout, answer)
    }

    async fn eval<T: FromRedisValue>(
        &self,
        command: &'static str,
        script: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut live = self.live(command).await?;
        let timeout = self.settings.timeout;
        let answer = tokio::time::timeout(timeout, script.invoke_async::<T>(&mut live)).await;
        self.settle(&live, &answer);
        finish(command, timeout, answer)
    }

    async fn get_text(&self, id: &str) -> Result<Option<LoadedRecord>, StoreError> {
        let call = scripts::GET_WITH_TTL.key(self.key(id));
        let found: Option<(Vec<u8>, i64)> = self.eval("get", &call).await?;
        let Some((text, pttl)) = found else {
            return Ok(None);
        };
        let loaded = LoadedRecord::from_json(text).map_err(StoreError::Corrupt)?;
        Ok(Some(with_ttl(loaded, pttl)))
    }

    async fn get_hash(&self, id: &str) -> Result<Option<LoadedRecord>, StoreError> {
        let call = scripts::HASH_GET.key(self.key(id));
        let (pairs, pttl): (HashFields, i64) = self.eval("hash get", &call).await?;
        if pairs.is_empty() {
            return Ok(None);
        }
        // The key's TTL is the session's deadline; the stored cookie's `expires` is only
        // rewritten when its attributes change.
        let deadline = deadline(pttl);
        hash_record(pairs, deadline).map(|loaded| Some(with_ttl(loaded, pttl)))
    }

    /// The user's set, when a patch script can keep it in the same round trip (one
    /// node: every key on it).
    fn index_in_script(&self, patch: &Patch<'_>) -> Option<String> {
        match (&self.conn, patch.user()) {
            (Conn::Single(_), Some(user)) => Some(self.user_key(user)),
            _ => None,
        }
    }

    /// The patch's outcome, and whether the script also indexed the id under its user.
    async fn patch_text(&self, id: &str, patch: Patch<'_>) -> Result<(Outcome, bool), StoreError> {
        let key = self.key(id);
        let ttl = self.ttl_secs(patch.cookie());
        // In place, by the script (one round trip, only the changes sent)...
        let mut call = scripts::PATCH_TEXT.key(&key);
        let index = self.index_in_script(&patch);
        if let Some(user_key) = &index {
            call.key(user_key);
        }
        call.arg(ttl)
            .arg(patch.cookie().to_json())
            .arg(patch.changes().len());
        for change in patch.changes() {
            // The key as it is written between quotes.
            let quoted = serde_json::to_string(&change.key)
                .map_err(|e| StoreError::Corrupt(tessera::RecordError::Json(e)))?;
            call.arg(&quoted[1..quoted.len() - 1]);
            match &change.value {
                Some(value) => call.arg(
                    serde_json::to_vec(value)
                        .map_err(|e| StoreError::Corrupt(tessera::RecordError::Json(e)))?,
                ),
                None => call.arg(""),
            };
        }
        if index.is_some() {
            call.arg(id).arg(self.index_ttl_ms(patch.cookie()));
        }
        match self.eval::<i64>("patch", &call).await? {
            -1 => {}
            answer => return outcome(answer).map(|o| (o, index.is_some())),
        }
        // ...or, for a text the script does not read (a key with escapes), by
        // compare-and-set on the text, patched here by serde_json's reading of it.
        // The text the session was loaded from is the first guess; without one, the
        // first attempt (which cannot match) fetches the current text.
        let mut current: Option<Vec<u8>> = patch.loaded_text().map(<[u8]>::to_vec);
        for _ in 0..PATCH_ATTEMPTS {
            let (expected, new) = match &current {
                Some(text) => (
                    sha1_smol::Sha1::from(text).digest().to_string(),
                    patch.apply_to_json(text).map_err(StoreError::Corrupt)?,
                ),
                None => (String::new(), Vec::new()),
            };
            let mut call = scripts::COMPARE_AND_SET.key(&key);
            call.arg(&expected).arg(new).arg(ttl);
            match self.eval::<Value>("compare-and-set", &call).await? {
                Value::Int(0) => return Ok((Outcome::Missing, false)),
                Value::Int(1) => return Ok((Outcome::Applied, false)),
                Value::BulkString(text) => current = Some(text),
                _ => {
                    return Err(StoreError::backend(RedisStoreError::Unexpected(
                        "compare-and-set",
                    )));
                }
            }
        }
        Err(StoreError::backend(RedisStoreError::Contention(
            PATCH_ATTEMPTS,
        )))
    }

    /// The patch's outcome, and whether the script also indexed the id under its user.
    async fn patch_hash(&self, id: &str, patch: Patch<'_>) -> Result<(Outcome, bool), StoreError> {
        let mut call = scripts::HASH_PATCH.key(self.key(id));
        let removed = patch.changes().iter().filter(|c| c.value.is_none()).count();
        call.arg(self.ttl_ms(patch.cookie())).arg(removed);
        let index = self.index_in_script(&patch);
        match &index {
            Some(user_key) => {
                call.key(user_key)
                    .arg(id)
                    .arg(self.index_ttl_ms(patch.cookie()));
            }
            None => {
                call.arg("").arg(0);
            }
        }
        if patch.cookie_attributes_changed() {
            call.arg("cookie").arg(patch.cookie().to_json());
        }
        for change in patch.changes() {
            if let Some(value) = &change.value {
                let json = serde_json::to_vec(value)
                    .map_err(|e| StoreError::Corrupt(tessera::RecordError::Json(e)))?;
                call.arg(&change.key).arg(json);
            }
        }
        for change in patch.changes().iter().filter(|c| c.value.is_none()) {
            call.arg(&change.key);
        }
        outcome(self.eval::<i64>("hash patch", &call).await?).map(|o| (o, index.is_some()))
    }

    async fn rotate_cluster(&self, from: &str, to: &str) -> Result<Outcome, StoreError> {
        let take = scripts::TAKE.key(self.key(from));
        let taken: Option<(Vec<u8>, i64)> = self.eval("take", &take).await?;
        let Some((dump, pttl)) = taken else {
            return Ok(Outcome::Missing);
        };
        let pttl = if pttl > 0 {
            pttl
        } else {
            i64::try_from(self.settings.ttl.as_millis()).unwrap_or(i64::MAX)
        };
        self.run::<()>(
            "RESTORE",
            redis::cmd("RESTORE")
                .arg(self.key(to))
                .arg(pttl)
                .arg(dump)
                .arg("REPLACE"),
        )
        .await?;
        Ok(Outcome::Applied)
    }
}

fn finish<T>(
    command: &'static str,
    timeout: Duration,
    answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
) -> Result<T, StoreError> {
    match answer {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(StoreError::backend(RedisStoreError::Redis {
            command,
            source,
        })),
        Err(_) => Err(StoreError::backend(RedisStoreError::Timeout {
            command,
            timeout,
        })),
    }
}

/// When a key with `pttl` milliseconds left expires (`None` without a TTL).
fn deadline(pttl: i64) -> Option<SystemTime> {
    u64::try_from(pttl)
        .ok()
        .map(|ms| SystemTime::now() + Duration::from_millis(ms))
}

/// `loaded`, knowing when its key expires.
fn with_ttl(loaded: LoadedRecord, pttl: i64) -> LoadedRecord {
    match deadline(pttl) {
        Some(at) => loaded.with_deadline(at),
        None => loaded,
    }
}

fn outcome(answer: i64) -> Result<Outcome, StoreError> {
    match answer {
        0 => Ok(Outcome::Missing),
        1 => Ok(Outcome::Applied),
        _ => Err(StoreError::backend(RedisStoreError::Unexpected("script"))),
    }
}

/// A session from its hash: the cookie field and the JSON text of every other field.
fn hash_record(
    pairs: HashFields,
    deadline: Option<SystemTime>,
) -> Result<LoadedRecord, StoreError> {
    let corrupt = |why| StoreError::Corrupt(tessera::RecordError::Shape(why));
    let mut cookie = None;
    let mut fields = Vec::with_capacity(64);
    fields.push(b'{');
    for (key, value) in pairs {
        if key == b"cookie" {
            cookie = Some(value);
            continue;
        }
        let key = String::from_utf8(key).map_err(|_| corrupt("a hash field name is not UTF-8"))?;
        if fields.len() > 1 {
            fields.push(b',');
        }
        serde_json::to_writer(&mut fields, &key)
            .map_err(|e| StoreError::Corrupt(tessera::RecordError::Json(e)))?;
        fields.push(b':');
        fields.extend_from_slice(&value);
    }
    fields.push(b'}');
    let cookie = cookie.ok_or_else(|| corrupt("no `cookie` field"))?;
    let mut whole = Vec::with_capacity(cookie.len() + 12);
    whole.extend_from_slice(b"{\"cookie\":");
    whole.extend_from_slice(&cookie);
    whole.push(b'}');
    let mut cookie = LoadedRecord::from_json(whole)
        .map_err(StoreError::Corrupt)?
        .cookie()
        .clone();
    if let Some(at) = deadline {
        cookie = cookie.with_expires_at(at);
    }
    LoadedRecord::from_parts(cookie, fields).map_err(StoreError::Corrupt)
}

/// `prefix` with glob characters escaped, for `SCAN MATCH`.
fn escape_glob(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl SessionStore for RedisStore {
    async fn get(&self, id: &str) -> Result<Option<LoadedRecord>, StoreError> {
        match self.settings.layout {
            Layout::ConnectRedis => self.get_text(id).await,
            Layout::Hash => self.get_hash(id).await,
        }
    }

    async fn set(&self, id: &str, record: RecordView<'_>) -> Result<(), StoreError> {
        self.set_record(id, &record).await?;
        if let Some(user) = record.user() {
            // After the write: a revocation that starts in between does not see this
            // new login, as if it had come after it.
            if let Err(error) = self.index(user, id, record.cookie()).await {
                // Not left alive outside the index, where no revocation would find it.
                let _ = self.destroy(id).await;
                return Err(error);
            }
        }
        Ok(())
    }

    async fn patch(&self, id: &str, patch: Patch<'_>) -> Result<Outcome, StoreError> {
        let (outcome, indexed) = match self.settings.layout {
            Layout::ConnectRedis => self.patch_text(id, patch).await?,
            Layout::Hash => self.patch_hash(id, patch).await?,
        };
        if let (Outcome::Applied, Some(user), false) = (outcome, patch.user(), indexed) {
            // After the write (a cluster, or the compare-and-set path): a revocation in
            // between finds the id already tied, or sees a login that came after it.
            self.index(user, id, patch.cookie()).await?;
        }
        Ok(outcome)
    }

    async fn touch(&self, id: &str, touch: Touch<'_>) -> Result<Outcome, StoreError> {
        if !touch.is_due(self.settings.ttl) {
            return Ok(Outcome::Applied);
        }
        let cookie = touch.cookie();
        let (ttl, unit) = match self.settings.layout {
            Layout::ConnectRedis => (self.ttl_secs(cookie), "s"),
            Layout::Hash => (self.ttl_ms(cookie), "ms"),
        };
        let user = touch.user();
        if let (Some(user), Conn::Single(_)) = (user, &self.conn) {
            // One round trip: the renewal and the user's set, on the one node.
            let mut call = scripts::TOUCH_INDEXED.key(self.key(id));
            call.key(self.user_key(user))
                .arg(ttl)
                .arg(unit)
                .arg(id)
                .arg(self.index_ttl_ms(cookie));
            return outcome(self.eval("touch", &call).await?);
        }
        let key = self.key(id);
        let renewed: i64 = match self.settings.layout {
            // connect-redis: `EXPIRE key ttl`, the text left as it is; a TTL ≤ 0 deletes.
            Layout::ConnectRedis => {
                self.run("EXPIRE", redis::cmd("EXPIRE").arg(key).arg(ttl))
                    .await?
            }
            Layout::Hash => {
                self.run("PEXPIRE", redis::cmd("PEXPIRE").arg(key).arg(ttl))
                    .await?
            }
        };
        let renewed = outcome(renewed)?;
        if let (Outcome::Applied, Some(user)) = (renewed, user) {
            // On a cluster the set lives in another slot: a second call.
            self.index(user, id, cookie).await?;
        }
        Ok(renewed)
    }

    async fn rotate(
        &self,
        from: &str,
        to: &str,
        user: Option<&str>,
    ) -> Result<Outcome, StoreError> {
        let moved = match &self.conn {
            Conn::Single(_) => {
                let mut call = scripts::RENAME.key(self.key(from));
                call.key(self.key(to));
                outcome(self.eval("rename", &call).await?)?
            }
            Conn::Cluster(_) => self.rotate_cluster(from, to).await?,
        };
        let (Outcome::Applied, Some(user)) = (moved, user) else {
            return Ok(moved);
        };
        // Keep the new id in the user's set, and give way to a revocation that marked
        // either id while the session moved (`destroy_user_sessions`).
        let mut call = scripts::ROTATED.key(self.user_key(user));
        call.arg(to)
            .arg(i64::try_from(self.settings.ttl.as_millis()).unwrap_or(i64::MAX))
            .arg(from);
        let revoked: i64 = self.eval("rotated", &call).await?;
        if revoked == 1 {
            self.destroy(to).await?;
            return Ok(Outcome::Missing);
        }
        Ok(Outcome::Applied)
    }

    async fn destroy(&self, id: &str) -> Result<Outcome, StoreError> {
        let removed: i64 = self.run("DEL", redis::cmd("DEL").arg(self.key(id))).await?;
        Ok(if removed > 0 {
            Outcome::Applied
        } else {
            Outcome::Missing
        })
    }
}

impl RedisStore {
    async fn set_record(&self, id: &str, record: &RecordView<'_>) -> Result<(), StoreError> {
        let key = self.key(id);
        match self.settings.layout {
            Layout::ConnectRedis => {
                let ttl = self.ttl_secs(record.cookie());
                if ttl <= 0 {
                    return self.run("DEL", redis::cmd("DEL").arg(key)).await;
                }
                let mut text = Vec::with_capacity(256);
                record.write_json(&mut text).map_err(StoreError::Corrupt)?;
                self.run(
                    "SET",
                    redis::cmd("SET").arg(key).arg(text).arg("EX").arg(ttl),
                )
                .await
            }
            Layout::Hash => {
                let ttl = self.ttl_ms(record.cookie());
                if ttl <= 0 {
                    return self.run("DEL", redis::cmd("DEL").arg(key)).await;
                }
                let mut call = scripts::HASH_SET.key(key);
                call.arg(ttl).arg("cookie").arg(record.cookie().to_json());
                record
                    .for_each_field(|k, v| {
                        call.arg(k).arg(v);
                    })
                    .map_err(StoreError::Corrupt)?;
                self.eval::<i64>("hash set", &call).await.map(|_| ())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_of_the_prefix_are_escaped() {
        assert_eq!(escape_glob("sess:"), "sess:");
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn a_hash_becomes_a_record_and_a_broken_one_is_corrupt() {
        let cookie = br#"{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"}"#;
        let loaded = hash_record(
            vec![
                (b"views".to_vec(), b"3".to_vec()),
                (b"cookie".to_vec(), cookie.to_vec()),
                (b"k\"q".to_vec(), b"[1.50]".to_vec()),
            ],
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.field_json("views").as_deref(), Some(&b"3"[..]));
        // A key with escapes is read by serde_json: the value, not its spelling, is kept.
        assert_eq!(loaded.field_json("k\"q").as_deref(), Some(&b"[1.5]"[..]));
        assert!(loaded.cookie().http_only());
        for broken in [
            vec![(b"views".to_vec(), b"3".to_vec())],
            vec![(b"cookie".to_vec(), b"3".to_vec())],
            vec![
                (b"cookie".to_vec(), cookie.to_vec()),
                (vec![0xff], b"1".to_vec()),
            ],
        ] {
            assert!(matches!(
                hash_record(broken, None),
                Err(StoreError::Corrupt(_))
            ));
        }
    }
}
