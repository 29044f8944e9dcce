//! One request's session: opened on the first extraction ([`open`]: the store's one
//! read), taken back after the handler and persisted before the response leaves
//! ([`complete`], [`finish`]), by express-session's decisions (`decide.rs`).

use std::future::Future;
use std::sync::Arc;

use axum_core::response::{IntoResponse, Response};
use http::header::SET_COOKIE;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, StatusCode};

use super::{Ctx, Transport};
use crate::data::SessionData;
use crate::decide;
use crate::record::{LoadedRecord, Touch};
use crate::session::{
    Phase, SessionError, SessionRejection, Slot, Stage, State, store_down_answer,
};
use crate::store::{Outcome, SessionStore, StoreError};
use crate::time;

fn head_copy(parts: &Parts) -> Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = parts.method.clone();
    head.uri = parts.uri.clone();
    head.version = parts.version;
    head.headers = parts.headers.clone();
    head
}

fn error_body(limit: &crate::options::LimitError) -> String {
    format!("session could not be saved: {limit}")
}

fn error_response(message: &'static str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
}

/// Opens the request's session: reads the cookie, and loads the session it names from
/// the store (or creates a new one). The error is what the extractor answers instead:
/// a rejection, or no session (`None`).
pub(crate) async fn open<T: SessionData>(
    ctx: &Arc<Ctx>,
    parts: &Parts,
    secure: bool,
) -> Result<Box<State<T>>, Option<SessionRejection>> {
    let (transport, cookie_id) = ctx.read_id(&parts.headers);
    let genid_parts = ctx.genid.as_ref().map(|_| Arc::new(head_copy(parts)));
    // A new session reads the clock only if its cookie expires.
    let now = cookie_id.as_ref().map(|_| ctx.now_ms());
    let mut stale = None;
    let loaded = match (&cookie_id, now) {
        (Some(id), Some(now)) => match ctx.store.get(id).await {
            Ok(Some(found)) => {
                let (keys, bytes) = found.fields.stored_size();
                match ctx.options.check_size(keys, bytes.unwrap_or(0)) {
                    Ok(())
                        if ctx.options.absolute_timeout.is_some()
                            && past_absolute_timeout(ctx, &found, now) =>
                    {
                        stale = Some(Box::from(id.as_str()));
                        None
                    }
                    Ok(()) => Some(found),
                    Err(limit) => {
                        tracing::warn!(
                            %limit,
                            "stored session is over a limit; starting a fresh session"
                        );
                        None
                    }
                }
            }
            Ok(None) => {
                if let Some(suppressed) = ctx.alerts.gone.admit(now) {
                    tracing::info!(
                        suppressed,
                        "session not in the store (expired, destroyed or revoked); starting a fresh session"
                    );
                }
                None
            }
            Err(StoreError::Corrupt(error)) => {
                tracing::warn!(%error, "stored session is corrupt; starting a fresh session");
                None
            }
            Err(error) => {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "session store failed to load a session"
                );
                return Err(store_down_answer(ctx.options.store_error));
            }
        },
        _ => None,
    };
    let state = match loaded {
        Some(mut loaded) => {
            loaded.cookie.changed = false;
            let id = cookie_id.unwrap_or_default();
            // Boxed here: the state moves on as a pointer.
            Ok(Box::new(State::<T>::loaded(
                Arc::clone(ctx),
                id,
                secure,
                genid_parts,
                loaded,
                !ctx.options.resave,
                transport,
                now.unwrap_or_default(),
            )))
        }
        None => ctx.generate_id(genid_parts.as_deref()).map(|id| {
            Box::new(State::<T>::new(
                Arc::clone(ctx),
                id,
                cookie_id.is_some(),
                secure,
                genid_parts,
                transport,
                stale,
            ))
        }),
    };
    state.map_err(|error| {
        tracing::error!(
            error = &error as &dyn std::error::Error,
            "could not create a session"
        );
        Some(SessionRejection::CreateFailed)
    })
}

/// Whether a loaded session is past the `absolute_timeout` (then the request starts a
/// fresh session, and the stale one is destroyed before the request's write).
fn past_absolute_timeout(ctx: &Ctx, found: &LoadedRecord, now: i64) -> bool {
    let Some(limit) = ctx.options.absolute_timeout else {
        return false;
    };
    match found.meta().created {
        Some(created) if now >= created.saturating_add(time::duration_ms(limit)) => {
            tracing::info!(
                created_ms = created,
                "session reached its absolute timeout; destroying it and starting a fresh session"
            );
            true
        }
        _ => false,
    }
}

// A plain fn returning an async block rather than an `async fn`: an async fn keeps its
// arguments twice in its future (as captured and as locals), and the boxed future stays
// under 1 KiB, within the allocator's fast path for small sizes.

/// Waits for the handler's response, then takes the session back and persists it.
#[allow(clippy::manual_async_fn)]
pub(super) fn complete<T, St, F, E>(
    store: Arc<St>,
    handled: F,
    slot: Option<Arc<Slot<T>>>,
) -> impl Future<Output = Result<Response, E>>
where
    F: Future<Output = Result<Response, E>>,
    T: SessionData,
    St: SessionStore,
{
    async move {
        let mut response = handled.await?;
        let Some(slot) = slot else {
            return Ok(response);
        };
        let secure = slot.secure;
        let mut state = match slot.reclaim() {
            Stage::Ready(state) => state,
            // Never extracted (no store call was made), or it could not be opened.
            Stage::Unopened | Stage::Closed(_) => return Ok(response),
            Stage::Lent => {
                tracing::error!(
                    "the session is still held after the handler returned (moved into a spawned task?); \
                     this request's session changes were not saved"
                );
                return Ok(error_response("session still in use"));
            }
        };
        let ctx = Arc::clone(&state.ctx);
        if let Err(error) = finish(&*store, &ctx, &mut state, secure, response.headers_mut()).await
        {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "failed to persist the session"
            );
            if let (SessionError::Store(_), Some(secs)) = (
                &error,
                crate::session::retry_after_secs(ctx.options.store_error),
            ) {
                return Ok(crate::session::retry_later(secs));
            }
            if let SessionError::Limit(limit) = &error {
                return Ok((StatusCode::INTERNAL_SERVER_ERROR, error_body(limit)).into_response());
            }
            return Ok(error_response("session could not be saved"));
        }
        Ok(response)
    }
}

