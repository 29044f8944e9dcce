//! The `Session<T>` extractor and the per-request session state it hands out.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::baseline::{Baseline, Loaded};
use crate::cookie::SessionCookie;
use crate::data::{EncodeError, SessionData};
use crate::layer::Ctx;
use crate::record::{FieldChange, Fields, Patch, Record, apply_changes};
use crate::store::{PatchOutcome, StoreError};

/// An error from a session operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed.
    #[error("session store operation failed")]
    Store(#[from] StoreError),
    /// The session is no longer in the store (`reload` after it expired or was destroyed).
    #[error("failed to load session: it is not in the store")]
    NotFound,
    /// A field could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The operating system's random number generator failed.
    #[error("could not generate a session id")]
    Random(#[source] getrandom::Error),
    /// A custom `genid` returned an empty or oversized id.
    #[error("the genid function returned an invalid session id (empty or over {max} bytes)", max = crate::layer::MAX_ID_LEN)]
    InvalidId,
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, "session error").into_response()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Active,
    Destroyed,
    Unset,
}

/// Everything the layer knows about the request's session.
pub(crate) struct State<T: SessionData> {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) id: String,
    /// The request carried a verified session cookie.
    pub(crate) had_cookie: bool,
    /// `id` is the id that cookie carried (not a new, regenerated or rotated one).
    pub(crate) id_from_cookie: bool,
    /// The id changed in this request (regenerate, rotate_id): itself a modification.
    pub(crate) id_changed: bool,
    pub(crate) view: T::Tracked,
    /// The stored fields the view was loaded from (`None`: a new session, whose
    /// baseline is the encoded `Default`, computed only when needed).
    pub(crate) baseline: Option<Baseline>,
    pub(crate) cookie: SessionCookie,
    /// The store holds a record under `id`.
    pub(crate) in_store: bool,
    /// That record equals `baseline` (loaded with resave off, or saved this request).
    pub(crate) saved_clean: bool,
    /// Changes already flushed by `save()` this request.
    pub(crate) modified: bool,
    /// Cookie changes already flushed by `save()` this request.
    pub(crate) cookie_changed: bool,
    /// `save()` wrote the session during this request (no end-of-request touch needed).
    pub(crate) saved_in_request: bool,
    pub(crate) phase: Phase,
    pub(crate) request_secure: bool,
    /// A copy of the request head for a custom `genid` (only kept when one is set).
    pub(crate) genid_parts: Option<Arc<Parts>>,
}

