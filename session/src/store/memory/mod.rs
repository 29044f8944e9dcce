//! An in-process store: the default, for development, tests and single-instance services.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::cookie::SessionCookie;
use crate::record::{FieldChange, LoadedRecord, Patch, RecordView, Touch};
use crate::store::{Outcome, SessionAdmin, SessionStore, StoreError};
use crate::time;

mod blob;
mod table;

use table::{Hashed, Table};

const SHARDS: usize = 256;

/// A fast seeded hash for session ids. Ids are chosen by the server (random, or by the
/// application's `genid`) and a looked-up id must carry a valid signature, so clients
/// cannot aim keys at one bucket: SipHash's flooding resistance buys nothing here, and
/// costs more than the rest of a lookup.
#[derive(Clone, Copy)]
pub(crate) struct IdHash(u64);

impl IdHash {
    /// A hash with a seed from the OS.
    pub(crate) fn new() -> Self {
        let mut seed = [0u8; 8];
        // A fixed seed is still correct, only predictable; the OS RNG rarely fails.
        let _ = getrandom::fill(&mut seed);
        Self(u64::from_le_bytes(seed) | 1)
    }
}

pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        let mut w = [0u8; 8];
        let tail = chunks.remainder();
        w[..tail.len()].copy_from_slice(tail);
        self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w) ^ (bytes.len() as u64))
            .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        // murmur3's finalizer: spread every input bit over the whole word.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

/// One shard: entries found by the hash they keep, so that growing the table never reads
/// an id back from memory (a cache miss per entry in a large store).
type Shard = Table<Stored>;

struct Stored {
    /// The id's hash.
    hash: u64,
    /// `cookie.expires`, or the default TTL for browser-session cookies.
    deadline: i64,
    /// The id, the cookie and the fields JSON, in one allocation: see `memory_blob`.
    blob: Box<[u8]>,
}

impl Hashed for Stored {
    fn hash(&self) -> u64 {
        self.hash
    }
}

impl Stored {
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

struct Inner {
    shards: Vec<Mutex<Shard>>,
    hash: IdHash,
    count: AtomicUsize,
    default_ttl_ms: i64,
    max_sessions: Option<usize>,
    sweep_every_ms: i64,
    next_sweep: AtomicI64,
    sweep_cursor: AtomicUsize,
}

/// An in-memory [`SessionStore`], sharded for concurrent requests.
///
/// - expired records are never returned, and are swept away as the store is written
///   (one shard at a time, so no request pays for a full sweep) or by [`MemoryStore::sweep`];
/// - records without an expiry (browser-session cookies) live for `default_ttl`
///   (24 hours unless changed), so abandoned sessions cannot pile up forever;
/// - an optional capacity bound evicts the sessions closest to expiry first;
/// - `patch` updates fields in place under the shard lock, so concurrent requests that
///   change different fields of one session all survive.
///
/// Cloning gives another handle to the same sessions.
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
            .field("max_sessions", &self.inner.max_sessions)
            .finish()
    }
}

impl MemoryStore {
    /// An empty store: browser-session records live 24 hours, no capacity bound, and
    /// every shard is swept once an hour (one shard at a time, as the store is written).
    pub fn new() -> Self {
        Self::build(86_400_000, None, 3_600_000 / SHARDS as i64)
    }

    fn build(default_ttl_ms: i64, max_sessions: Option<usize>, sweep_every_ms: i64) -> Self {
        Self {
            inner: Arc::new({
                let hash = IdHash::new();
                Inner {
                    shards: (0..SHARDS).map(|_| Mutex::new(Table::new())).collect(),
                    hash,
                    count: AtomicUsize::new(0),
                    default_ttl_ms,
                    max_sessions,
                    sweep_every_ms,
                    next_sweep: AtomicI64::new(time::now_ms() + sweep_every_ms),
                    sweep_cursor: AtomicUsize::new(0),
                }
            }),
        }
    }

