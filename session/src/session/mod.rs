//! The `Session<T>` extractor and the per-request session state it hands out: the
//! extractor and its methods here, the state (`state.rs`), the slot it waits in between
//! the layer and the handler (`slot.rs`), and the errors and rejections (`error.rs`).

mod error;
mod slot;
mod state;

pub use error::{SessionError, SessionRejection};
pub(crate) use error::{retry_after_secs, retry_later, store_down_answer};
pub(crate) use slot::{SessionSlot, Slot, Stage};
pub(crate) use state::{IdOrigin, MetaWrite, Phase, State, Stored};

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::cookie::SessionCookie;
use crate::data::SessionData;
use crate::meta::MAX_USER_LEN;
use crate::record::{Fields, apply_changes};
use crate::store::{Outcome, StoreError};

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

    /// Renews the expiry now (`expires = now + originalMaxAge`, and never past the
    /// `absolute_timeout`). The layer also does this at the end of every request.
    pub fn touch(&mut self) {
        let st = self.st_mut();
        let now = st.ctx.now_ms();
        st.cookie.touch_at(now);
        st.cap_to_absolute_timeout();
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
        let destroy = { st.ctx.store.destroy(&st.id) };
        destroy.await?;
        st.phase = Phase::Destroyed;
        st.stored = Stored::Nothing;
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
        if st.stored.in_store() {
            let destroy = { st.ctx.store.destroy(&st.id) };
            if destroy.await? == Outcome::Missing {
                return Err(st.lost());
            }
        }
        let fresh = State::new(
            Arc::clone(&st.ctx),
            new_id,
            st.origin.had_cookie(),
            st.request_secure,
            st.genid_parts.take(),
            st.transport,
            st.stale_id.take(),
        );
        // The id change itself counts as a modification.
        *st = State {
            origin: IdOrigin::Changed {
                had_cookie: fresh.origin.had_cookie(),
            },
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
        if st.stored.in_store() {
            let rotate = { st.ctx.store.rotate(&st.id, &new_id, st.user()) };
            if rotate.await? == Outcome::Missing {
                return Err(st.lost());
            }
        }
        st.id = new_id;
        st.origin = IdOrigin::Changed {
            had_cookie: st.origin.had_cookie(),
        };
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
        let load = { st.ctx.store.get(&st.id) };
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
        st.flushed.fields |= !changes.is_empty() || st.meta_write == MetaWrite::Changed;
        changes.extend(st.meta_change());
        st.flushed.cookie |= std::mem::take(&mut st.cookie.changed);
        st.cap_to_absolute_timeout();
        if st.stored.in_store() {
            let patch = st
                .ctx
                .store
                .patch(&st.id, st.patch(&changes).with_user(st.user()));
            if patch.await? == Outcome::Missing {
                return Err(st.lost());
            }
        } else {
            let set = st
                .ctx
                .store
                .set(&st.id, st.record(&changes).with_user(st.user()));
            set.await?;
        }
        if let Some(b) = &mut st.baseline {
            b.apply(&changes).map_err(StoreError::Corrupt)?;
        }
        st.meta_write = MetaWrite::Clean;
        T::__settle(&mut st.view);
        st.stored = Stored::SavedThisRequest;
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
    ///
    /// # Errors
    ///
    /// [`SessionError::Encode`] when a field does not encode; [`SessionError::Store`]
    /// when the stored text the session was loaded from does not decode.
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
