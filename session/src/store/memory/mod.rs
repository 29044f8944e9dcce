//! An in-process store: the default, for development, tests and single-instance services.
//!
//! This file is the store and its operations, each under its shard's lock (a little over
//! 500 lines, a fifth of them documentation); the rest has rooms of its own: the
//! open-addressing table (`table.rs`), the compact record (`blob.rs`), the id hash
//! (`hash.rs`), the sweep and the eviction (`sweep.rs`) and the per-user index
//! (`users.rs`).

use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::cookie::SessionCookie;
use crate::record::{FieldChange, LoadedRecord, Patch, RecordView, Touch};
use crate::store::{Outcome, SessionAdmin, SessionStore, StoreError};
use crate::time;

mod blob;
mod hash;
mod sweep;
mod table;
mod users;

pub(crate) use hash::IdHash;
use table::{Hashed, Table};

const SHARDS: usize = 256;

/// One shard: entries found by the hash they keep, so that growing the table never reads
/// an id back from memory (a cache miss per entry in a large store).
type Shard = Table<Stored>;

struct Stored {
    /// The id's hash.
    hash: u64,
    /// The deadline (`cookie.expires`, or the default TTL for browser-session cookies) in
    /// the low 63 bits, and [`MODIFIED`] in the top one: one word, so that an entry stays
    /// 32 bytes.
    meta: u64,
    /// The id, the cookie and the fields JSON, in one allocation: see `memory_blob`.
    blob: Box<[u8]>,
}

/// The bit of [`Stored::meta`] that says the session was ever saved modified (not an
/// uninitialized session kept by `save_uninitialized`): evicted last.
const MODIFIED: u64 = 1 << 63;

impl Hashed for Stored {
    fn hash(&self) -> u64 {
        self.hash
    }
}

impl Stored {
    fn new(hash: u64, deadline: i64, modified: bool, blob: Box<[u8]>) -> Self {
        let mut s = Self {
            hash,
            meta: if modified { MODIFIED } else { 0 },
            blob,
        };
        s.set_deadline(deadline);
        s
    }

    fn deadline(&self) -> i64 {
        // At most 2^63 - 1: the cast is exact.
        (self.meta & !MODIFIED) as i64
    }

    fn set_deadline(&mut self, deadline: i64) {
        // Deadlines before the epoch are long past: 0 is as good.
        self.meta = (self.meta & MODIFIED) | deadline.max(0).unsigned_abs();
    }

    fn modified(&self) -> bool {
        self.meta & MODIFIED != 0
    }

    fn mark_modified(&mut self) {
        self.meta |= MODIFIED;
    }

    fn is(&self, hash: u64, id: &str) -> bool {
        self.hash == hash && blob::key_is(&self.blob, id.as_bytes())
    }

    fn id(&self) -> &str {
        // Keys are written from `&str`s; a blob that does not hold one matches no id.
        blob::key_of(&self.blob)
            .ok()
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or_default()
    }
}

/// A clock given to the store ([`MemoryStore::with_clock`]).
type Clock = dyn Fn() -> std::time::SystemTime + Send + Sync;

struct Inner {
    /// The store's clock, when not the system's (tests).
    clock: std::sync::OnceLock<Arc<Clock>>,
    shards: Vec<Mutex<Shard>>,
    hash: IdHash,
    count: AtomicUsize,
    /// The settings live here, not in the handle, so that a builder called on one handle
    /// configures the store every clone shares.
    default_ttl_ms: AtomicI64,
    /// 0: no bound.
    max_sessions: AtomicUsize,
    /// How long one shard waits for its next sweep: a full cycle over the shards takes
    /// `SHARDS` times this.
    sweep_every_ms: AtomicI64,
    next_sweep: AtomicI64,
    sweep_cursor: AtomicUsize,
    evict_cursor: AtomicUsize,
    /// Per shard, how many of its records are uninitialized; changed under the shard's
    /// lock, read without it to find an eviction victim without scanning.
    uninitialized: Vec<AtomicUsize>,
    /// The per-user index (`users.rs`).
    users: Vec<Mutex<users::UserShard>>,
}

