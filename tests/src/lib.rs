//! Helpers for the HTTP-level tests: an in-process client with a one-cookie jar, a
//! store wrapper that records and can fail every call, and a deliberately naive store
//! that the conformance suite must reject.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use tessera::store::{Outcome, SessionStore, StoreError};
use tessera::{
    FieldChange, LoadedRecord, MemoryStore, Patch, Record, RecordView, SessionCookie, Touch,
};

pub mod jsongen;
pub mod naive;
pub mod node;
pub mod proxy;
pub mod services;
use tower::ServiceExt;

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Reply {
    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The single `Set-Cookie`, if there is exactly one.
    pub fn set_cookie(&self) -> Option<String> {
        let all = self.set_cookies();
        assert!(all.len() <= 1, "more than one Set-Cookie: {all:?}");
        all.into_iter().next()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request to `app`.
pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let (parts, body) = res.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A browser with one cookie (the session cookie, as `name=value`).
pub struct Browser {
    /// The app under test.
    pub app: Router,
    /// The `name=value` pair sent in `Cookie`.
    pub cookie: Option<String>,
}

impl Browser {
    /// A browser with no cookie.
    pub fn new(app: Router) -> Self {
        Self { app, cookie: None }
    }

    /// GET `path`, sending the cookie and keeping a new one (or dropping an expired one).
    pub async fn get(&mut self, path: &str) -> Reply {
        self.request(Request::get(path)).await
    }

    /// Sends a request built by `builder`, with the jar applied.
    pub async fn request(&mut self, mut builder: axum::http::request::Builder) -> Reply {
        if let Some(c) = &self.cookie {
            builder = builder.header(header::COOKIE, c);
        }
        // A malformed request is a bug in the test: never send something else instead.
        let request = match builder.body(Body::empty()) {
            Ok(request) => request,
            Err(e) => panic!("the test built a malformed request: {e}"),
        };
        let reply = send(&self.app, request).await;
        if let Some(sc) = reply.set_cookies().last() {
            let pair = sc.split(';').next().unwrap_or_default().to_owned();
            if sc.contains("Expires=Thu, 01 Jan 1970") {
                self.cookie = None;
            } else {
                self.cookie = Some(pair);
            }
        }
        reply
    }
}

/// The session id inside a `Set-Cookie` or `name=value` pair (`s%3A<id>.<sig>`).
pub fn id_of(cookie: &str) -> String {
    let value = cookie.split(';').next().unwrap_or_default();
    let value = value.split_once('=').map(|x| x.1).unwrap_or_default();
    let value = value
        .replace("%3A", ":")
        .replace("%2F", "/")
        .replace("%2B", "+");
    let signed = value.strip_prefix("s:").unwrap_or(&value);
    signed
        .rsplit_once('.')
        .map(|x| x.0)
        .unwrap_or_default()
        .to_owned()
}

/// Counts of store calls.
#[derive(Default, Debug)]
pub struct Calls {
    /// `rotate` calls.
    pub rotate: AtomicUsize,
    /// `get` calls.
    pub get: AtomicUsize,
    /// `set` calls.
    pub set: AtomicUsize,
    /// `patch` calls.
    pub patch: AtomicUsize,
    /// `destroy` calls.
    pub destroy: AtomicUsize,
    /// `touch` calls.
    pub touch: AtomicUsize,
}

impl Calls {
    /// Every store call so far.
    pub fn total(&self) -> usize {
        let (g, s, p, d, t) = self.snapshot();
        g + s + p + d + t + self.rotate.load(Ordering::SeqCst)
    }

    /// `(get, set, patch, destroy, touch)` now.
    pub fn snapshot(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.get.load(Ordering::SeqCst),
            self.set.load(Ordering::SeqCst),
            self.patch.load(Ordering::SeqCst),
            self.destroy.load(Ordering::SeqCst),
            self.touch.load(Ordering::SeqCst),
        )
    }
}

/// A patch as a store received it.
#[derive(Clone, Debug)]
pub struct PatchSeen {
    /// The cookie to store.
    pub cookie: SessionCookie,
    /// The changed fields.
    pub changes: Vec<FieldChange>,
}

/// A MemoryStore that counts calls, keeps the last patch, and fails on demand.
#[derive(Clone, Default)]
pub struct Recording {
    /// The real store.
    pub inner: MemoryStore,
    /// Call counts.
    pub calls: Arc<Calls>,
    /// The last patch written.
    pub last_patch: Arc<Mutex<Option<PatchSeen>>>,
    /// Make reads fail.
    pub fail_reads: Arc<AtomicBool>,
    /// Make writes fail.
    pub fail_writes: Arc<AtomicBool>,
    /// Return a corrupt-record error from reads.
    pub corrupt_reads: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store is down")
    }
}
impl std::error::Error for Down {}

