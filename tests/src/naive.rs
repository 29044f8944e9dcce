//! A deliberately naive store: every write reads the record, changes it, and writes it
//! back, with a round trip (an `await`) in between, the way the old default `patch` and
//! `touch` of the store trait did. It compiles, it passes every check run one call at a
//! time, and it is wrong under concurrency: it loses updates and resurrects destroyed
//! sessions. Its per-user index is as naive: ids are indexed under the user a write
//! names and revoked from a snapshot, without looking at the records, so a rotation
//! racing a revocation escapes it and an index entry that went stale revokes another
//! user's session. The conformance suite must reject it (`tests/tests/store_contract.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tessera::store::{Outcome, SessionAdmin, SessionInfo, SessionStore, StoreError};
use tessera::{LoadedRecord, Patch, RecordView, SessionCookie, Touch};

type Records = HashMap<String, (Vec<u8>, SystemTime)>;

/// Records as express-session text, read-modify-written.
#[derive(Default)]
pub struct NaiveStore {
    records: Mutex<Records>,
    users: Mutex<HashMap<String, Vec<String>>>,
}

impl NaiveStore {
    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self, id: &str) -> Option<Vec<u8>> {
        let records = self.records();
        match records.get(id) {
            Some((text, deadline)) if *deadline > SystemTime::now() => Some(text.clone()),
            _ => None,
        }
    }

    fn write(&self, id: &str, text: Vec<u8>, cookie: &SessionCookie) {
        let deadline = cookie
            .expires()
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(86_400));
        if deadline > SystemTime::now() {
            self.records().insert(id.to_owned(), (text, deadline));
        } else {
            self.records().remove(id);
        }
    }

    /// Stores `text` under `id` for a day, as another writer sharing the store would.
    pub fn put_text(&self, id: &str, text: &str) {
        let deadline = SystemTime::now() + Duration::from_secs(86_400);
        self.records()
            .insert(id.to_owned(), (text.as_bytes().to_vec(), deadline));
    }

    fn index(&self, user: Option<&str>, id: &str) {
        if let Some(user) = user {
            let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
            let ids = users.entry(user.to_owned()).or_default();
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_owned());
            }
        }
    }

    fn indexed(&self, user: &str) -> Vec<String> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.get(user).cloned().unwrap_or_default()
    }

    /// A network round trip: other requests run meanwhile. It is a real wait, as a
    /// network's is, not a `yield_now`: a yield lasts microseconds, and under a loaded
    /// scheduler a racing call could land before or after every window of 64 rounds,
    /// letting the naive store pass a race check by luck (it did once in CI).
    async fn round_trip() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

impl SessionStore for NaiveStore {
    async fn get(&self, id: &str) -> Result<Option<LoadedRecord>, StoreError> {
        self.read(id)
            .map(|text| LoadedRecord::from_json(text).map_err(StoreError::Corrupt))
            .transpose()
    }

    async fn set(&self, id: &str, record: RecordView<'_>) -> Result<(), StoreError> {
        let mut text = Vec::new();
        record.write_json(&mut text).map_err(StoreError::Corrupt)?;
        self.index(record.user(), id);
        self.write(id, text, record.cookie());
        Ok(())
    }

    async fn patch(&self, id: &str, patch: Patch<'_>) -> Result<Outcome, StoreError> {
        let Some(text) = self.read(id) else {
            return Ok(Outcome::Missing);
        };
        Self::round_trip().await;
        let text = patch.apply_to_json(&text).map_err(StoreError::Corrupt)?;
        self.index(patch.user(), id);
        self.write(id, text, patch.cookie());
        Ok(Outcome::Applied)
    }

    async fn touch(&self, id: &str, touch: Touch<'_>) -> Result<Outcome, StoreError> {
        let Some(text) = self.read(id) else {
            return Ok(Outcome::Missing);
        };
        Self::round_trip().await;
        self.write(id, text, touch.cookie());
        Ok(Outcome::Applied)
    }

    async fn rotate(
        &self,
        from: &str,
        to: &str,
        _user: Option<&str>,
    ) -> Result<Outcome, StoreError> {
        let Some(text) = self.read(from) else {
            return Ok(Outcome::Missing);
        };
        Self::round_trip().await;
        let deadline = SystemTime::now() + Duration::from_secs(3600);
        self.records().insert(to.to_owned(), (text, deadline));
        Self::round_trip().await;
        self.records().remove(from);
        Ok(Outcome::Applied)
    }

    async fn destroy(&self, id: &str) -> Result<Outcome, StoreError> {
        Ok(match self.records().remove(id) {
            Some(_) => Outcome::Applied,
            None => Outcome::Missing,
        })
    }
}

impl SessionAdmin for NaiveStore {
    async fn len(&self) -> Result<usize, StoreError> {
        Ok(self.records().len())
    }

    async fn ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.records().keys().cloned().collect())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.records().clear();
        Ok(())
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>, StoreError> {
        let mut found = Vec::new();
        for id in self.indexed(user) {
            if let Some(record) = self.get(&id).await? {
                found.push(SessionInfo::from_record(id, &record));
            }
        }
        Ok(found)
    }

    async fn destroy_user_sessions(
        &self,
        user: &str,
        except: Option<&str>,
    ) -> Result<usize, StoreError> {
        let mut destroyed = 0;
        for id in self.indexed(user) {
            if Some(id.as_str()) != except {
                Self::round_trip().await;
                if self.destroy(&id).await? == Outcome::Applied {
                    destroyed += 1;
                }
            }
        }
        Ok(destroyed)
    }
}