    fn rebuild(self, f: impl FnOnce(&mut (i64, Option<usize>, i64))) -> Self {
        let mut cfg = (
            self.inner.default_ttl_ms,
            self.inner.max_sessions,
            self.inner.sweep_every_ms,
        );
        f(&mut cfg);
        let fresh = Self::build(cfg.0, cfg.1, cfg.2);
        // Carry existing sessions over (builders are normally called on an empty store).
        // The new store has its own hash seed, so every entry goes to its new shard.
        for shard in &self.inner.shards {
            let entries: Vec<Stored> = lock(shard).drain().collect();
            for mut stored in entries {
                let (hash, mut shard) = fresh.shard(stored.id());
                stored.hash = hash;
                shard.insert_new(stored);
                fresh.inner.count.fetch_add(1, Ordering::Relaxed);
            }
        }
        fresh
    }

    /// How long a record without an expiry (a browser-session cookie) is kept.
    pub fn with_default_ttl(self, ttl: Duration) -> Self {
        self.rebuild(|c| c.0 = time::duration_ms(ttl).max(1))
    }

    /// Keeps at most `max` sessions; beyond that, the ones closest to expiry are evicted
    /// (expired ones first).
    pub fn with_max_sessions(self, max: usize) -> Self {
        self.rebuild(|c| c.1 = Some(max.max(1)))
    }

    /// How often every shard is swept: the store is split into 256 shards, and one of
    /// them is swept each `every / 256`, as the store is written.
    pub fn with_sweep_interval(self, every: Duration) -> Self {
        self.rebuild(|c| c.2 = (time::duration_ms(every) / SHARDS as i64).max(1))
    }

    /// Removes every expired record now; returns how many were removed.
    pub fn sweep(&self) -> usize {
        let now = time::now_ms();
        (0..SHARDS).map(|i| self.sweep_shard(i, now)).sum()
    }

    fn sweep_shard(&self, i: usize, now: i64) -> usize {
        let mut shard = lock(&self.inner.shards[i]);
        let before = shard.len();
        shard.retain(|s| s.deadline > now);
        let removed = before - shard.len();
        self.inner.count.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    fn maybe_sweep_step(&self, now: i64) {
        let due = self.inner.next_sweep.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now + self.inner.sweep_every_ms;
        if self
            .inner
            .next_sweep
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let i = self.inner.sweep_cursor.fetch_add(1, Ordering::Relaxed) % SHARDS;
            let removed = self.sweep_shard(i, now);
            if removed > 0 {
                tracing::debug!(removed, shard = i, "memory store swept expired sessions");
            }
        }
    }

    fn make_room(&self, max: usize, now: i64) {
        if self.inner.count.load(Ordering::Relaxed) < max {
            return;
        }
        self.sweep();
        let count = self.inner.count.load(Ordering::Relaxed);
        if count < max {
            return;
        }
        // Evict a batch, so that the O(n) scan is paid once per max/16 inserts.
        let batch = (count + 1 - max).max(max / 16).max(1);
        let mut all: Vec<(i64, usize, u64)> = Vec::with_capacity(count);
        for (i, shard) in self.inner.shards.iter().enumerate() {
            all.extend(lock(shard).iter().map(|s| (s.deadline, i, s.hash)));
        }
        let batch = batch.min(all.len());
        if batch == 0 {
            return;
        }
        all.select_nth_unstable_by_key(batch - 1, |e| e.0);
        let mut evicted = 0;
        for (deadline, i, hash) in all.into_iter().take(batch) {
            // The hash and the deadline name the entry (two ids sharing a 64-bit hash
            // and a deadline would be equally close to expiry).
            let mut shard = lock(&self.inner.shards[i]);
            if let Some(slot) = shard.find(hash, |s| s.deadline == deadline) {
                shard.remove(slot);
                evicted += 1;
            }
        }
        self.inner.count.fetch_sub(evicted, Ordering::Relaxed);
        tracing::warn!(
            evicted,
            max_sessions = max,
            now,
            "memory store at capacity: evicted the sessions closest to expiry"
        );
    }