fn append_cookie(headers: &mut HeaderMap, value: String) {
    match HeaderValue::try_from(value) {
        Ok(v) => {
            headers.append(SET_COOKIE, v);
        }
        Err(error) => {
            tracing::error!(%error, "session Set-Cookie is not a valid header value; not sent");
        }
    }
}

/// Decides, per express-session's rules, what to write and whether to send the cookie,
/// and writes before the response leaves.
async fn finish<T: SessionData, St: SessionStore>(
    store: &St,
    ctx: &Ctx,
    st: &mut State<T>,
    request_secure: bool,
    headers: &mut HeaderMap,
) -> Result<(), SessionError> {
    let opts = &ctx.options;
    if let Some(stale) = st.stale_id.take() {
        // The session this request found past its absolute timeout: destroyed, so that
        // no instance loads it again.
        if let Err(error) = store.destroy(&stale).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "could not destroy a session past its absolute timeout; it is not used"
            );
        }
    }
    // (Nothing more is held across the store calls below than before the per-user
    // index: this future is boxed per request, and stays in the allocator's fast path.)
    match st.phase {
        Phase::Destroyed => {
            if st.transport == Transport::Cookie
                && decide::clear_cookie_after_destroy(st.origin.had_cookie())
            {
                append_cookie(headers, st.cookie.render_clear(&opts.name));
            }
            return Ok(());
        }
        Phase::Unset => {
            if let decide::AfterUnset::Destroy { clear_cookie } =
                decide::after_unset(opts.unset, st.origin.had_cookie())
            {
                store.destroy(&st.id).await?;
                if clear_cookie && st.transport == Transport::Cookie {
                    append_cookie(headers, st.cookie.render_clear(&opts.name));
                }
            }
            return Ok(());
        }
        Phase::Active => {}
    }

    let mut changes = st.changes()?;
    let meta_changed = st.meta_write == crate::session::MetaWrite::Changed;
    // One clock read for the cookie's renewal and the store call.
    let now = ctx.now_ms();
    // The flag is per request: clear it before the cookie is handed to the store.
    let cookie_changed = st.flushed.cookie || std::mem::take(&mut st.cookie.changed);
    st.flushed.cookie = cookie_changed;
    let facts = decide::Facts {
        new_id: st.is_new_id(),
        id_changed: st.origin.changed(),
        modified: st.flushed.fields || !changes.is_empty() || st.origin.changed() || meta_changed,
        cookie_changed,
        unsaved_changes: !changes.is_empty() || meta_changed,
        in_store: st.stored.in_store(),
        saved_clean: st.stored.clean(),
        saved_in_request: st.stored.saved_in_request(),
        expires: st.cookie.expires.is_some(),
        secure_cookie: st.cookie.secure(),
        request_secure,
        rolling: opts.rolling,
        save_uninitialized: opts.save_uninitialized,
    };
    let mut set_cookie = match decide::should_set_cookie(&facts) {
        decide::SetCookie::No => false,
        // The header goes back only with a new id: it has no attributes to renew.
        _ if st.transport == Transport::Header => facts.new_id || facts.id_changed,
        decide::SetCookie::Send => true,
        decide::SetCookie::HeldBackInsecure => {
            if ctx
                .alerts
                .warned_insecure
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::debug!(
                    "not sending a Secure session cookie in reply to an insecure request"
                );
            } else {
                tracing::warn!(
                    "not sending a Secure session cookie in reply to a plain-http request, so the \
                     session will not last; behind a TLS-terminating proxy set `proxy = true` \
                     (X-Forwarded-Proto), or use `secure = \"auto\"` (this warning is shown once)"
                );
            }
            false
        }
    };
    st.cookie.touch_at(now);
    st.cap_to_absolute_timeout();
    if st.meta_write != crate::session::MetaWrite::Clean {
        changes.extend(st.meta_change());
    }

    let outcome = match decide::write(&facts) {
        decide::Write::Patch => {
            let write = store.patch(&st.id, st.patch(&changes).with_user(st.user()));
            write.await?
        }
        decide::Write::Set => {
            let write = store.set(
                &st.id,
                st.record(&changes)
                    .uninitialized(!facts.modified)
                    .with_user(st.user()),
            );
            write.await?;
            Outcome::Applied
        }
        decide::Write::Touch => {
            let write = store.touch(
                &st.id,
                Touch::new(&st.cookie)
                    .lazy_ms(st.loaded_deadline, opts.touch_after)
                    .at(now)
                    .with_user(st.user()),
            );
            write.await?
        }
        decide::Write::Nothing => Outcome::Applied,
    };
    if outcome == Outcome::Missing {
        tracing::info!("session was destroyed or expired during the request; not recreating it");
        set_cookie = false;
    }

    if set_cookie {
        match st.transport {
            Transport::Cookie => append_cookie(headers, ctx.render_cookie(&st.cookie, &st.id)),
            Transport::Header => {
                if let (Some(name), Ok(value)) = (
                    &opts.id_header,
                    HeaderValue::try_from(ctx.header_value(&st.id)),
                ) {
                    headers.insert(name.clone(), value);
                }
            }
        }
    }
    Ok(())
}