impl<T: SessionData> State<T> {
    /// A new session (fresh data, the layer's cookie options) for `id`.
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        id: String,
        had_cookie: bool,
        request_secure: bool,
        genid_parts: Option<Arc<Parts>>,
    ) -> Self {
        let cookie =
            SessionCookie::from_options(&ctx.options.cookie, request_secure, crate::time::now_ms);
        Self {
            had_cookie,
            ..Self::assemble(ctx, id, request_secure, genid_parts, T::__fresh(), cookie)
        }
    }

    /// The session loaded from the store under the id the request's cookie carried.
    pub(crate) fn loaded(
        ctx: Arc<Ctx>,
        id: String,
        request_secure: bool,
        genid_parts: Option<Arc<Parts>>,
        loaded: Loaded,
        saved_clean: bool,
    ) -> Self {
        let view = T::__load(&loaded.fields);
        Self {
            had_cookie: true,
            id_from_cookie: true,
            baseline: Some(loaded.fields),
            in_store: true,
            saved_clean,
            ..Self::assemble(ctx, id, request_secure, genid_parts, view, loaded.cookie)
        }
    }

    /// A state for `id` with `view` and `cookie`, nothing stored and nothing changed yet.
    fn assemble(
        ctx: Arc<Ctx>,
        id: String,
        request_secure: bool,
        genid_parts: Option<Arc<Parts>>,
        view: T::Tracked,
        cookie: SessionCookie,
    ) -> Self {
        Self {
            ctx,
            id,
            had_cookie: false,
            id_from_cookie: false,
            id_changed: false,
            view,
            baseline: None,
            cookie,
            in_store: false,
            saved_clean: false,
            modified: false,
            cookie_changed: false,
            saved_in_request: false,
            phase: Phase::Active,
            request_secure,
            genid_parts,
        }
    }

    fn replace_with(&mut self, loaded: Loaded, saved_clean: bool) {
        self.view = T::__load(&loaded.fields);
        self.baseline = Some(loaded.fields);
        self.cookie = loaded.cookie;
        self.in_store = true;
        self.saved_clean = saved_clean;
        self.phase = Phase::Active;
    }

    /// The whole record as it would be stored now: the baseline with `changes` applied.
    pub(crate) fn whole_record(&mut self, changes: &[FieldChange]) -> Result<Record, SessionError> {
        let fields = self.baseline()?.to_fields().map_err(StoreError::Corrupt)?;
        Ok(self.record_from(fields, changes))
    }

    /// [`State::whole_record`] for the end of the request, when the state is not used
    /// again: the baseline is moved into the record instead of copied.
    pub(crate) fn take_whole_record(
        &mut self,
        changes: &[FieldChange],
    ) -> Result<Record, SessionError> {
        let fields = self
            .take_baseline()?
            .into_fields()
            .map_err(StoreError::Corrupt)?;
        Ok(self.record_from(fields, changes))
    }

    /// The stored fields (the encoded defaults for a new session), taken out at the end
    /// of the request.
    pub(crate) fn take_baseline(&mut self) -> Result<Baseline, SessionError> {
        self.baseline()?;
        Ok(self.baseline.take().unwrap_or_default())
    }

    fn record_from(&self, mut fields: Fields, changes: &[FieldChange]) -> Record {
        apply_changes(&mut fields, changes);
        Record {
            cookie: self.cookie.clone(),
            fields,
        }
    }

    pub(crate) fn baseline(&mut self) -> Result<&Baseline, SessionError> {
        if self.baseline.is_none() {
            let mut fields = Fields::new();
            T::__encode_defaults(&mut fields)?;
            self.baseline = Some(Baseline::from(fields));
        }
        Ok(self.baseline.get_or_insert_with(Baseline::default))
    }

    /// The changed fields against the baseline.
    pub(crate) fn changes(&mut self) -> Result<Vec<FieldChange>, SessionError> {
        let mut out = Vec::new();
        self.baseline()?;
        if let Some(b) = &self.baseline {
            T::__diff(&self.view, b, false, &mut out)?;
        }
        Ok(out)
    }

    fn new_id(&self) -> Result<String, SessionError> {
        self.ctx.generate_id(self.genid_parts.as_deref())
    }

    pub(crate) fn is_new_id(&self) -> bool {
        !self.id_from_cookie
    }
}

/// Where the state waits while no [`Session`] holds it: the layer puts it there, the
/// extractor takes it out, and the `Session` puts it back when dropped.
pub(crate) type Slot<T> = Arc<Mutex<Option<Box<State<T>>>>>;

fn lock_slot<T: SessionData>(slot: &Slot<T>) -> MutexGuard<'_, Option<Box<State<T>>>> {
    // Nothing panics while the lock is held (it only moves the state in or out).
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the state out of its slot: `None` while a `Session` still holds it.
pub(crate) fn take_state<T: SessionData>(slot: &Slot<T>) -> Option<Box<State<T>>> {
    lock_slot(slot).take()
}

/// The layer's last word on the slot: when nothing else refers to it any more (the
/// usual case once the handler has returned) the state is taken without locking.
pub(crate) fn reclaim_state<T: SessionData>(slot: Slot<T>) -> Option<Box<State<T>>> {
    match Arc::try_unwrap(slot) {
        Ok(only) => only.into_inner().unwrap_or_else(PoisonError::into_inner),
        Err(shared) => take_state(&shared),
    }
}

/// Request extension through which the layer lends the state to the extractor.
pub(crate) struct SessionSlot<T: SessionData>(pub(crate) Slot<T>);

impl<T: SessionData> Clone for SessionSlot<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

