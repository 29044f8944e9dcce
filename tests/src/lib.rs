//! Helpers for the HTTP-level tests: an in-process client with a one-cookie jar, and a
//! store wrapper that records and can fail every call.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use tessera::{MemoryStore, Patch, PatchOutcome, Record, SessionCookie, SessionStore, StoreError};
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
        let reply = send(&self.app, builder.body(Body::empty()).unwrap_or_default()).await;
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

/// A MemoryStore that counts calls, keeps the last patch, and fails on demand.
#[derive(Clone, Default)]
pub struct Recording {
    /// The real store.
    pub inner: MemoryStore,
    /// Call counts.
    pub calls: Arc<Calls>,
    /// The last patch written.
    pub last_patch: Arc<Mutex<Option<Patch>>>,
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
        self.inner.get(id).await.ok().flatten()
    }
}

impl SessionStore for Recording {
    async fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
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
    async fn set(&self, id: &str, record: &Record) -> Result<(), StoreError> {
        self.calls.set.fetch_add(1, Ordering::SeqCst);
        self.check(&self.fail_writes)?;
        self.inner.set(id, record).await
    }
    async fn patch(&self, id: &str, patch: &Patch) -> Result<PatchOutcome, StoreError> {
        self.calls.patch.fetch_add(1, Ordering::SeqCst);
        self.check(&self.fail_writes)?;
        *self.last_patch.lock().unwrap_or_else(|e| e.into_inner()) = Some(patch.clone());
        self.inner.patch(id, patch).await
    }
    async fn destroy(&self, id: &str) -> Result<(), StoreError> {
        self.calls.destroy.fetch_add(1, Ordering::SeqCst);
        self.check(&self.fail_writes)?;
        self.inner.destroy(id).await
    }
    async fn touch(&self, id: &str, cookie: &SessionCookie) -> Result<(), StoreError> {
        self.calls.touch.fetch_add(1, Ordering::SeqCst);
        self.check(&self.fail_writes)?;
        self.inner.touch(id, cookie).await
    }
}

/// The store conformance suite: the rules every [`SessionStore`] follows. Each check
/// uses fresh random ids, so a shared backend can run it alongside other tests.
pub mod conformance {
    use std::time::Duration;

    use serde_json::json;
    use tessera::{Patch, PatchOutcome, Record, SessionCookie, SessionStore};

    fn unique(tag: &str) -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("conf-{tag}-{nanos}-{}", N.fetch_add(1, Ordering::Relaxed))
    }

    fn record(max_age: Option<Duration>) -> Record {
        let mut cookie = SessionCookie::default();
        cookie.set_max_age(max_age);
        let mut r = Record {
            cookie,
            ..Record::default()
        };
        r.fields.insert("views".into(), json!(1));
        r.fields.insert("user".into(), json!({"name": "alice"}));
        r
    }

    /// Runs every check against `store`.
    pub async fn run<S: SessionStore>(store: &S) {
        set_then_get_round_trips(store).await;
        missing_id_is_none(store).await;
        patch_changes_only_listed_fields(store).await;
        patch_on_missing_record_never_creates_it(store).await;
        destroy_removes_and_is_idempotent(store).await;
        expired_record_is_never_returned(store).await;
        touch_extends_expiry_without_touching_fields(store).await;
    }

    async fn set_then_get_round_trips<S: SessionStore>(store: &S) {
        let id = unique("roundtrip");
        let r = record(Some(Duration::from_secs(60)));
        store
            .set(&id, &r)
            .await
            .unwrap_or_else(|e| panic!("set: {e}"));
        let got = store.get(&id).await.unwrap_or_else(|e| panic!("get: {e}"));
        let got = got.unwrap_or_else(|| panic!("record missing after set"));
        assert_eq!(got.fields, r.fields);
        assert_eq!(got.cookie.original_max_age_ms(), Some(60_000));
    }

    async fn missing_id_is_none<S: SessionStore>(store: &S) {
        let got = store
            .get(&unique("missing"))
            .await
            .unwrap_or_else(|e| panic!("get: {e}"));
        assert!(got.is_none());
    }

    async fn patch_changes_only_listed_fields<S: SessionStore>(store: &S) {
        let id = unique("patch");
        let r = record(Some(Duration::from_secs(60)));
        store
            .set(&id, &r)
            .await
            .unwrap_or_else(|e| panic!("set: {e}"));
        let patch = Patch {
            cookie: r.cookie.clone(),
            changes: vec![
                ("views".into(), Some(json!(2))),
                ("new".into(), Some(json!("x"))),
                ("user".into(), None),
            ],
        };
        let outcome = store
            .patch(&id, &patch)
            .await
            .unwrap_or_else(|e| panic!("patch: {e}"));
        assert_eq!(outcome, PatchOutcome::Applied);
        let got = store
            .get(&id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("missing"));
        assert_eq!(got.fields.get("views"), Some(&json!(2)));
        assert_eq!(got.fields.get("new"), Some(&json!("x")));
        assert_eq!(got.fields.get("user"), None);
    }

    async fn patch_on_missing_record_never_creates_it<S: SessionStore>(store: &S) {
        let id = unique("ghost");
        let patch = Patch {
            cookie: record(Some(Duration::from_secs(60))).cookie,
            changes: vec![("views".into(), Some(json!(9)))],
        };
        let outcome = store
            .patch(&id, &patch)
            .await
            .unwrap_or_else(|e| panic!("patch: {e}"));
        assert_eq!(outcome, PatchOutcome::Missing);
        assert!(store.get(&id).await.ok().flatten().is_none());
    }

    async fn destroy_removes_and_is_idempotent<S: SessionStore>(store: &S) {
        let id = unique("destroy");
        store
            .set(&id, &record(None))
            .await
            .unwrap_or_else(|e| panic!("set: {e}"));
        store
            .destroy(&id)
            .await
            .unwrap_or_else(|e| panic!("destroy: {e}"));
        assert!(store.get(&id).await.ok().flatten().is_none());
        store
            .destroy(&id)
            .await
            .unwrap_or_else(|e| panic!("second destroy: {e}"));
    }

    async fn expired_record_is_never_returned<S: SessionStore>(store: &S) {
        let id = unique("expired");
        store
            .set(&id, &record(Some(Duration::from_millis(1200))))
            .await
            .unwrap_or_else(|e| panic!("set: {e}"));
        assert!(store.get(&id).await.ok().flatten().is_some());
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(
            store.get(&id).await.ok().flatten().is_none(),
            "expired record returned"
        );
    }

    async fn touch_extends_expiry_without_touching_fields<S: SessionStore>(store: &S) {
        let id = unique("touch");
        let r = record(Some(Duration::from_millis(1200)));
        store
            .set(&id, &r)
            .await
            .unwrap_or_else(|e| panic!("set: {e}"));
        let mut cookie = r.cookie.clone();
        cookie.set_max_age(Some(Duration::from_secs(60)));
        store
            .touch(&id, &cookie)
            .await
            .unwrap_or_else(|e| panic!("touch: {e}"));
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let got = store
            .get(&id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("touch did not extend"));
        assert_eq!(got.fields, r.fields);
    }
}
