//! The `Session<T>` extractor and the per-request session state it hands out.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::baseline::Baseline;
use crate::cookie::SessionCookie;
use crate::data::{EncodeError, SessionData};
use crate::layer::{Ctx, Transport};
use crate::meta::{MAX_USER_LEN, META_KEY, Meta};
use crate::options::StoreErrorPolicy;
use crate::record::{FieldChange, Fields, LoadedRecord, Patch, RecordView, apply_changes};
use crate::store::{Outcome, StoreError};

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
    /// The stored session was destroyed or expired while this request held it, so
    /// `rotate_id`, `regenerate` or `save` wrote nothing: a destroyed session is never
    /// brought back. The session is destroyed for this request too (its cookie is
    /// cleared).
    #[error("the session was destroyed or expired by another request")]
    Gone,
    /// A field could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The change would take the session past a limit of [`crate::SessionOptions`]
    /// (`max_keys`, `max_record_bytes`); nothing was saved.
    #[error("session not saved: {0}")]
    Limit(#[from] crate::options::LimitError),
    /// The operating system's random number generator failed.
    #[error("could not generate a session id")]
    Random(#[source] getrandom::Error),
    /// A custom `genid` returned an empty or oversized id.
    #[error("the genid function returned an invalid session id (empty or over {max} bytes)", max = crate::layer::MAX_ID_LEN)]
    InvalidId,
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        // The handler chose to answer with the error: say why, with its sources.
        tracing::error!(
            error = &self as &dyn std::error::Error,
            "a session error became the response"
        );
        (StatusCode::INTERNAL_SERVER_ERROR, "session error").into_response()
    }
}

/// Whether Tessera's own record entry ([`META_KEY`]) has something to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetaWrite {
    /// Nothing new.
    Clean,
    /// A new session's creation time: written with the session if it is saved anyway,
    /// but not a reason to save it (`saveUninitialized` still decides).
    Along,
    /// The user tie changed, or a loaded session got its creation time: a modification.
    Changed,
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
    /// When the store said it would drop the loaded record (ms since the epoch).
    pub(crate) loaded_deadline: Option<i64>,
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
    /// Tessera's record entry: read from the baseline on first use (a session that
    /// never asks costs no lookup).
    pub(crate) meta: std::sync::OnceLock<Option<Box<Meta>>>,
    pub(crate) meta_write: MetaWrite,
    /// Where the request carried the id, and so where the response sends it.
    pub(crate) transport: Transport,
    /// The id of a stored session this request found past its absolute timeout: the
    /// layer destroys it before its own write (not while loading, which would make
    /// every request's extraction future larger).
    pub(crate) stale_id: Option<Box<str>>,
}