/// Why a handler got no [`Session`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionRejection {
    /// No `SessionLayer<T>` for this `T` wraps the route, the request is outside the
    /// cookie path, or the store was down with [`crate::StoreErrorPolicy::ContinueWithoutSession`].
    /// Use `Option<Session<T>>` where that is expected.
    #[error("no session for this request: is SessionLayer<T> installed for this route and path?")]
    NoSession,
    /// `Session<T>` was extracted twice in one request.
    #[error("the session was already extracted in this request")]
    AlreadyExtracted,
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "session extractor rejected the request");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// The session of the current request, typed by your `#[derive(SessionData)]` struct.
///
/// It derefs to the generated tracked view, so `*session.views += 1` reads and writes
/// a field and marks only that field as touched. When the handler returns, the layer
/// persists exactly the fields that changed — before the response is sent.
///
/// ```
/// use tessera::{Session, SessionData};
///
/// #[derive(SessionData, Default)]
/// struct Visit { views: u64 }
///
/// async fn index(mut session: Session<Visit>) -> String {
///     *session.views += 1;
///     format!("views: {}", *session.views)
/// }
/// ```
pub struct Session<T: SessionData> {
    /// Always `Some` until the session is dropped and the state goes home. Boxed: it
    /// moves between the layer, the slot and the extractor as a pointer.
    state: Option<Box<State<T>>>,
    home: Slot<T>,
}

impl<T: SessionData> Drop for Session<T> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            *lock_slot(&self.home) = Some(state);
        }
    }
}

impl<T: SessionData> fmt::Debug for Session<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl<T: SessionData, S: Send + Sync> FromRequestParts<S> for Session<T> {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let slot = parts
            .extensions
            .get::<SessionSlot<T>>()
            .ok_or(SessionRejection::NoSession)?;
        take(&slot.0)
    }
}

impl<T: SessionData, S: Send + Sync> OptionalFromRequestParts<S> for Session<T> {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match parts.extensions.get::<SessionSlot<T>>() {
            None => Ok(None),
            Some(slot) => take(&slot.0).map(Some),
        }
    }
}

fn take<T: SessionData>(slot: &Slot<T>) -> Result<Session<T>, SessionRejection> {
    let state = take_state(slot).ok_or(SessionRejection::AlreadyExtracted)?;
    Ok(Session {
        state: Some(state),
        home: Arc::clone(slot),
    })
}

impl<T: SessionData> Session<T> {
    fn st(&self) -> &State<T> {
        match &self.state {
            Some(state) => state,
            None => unreachable!("a Session gives its state back only when dropped"),
        }
    }

    fn st_mut(&mut self) -> &mut State<T> {
        match &mut self.state {
            Some(state) => state,
            None => unreachable!("a Session gives its state back only when dropped"),
        }
    }

    /// The session id (express's `req.sessionID`).
    pub fn id(&self) -> &str {
        &self.st().id
    }

    /// True when this session was not loaded from the request's cookie (a new session,
    /// or one whose id was regenerated or rotated in this request).
    pub fn is_new(&self) -> bool {
        self.st().is_new_id()
    }

    /// The session cookie: expiry, max-age and attributes.
    pub fn cookie(&self) -> &SessionCookie {
        &self.st().cookie
    }

    /// The session cookie, to change this session's lifetime ("remember me"):
    /// `session.cookie_mut().set_max_age(Some(Duration::from_secs(30 * 86400)))`.
    /// A changed cookie is stored and sent to the browser at the end of the request.
    pub fn cookie_mut(&mut self) -> &mut SessionCookie {
        &mut self.st_mut().cookie
    }

    /// Renews the expiry now (`expires = now + originalMaxAge`). The layer also does
    /// this at the end of every request.
    pub fn touch(&mut self) {
        self.st_mut().cookie.touch();
    }

    /// Drops the session from this request (express's `req.session = null`): with
    /// `unset = "keep"` the stored session stays as it was; with `unset = "destroy"` it
    /// is destroyed when the request ends.
    pub fn unset(&mut self) {
        self.st_mut().phase = Phase::Unset;
    }

