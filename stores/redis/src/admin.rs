//! Administration, off the request path: counting, listing and clearing sessions, and
//! the per-user index ([`SessionAdmin::user_sessions`],
//! [`SessionAdmin::destroy_user_sessions`]; the protocol is in the crate docs).

use std::time::SystemTime;

use tessera::store::{SessionAdmin, SessionInfo, SessionStore, StoreError};

use crate::{Conn, Layout, RedisStore, RedisStoreError, escape_glob, scripts};

impl RedisStore {
    /// The session keys of this store's prefix (not the per-user sets).
    async fn keys(&self) -> Result<Vec<String>, StoreError> {
        let users = format!("{}user:", self.settings.prefix);
        let mut keys = self
            .keys_matching(&format!("{}*", escape_glob(&self.settings.prefix)))
            .await?;
        keys.retain(|k| !k.starts_with(&users));
        Ok(keys)
    }

    /// The per-user sets of this store's prefix.
    async fn user_keys(&self) -> Result<Vec<String>, StoreError> {
        self.keys_matching(&format!("{}user:*", escape_glob(&self.settings.prefix)))
            .await
    }

    /// The keys matching `pattern`: `SCAN` on one server, `KEYS` on every node of a
    /// cluster (an admin operation, off the request path).
    async fn keys_matching(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        if let Conn::Cluster(_) = self.conn {
            return self.run("KEYS", redis::cmd("KEYS").arg(pattern)).await;
        }
        let mut out = Vec::new();
        let mut cursor = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (u64, Vec<String>) = self.run("SCAN", &scan).await?;
            out.extend(batch);
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// The members of `user`'s set: live ids and tombstones, the stale tombstones (older
    /// than [`TOMBSTONE_LIFE`]) removed.
    async fn user_members(&self, user: &str) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let key = self.user_key(user);
        let members: Vec<String> = self
            .run("SMEMBERS", redis::cmd("SMEMBERS").arg(&key))
            .await?;
        let now = now_ms();
        let (tombstones, ids): (Vec<String>, Vec<String>) =
            members.into_iter().partition(|m| m.starts_with('!'));
        let stale: Vec<&String> = tombstones
            .iter()
            .filter(|t| {
                t[1..]
                    .split_once(':')
                    .and_then(|(at, _)| at.parse::<i64>().ok())
                    .is_none_or(|at| now.saturating_sub(at) > TOMBSTONE_LIFE_MS)
            })
            .collect();
        if !stale.is_empty() {
            self.run::<i64>("SREM", redis::cmd("SREM").arg(&key).arg(stale))
                .await?;
        }
        Ok((ids, tombstones))
    }
}

/// How long a revocation's tombstone stays in a user's set: far longer than any move of a
/// session (two calls, each bounded by the store's timeout).
const TOMBSTONE_LIFE_MS: i64 = 60_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl SessionAdmin for RedisStore {
    async fn len(&self) -> Result<usize, StoreError> {
        Ok(self.keys().await?.len())
    }

    async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let prefix = &self.settings.prefix;
        Ok(self
            .keys()
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(prefix.as_str()).map(str::to_owned))
            .collect())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        for key in self.keys().await? {
            self.run::<()>("DEL", redis::cmd("DEL").arg(key)).await?;
        }
        for key in self.user_keys().await? {
            self.run::<()>("DEL", redis::cmd("DEL").arg(key)).await?;
        }
        Ok(())
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>, StoreError> {
        let (ids, _) = self.user_members(user).await?;
        let mut found = Vec::with_capacity(ids.len());
        let mut stale = Vec::new();
        for id in ids {
            match self.get(&id).await {
                Ok(Some(record)) if record.user().as_deref() == Some(user) => {
                    found.push(SessionInfo::from_record(id, &record));
                }
                // Expired, destroyed, tied to no one or someone else: pruned. (A session
                // between the two names of a move is added back by the move.)
                Ok(_) | Err(StoreError::Corrupt(_)) => stale.push(id),
                Err(e) => return Err(e),
            }
        }
        if !stale.is_empty() {
            self.run::<i64>(
                "SREM",
                redis::cmd("SREM").arg(self.user_key(user)).arg(stale),
            )
            .await?;
        }
        Ok(found)
    }

    async fn destroy_user_sessions(
        &self,
        user: &str,
        except: Option<&str>,
    ) -> Result<usize, StoreError> {
        let layout = match self.settings.layout {
            Layout::ConnectRedis => "text",
            Layout::Hash => "hash",
        };
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut destroyed = 0;
        // Until the set holds no id left to revoke: a session that moved to a new id
        // meanwhile is added under it, and found in the next pass.
        for _ in 0..REVOKE_PASSES {
            let (ids, _) = self.user_members(user).await?;
            let todo: Vec<String> = ids
                .into_iter()
                .filter(|id| Some(id.as_str()) != except && !seen.contains(id))
                .collect();
            if todo.is_empty() {
                return Ok(destroyed);
            }
            for id in todo {
                // The mark first: a move of this session in flight sees it and gives way.
                let mut mark = scripts::REVOKE_MARK.key(self.user_key(user));
                mark.arg(&id).arg(now_ms());
                self.eval::<i64>("revoke mark", &mark).await?;
                let mut call = scripts::DESTROY_IF_USER.key(self.key(&id));
                call.arg(user).arg(layout);
                destroyed += usize::try_from(self.eval::<i64>("revoke", &call).await?).unwrap_or(0);
                seen.insert(id);
            }
        }
        Err(StoreError::backend(RedisStoreError::Contention(
            REVOKE_PASSES,
        )))
    }
}

/// The most passes of a revocation over a user's set; each finds the sessions that moved
/// during the one before, so more than a few means new sessions keep coming.
const REVOKE_PASSES: usize = 16;
