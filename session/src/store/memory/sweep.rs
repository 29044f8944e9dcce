//! Keeping the memory store's size in check: the sweep of expired records (one shard
//! per step, a full cycle about every minute, paid for a few shards at a time by the
//! writes) and the eviction at capacity (uninitialized sessions first, found through
//! per-shard counts, never a scan of the whole store).

use std::sync::atomic::Ordering;

use super::{MemoryStore, SHARDS, Shard, Stored, lock, users};

/// The most shards one request sweeps when the sweep fell behind (no writes for a
/// while): the rest waits for the next writes.
const SWEEP_STEPS_MAX: usize = 8;

/// How many shards an insert at capacity looks through for a modified session to evict
/// when no uninitialized one is left.
const EVICT_SCAN: usize = 2;

impl MemoryStore {
    /// Removes every expired record now; returns how many were removed.
    pub fn sweep(&self) -> usize {
        let now = self.now_ms();
        (0..SHARDS).map(|i| self.sweep_shard(i, now)).sum()
    }

    pub(super) fn sweep_shard(&self, i: usize, now: i64) -> usize {
        let mut shard = lock(&self.inner.shards[i]);
        let before = shard.len();
        let mut uninitialized = 0;
        shard.retain(|s| {
            let keep = s.deadline() > now;
            if !keep && !s.modified() {
                uninitialized += 1;
            }
            keep
        });
        let removed = before - shard.len();
        self.inner.count.fetch_sub(removed, Ordering::Relaxed);
        self.inner.uninitialized[i].fetch_sub(uninitialized, Ordering::Relaxed);
        removed
    }

    /// Shard `i` gained `s` (under its lock).
    pub(super) fn added(&self, i: usize, s: &Stored) {
        if !s.modified() {
            self.inner.uninitialized[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Shard `i` lost `s` (under its lock).
    pub(super) fn removed(&self, i: usize, s: &Stored) {
        if !s.modified() {
            self.inner.uninitialized[i].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Removes the record in `slot` of shard `i` (locked as `shard`).
    pub(super) fn remove_at(&self, i: usize, shard: &mut Shard, slot: usize) -> Option<Stored> {
        let removed = shard.remove(slot)?;
        self.removed(i, &removed);
        self.inner.count.fetch_sub(1, Ordering::Relaxed);
        Some(removed)
    }

    pub(super) fn maybe_sweep_step(&self, now: i64) {
        let due = self.inner.next_sweep.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let every = self.inner.sweep_every_ms.load(Ordering::Relaxed).max(1);
        let next = now.saturating_add(every);
        if self
            .inner
            .next_sweep
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            // After a quiet spell several steps are due (at most a cycle's): this request
            // takes a few, and leaves the rest due for the next requests.
            let due_steps = usize::try_from(now.saturating_sub(due) / every)
                .unwrap_or(SHARDS)
                .saturating_add(1)
                .min(SHARDS);
            let steps = due_steps.min(SWEEP_STEPS_MAX);
            let left = i64::try_from(due_steps - steps).unwrap_or(0);
            if left > 0 {
                let next = next.saturating_sub(left.saturating_mul(every));
                self.inner.next_sweep.store(next, Ordering::Relaxed);
            }
            for _ in 0..steps {
                let i = self.inner.sweep_cursor.fetch_add(1, Ordering::Relaxed) % SHARDS;
                let removed = self.sweep_shard(i, now);
                if removed > 0 {
                    tracing::debug!(removed, shard = i, "memory store swept expired sessions");
                }
                if i % (SHARDS / users::USER_SHARDS) == 0 {
                    // A full cycle prunes each index shard once.
                    self.prune_user_shard(i / (SHARDS / users::USER_SHARDS));
                }
            }
        }
    }

    /// Evicts one record to make room for a new one: an uninitialized one if the store
    /// holds any (the per-shard counts say where, without a scan), the one nearest to
    /// expiry in its shard; else the modified one nearest to expiry among a few shards.
    /// Expired records in those shards go first. The work is a few shards', whatever
    /// the size of the store, under one shard lock at a time.
    pub(super) fn make_room(&self, max: usize, now: i64) {
        if self.inner.count.load(Ordering::Relaxed) < max {
            return;
        }
        let start = self.inner.evict_cursor.fetch_add(1, Ordering::Relaxed);
        if self.sweep_shard(start % SHARDS, now) > 0 {
            return;
        }
        let with_uninitialized = (0..SHARDS)
            .map(|k| start.wrapping_add(k) % SHARDS)
            .find(|&i| self.inner.uninitialized[i].load(Ordering::Relaxed) > 0);
        let (first, want_modified) = match with_uninitialized {
            Some(i) => (i, false),
            None => (start, true),
        };
        // (deadline, shard, hash) of the victim, from the first shard that holds a record
        // of the kind wanted and, for a modified one, the next that does.
        let mut victim: Option<(i64, usize, u64)> = None;
        let wanted_shards = if want_modified { EVICT_SCAN } else { 1 };
        let mut looked = 0;
        for k in 0..SHARDS {
            let i = first.wrapping_add(k) % SHARDS;
            let mut here = false;
            for s in lock(&self.inner.shards[i])
                .iter()
                .filter(|s| s.modified() == want_modified)
            {
                here = true;
                if victim.is_none_or(|(d, _, _)| s.deadline() < d) {
                    victim = Some((s.deadline(), i, s.hash));
                }
            }
            looked += usize::from(here);
            if looked >= wanted_shards {
                break;
            }
        }
        let Some((deadline, i, hash)) = victim else {
            return;
        };
        let mut shard = lock(&self.inner.shards[i]);
        // The hash, the kind and the deadline name the entry (two ids sharing a 64-bit
        // hash and a deadline would be equally good victims).
        let Some(slot) = shard.find(hash, |s| {
            s.deadline() == deadline && s.modified() == want_modified
        }) else {
            return;
        };
        self.remove_at(i, &mut shard, slot);
        if want_modified {
            tracing::warn!(
                max_sessions = max,
                "memory store at capacity: evicted a modified session (raise the bound)"
            );
        } else {
            tracing::debug!(
                max_sessions = max,
                "memory store at capacity: evicted an uninitialized session"
            );
        }
    }
}
