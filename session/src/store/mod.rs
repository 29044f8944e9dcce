//! Session stores: the contract every store keeps, and how to implement one.
//!
//! A store knows records, patches and expiry, and nothing about HTTP. The layer calls it
//! through one request path, whatever the store: it loads the stored JSON text
//! ([`LoadedRecord`]), measures the handler's changes against that text, and writes back
//! only what changed ([`Patch`]), the whole record of a new session ([`RecordView`]), or a
//! new expiry ([`SessionStore::touch`]). Loading is lazy: a request that never extracts
//! its `Session<T>` makes no store call at all.
//!
//! # The contract
//!
//! Every method acts on one record, atomically: two calls on one id never interleave
//! their effects, and calls on different ids are independent.
//!
//! - **Expiry.** A record expires at its cookie's `expires` or, for a browser-session
//!   cookie (no `expires`), after a store-defined time (express-session's stores use one
//!   day). The store is the authority on expiry, as in express-session: the layer
//!   does not second-guess it (connect-redis renews a key's TTL without rewriting the
//!   `expires` stored inside it). Each store states its precision (for example whole
//!   seconds); after its deadline plus that precision, a record is gone.
//! - [`get`](SessionStore::get) returns a live record, or `None`; never an expired one.
//!   A record that cannot be decoded is [`StoreError::Corrupt`] (the layer starts a fresh
//!   session), never a panic.
//! - [`set`](SessionStore::set) writes a whole record, creating or replacing it. Writing
//!   a record whose cookie has already expired deletes it.
//! - [`patch`](SessionStore::patch) replaces the stored cookie, sets or removes the
//!   changed fields, and keeps every other field exactly as stored, even one changed by
//!   another writer since this session was loaded. It **never recreates a missing
//!   record**: on a destroyed or expired id it writes nothing and answers
//!   [`Outcome::Missing`]. Patches of different fields that run at the same time all
//!   survive.
//! - [`touch`](SessionStore::touch) renews the expiry from the given cookie and changes
//!   nothing else (the stored text may keep its old `expires`, as connect-redis does). It
//!   never recreates a record either. With the layer's `touch_after` set, a store may
//!   skip a touch that would move the expiry less than that ([`Touch::is_due`]); a store
//!   that reports its deadline on load ([`LoadedRecord::with_deadline`]) makes this
//!   possible.
//! - [`rotate`](SessionStore::rotate) moves a live record to a new id in one step: the
//!   old id is gone, the new id holds the same record with the same deadline. If the old
//!   record is gone, it writes nothing and answers [`Outcome::Missing`], so an id change
//!   racing a logout never brings the session back.
//! - [`destroy`](SessionStore::destroy) deletes a record; deleting a missing one is not
//!   an error.
//! - **The user tie.** `set`, `patch`, `touch` and `rotate` name the user the session is
//!   tied to ([`RecordView::user`], [`Patch::user`], [`Touch::user`], the `user` of
//!   `rotate`), which the record's [`crate::META_KEY`] entry also holds. A store that
//!   implements the per-user operations of [`SessionAdmin`] indexes the id under that
//!   user *before* it writes the record, so that a live session tied to a user is
//!   always found by [`SessionAdmin::destroy_user_sessions`]; an index entry that went
//!   stale (the session expired, logged out, or moved) is pruned when read, and never
//!   used without checking the record's own user ([`LoadedRecord::user`]).
//!
//! There are no default methods: a store that compiles has said how it keeps each rule.
//! Admin operations (counting, listing, clearing) are a separate trait,
//! [`SessionAdmin`], which a store may leave out.
//!
//! The conformance suite (the `tessera-store-tests` crate) checks all of this, including
//! the races: 64 concurrent patches of different fields, and every write after a
//! `destroy`. Run it from your store's tests.
//!
//! # Implementing a store
//!
//! A store that keeps the express-session text of each record can apply a patch to that
//! text with [`Patch::apply_to_json`], which keeps every byte it does not change, and
//! load it with [`LoadedRecord::from_json`]. What it must add is atomicity per record:
//! here a lock; in a database, a conditional write (compare-and-set on the text that was
//! read, retried on conflict) or an update in place.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use std::time::{Duration, SystemTime};
//!
//! use tessera::store::{Outcome, SessionStore, StoreError};
//! use tessera::{LoadedRecord, Patch, RecordView, SessionCookie, Touch};
//!
//! /// Records as express-session's JSON text, each with its deadline.
//! #[derive(Default)]
//! struct TextStore {
//!     records: Mutex<HashMap<String, (Vec<u8>, SystemTime)>>,
//! }
//!
//! impl TextStore {
//!     fn deadline(cookie: &SessionCookie) -> SystemTime {
//!         cookie.expires().unwrap_or_else(|| SystemTime::now() + Duration::from_secs(86_400))
//!     }
//!
//!     fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Vec<u8>, SystemTime)>> {
//!         let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
//!         let now = SystemTime::now();
//!         records.retain(|_, (_, deadline)| *deadline > now);
//!         records
//!     }
//! }
//!
//! impl SessionStore for TextStore {
//!     async fn get(&self, id: &str) -> Result<Option<LoadedRecord>, StoreError> {
//!         let text = self.live().get(id).map(|(text, _)| text.clone());
//!         text.map(|t| LoadedRecord::from_json(t).map_err(StoreError::Corrupt))
//!             .transpose()
//!     }
//!
//!     async fn set(&self, id: &str, record: RecordView<'_>) -> Result<(), StoreError> {
//!         let mut text = Vec::new();
//!         record.write_json(&mut text).map_err(StoreError::Corrupt)?;
//!         let deadline = Self::deadline(record.cookie());
//!         let mut records = self.live();
//!         if deadline > SystemTime::now() {
//!             records.insert(id.to_owned(), (text, deadline));
//!         } else {
//!             records.remove(id); // an expired cookie deletes the record
//!         }
//!         Ok(())
//!     }
//!
//!     async fn patch(&self, id: &str, patch: Patch<'_>) -> Result<Outcome, StoreError> {
//!         let mut records = self.live(); // held until written: atomic per record
//!         let Some((text, deadline)) = records.get_mut(id) else {
//!             return Ok(Outcome::Missing); // never recreated
//!         };
//!         *text = patch.apply_to_json(text).map_err(StoreError::Corrupt)?;
//!         *deadline = Self::deadline(patch.cookie());
//!         Ok(Outcome::Applied)
//!     }
//!
//!     async fn touch(&self, id: &str, touch: Touch<'_>) -> Result<Outcome, StoreError> {
//!         match self.live().get_mut(id) {
//!             Some((_, deadline)) => {
//!                 *deadline = Self::deadline(touch.cookie());
//!                 Ok(Outcome::Applied)
//!             }
//!             None => Ok(Outcome::Missing),
//!         }
//!     }
//!
//!     async fn rotate(&self, from: &str, to: &str, _user: Option<&str>) -> Result<Outcome, StoreError> {
//!         let mut records = self.live();
//!         match records.remove(from) {
//!             Some(record) => {
//!                 records.insert(to.to_owned(), record);
//!                 Ok(Outcome::Applied)
//!             }
//!             None => Ok(Outcome::Missing),
//!         }
//!     }
//!
//!     async fn destroy(&self, id: &str) -> Result<Outcome, StoreError> {
//!         Ok(match self.live().remove(id) {
//!             Some(_) => Outcome::Applied,
//!             None => Outcome::Missing,
//!         })
//!     }
//! }
//!
//! # #[derive(tessera::SessionData, Default)] struct Visit { views: u64 }
//! # fn main() -> Result<(), tessera::ConfigError> {
//! let layer = tessera::SessionLayer::<Visit>::new(tessera::Secret::new("a long, random secret of 32 bytes or more")?)
//!     .with_store(TextStore::default());
//! # let _ = layer; Ok(()) }
//! ```
//!
//! Stores on a network answer the same calls with one round trip each where they can:
//! `tessera-redis` patches with a script that writes only if the stored text is still
//! the one it read, and `tessera-postgres` with a conditional `UPDATE`; both take the
//! text the layer loaded ([`Patch::loaded_text`]) as their first guess.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::record::{LoadedRecord, Patch, RecordError, RecordView, Touch};

