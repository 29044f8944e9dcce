//! The memory store's per-user index: for each user, the ids of the sessions tied to it
//! ([`crate::Session::set_user`]), in 16 shards by user.
//!
//! A write that ties a session to a user holds the user's shard lock from the moment
//! it indexes the id until the record is written, and so do the per-user admin
//! operations; lock order is always user shard, then session shard. So a revocation
//! never misses a session that is being written or moved for the same user, and never
//! runs between the index entry and the write. Entries whose session expired, was
//! destroyed, moved or tied to someone else are pruned when the user's list is read,
//! when a new id is added to it, and by the sweep (one user shard per sweep step).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, TryLockError};

use super::{MemoryStore, lock};
use crate::record::LoadedRecord;
use crate::store::{Outcome, SessionInfo};

pub(super) const USER_SHARDS: usize = 16;

/// A shard of the index: user → ids.
pub(super) type UserShard = HashMap<String, Vec<String>>;

pub(super) fn new_index() -> Vec<Mutex<UserShard>> {
    (0..USER_SHARDS)
        .map(|_| Mutex::new(HashMap::new()))
        .collect()
}

impl MemoryStore {
    /// The locked index shard of `user`.
    pub(super) fn user_shard(&self, user: &str) -> MutexGuard<'_, UserShard> {
        let h = self.inner.hash.hash_one(user);
        lock(&self.inner.users[((h >> 32) as usize) % USER_SHARDS])
    }

    /// The live record `id`, if it is tied to `user`.
    fn tied(&self, id: &str, user: &str) -> Option<LoadedRecord> {
        self.get_now(id)
            .ok()
            .flatten()
            .filter(|r| r.user().as_deref() == Some(user))
    }

    /// Adds `id` to `user`'s sessions (in the locked `shard`), pruning the dead ones when
    /// the id is new to the list.
    pub(super) fn index(&self, shard: &mut UserShard, user: &str, id: &str) {
        // Every write of a logged-in session comes here: the common case (indexed
        // already) allocates nothing.
        if shard
            .get(user)
            .is_some_and(|ids| ids.iter().any(|i| i == id))
        {
            return;
        }
        let ids = shard.entry(user.to_owned()).or_default();
        ids.retain(|i| self.tied(i, user).is_some());
        ids.push(id.to_owned());
    }

    /// Prunes one index shard, unless a request holds it (the sweep then skips it).
    pub(super) fn prune_user_shard(&self, i: usize) {
        let mut shard = match self.inner.users[i % USER_SHARDS].try_lock() {
            Ok(shard) => shard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        shard.retain(|user, ids| {
            ids.retain(|id| self.tied(id, user).is_some());
            !ids.is_empty()
        });
    }

    pub(super) fn user_sessions_now(&self, user: &str) -> Vec<SessionInfo> {
        let mut shard = self.user_shard(user);
        let Some(ids) = shard.get_mut(user) else {
            return Vec::new();
        };
        let mut found = Vec::with_capacity(ids.len());
        ids.retain(|id| match self.tied(id, user) {
            Some(record) => {
                found.push(SessionInfo::from_record(id.as_str(), &record));
                true
            }
            None => false,
        });
        if ids.is_empty() {
            shard.remove(user);
        }
        found
    }

    pub(super) fn destroy_user_sessions_now(&self, user: &str, except: Option<&str>) -> usize {
        let mut shard = self.user_shard(user);
        let Some(ids) = shard.get_mut(user) else {
            return 0;
        };
        let mut destroyed = 0;
        ids.retain(|id| {
            if self.tied(id, user).is_none() {
                return false;
            }
            if except == Some(id.as_str()) {
                return true;
            }
            if self.destroy_now(id) == Outcome::Applied {
                destroyed += 1;
            }
            false
        });
        if ids.is_empty() {
            shard.remove(user);
        }
        destroyed
    }
}