impl<T: SessionData> State<T> {
    /// A new session (fresh data, the layer's cookie options) for `id`.
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        id: String,
        had_cookie: bool,
        request_secure: bool,
        genid_parts: Option<Arc<Parts>>,
        transport: Transport,
        stale_id: Option<Box<str>>,
    ) -> Self {
        let mut now = None;
        let mut clock = || *now.get_or_insert_with(|| ctx.now_ms());
        let cookie = SessionCookie::from_options(&ctx.options.cookie, request_secure, &mut clock);
        // The absolute timeout counts from here.
        let created = ctx.options.absolute_timeout.map(|_| clock());
        let meta = created.map(|created| {
            Box::new(Meta {
                created: Some(created),
                ..Meta::default()
            })
        });
        Self {
            had_cookie,
            meta: std::sync::OnceLock::from(meta),
            meta_write: if created.is_some() {
                MetaWrite::Along
            } else {
                MetaWrite::Clean
            },
            transport,
            stale_id,
            ..Self::assemble(ctx, id, request_secure, genid_parts, T::__fresh(), cookie)
        }
    }

    /// The session loaded from the store under the id the request's cookie carried.
    /// With an absolute timeout, its record entry is read now (`now` stamps a creation
    /// time on a record that has none: written by Node, or before the option was on).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn loaded(
        ctx: Arc<Ctx>,
        id: String,
        request_secure: bool,
        genid_parts: Option<Arc<Parts>>,
        loaded: LoadedRecord,
        saved_clean: bool,
        transport: Transport,
        now: i64,
    ) -> Self {
        let view = T::__load(&loaded.fields);
        let (meta, meta_write) = match ctx.options.absolute_timeout {
            None => (std::sync::OnceLock::new(), MetaWrite::Clean),
            Some(_) => {
                let mut meta = loaded.meta();
                let write = if meta.created.is_none() {
                    meta.created = Some(now);
                    MetaWrite::Changed
                } else {
                    MetaWrite::Clean
                };
                (std::sync::OnceLock::from(Some(Box::new(meta))), write)
            }
        };
        Self {
            transport,
            meta,
            meta_write,
            loaded_deadline: loaded.deadline,
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
            loaded_deadline: None,
            in_store: false,
            saved_clean: false,
            modified: false,
            cookie_changed: false,
            saved_in_request: false,
            phase: Phase::Active,
            request_secure,
            genid_parts,
            meta: std::sync::OnceLock::new(),
            meta_write: MetaWrite::Clean,
            transport: Transport::Cookie,
            stale_id: None,
        }
    }

    fn replace_with(&mut self, loaded: LoadedRecord, saved_clean: bool) {
        self.loaded_deadline = loaded.deadline;
        self.view = T::__load(&loaded.fields);
        self.baseline = Some(loaded.fields);
        self.cookie = loaded.cookie;
        self.meta = std::sync::OnceLock::new();
        self.meta_write = MetaWrite::Clean;
        self.in_store = true;
        self.saved_clean = saved_clean;
        self.phase = Phase::Active;
    }

    /// The stored fields (the encoded defaults for a new session, computed only when
    /// needed).
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
            if !out.is_empty() && !b.surely_within(&out, &self.ctx.options) {
                let (keys, bytes) = b.size_after(&out);
                self.ctx.options.check_size(keys, bytes)?;
            }
        }
        Ok(out)
    }

    /// The patch of this session: its cookie and `changes`, with the text it was loaded
    /// from as a compare-and-set store's guess.
    pub(crate) fn patch<'a>(&'a self, changes: &'a [FieldChange]) -> Patch<'a> {
        Patch::new(&self.cookie, changes)
            .with_loaded_text(self.baseline.as_ref().and_then(Baseline::record_text))
            .with_cookie_attributes_changed(self.cookie_changed || self.cookie.changed)
    }

    /// The whole record of this session with `changes`, which [`State::changes`]
    /// computed (and with them the baseline), applied.
    pub(crate) fn record<'a>(&'a self, changes: &'a [FieldChange]) -> RecordView<'a> {
        static NONE: std::sync::OnceLock<Baseline> = std::sync::OnceLock::new();
        let base = match &self.baseline {
            Some(base) => base,
            None => NONE.get_or_init(Baseline::default),
        };
        RecordView::of(&self.cookie, base, changes)
    }

    /// Tessera's record entry (`None`: the record has none), read from the stored
    /// fields on first use.
    pub(crate) fn meta(&self) -> Option<&Meta> {
        self.meta
            .get_or_init(|| {
                self.baseline
                    .as_ref()
                    .and_then(|b| b.get(META_KEY))
                    .map(|stored| {
                        Box::new(match stored {
                            crate::baseline::StoredValue::Json(text) => Meta::from_json(text),
                            crate::baseline::StoredValue::Value(v) => Meta::from_value(v),
                        })
                    })
            })
            .as_deref()
    }

    fn meta_mut(&mut self) -> &mut Meta {
        let meta = self.meta().cloned().unwrap_or_default();
        self.meta = std::sync::OnceLock::from(Some(Box::new(meta)));
        match self.meta.get_mut() {
            Some(Some(meta)) => meta,
            _ => unreachable!("the entry was just set"),
        }
    }

    /// The user the session is tied to. The end of every request asks, so a record
    /// without an entry answers without initialising the cached entry.
    pub(crate) fn user(&self) -> Option<&str> {
        if self.meta.get().is_none() {
            // Not read yet: borrow the user from the stored text if the scanner reads it.
            match self.baseline.as_ref().and_then(|b| b.get(META_KEY)) {
                None => return None,
                Some(crate::baseline::StoredValue::Json(text)) => {
                    if let Ok(user) = crate::meta::user_in(text) {
                        return user;
                    }
                }
                Some(crate::baseline::StoredValue::Value(_)) => {}
            }
        }
        self.meta().and_then(|m| m.user.as_deref())
    }

    /// The write of the record entry, if it has something new.
    pub(crate) fn meta_change(&self) -> Option<FieldChange> {
        if self.meta_write == MetaWrite::Clean {
            return None;
        }
        Some(match self.meta().and_then(Meta::to_value) {
            Some(v) => FieldChange::set(META_KEY, v),
            None => FieldChange::remove(META_KEY),
        })
    }

    /// Changes the record entry with `f`; a real change is a modification.
    pub(crate) fn change_meta(&mut self, now: i64, f: impl FnOnce(&mut Meta)) {
        let meta = self.meta_mut();
        let before = meta.clone();
        f(meta);
        if *meta != before {
            if meta.user.is_some() && meta.created.is_none() {
                meta.created = Some(now);
            }
            self.meta_write = MetaWrite::Changed;
        }
    }

    /// The stored session is gone (destroyed or expired by another request): nothing
    /// more is written for it, and its cookie is cleared.
    pub(crate) fn lost(&mut self) -> SessionError {
        self.phase = Phase::Destroyed;
        self.in_store = false;
        SessionError::Gone
    }

    fn new_id(&self) -> Result<String, SessionError> {
        self.ctx.generate_id(self.genid_parts.as_deref())
    }

    pub(crate) fn is_new_id(&self) -> bool {
        !self.id_from_cookie
    }
}

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
    fn take(&self) -> Stage<T> {
        std::mem::replace(&mut *self.lock(), Stage::Lent)
    }

    fn put(&self, stage: Stage<T>) {
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

/// Why a handler got no [`Session`]. Each answers `500 Internal Server Error` (the store
/// failure by the layer's [`crate::StoreErrorPolicy`]) and logs why.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionRejection {
    /// No `SessionLayer<T>` for this `T` wraps the route, the request is outside the
    /// cookie path, or the store was down with [`crate::StoreErrorPolicy::ContinueWithoutSession`].
    /// Use `Option<Session<T>>` where that is expected.
    #[error(
        "no Session<{session_type}> for this request: is SessionLayer<{session_type}> installed \
         for this route, and is the request under its cookie path?"
    )]
    NoSession {
        /// The session struct the handler asked for (`std::any::type_name`).
        session_type: &'static str,
    },
    /// `Session<T>` was extracted twice in one request.
    #[error("the Session<{session_type}> was already extracted in this request")]
    AlreadyExtracted {
        /// The session struct the handler asked for (`std::any::type_name`).
        session_type: &'static str,
    },
    /// The store failed while loading the session ([`crate::StoreErrorPolicy::Fail`]).
    #[error("session store unavailable")]
    StoreUnavailable,
    /// The store failed while loading the session, under
    /// [`crate::StoreErrorPolicy::ServiceUnavailable`]: `503` with `Retry-After`.
    #[error("session store unavailable; retry after {retry_after_secs} s")]
    RetryLater {
        /// What `Retry-After` says.
        retry_after_secs: u64,
    },
    /// A new session could not be created (the OS random generator or a custom
    /// `genid` failed).
    #[error("could not create a session")]
    CreateFailed,
}

