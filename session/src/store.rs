//! The store trait: records, patches and expiry, nothing about HTTP.

use std::any::Any;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::baseline::Loaded;
use crate::cookie::SessionCookie;
use crate::memory::MemoryStore;
use crate::record::{FieldChange, Patch, Record, RecordError};

/// A boxed error from a store's backend.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a store operation failed. The source chain is kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend (network, database, ...) failed.
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

/// What a [`SessionStore::patch`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchOutcome {
    /// The record existed and was updated.
    Applied,
    /// No live record had that id (destroyed or expired): nothing was written, so a
    /// destroyed session is never resurrected.
    Missing,
}

/// A session store.
///
/// Rules every store follows (the conformance tests check them):
/// - `get` never returns an expired record;
/// - `patch` changes only the listed fields and never recreates a missing record;
/// - records expire at `record.cookie.expires`, or after a store-defined time when the
///   cookie has no expiry (a browser-session cookie).
///
/// The methods are `async`; the layer boxes the store, so implement this trait and pass
/// the store to [`crate::SessionLayer::with_store`].
pub trait SessionStore: Send + Sync + 'static {
    /// Loads a live record.
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Writes a whole record (a new session, or a new id).
    fn set(&self, id: &str, record: &Record)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes only the changed fields and the renewed cookie. The default reads, applies
    /// and writes back; stores that can update in place should do so atomically, so that
    /// concurrent requests changing different fields all survive.
    fn patch(
        &self,
        id: &str,
        patch: &Patch,
    ) -> impl Future<Output = Result<PatchOutcome, StoreError>> + Send {
        async move {
            match self.get(id).await? {
                None => Ok(PatchOutcome::Missing),
                Some(mut record) => {
                    patch.apply_to(&mut record);
                    self.set(id, &record).await?;
                    Ok(PatchOutcome::Applied)
                }
            }
        }
    }

    /// Deletes a record (no error when it does not exist).
    fn destroy(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Renews a record's expiry to the given cookie's without touching its fields.
    /// The default is a field-less [`SessionStore::patch`].
    fn touch(
        &self,
        id: &str,
        cookie: &SessionCookie,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            let patch = Patch {
                cookie: cookie.clone(),
                changes: Vec::new(),
            };
            self.patch(id, &patch).await.map(|_| ())
        }
    }

    /// Number of live sessions (optional).
    fn len(&self) -> impl Future<Output = Result<usize, StoreError>> + Send {
        async { Err(StoreError::Unsupported("len")) }
    }

    /// Whether there are no live sessions (optional; derived from `len`).
    fn is_empty(&self) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async { Ok(self.len().await? == 0) }
    }

    /// Deletes every session (optional).
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Err(StoreError::Unsupported("clear")) }
    }

    /// The ids of the live sessions (optional).
    fn ids(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        async { Err(StoreError::Unsupported("ids")) }
    }
}

impl<S: SessionStore> SessionStore for Arc<S> {
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send {
        (**self).get(id)
    }
    fn set(
        &self,
        id: &str,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).set(id, record)
    }
    fn patch(
        &self,
        id: &str,
        patch: &Patch,
    ) -> impl Future<Output = Result<PatchOutcome, StoreError>> + Send {
        (**self).patch(id, patch)
    }
    fn destroy(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).destroy(id)
    }
    fn touch(
        &self,
        id: &str,
        cookie: &SessionCookie,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).touch(id, cookie)
    }
    fn len(&self) -> impl Future<Output = Result<usize, StoreError>> + Send {
        (**self).len()
    }
    fn is_empty(&self) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).is_empty()
    }
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).clear()
    }
    fn ids(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        (**self).ids()
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store call in flight: already answered (the built-in [`MemoryStore`] answers while
/// it is called, so nothing is boxed), or a boxed future of any other store.
///
/// [`MemoryStore`]: crate::MemoryStore
pub(crate) enum StoreFut<'a, T> {
    Answered(Option<Result<T, StoreError>>),
    Pending(BoxFut<'a, T>),
}

impl<T: Unpin> Future for StoreFut<'_, T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            StoreFut::Answered(answer) => Poll::Ready(answer.take().unwrap_or(Err(
                StoreError::Unsupported("polling a finished store call"),
            ))),
            StoreFut::Pending(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// The object-safe face of [`SessionStore`] that the layer keeps behind an `Arc`.
pub(crate) trait DynStore: Send + Sync + 'static {
    /// The store as the built-in `MemoryStore`, which answers every call at once.
    fn memory(&self) -> Option<&MemoryStore>;
    /// [`SessionStore::get`], for the layer: the built-in store keeps the fields as text.
    fn load<'a>(&'a self, id: &'a str) -> StoreFut<'a, Option<Loaded>>;
    fn set<'a>(&'a self, id: &'a str, record: &'a Record) -> StoreFut<'a, ()>;
    fn patch<'a>(&'a self, id: &'a str, patch: &'a Patch) -> StoreFut<'a, PatchOutcome>;
    /// [`DynStore::patch`] from the parts of a patch: the built-in store needs no
    /// owned copy of the cookie.
    fn patch_fields<'a>(
        &'a self,
        id: &'a str,
        cookie: &'a SessionCookie,
        changes: Vec<FieldChange>,
    ) -> StoreFut<'a, PatchOutcome>;
    fn destroy<'a>(&'a self, id: &'a str) -> StoreFut<'a, ()>;
    fn touch<'a>(&'a self, id: &'a str, cookie: &'a SessionCookie) -> StoreFut<'a, ()>;
}