/// What a [`MemoryStore`] holds, for metrics and capacity planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Records held, live or expired but not yet swept.
    pub sessions: usize,
    /// Slots of the tables that hold them (the tables shrink when mostly empty).
    pub slots: usize,
    /// Bytes held: the slots and each record's one allocation.
    pub bytes: usize,
}

/// An in-memory [`SessionStore`], sharded for concurrent requests.
///
/// - expired records are never returned, and are swept away as the store is written:
///   one of 256 shards at a time, a full cycle about every minute (so no request pays
///   for a full sweep), or at once by [`MemoryStore::sweep`]; tables shrink when
///   mostly empty, so memory goes back down after a flood;
/// - records without an expiry (browser-session cookies) live for `default_ttl`
///   (24 hours unless changed), so abandoned sessions cannot pile up forever;
/// - an optional capacity bound evicts uninitialized sessions (saved only because of
///   `save_uninitialized`) before any session that was ever modified, each by nearest
///   expiry, looking through a few shards per insert, so that anonymous traffic cannot
///   push out logged-in users and no request pays for a scan of the whole store;
/// - `patch` updates fields in place under the shard lock, so concurrent requests that
///   change different fields of one session all survive.
///
/// Cloning gives another handle to the same sessions; the `with_*` builders configure
/// the store that every handle shares.
///
/// ```
/// use std::time::Duration;
/// let store = tessera::MemoryStore::new()
///     .with_default_ttl(Duration::from_secs(3600))
///     .with_max_sessions(100_000);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.inner.count.load(Ordering::Relaxed))
            .field("max_sessions", &self.max_sessions())
            .finish()
    }
}

impl MemoryStore {
    /// The default sweep cycle: every shard once a minute.
    pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

    /// An empty store: browser-session records live 24 hours, no capacity bound, and
    /// every shard is swept once a minute (one shard at a time, as the store is written).
    pub fn new() -> Self {
        let sweep_every_ms = Self::sweep_step_ms(Self::DEFAULT_SWEEP_INTERVAL);
        Self {
            inner: Arc::new(Inner {
                clock: std::sync::OnceLock::new(),
                shards: (0..SHARDS).map(|_| Mutex::new(Table::new())).collect(),
                hash: IdHash::new(),
                count: AtomicUsize::new(0),
                default_ttl_ms: AtomicI64::new(86_400_000),
                max_sessions: AtomicUsize::new(0),
                sweep_every_ms: AtomicI64::new(sweep_every_ms),
                next_sweep: AtomicI64::new(time::now_ms().saturating_add(sweep_every_ms)),
                sweep_cursor: AtomicUsize::new(0),
                evict_cursor: AtomicUsize::new(0),
                uninitialized: (0..SHARDS).map(|_| AtomicUsize::new(0)).collect(),
                users: users::new_index(),
            }),
        }
    }

    fn sweep_step_ms(every: Duration) -> i64 {
        (time::duration_ms(every) / SHARDS as i64).max(1)
    }

    fn default_ttl_ms(&self) -> i64 {
        self.inner.default_ttl_ms.load(Ordering::Relaxed)
    }

    fn max_sessions(&self) -> Option<usize> {
        match self.inner.max_sessions.load(Ordering::Relaxed) {
            0 => None,
            max => Some(max),
        }
    }

    /// What the store holds now.
    pub fn stats(&self) -> MemoryStats {
        let mut stats = MemoryStats {
            sessions: 0,
            slots: 0,
            bytes: std::mem::size_of::<Inner>(),
        };
        for shard in &self.inner.shards {
            let shard = lock(shard);
            stats.sessions += shard.len();
            stats.slots += shard.slots();
            stats.bytes += shard.slots() * std::mem::size_of::<Option<Stored>>()
                + shard.iter().map(|s| s.blob.len()).sum::<usize>();
        }
        stats
    }