impl SessionRejection {
    /// The status the rejection answers with, as axum's rejections report it.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::RetryLater { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body the rejection answers with.
    pub fn body_text(&self) -> String {
        self.to_string()
    }
}

/// Rejections during a store outage come with every request: logged at most ten a minute.
static REJECTIONS: crate::gate::LogGate = crate::gate::LogGate::new();

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        if let Some(suppressed) = REJECTIONS.admit(crate::time::now_ms()) {
            tracing::error!(error = %self, suppressed, "session extractor rejected the request");
        }
        match self {
            Self::RetryLater { retry_after_secs } => retry_later(retry_after_secs),
            _ => (self.status(), self.body_text()).into_response(),
        }
    }
}

/// `503 Service Unavailable` with `Retry-After: secs`.
pub(crate) fn retry_later(secs: u64) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(http::header::RETRY_AFTER, http::HeaderValue::from(secs))],
        "session store unavailable",
    )
        .into_response()
}

/// `Retry-After` of `policy`, when it answers 503.
pub(crate) fn retry_after_secs(policy: StoreErrorPolicy) -> Option<u64> {
    match policy {
        StoreErrorPolicy::ServiceUnavailable { retry_after } => Some(retry_after.as_secs().max(1)),
        _ => None,
    }
}

/// The session of the current request, typed by your `#[derive(SessionData)]` struct.
///
/// It derefs to the generated tracked view, so `*session.views += 1` reads and writes
/// a field and marks only that field as touched. When the handler returns, the layer
/// persists exactly the fields that changed — before the response is sent.
///
/// The first extraction in a request loads the session from the store; a handler that
/// does not extract it costs no store call.
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
    home: Arc<Slot<T>>,
}