impl Recording {
    fn check(&self, flag: &AtomicBool) -> Result<(), StoreError> {
        if flag.load(Ordering::SeqCst) {
            return Err(StoreError::backend(Down));
        }
        Ok(())
    }

    /// The stored record of `id`.
    pub async fn record(&self, id: &str) -> Option<Record> {
        let loaded = self.inner.get(id).await.ok().flatten()?;
        loaded.to_record().ok()
    }

    /// Stores `record` under `id`, bypassing the counters.
    pub async fn put(&self, id: &str, record: &Record) {
        if let Err(e) = self.inner.set(id, RecordView::from(record)).await {
            panic!("MemoryStore::set failed: {e}");
        }
    }
}

impl SessionStore for Recording {
    async fn get(&self, id: &str) -> Result<Option<LoadedRecord>, StoreError> {
        self.calls.get.fetch_add(1, Ordering::SeqCst);
        self.check(&self.fail_reads)?;
        if self.corrupt_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt(
                Record::from_json(b"{\"views\":1}")
                    .err()
                    .unwrap_or_else(|| unreachable!()),
            ));
        }
        self.inner.get(id).await
    }
    async fn set(&self, id: &str, record: RecordView<'_>) -> Result<(), StoreError> {
        self.calls.set.fetch_add(1, Ordering::SeqCst);
        self.check(&self.fail_writes)?;
        self.inner.set(id, record).await
    }
    async fn patch(&self, id: &str, patch: Patch<'_>) -> Result<Outcome, StoreError> {
        self.calls.patch.fetch_add(1, Ordering::SeqCst);
        self.check(&self.fail_writes)?;
        *self.last_patch.lock().unwrap_or_else(|e| e.into_inner()) = Some(PatchSeen {
            cookie: patch.cookie().clone(),
            changes: patch.changes().to_vec(),
        });
        self.inner.patch(id, patch).await
    }
    async fn touch(&self, id: &str, touch: Touch<'_>) -> Result<Outcome, StoreError> {
        self.calls.touch.fetch_add(1, Ordering::SeqCst);
        self.check(&self.fail_writes)?;
        self.inner.touch(id, touch).await
    }
    async fn rotate(
        &self,
        from: &str,
        to: &str,
        user: Option<&str>,
    ) -> Result<Outcome, StoreError> {
        self.calls.rotate.fetch_add(1, Ordering::SeqCst);
        self.check(&self.fail_writes)?;
        self.inner.rotate(from, to, user).await
    }
    async fn destroy(&self, id: &str) -> Result<Outcome, StoreError> {
        self.calls.destroy.fetch_add(1, Ordering::SeqCst);
        self.check(&self.fail_writes)?;
        self.inner.destroy(id).await
    }
}

/// A `tracing` writer that keeps what it is given, for tests that read the events.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's `tracing` events from `level` up, without ANSI colours, until
/// the guard is dropped (run the test on a current-thread runtime).
pub fn capture_events(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (out, tracing::subscriber::set_default(subscriber))
}

impl Captured {
    /// What was written, as text.
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
