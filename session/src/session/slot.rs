//! Where a request's session waits between the layer, the extractor and the handler.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{SessionRejection, State};
use crate::data::SessionData;
use crate::layer::Ctx;

/// Where a request's session waits while no [`Session`] holds it. The layer puts an
/// unopened slot in the request; the first extraction opens it (the only store read);
/// a dropped `Session` puts its state back; the layer takes it at the end.
pub(crate) struct Slot<T: SessionData> {
    pub(crate) ctx: Arc<Ctx>,
    /// The request arrived over a secure connection (as the `proxy` option sees it).
    pub(crate) secure: bool,
    stage: Mutex<Stage<T>>,
}

pub(crate) enum Stage<T: SessionData> {
    /// Not extracted yet: nothing loaded, no store call made.
    Unopened,
    /// Held by a [`Session`] (or being opened by one).
    Lent,
    /// Opened and given back.
    Ready(Box<State<T>>),
    /// Opening failed: what every later extraction answers (`None`: no session).
    Closed(Option<SessionRejection>),
}

impl<T: SessionData> Slot<T> {
    pub(crate) fn new(ctx: Arc<Ctx>, secure: bool) -> Self {
        Self {
            ctx,
            secure,
            stage: Mutex::new(Stage::Unopened),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Stage<T>> {
        // Nothing panics while the lock is held (it only moves the stage in or out).
        self.stage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the stage out, leaving the slot lent.
    pub(super) fn take(&self) -> Stage<T> {
        std::mem::replace(&mut *self.lock(), Stage::Lent)
    }

    pub(super) fn put(&self, stage: Stage<T>) {
        *self.lock() = stage;
    }

    /// The layer's last word on the slot, once the handler has returned.
    pub(crate) fn reclaim(self: Arc<Self>) -> Stage<T> {
        match Arc::try_unwrap(self) {
            Ok(only) => only
                .stage
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner),
            Err(shared) => shared.take(),
        }
    }
}

/// Request extension through which the layer lends the slot to the extractor.
pub(crate) struct SessionSlot<T: SessionData>(pub(crate) Arc<Slot<T>>);

impl<T: SessionData> Clone for SessionSlot<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}