impl<T: SessionData> Drop for Session<T> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            self.home.put(Stage::Ready(state));
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
        extract(parts).await?.ok_or(SessionRejection::NoSession {
            session_type: std::any::type_name::<T>(),
        })
    }
}

impl<T: SessionData, S: Send + Sync> OptionalFromRequestParts<S> for Session<T> {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        extract(parts).await
    }
}

/// The request's session: opened (loaded from the store) on the first extraction.
async fn extract<T: SessionData>(parts: &Parts) -> Result<Option<Session<T>>, SessionRejection> {
    let Some(SessionSlot(slot)) = parts.extensions.get::<SessionSlot<T>>().cloned() else {
        return Ok(None);
    };
    let state = match slot.take() {
        Stage::Ready(state) => state,
        Stage::Lent => {
            return Err(SessionRejection::AlreadyExtracted {
                session_type: std::any::type_name::<T>(),
            });
        }
        Stage::Closed(answer) => {
            slot.put(Stage::Closed(answer.clone()));
            return answer.map_or(Ok(None), Err);
        }
        Stage::Unopened => match crate::layer::open::<T>(&slot.ctx, parts, slot.secure).await {
            Ok(state) => state,
            Err(answer) => {
                slot.put(Stage::Closed(answer.clone()));
                return answer.map_or(Ok(None), Err);
            }
        },
    };
    Ok(Some(Session {
        state: Some(state),
        home: slot,
    }))
}