    /// How long a record without an expiry (a browser-session cookie) is kept.
    pub fn with_default_ttl(self, ttl: Duration) -> Self {
        let ms = time::duration_ms(ttl).max(1);
        self.inner.default_ttl_ms.store(ms, Ordering::Relaxed);
        self
    }

    /// Keeps at most about `max` sessions: beyond that, each new session evicts an
    /// uninitialized one, or when the shards it looks through hold none, the modified
    /// one nearest to expiry (expired ones first). Concurrent inserts may pass the bound
    /// by one each for a moment.
    pub fn with_max_sessions(self, max: usize) -> Self {
        self.inner.max_sessions.store(max.max(1), Ordering::Relaxed);
        self
    }

    /// Reads the time from `clock` instead of the system clock: for tests that travel in
    /// time, with the same clock given to [`crate::SessionLayer::with_clock`]. The
    /// first clock given to a store (or any of its clones) is the one it keeps.
    pub fn with_clock(
        self,
        clock: impl Fn() -> std::time::SystemTime + Send + Sync + 'static,
    ) -> Self {
        let _ = self.inner.clock.set(Arc::new(clock));
        self
    }

    /// Now, by the store's clock, in milliseconds since the epoch.
    pub(super) fn now_ms(&self) -> i64 {
        match self.inner.clock.get() {
            Some(clock) => time::system_time_to_ms(clock()),
            None => time::now_ms(),
        }
    }

    /// How often every shard is swept (default [`Self::DEFAULT_SWEEP_INTERVAL`]): the
    /// store is split into 256 shards, and one of them is swept each `every / 256`, as
    /// the store is written.
    pub fn with_sweep_interval(self, every: Duration) -> Self {
        let step = Self::sweep_step_ms(every);
        self.inner.sweep_every_ms.store(step, Ordering::Relaxed);
        self.inner
            .next_sweep
            .store(self.now_ms().saturating_add(step), Ordering::Relaxed);
        self
    }

    fn shard_index(hash: u64) -> usize {
        ((hash >> 32) as usize) % SHARDS
    }

    /// The id's hash and its locked shard.
    fn shard(&self, id: &str) -> (u64, MutexGuard<'_, Shard>) {
        // A shard's table takes an entry's home slot from the low bits of its hash: pick
        // the shard from bits it does not use, or a shard's keys would share them.
        let h = self.inner.hash.hash_one(id);
        (h, lock(&self.inner.shards[Self::shard_index(h)]))
    }

    fn deadline(&self, cookie: &SessionCookie, now: i64) -> i64 {
        cookie
            .expires
            .unwrap_or_else(|| now.saturating_add(self.default_ttl_ms()))
    }

    /// The live record under `id`, its fields kept as text; an expired one is removed.
    fn get_now(&self, id: &str) -> Result<Option<LoadedRecord>, StoreError> {
        let now = self.now_ms();
        let (hash, mut shard) = self.shard(id);
        let Some(slot) = shard.find(hash, |s| s.is(hash, id)) else {
            return Ok(None);
        };
        match shard.get(slot) {
            Some(s) if s.deadline() > now => blob::decode_loaded(&s.blob, s.deadline())
                .map(|mut loaded| {
                    loaded.deadline = Some(s.deadline());
                    Some(loaded)
                })
                .map_err(StoreError::Corrupt),
            _ => {
                self.remove_at(Self::shard_index(hash), &mut shard, slot);
                Ok(None)
            }
        }
    }

    fn set_now(&self, id: &str, record: &RecordView<'_>) -> Result<(), StoreError> {
        let blob = blob::encode_view(id, record).map_err(StoreError::Corrupt)?;
        // Writing an expired record is a delete, as connect-redis does.
        let now = self.now_ms();
        let deadline = self.deadline(record.cookie(), now);
        self.store_entry(id, deadline, !record.is_uninitialized(), blob, now);
        Ok(())
    }

