//! What a session operation or the extractor answers when it cannot go on.

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;

use crate::data::EncodeError;
use crate::options::StoreErrorPolicy;
use crate::store::StoreError;

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

/// Why a handler got no [`Session`](crate::Session). Each answers `500 Internal Server Error` (the store
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