    /// The id's hash and its locked shard.
    fn shard(&self, id: &str) -> (u64, MutexGuard<'_, Shard>) {
        // A shard's table takes an entry's home slot from the low bits of its hash: pick
        // the shard from bits it does not use, or a shard's keys would share them.
        let h = self.inner.hash.hash_one(id);
        (h, lock(&self.inner.shards[((h >> 32) as usize) % SHARDS]))
    }

    fn deadline(&self, cookie: &SessionCookie, now: i64) -> i64 {
        cookie
            .expires
            .unwrap_or_else(|| now.saturating_add(self.inner.default_ttl_ms))
    }

    /// The live record under `id`, its fields kept as text; an expired one is removed.
    fn get_now(&self, id: &str) -> Result<Option<LoadedRecord>, StoreError> {
        let now = time::now_ms();
        let (hash, mut shard) = self.shard(id);
        let Some(slot) = shard.find(hash, |s| s.is(hash, id)) else {
            return Ok(None);
        };
        match shard.get(slot) {
            Some(s) if s.deadline > now => blob::decode_loaded(&s.blob, s.deadline)
                .map(|mut loaded| {
                    loaded.deadline = Some(s.deadline);
                    Some(loaded)
                })
                .map_err(StoreError::Corrupt),
            _ => {
                shard.remove(slot);
                self.inner.count.fetch_sub(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    fn set_now(&self, id: &str, record: &RecordView<'_>) -> Result<(), StoreError> {
        let blob = blob::encode_view(id, record).map_err(StoreError::Corrupt)?;
        self.store_blob(id, record.cookie(), blob);
        Ok(())
    }

    /// Stores the blob of a whole record under `id` (unless the cookie has already
    /// expired: writing an expired record is a delete, as connect-redis does).
    fn store_blob(&self, id: &str, cookie: &SessionCookie, blob: Box<[u8]>) {
        let now = time::now_ms();
        let deadline = self.deadline(cookie, now);
        self.store_entry(id, deadline, blob, now);
    }

    fn store_entry(&self, id: &str, deadline: i64, blob: Box<[u8]>, now: i64) {
        self.maybe_sweep_step(now);
        if deadline <= now {
            self.destroy_now(id);
            return;
        }
        let hash = self.inner.hash.hash_one(id);
        let mut stored = Stored {
            hash,
            deadline,
            blob,
        };
        if let Some(max) = self.inner.max_sessions {
            {
                let (_, mut shard) = self.shard(id);
                if let Some(s) = shard
                    .find(hash, |s| s.is(hash, id))
                    .and_then(|slot| shard.get_mut(slot))
                {
                    *s = stored;
                    return;
                }
            }
            self.make_room(max, now);
        }
        let (_, mut shard) = self.shard(id);
        match shard
            .find(hash, |s| s.is(hash, id))
            .and_then(|slot| shard.get_mut(slot))
        {
            Some(s) => std::mem::swap(s, &mut stored),
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
        let now = time::now_ms();
        self.maybe_sweep_step(now);
        let deadline = self.deadline(cookie, now);
        let (hash, mut shard) = self.shard(id);
        let Some(slot) = shard.find(hash, |s| s.is(hash, id)) else {
            return Ok(Outcome::Missing);
        };
        let stored_deadline = shard.get(slot).map_or(now, |s| s.deadline);
        if stored_deadline <= now || deadline <= now {
            let outcome = if stored_deadline <= now {
                Outcome::Missing
            } else {
                Outcome::Applied
            };
            shard.remove(slot);
            self.inner.count.fetch_sub(1, Ordering::Relaxed);
            return Ok(outcome);
        }
        let Some(s) = shard.get_mut(slot) else {
            return Ok(Outcome::Missing);
        };
        if changes.is_empty() && blob::cookie_matches(&s.blob, cookie) {
            // A resave usually changes nothing but the expiry, which is the deadline:
            // then only the deadline moves, without re-encoding.
            s.deadline = deadline;
            return Ok(Outcome::Applied);
        }
        let json = blob::fields_of(&s.blob).map_err(StoreError::Corrupt)?;
        s.blob = if changes.is_empty() {
            blob::encode(id, cookie, json)
        } else {
            blob::encode_patched(id, cookie, json, changes).map_err(StoreError::Corrupt)?
        };
        s.deadline = deadline;
        Ok(Outcome::Applied)
    }

    /// Renews the deadline of a live record (the stored `expires` is the deadline).
    fn touch_now(&self, id: &str, cookie: &SessionCookie) -> Outcome {
        let now = time::now_ms();
        let deadline = self.deadline(cookie, now);
        let (hash, mut shard) = self.shard(id);
        let Some(slot) = shard.find(hash, |s| s.is(hash, id)) else {
            return Outcome::Missing;
        };
        let live = shard.get(slot).is_some_and(|s| s.deadline > now);
        if !live || deadline <= now {
            shard.remove(slot);
            self.inner.count.fetch_sub(1, Ordering::Relaxed);
            return if live {
                Outcome::Applied
            } else {
                Outcome::Missing
            };
        }
        if let Some(s) = shard.get_mut(slot) {
            s.deadline = deadline;
        }
        Outcome::Applied
    }

    /// Takes the live record out of `from` and stores it under `to`: a request on
    /// `from` after this sees no session.
    fn rotate_now(&self, from: &str, to: &str) -> Result<Outcome, StoreError> {
        let now = time::now_ms();
        let taken = {
            let (hash, mut shard) = self.shard(from);
            let Some(slot) = shard.find(hash, |s| s.is(hash, from)) else {
                return Ok(Outcome::Missing);
            };
            let taken = shard.remove(slot);
            self.inner.count.fetch_sub(1, Ordering::Relaxed);
            taken
        };
        let Some(taken) = taken.filter(|s| s.deadline > now) else {
            return Ok(Outcome::Missing);
        };
        let blob = blob::rekey(&taken.blob, to).map_err(StoreError::Corrupt)?;
        self.store_entry(to, taken.deadline, blob, now);
        Ok(Outcome::Applied)
    }

    fn destroy_now(&self, id: &str) -> Outcome {
        let now = time::now_ms();
        let (hash, mut shard) = self.shard(id);
        match shard.find(hash, |s| s.is(hash, id)) {
            Some(slot) => {
                let removed = shard.remove(slot);
                self.inner.count.fetch_sub(1, Ordering::Relaxed);
                match removed {
                    Some(s) if s.deadline > now => Outcome::Applied,
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
        std::future::ready(self.set_now(id, &record))
    }

    fn patch(
        &self,
        id: &str,
        patch: Patch<'_>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        std::future::ready(self.patch_now(id, patch.cookie(), patch.changes()))
    }

    fn touch(
        &self,
        id: &str,
        touch: Touch<'_>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        let ttl = Duration::from_millis(u64::try_from(self.inner.default_ttl_ms).unwrap_or(0));
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
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        std::future::ready(self.rotate_now(from, to))
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
        for shard in &self.inner.shards {
            let mut s = lock(shard);
            let n = s.len();
            s.clear();
            self.inner.count.fetch_sub(n, Ordering::Relaxed);
        }
        std::future::ready(Ok(()))
    }

    fn ids(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        let now = time::now_ms();
        let mut ids = Vec::new();
        for shard in &self.inner.shards {
            ids.extend(
                lock(shard)
                    .iter()
                    .filter(|s| s.deadline > now)
                    .map(|s| s.id().to_owned()),
            );
        }
        std::future::ready(Ok(ids))
    }
}