    fn store_entry(&self, id: &str, deadline: i64, modified: bool, blob: Box<[u8]>, now: i64) {
        self.maybe_sweep_step(now);
        if deadline <= now {
            self.destroy_now(id);
            return;
        }
        let hash = self.inner.hash.hash_one(id);
        let mut stored = Stored::new(hash, deadline, modified, blob);
        let i = Self::shard_index(hash);
        if let Some(max) = self.max_sessions() {
            let (_, shard) = self.shard(id);
            // A new record makes room first; one that replaces a record does not.
            if shard.find(hash, |s| s.is(hash, id)).is_none() {
                drop(shard);
                self.make_room(max, now);
            }
        }
        let (_, mut shard) = self.shard(id);
        self.added(i, &stored);
        match shard
            .find(hash, |s| s.is(hash, id))
            .and_then(|slot| shard.get_mut(slot))
        {
            Some(s) => {
                std::mem::swap(s, &mut stored);
                self.removed(i, &stored);
            }
            None => {
                shard.insert_new(stored);
                self.inner.count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A patch under the shard lock, so concurrent patches of different fields all
    /// survive.
    fn patch_now(
        &self,
        id: &str,
        cookie: &SessionCookie,
        changes: &[FieldChange],
    ) -> Result<Outcome, StoreError> {
        let now = self.now_ms();
        self.maybe_sweep_step(now);
        let deadline = self.deadline(cookie, now);
        let (hash, mut shard) = self.shard(id);
        let Some(slot) = shard.find(hash, |s| s.is(hash, id)) else {
            return Ok(Outcome::Missing);
        };
        let stored_deadline = shard.get(slot).map_or(now, Stored::deadline);
        if stored_deadline <= now || deadline <= now {
            let outcome = if stored_deadline <= now {
                Outcome::Missing
            } else {
                Outcome::Applied
            };
            self.remove_at(Self::shard_index(hash), &mut shard, slot);
            return Ok(outcome);
        }
        let Some(s) = shard.get_mut(slot) else {
            return Ok(Outcome::Missing);
        };
        if changes.is_empty() && blob::cookie_matches(&s.blob, cookie) {
            // A resave usually changes nothing but the expiry, which is the deadline:
            // then only the deadline moves, without re-encoding.
            s.set_deadline(deadline);
            return Ok(Outcome::Applied);
        }
        let json = blob::fields_of(&s.blob).map_err(StoreError::Corrupt)?;
        s.blob = if changes.is_empty() {
            blob::encode(id, cookie, json)
        } else {
            blob::encode_patched(id, cookie, json, changes).map_err(StoreError::Corrupt)?
        };
        s.set_deadline(deadline);
        if !changes.is_empty() && !s.modified() {
            s.mark_modified();
            self.inner.uninitialized[Self::shard_index(hash)].fetch_sub(1, Ordering::Relaxed);
        }
        Ok(Outcome::Applied)
    }

    /// Renews the deadline of a live record (the stored `expires` is the deadline).
    fn touch_now(&self, id: &str, cookie: &SessionCookie) -> Outcome {
        let now = self.now_ms();
        let deadline = self.deadline(cookie, now);
        let (hash, mut shard) = self.shard(id);
        let Some(slot) = shard.find(hash, |s| s.is(hash, id)) else {
            return Outcome::Missing;
        };
        let live = shard.get(slot).is_some_and(|s| s.deadline() > now);
        if !live || deadline <= now {
            self.remove_at(Self::shard_index(hash), &mut shard, slot);
            return if live {
                Outcome::Applied
            } else {
                Outcome::Missing
            };
        }
        if let Some(s) = shard.get_mut(slot) {
            s.set_deadline(deadline);
        }
        Outcome::Applied
    }

    /// Takes the live record out of `from` and stores it under `to`: a request on
    /// `from` after this sees no session.
    fn rotate_now(&self, from: &str, to: &str) -> Result<Outcome, StoreError> {
        let now = self.now_ms();
        let taken = {
            let (hash, mut shard) = self.shard(from);
            let Some(slot) = shard.find(hash, |s| s.is(hash, from)) else {
                return Ok(Outcome::Missing);
            };
            self.remove_at(Self::shard_index(hash), &mut shard, slot)
        };
        let Some(taken) = taken.filter(|s| s.deadline() > now) else {
            return Ok(Outcome::Missing);
        };
        let blob = blob::rekey(&taken.blob, to).map_err(StoreError::Corrupt)?;
        self.store_entry(to, taken.deadline(), taken.modified(), blob, now);
        Ok(Outcome::Applied)
    }

    fn destroy_now(&self, id: &str) -> Outcome {
        let now = self.now_ms();
        let (hash, mut shard) = self.shard(id);
        match shard.find(hash, |s| s.is(hash, id)) {
            Some(slot) => {
                let removed = self.remove_at(Self::shard_index(hash), &mut shard, slot);
                match removed {
                    Some(s) if s.deadline() > now => Outcome::Applied,
                    _ => Outcome::Missing,
                }
            }
            None => Outcome::Missing,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding a shard lock; if one ever did, the map is still
    // consistent (every update is a single insert/remove), so keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionStore for MemoryStore {
    fn get(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<LoadedRecord>, StoreError>> + Send {
        std::future::ready(self.get_now(id))
    }

    fn set(
        &self,
        id: &str,
        record: RecordView<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let done = match record.user() {
            // Indexed and written under the user's lock (`users.rs`).
            Some(user) => {
                let mut users = self.user_shard(user);
                self.index(&mut users, user, id);
                self.set_now(id, &record)
            }
            None => self.set_now(id, &record),
        };
        std::future::ready(done)
    }

    fn patch(
        &self,
        id: &str,
        patch: Patch<'_>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        let done = match patch.user() {
            Some(user) => {
                let mut users = self.user_shard(user);
                self.index(&mut users, user, id);
                self.patch_now(id, patch.cookie(), patch.changes())
            }
            None => self.patch_now(id, patch.cookie(), patch.changes()),
        };
        std::future::ready(done)
    }

    fn touch(
        &self,
        id: &str,
        touch: Touch<'_>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        let ttl = Duration::from_millis(u64::try_from(self.default_ttl_ms()).unwrap_or(0));
        let outcome = if touch.is_due(ttl) {
            self.touch_now(id, touch.cookie())
        } else {
            Outcome::Applied
        };
        std::future::ready(Ok(outcome))
    }

    fn rotate(
        &self,
        from: &str,
        to: &str,
        user: Option<&str>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        let done = match user {
            Some(user) => {
                let mut users = self.user_shard(user);
                self.index(&mut users, user, to);
                self.rotate_now(from, to)
            }
            None => self.rotate_now(from, to),
        };
        std::future::ready(done)
    }

    fn destroy(&self, id: &str) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        std::future::ready(Ok(self.destroy_now(id)))
    }
}

impl SessionAdmin for MemoryStore {
    fn len(&self) -> impl Future<Output = Result<usize, StoreError>> + Send {
        self.sweep();
        std::future::ready(Ok(self.inner.count.load(Ordering::Relaxed)))
    }

    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        for (i, shard) in self.inner.shards.iter().enumerate() {
            let mut s = lock(shard);
            let n = s.len();
            s.clear();
            self.inner.count.fetch_sub(n, Ordering::Relaxed);
            self.inner.uninitialized[i].store(0, Ordering::Relaxed);
        }
        for shard in &self.inner.users {
            lock(shard).clear();
        }
        std::future::ready(Ok(()))
    }

    fn user_sessions(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<crate::store::SessionInfo>, StoreError>> + Send {
        std::future::ready(Ok(self.user_sessions_now(user)))
    }

    fn destroy_user_sessions(
        &self,
        user: &str,
        except: Option<&str>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        std::future::ready(Ok(self.destroy_user_sessions_now(user, except)))
    }

    fn ids(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        let now = self.now_ms();
        let mut ids = Vec::new();
        for shard in &self.inner.shards {
            ids.extend(
                lock(shard)
                    .iter()
                    .filter(|s| s.deadline() > now)
                    .map(|s| s.id().to_owned()),
            );
        }
        std::future::ready(Ok(ids))
    }
}