pub(crate) mod memory;

/// A boxed error from a store's backend.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a store operation failed. The source chain is kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend (network, database, ...) failed or did not answer in time.
    #[error("session store backend failed")]
    Backend(#[source] BoxError),
    /// A stored record could not be decoded. The layer treats it as "not found" and
    /// starts a fresh session.
    #[error("stored session record is corrupt")]
    Corrupt(#[source] RecordError),
    /// The store does not implement this optional operation.
    #[error("the session store does not support `{0}`")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(e: impl Into<BoxError>) -> Self {
        Self::Backend(e.into())
    }
}

/// What a write found: whether a live record had the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The record was live, and the operation applied to it.
    Applied,
    /// No live record had the id (destroyed, expired, or never stored): nothing was
    /// written, so a destroyed session is never resurrected.
    Missing,
}

/// A session store. See [the module docs](self) for the contract and a worked example.
///
/// The methods are `async`; the layer boxes the store, so implement this trait and pass
/// the store to [`crate::SessionLayer::with_store`].
pub trait SessionStore: Send + Sync + 'static {
    /// Loads a live record: the stored text, as [`LoadedRecord::from_json`] or
    /// [`LoadedRecord::from_parts`] takes it.
    fn get(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<LoadedRecord>, StoreError>> + Send;

    /// Writes a whole record (a new session), replacing any record under `id`.
    fn set(
        &self,
        id: &str,
        record: RecordView<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores the patch's cookie and applies its field changes, atomically, keeping
    /// every other field as stored. Never recreates a missing record.
    fn patch(
        &self,
        id: &str,
        patch: Patch<'_>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// Renews the record's expiry from the touch's cookie, changing nothing else. Never
    /// recreates a missing record. A store may skip a touch that is not
    /// [due](Touch::is_due) and answer [`Outcome::Applied`].
    fn touch(
        &self,
        id: &str,
        touch: Touch<'_>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// Moves the live record under `from` to `to` in one step, keeping its deadline.
    /// Answers [`Outcome::Missing`] (writing nothing) when `from` is gone. `user` is the
    /// user the session is tied to: a per-user index learns `to` before the move.
    fn rotate(
        &self,
        from: &str,
        to: &str,
        user: Option<&str>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// Deletes the record; [`Outcome::Missing`] when there was no live one.
    fn destroy(&self, id: &str) -> impl Future<Output = Result<Outcome, StoreError>> + Send;
}

/// Operations for administration and tests, kept out of the request path. A store may
/// leave them out.
pub trait SessionAdmin: SessionStore {
    /// Number of live sessions.
    fn len(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Whether there are no live sessions.
    fn is_empty(&self) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async { Ok(self.len().await? == 0) }
    }

    /// The ids of the live sessions.
    fn ids(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Deletes every session.
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live sessions tied to `user` ([`crate::Session::set_user`]): "your devices".
    /// Index entries whose session expired, moved or was tied to someone else are pruned
    /// on the way.
    fn user_sessions(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<SessionInfo>, StoreError>> + Send;

    /// Destroys every live session tied to `user`, except the one with id `except` ("log
    /// out everywhere else"), and answers how many it destroyed. The next request of
    /// each finds no session, on every instance that shares the store. A session that
    /// changes at the same moment is never brought back: a patch never recreates a
    /// record. A session moved to a new id during the call (`rotate_id`) is found under
    /// its new id.
    fn destroy_user_sessions(
        &self,
        user: &str,
        except: Option<&str>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// One of a user's sessions, as [`SessionAdmin::user_sessions`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session id (compare it with [`crate::Session::id`] to mark "this device").
    pub id: String,
    /// When the session was created, if its record says ([`crate::META_KEY`]).
    pub created: Option<SystemTime>,
    /// When the session was last renewed: its deadline less its max-age. Precise to the
    /// store's expiry precision and to the layer's `touch_after`; `None` for a
    /// browser-session cookie, which has no max-age.
    pub last_seen: Option<SystemTime>,
    /// When the store will drop the session unless it is used again.
    pub expires: Option<SystemTime>,
    /// What [`crate::Session::set_user_agent`] recorded, if anything.
    pub user_agent: Option<String>,
}

impl SessionInfo {
    /// The description of the stored session `id` that `record` holds.
    pub fn from_record(id: impl Into<String>, record: &LoadedRecord) -> Self {
        let meta = record.meta();
        let expires = record.deadline().or_else(|| record.cookie().expires());
        let last_seen = match (expires, record.cookie().original_max_age_ms()) {
            (Some(at), Some(age)) => Some(crate::time::ms_to_system_time(
                crate::time::system_time_to_ms(at).saturating_sub(age),
            )),
            _ => None,
        };
        Self {
            id: id.into(),
            created: meta.created.map(crate::time::ms_to_system_time),
            last_seen,
            expires,
            user_agent: meta.agent,
        }
    }
}

impl<S: SessionStore> SessionStore for Arc<S> {
    fn get(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<LoadedRecord>, StoreError>> + Send {
        (**self).get(id)
    }
    fn set(
        &self,
        id: &str,
        record: RecordView<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).set(id, record)
    }
    fn patch(
        &self,
        id: &str,
        patch: Patch<'_>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        (**self).patch(id, patch)
    }
    fn touch(
        &self,
        id: &str,
        touch: Touch<'_>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        (**self).touch(id, touch)
    }
    fn rotate(
        &self,
        from: &str,
        to: &str,
        user: Option<&str>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        (**self).rotate(from, to, user)
    }
    fn destroy(&self, id: &str) -> impl Future<Output = Result<Outcome, StoreError>> + Send {
        (**self).destroy(id)
    }
}

impl<S: SessionAdmin> SessionAdmin for Arc<S> {
    fn len(&self) -> impl Future<Output = Result<usize, StoreError>> + Send {
        (**self).len()
    }
    fn is_empty(&self) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).is_empty()
    }
    fn ids(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        (**self).ids()
    }
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).clear()
    }
    fn user_sessions(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<SessionInfo>, StoreError>> + Send {
        (**self).user_sessions(user)
    }
    fn destroy_user_sessions(
        &self,
        user: &str,
        except: Option<&str>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        (**self).destroy_user_sessions(user, except)
    }
}

/// A store call in flight, boxed so that the layer can hold any store.
pub(crate) type StoreFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The object-safe face of [`SessionStore`] for the extractor and the [`crate::Session`]
/// methods, which do not know the store's type. (The layer's end-of-request write calls
/// the store directly.)
pub(crate) trait DynStore: Send + Sync + 'static {
    fn get<'a>(&'a self, id: &'a str) -> StoreFut<'a, Option<LoadedRecord>>;
    fn set<'a>(&'a self, id: &'a str, record: RecordView<'a>) -> StoreFut<'a, ()>;
    fn patch<'a>(&'a self, id: &'a str, patch: Patch<'a>) -> StoreFut<'a, Outcome>;
    fn rotate<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
        user: Option<&'a str>,
    ) -> StoreFut<'a, Outcome>;
    fn destroy<'a>(&'a self, id: &'a str) -> StoreFut<'a, Outcome>;
}

impl<S: SessionStore> DynStore for S {
    fn get<'a>(&'a self, id: &'a str) -> StoreFut<'a, Option<LoadedRecord>> {
        Box::pin(SessionStore::get(self, id))
    }
    fn set<'a>(&'a self, id: &'a str, record: RecordView<'a>) -> StoreFut<'a, ()> {
        Box::pin(SessionStore::set(self, id, record))
    }
    fn patch<'a>(&'a self, id: &'a str, patch: Patch<'a>) -> StoreFut<'a, Outcome> {
        Box::pin(SessionStore::patch(self, id, patch))
    }
    fn rotate<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
        user: Option<&'a str>,
    ) -> StoreFut<'a, Outcome> {
        Box::pin(SessionStore::rotate(self, from, to, user))
    }
    fn destroy<'a>(&'a self, id: &'a str) -> StoreFut<'a, Outcome> {
        Box::pin(SessionStore::destroy(self, id))
    }
}