    /// Destroys the session in the store now; the response also clears the browser's
    /// cookie.
    pub async fn destroy(&mut self) -> Result<(), SessionError> {
        let st = self.st_mut();
        st.ctx.store.destroy(&st.id).await?;
        st.phase = Phase::Destroyed;
        st.in_store = false;
        Ok(())
    }

    /// Replaces the session with a fresh one under a new id, destroying the old one:
    /// the defence against session fixation. The new cookie is sent with the response.
    pub async fn regenerate(&mut self) -> Result<(), SessionError> {
        let st = self.st_mut();
        let new_id = st.new_id()?;
        st.ctx.store.destroy(&st.id).await?;
        let fresh = State::new(
            Arc::clone(&st.ctx),
            new_id,
            st.had_cookie,
            st.request_secure,
            st.genid_parts.take(),
        );
        // The id change itself counts as a modification.
        *st = State {
            id_changed: true,
            ..fresh
        };
        Ok(())
    }

    /// Moves the session to a new id and keeps its data: what to call after a login.
    /// The old id is destroyed at once; the new cookie is sent with the response.
    pub async fn rotate_id(&mut self) -> Result<(), SessionError> {
        let st = self.st_mut();
        let new_id = st.new_id()?;
        if st.in_store {
            st.ctx.store.destroy(&st.id).await?;
        }
        st.id = new_id;
        st.id_changed = true;
        st.id_from_cookie = false;
        st.in_store = false;
        st.saved_clean = false;
        st.phase = Phase::Active;
        Ok(())
    }

    /// Reloads the session from the store, discarding this request's unsaved changes.
    /// Fails with [`SessionError::NotFound`] when it is no longer stored.
    pub async fn reload(&mut self) -> Result<(), SessionError> {
        let st = self.st_mut();
        let loaded = st
            .ctx
            .store
            .load(&st.id)
            .await?
            .ok_or(SessionError::NotFound)?;
        st.replace_with(loaded, true);
        Ok(())
    }

    /// Writes the session to the store now (only the changed fields when it is already
    /// stored). The layer then skips its own end-of-request write unless something
    /// changes after this call.
    pub async fn save(&mut self) -> Result<(), SessionError> {
        let st = self.st_mut();
        let changes = st.changes()?;
        st.cookie_changed |= std::mem::take(&mut st.cookie.changed);
        if st.in_store {
            let patch = Patch {
                cookie: st.cookie.clone(),
                changes,
            };
            if st.ctx.store.patch(&st.id, &patch).await? == PatchOutcome::Missing {
                return Err(SessionError::NotFound);
            }
            st.modified |= !patch.changes.is_empty();
            if let Some(b) = &mut st.baseline {
                b.apply(&patch.changes).map_err(StoreError::Corrupt)?;
            }
        } else {
            let record = st.whole_record(&changes)?;
            st.ctx.store.set(&st.id, &record).await?;
            st.modified |= !changes.is_empty();
            st.baseline = Some(Baseline::from(record.fields));
        }
        T::__settle(&mut st.view);
        st.in_store = true;
        st.saved_clean = true;
        st.saved_in_request = true;
        Ok(())
    }

    /// The session's fields as they would be stored now, as a JSON object (keys the
    /// struct does not declare included).
    pub fn to_json(&mut self) -> Result<serde_json::Map<String, serde_json::Value>, SessionError> {
        let st = self.st_mut();
        st.baseline()?;
        let mut fields = Fields::new();
        let mut changes = Vec::new();
        if let Some(baseline) = &st.baseline {
            fields = baseline.to_fields().map_err(StoreError::Corrupt)?;
            T::__diff(&st.view, baseline, true, &mut changes)?;
        }
        apply_changes(&mut fields, &changes);
        Ok(fields)
    }
}

impl<T: SessionData> Deref for Session<T> {
    type Target = T::Tracked;
    fn deref(&self) -> &T::Tracked {
        &self.st().view
    }
}

impl<T: SessionData> DerefMut for Session<T> {
    fn deref_mut(&mut self) -> &mut T::Tracked {
        &mut self.st_mut().view
    }
}