/// The store as the built-in `MemoryStore`, if it is one (a type comparison the compiler
/// resolves per store type).
fn as_memory<S: SessionStore>(store: &S) -> Option<&MemoryStore> {
    (store as &dyn Any).downcast_ref::<MemoryStore>()
}

impl<S: SessionStore> DynStore for S {
    fn memory(&self) -> Option<&MemoryStore> {
        as_memory(self)
    }
    fn load<'a>(&'a self, id: &'a str) -> StoreFut<'a, Option<Loaded>> {
        match as_memory(self) {
            Some(memory) => StoreFut::Answered(Some(memory.load_now(id))),
            None => StoreFut::Pending(Box::pin(async move {
                Ok(SessionStore::get(self, id).await?.map(Loaded::from))
            })),
        }
    }
    fn set<'a>(&'a self, id: &'a str, record: &'a Record) -> StoreFut<'a, ()> {
        match as_memory(self) {
            Some(memory) => {
                memory.set_now(id, record);
                StoreFut::Answered(Some(Ok(())))
            }
            None => StoreFut::Pending(Box::pin(SessionStore::set(self, id, record))),
        }
    }
    fn patch<'a>(&'a self, id: &'a str, patch: &'a Patch) -> StoreFut<'a, PatchOutcome> {
        match as_memory(self) {
            Some(memory) => {
                StoreFut::Answered(Some(memory.patch_now(id, &patch.cookie, &patch.changes)))
            }
            None => StoreFut::Pending(Box::pin(SessionStore::patch(self, id, patch))),
        }
    }
    fn patch_fields<'a>(
        &'a self,
        id: &'a str,
        cookie: &'a SessionCookie,
        changes: Vec<FieldChange>,
    ) -> StoreFut<'a, PatchOutcome> {
        match as_memory(self) {
            Some(memory) => StoreFut::Answered(Some(memory.patch_now(id, cookie, &changes))),
            None => StoreFut::Pending(Box::pin(async move {
                let patch = Patch {
                    cookie: cookie.clone(),
                    changes,
                };
                SessionStore::patch(self, id, &patch).await
            })),
        }
    }
    fn destroy<'a>(&'a self, id: &'a str) -> StoreFut<'a, ()> {
        match as_memory(self) {
            Some(memory) => {
                memory.destroy_now(id);
                StoreFut::Answered(Some(Ok(())))
            }
            None => StoreFut::Pending(Box::pin(SessionStore::destroy(self, id))),
        }
    }
    fn touch<'a>(&'a self, id: &'a str, cookie: &'a SessionCookie) -> StoreFut<'a, ()> {
        match as_memory(self) {
            Some(memory) => StoreFut::Answered(Some(memory.patch_now(id, cookie, &[]).map(|_| ()))),
            None => StoreFut::Pending(Box::pin(SessionStore::touch(self, id, cookie))),
        }
    }
}