/// What a failed load answers under `policy`: a rejection, or no session.
pub(crate) fn store_down_answer(policy: StoreErrorPolicy) -> Option<SessionRejection> {
    match policy {
        StoreErrorPolicy::Fail => Some(SessionRejection::StoreUnavailable),
        StoreErrorPolicy::ContinueWithoutSession => None,
        StoreErrorPolicy::ServiceUnavailable { .. } => Some(SessionRejection::RetryLater {
            retry_after_secs: retry_after_secs(policy).unwrap_or(1),
        }),
    }
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
        let st = self.st_mut();
        let now = st.ctx.now_ms();
        crate::time::lend(now, || st.cookie.touch());
    }

    /// Drops the session from this request (express's `req.session = null`): with
    /// `unset = "keep"` the stored session stays as it was; with `unset = "destroy"` it
    /// is destroyed when the request ends.
    pub fn unset(&mut self) {
        self.st_mut().phase = Phase::Unset;
    }

    /// Destroys the session in the store now; the response also clears the browser's
    /// cookie.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the store fails.
    pub async fn destroy(&mut self) -> Result<(), SessionError> {
        let st = self.st_mut();
        let destroy = {
            let _now = crate::time::lent(st.ctx.now_ms());
            st.ctx.store.destroy(&st.id)
        };
        destroy.await?;
        st.phase = Phase::Destroyed;
        st.in_store = false;
        Ok(())
    }

    /// Replaces the session with a fresh one under a new id, destroying the old one:
    /// the defence against session fixation. The new cookie is sent with the response.
    ///
    /// # Errors
    ///
    /// [`SessionError::Gone`] when the stored session was destroyed or expired since this
    /// request loaded it (say, by a logout in another tab): no new session is made out of
    /// a destroyed one, and the cookie is cleared. [`SessionError::Store`] when the store
    /// fails.
    pub async fn regenerate(&mut self) -> Result<(), SessionError> {
        let st = self.st_mut();
        let new_id = st.new_id()?;
        if st.in_store {
            let destroy = {
                let _now = crate::time::lent(st.ctx.now_ms());
                st.ctx.store.destroy(&st.id)
            };
            if destroy.await? == Outcome::Missing {
                return Err(st.lost());
            }
        }
        let fresh = State::new(
            Arc::clone(&st.ctx),
            new_id,
            st.had_cookie,
            st.request_secure,
            st.genid_parts.take(),
            st.transport,
            st.stale_id.take(),
        );
        // The id change itself counts as a modification.
        *st = State {
            id_changed: true,
            ..fresh
        };
        Ok(())
    }

    /// Moves the session to a new id and keeps its data: what to call after a login.
    /// The store moves the record in one step, so the old id stops working at once;
    /// the new cookie is sent with the response.
    ///
    /// # Errors
    ///
    /// [`SessionError::Gone`] when the stored session was destroyed or expired since this
    /// request loaded it (say, by a logout in another tab): it is not brought back under
    /// the new id, and the cookie is cleared. [`SessionError::Store`] when the store
    /// fails.
    pub async fn rotate_id(&mut self) -> Result<(), SessionError> {
        let st = self.st_mut();
        let new_id = st.new_id()?;
        if st.in_store {
            let rotate = {
                let _now = crate::time::lent(st.ctx.now_ms());
                st.ctx.store.rotate(&st.id, &new_id, st.user())
            };
            if rotate.await? == Outcome::Missing {
                return Err(st.lost());
            }
        }
        st.id = new_id;
        st.id_changed = true;
        st.id_from_cookie = false;
        st.phase = Phase::Active;
        Ok(())
    }

    /// Reloads the session from the store, discarding this request's unsaved changes.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotFound`] when it is no longer stored (express's "failed to load
    /// session"); [`SessionError::Store`] when the store fails.
    pub async fn reload(&mut self) -> Result<(), SessionError> {
        let st = self.st_mut();
        let load = {
            let _now = crate::time::lent(st.ctx.now_ms());
            st.ctx.store.get(&st.id)
        };
        let loaded = load.await?.ok_or(SessionError::NotFound)?;
        st.replace_with(loaded, true);
        Ok(())
    }

    /// Writes the session to the store now (only the changed fields when it is already
    /// stored). The layer then skips its own end-of-request write unless something
    /// changes after this call.
    ///
    /// # Errors
    ///
    /// [`SessionError::Gone`] when the stored session was destroyed or expired meanwhile
    /// (nothing is written); [`SessionError::Store`] or [`SessionError::Encode`] when the
    /// store or a field fails.
    pub async fn save(&mut self) -> Result<(), SessionError> {
        let st = self.st_mut();
        let mut changes = st.changes()?;
        st.modified |= !changes.is_empty() || st.meta_write == MetaWrite::Changed;
        changes.extend(st.meta_change());
        st.cookie_changed |= std::mem::take(&mut st.cookie.changed);
        let now = st.ctx.now_ms();
        if st.in_store {
            let patch = {
                let _now = crate::time::lent(now);
                st.ctx
                    .store
                    .patch(&st.id, st.patch(&changes).with_user(st.user()))
            };
            if patch.await? == Outcome::Missing {
                return Err(st.lost());
            }
        } else {
            let set = {
                let _now = crate::time::lent(now);
                st.ctx
                    .store
                    .set(&st.id, st.record(&changes).with_user(st.user()))
            };
            set.await?;
        }
        if let Some(b) = &mut st.baseline {
            b.apply(&changes).map_err(StoreError::Corrupt)?;
        }
        st.meta_write = MetaWrite::Clean;
        T::__settle(&mut st.view);
        st.in_store = true;
        st.saved_clean = true;
        st.saved_in_request = true;
        Ok(())
    }

    /// Ties the session to `user` (your user id, at most 512 bytes; longer ids are
    /// refused with an event and leave the session as it was), so that
    /// [`crate::SessionAdmin::user_sessions`] lists it and
    /// [`crate::SessionAdmin::destroy_user_sessions`] can revoke it ("log out
    /// everywhere"). Call it at login, usually after [`Session::rotate_id`]; the tie
    /// moves with the session through later `rotate_id`s, and ends with `destroy`,
    /// `regenerate` or [`Session::clear_user`]. Stored in the record's
    /// [`crate::META_KEY`] entry, with the session's creation time.
    ///
    /// ```
    /// # use tessera::{Session, SessionData};
    /// # #[derive(SessionData, Default)] struct Account { name: String }
    /// async fn login(mut session: Session<Account>) -> Result<&'static str, tessera::SessionError> {
    ///     session.rotate_id().await?; // a new id for the new privilege level
    ///     session.set_user("user-42");
    ///     Ok("welcome")
    /// }
    /// ```
    pub fn set_user(&mut self, user: impl Into<String>) {
        let user = user.into();
        if user.is_empty() || user.len() > MAX_USER_LEN {
            tracing::error!(
                len = user.len(),
                "set_user: a user id must have 1 to {MAX_USER_LEN} bytes; the session is not tied to it"
            );
            return;
        }
        let st = self.st_mut();
        let now = st.ctx.now_ms();
        st.change_meta(now, |m| m.user = Some(user));
    }

    /// Records text to recognise this session's device by in
    /// [`crate::SessionAdmin::user_sessions`], typically the request's `User-Agent`
    /// (kept to its first 256 bytes). `None` removes it.
    pub fn set_user_agent(&mut self, agent: Option<&str>) {
        let st = self.st_mut();
        let now = st.ctx.now_ms();
        st.change_meta(now, |m| m.agent = agent.map(crate::meta::cut_agent));
    }

    /// Unties the session from its user (a logout that keeps the session, say for a
    /// cart): it is no longer listed or revoked with the user's sessions.
    pub fn clear_user(&mut self) {
        let st = self.st_mut();
        let now = st.ctx.now_ms();
        st.change_meta(now, |m| {
            m.user = None;
            m.agent = None;
        });
    }

    /// The user the session is tied to ([`Session::set_user`]), if any.
    pub fn user(&self) -> Option<&str> {
        self.st().user()
    }

    /// When the session was created, if known: always with `absolute_timeout`, and
    /// from the first `set_user` otherwise.
    pub fn created(&self) -> Option<std::time::SystemTime> {
        self.st()
            .meta()
            .and_then(|m| m.created)
            .map(crate::time::ms_to_system_time)
    }

    /// The whole session as a value of your struct, for a template or a JSON response
    /// (`Json(session.snapshot()?)` when the struct is `Serialize`). Each stored field is
    /// copied through its stored form, so field types need not be `Clone`; `skip` fields,
    /// which are not session state, come back as their `Default`. Taking a snapshot
    /// changes nothing and marks nothing touched.
    ///
    /// ```
    /// use tessera::{Session, SessionData};
    ///
    /// #[derive(SessionData, Default, serde::Serialize)]
    /// struct Cart { items: Vec<String>, coupon: Option<String> }
    ///
    /// async fn cart(session: Session<Cart>) -> Result<axum::Json<Cart>, tessera::SessionError> {
    ///     Ok(axum::Json(session.snapshot()?))
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SessionError::Encode`] when a field's value does not round-trip through JSON
    /// (a map with non-string keys, say).
    pub fn snapshot(&self) -> Result<T, SessionError> {
        Ok(T::__snapshot(&self.st().view)?)
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
