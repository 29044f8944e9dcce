//! The middleware: the whole request lifecycle in one place. The layer lends each
//! request an unopened session slot; the extractor opens it ([`open`]: the store's one
//! read); the layer takes it back after the handler and persists it ([`finish`]).

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::response::{IntoResponse, Response};
use http::header::SET_COOKIE;
use http::request::Parts;
use http::uri::Scheme;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::cookie::{SessionCookie, decode_cookie_value, encode_uri_component, find_cookie_raw};
use crate::data::SessionData;
use crate::decide;
use crate::options::{ConfigError, SessionOptions};
use crate::record::{LoadedRecord, Touch};
use crate::session::{
    Phase, SessionError, SessionRejection, SessionSlot, Slot, Stage, State, store_down_answer,
};
use crate::signing::{HmacSigner, Secrets, Signer, URL_SAFE_NO_PAD, base64_into};
use crate::store::memory::MemoryStore;
use crate::store::{DynStore, Outcome, SessionStore, StoreError};
use crate::time;
use crate::verified::{remembered_id, unsign_remembering};

/// Longest session id accepted from a cookie or a custom `genid`.
pub(crate) const MAX_ID_LEN: usize = 256;
/// Longest session cookie value read; longer ones are ignored (a fresh session).
const MAX_COOKIE_VALUE_LEN: usize = 4096;

type GenId = dyn Fn(&Parts) -> String + Send + Sync;
type Clock = dyn Fn() -> std::time::SystemTime + Send + Sync;

/// Where a request carried its session id, and so where the response sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// The session cookie (browsers).
    Cookie,
    /// The `id_header` option's header (API clients).
    Header,
}

/// Marks a request that arrived over TLS. A TLS acceptor that terminates HTTPS in the
/// same process inserts it into the request extensions; requests whose URI has the
/// `https` scheme count as secure too.
#[derive(Clone, Copy, Debug, Default)]
pub struct SecureConnection;

/// 24 random bytes from the OS CSPRNG, base64url without padding: 32 characters, like
/// express-session's `uid-safe(24)`.
///
/// The bytes are read from the OS in blocks of 4 KiB per thread (one system call per 170
/// ids instead of one per id); a block is never reused after a `fork`, where parent and
/// child would otherwise hand out the same ids.
pub(crate) fn default_id() -> Result<String, SessionError> {
    use std::cell::RefCell;
    const BLOCK: usize = 4080; // a multiple of 24
    struct Pool {
        bytes: [u8; BLOCK],
        used: usize,
        pid: u32,
    }
    thread_local! {
        static POOL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; BLOCK], used: BLOCK, pid: 0 }) };
    }
    let mut id = [0u8; 24];
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let pid = std::process::id();
        if pool.used + 24 > BLOCK || pool.pid != pid {
            getrandom::fill(&mut pool.bytes)?;
            pool.used = 0;
            pool.pid = pid;
        }
        let at = pool.used;
        id.copy_from_slice(&pool.bytes[at..at + 24]);
        // Never hand the same bytes out twice.
        pool.bytes[at..at + 24].fill(0);
        pool.used += 24;
        Ok::<(), getrandom::Error>(())
    })
    .map_err(SessionError::Random)?;
    let mut out = String::with_capacity(32);
    base64_into(&id, &URL_SAFE_NO_PAD, &mut out);
    Ok(out)
}

/// Who signs the cookie.
#[derive(Clone)]
pub(crate) enum CookieSigner {
    /// express-session's [`HmacSigner`]: its verified values may be remembered, and the
    /// cookie is written in place.
    Default,
    /// The application's (which may, for example, expire signatures): asked every time.
    Custom(Arc<dyn Signer>),
}

/// What the layer and the extractor share.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) store: Arc<dyn DynStore>,
    pub(crate) signer: CookieSigner,
    pub(crate) secrets: Secrets,
    pub(crate) options: SessionOptions,
    pub(crate) genid: Option<Arc<GenId>>,
    /// The layer's rate-limited and once-only events.
    pub(crate) alerts: Arc<crate::gate::Alerts>,
    /// The clock, if the application replaced the system's ([`SessionLayer::with_clock`]).
    pub(crate) clock: Option<Arc<Clock>>,
    /// Whether verified cookie values are remembered per thread (`verified.rs`).
    pub(crate) remember_verified: bool,
}

impl Ctx {
    /// Now, in milliseconds since the epoch, by the layer's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        match &self.clock {
            Some(clock) => time::system_time_to_ms(clock()),
            None => time::now_ms(),
        }
    }

    /// The signed id as the `id_header` carries it: the cookie's value.
    fn header_value(&self, id: &str) -> String {
        let mut out = String::new();
        encode_uri_component(&self.signed_value(id), &mut out);
        out
    }
    /// express-session's start-up warnings: `resave` and `saveUninitialized` keep
    /// their defaults (true, as in express), but an application should choose them, and
    /// is told so once.
    fn warn_of_implicit_defaults(&self) {
        use std::sync::atomic::Ordering;
        if self.alerts.warned_defaults.swap(true, Ordering::Relaxed) {
            return;
        }
        if !self.options.explicit_resave {
            tracing::warn!(
                "undefined resave option; provide resave option \
                 (#[session(resave = false)] or SessionOptions::resave); the default is true"
            );
        }
        if !self.options.explicit_save_uninitialized {
            tracing::warn!(
                "undefined saveUninitialized option; provide saveUninitialized option \
                 (#[session(save_uninitialized = false)] or SessionOptions::save_uninitialized); \
                 the default is true, which stores a session for every visitor"
            );
        }
    }

    pub(crate) fn generate_id(&self, parts: Option<&Parts>) -> Result<String, SessionError> {
        match (&self.genid, parts) {
            (Some(genid), Some(parts)) => {
                let id = genid(parts);
                if id.is_empty() || id.len() > MAX_ID_LEN {
                    return Err(SessionError::InvalidId);
                }
                Ok(id)
            }
            _ => default_id(),
        }
    }

    /// "s:" and the id signed by the layer's signer (what the cookie carries, decoded).
    fn signed_value(&self, id: &str) -> String {
        let signed = match &self.signer {
            CookieSigner::Default => HmacSigner.sign(id, self.secrets.signing()),
            CookieSigner::Custom(signer) => signer.sign(id, self.secrets.signing()),
        };
        format!("s:{signed}")
    }

    /// The `Set-Cookie` value for the session `id`.
    fn render_cookie(&self, cookie: &SessionCookie, id: &str) -> String {
        if let CookieSigner::Custom(_) = self.signer {
            return cookie.render(&self.options.name, &self.signed_value(id));
        }
        // Written in place: "s%3A" (the encoded "s:"), the id, ".", the signature.
        cookie.render_with(&self.options.name, 2 + id.len() + 44, |out| {
            out.push_str("s%3A");
            encode_uri_component(id, out);
            out.push('.');
            HmacSigner::signature_encoded_into(id, self.secrets.signing(), out);
        })
    }

    /// Where the request carries its id (the `id_header`, when the option is on and
    /// the request sends it; else the cookie), and the verified id, if there is one.
    fn read_id(&self, headers: &HeaderMap) -> (Transport, Option<String>) {
        if let Some(value) = self.options.id_header.as_ref().and_then(|h| headers.get(h)) {
            // The header wins over a cookie: the client chose to send it, while the
            // browser sends cookies on its own. Empty: "give me a session".
            let raw = value.as_bytes();
            let id = if raw.is_empty() {
                None
            } else {
                self.read_signed(raw)
            };
            return (Transport::Header, id);
        }
        let id = find_cookie_raw(headers, &self.options.name).and_then(|raw| self.read_signed(raw));
        (Transport::Cookie, id)
    }

    /// The verified session id of a signed value, as a cookie or the id header
    /// carries it.
    fn read_signed(&self, raw: &[u8]) -> Option<String> {
        if raw.len() > MAX_COOKIE_VALUE_LEN {
            if let Some(suppressed) = self.alerts.bad_cookies.admit(time::now_ms()) {
                tracing::info!(
                    len = raw.len(),
                    suppressed,
                    "session cookie too long; starting a fresh session"
                );
            }
            return None;
        }
        let remembered = match self.signer {
            CookieSigner::Default if self.remember_verified => remembered_id(&self.secrets, raw),
            _ => None,
        };
        let id = match remembered {
            Some(id) => Some(id),
            None => self.verify(raw)?,
        };
        match id {
            Some(id) if !id.is_empty() && id.len() <= MAX_ID_LEN => Some(id),
            Some(_) => {
                if let Some(suppressed) = self.alerts.bad_cookies.admit(time::now_ms()) {
                    tracing::info!(
                        suppressed,
                        "signed session id has an invalid length; starting a fresh session"
                    );
                }
                None
            }
            None => {
                if let Some(suppressed) = self.alerts.bad_cookies.admit(time::now_ms()) {
                    tracing::info!(
                        suppressed,
                        "session cookie signature does not verify; starting a fresh session"
                    );
                }
                None
            }
        }
    }

    /// Decodes and verifies a cookie value: `None` when it is not signed at all,
    /// `Some(None)` when its signature does not verify.
    fn verify(&self, raw: &[u8]) -> Option<Option<String>> {
        let value = decode_cookie_value(raw)?;
        let Some(signed) = value.strip_prefix("s:") else {
            if let Some(suppressed) = self.alerts.bad_cookies.admit(time::now_ms()) {
                tracing::debug!(
                    suppressed,
                    "session cookie is not signed (no `s:` prefix); starting a fresh session"
                );
            }
            return None;
        };
        if let CookieSigner::Custom(signer) = &self.signer {
            // A custom signer's value need not be a prefix of what it signed (a
            // key-versioned signer, say): take what `unsign` returns.
            return Some(
                self.secrets
                    .iter()
                    .find_map(|secret| signer.unsign(signed, secret))
                    .map(str::to_owned),
            );
        }
        // The default signer's id is the start of `signed` ("s:" + id + "." + signature).
        let verified = if self.remember_verified {
            unsign_remembering(&self.secrets, raw, signed)
        } else {
            self.secrets
                .iter()
                .find_map(|secret| HmacSigner.unsign(signed, secret))
        };
        let Some(len) = verified.map(str::len) else {
            return Some(None);
        };
        Some(Some(match value {
            // Reuse the decoded buffer.
            Cow::Owned(mut buf) => {
                buf.truncate(2 + len);
                buf.drain(..2);
                buf
            }
            Cow::Borrowed(v) => v.get(2..2 + len).unwrap_or_default().to_owned(),
        }))
    }
}

/// The session middleware for sessions of type `T`.
///
/// ```
/// use axum::{Router, routing::get};
/// use tessera::{MemoryStore, Secret, Session, SessionData, SessionLayer};
///
/// #[derive(SessionData, Default)]
/// #[session(cookie(max_age = "30m"), resave = false, save_uninitialized = false)]
/// struct Visit { views: u64 }
///
/// async fn index(mut session: Session<Visit>) -> String {
///     *session.views += 1;
///     format!("views: {}", *session.views)
/// }
///
/// # fn main() -> Result<(), tessera::ConfigError> {
/// let layer = SessionLayer::<Visit>::new(Secret::new("a long random secret of 32 bytes or more")?)
///     .with_store(MemoryStore::default());
/// let app: Router = Router::new().route("/", get(index)).layer(layer);
/// # Ok(()) }
/// ```
///
/// The layer is generic over its store `St` (the [`MemoryStore`] unless
/// [`SessionLayer::with_store`] says otherwise), so that the end-of-request write calls
/// the store directly.
pub struct SessionLayer<T, St = MemoryStore> {
    ctx: Arc<Ctx>,
    store: Arc<St>,
    _data: PhantomData<fn() -> T>,
}

impl<T, St> Clone for SessionLayer<T, St> {
    fn clone(&self) -> Self {
        Self {
            ctx: Arc::clone(&self.ctx),
            store: Arc::clone(&self.store),
            _data: PhantomData,
        }
    }
}

impl<T, St> std::fmt::Debug for SessionLayer<T, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("options", &self.ctx.options)
            .finish_non_exhaustive()
    }
}

impl<T: SessionData> SessionLayer<T> {
    /// A layer with the options declared on `T`, a [`MemoryStore`], the express-compatible
    /// [`HmacSigner`] and random 32-character ids. Pass one [`crate::Secret`] or a
    /// [`Secrets`] list (the first signs, all verify).
    pub fn new(secrets: impl Into<Secrets>) -> Self {
        let store = Arc::new(MemoryStore::default());
        Self {
            ctx: Arc::new(Ctx {
                store: Arc::clone(&store) as Arc<dyn DynStore>,
                signer: CookieSigner::Default,
                secrets: secrets.into(),
                options: T::options(),
                genid: None,
                alerts: Arc::default(),
                clock: None,
                remember_verified: true,
            }),
            store,
            _data: PhantomData,
        }
    }
}

impl<T, St> SessionLayer<T, St> {
    fn ctx_mut(&mut self) -> &mut Ctx {
        Arc::make_mut(&mut self.ctx)
    }

    /// Uses `store` for the sessions.
    pub fn with_store<S2: SessionStore>(self, store: S2) -> SessionLayer<T, S2> {
        let store = Arc::new(store);
        let mut ctx = Arc::unwrap_or_clone(self.ctx);
        ctx.store = Arc::clone(&store) as Arc<dyn DynStore>;
        SessionLayer {
            ctx: Arc::new(ctx),
            store,
            _data: PhantomData,
        }
    }

    /// Uses a custom cookie [`Signer`] (express's `signature` option).
    ///
    /// A custom signer is asked to verify the cookie on every request. (The default
    /// [`HmacSigner`] lets each thread remember the values that verified, so a browser's
    /// repeated cookie costs one constant-time comparison instead of an HMAC.)
    pub fn with_signer(mut self, signer: impl Signer) -> Self {
        let ctx = self.ctx_mut();
        ctx.signer = CookieSigner::Custom(Arc::new(signer));
        self
    }

    /// Whether each thread remembers the cookie values it verified (on by default), so
    /// that a browser's repeated cookie costs one constant-time comparison instead of an
    /// HMAC. `false` verifies every request; the module docs of the cache (64 KiB per
    /// thread, what it keys on, why it is safe) are in the crate's source, `verified.rs`.
    /// A custom [`Signer`] is never cached either way.
    pub fn remember_verified_cookies(mut self, on: bool) -> Self {
        self.ctx_mut().remember_verified = on;
        self
    }

    /// Generates session ids with `genid`, which receives the request head (express's
    /// `genid(req)`). Ids must be unique, unguessable, non-empty and at most 256 bytes.
    pub fn with_genid(mut self, genid: impl Fn(&Parts) -> String + Send + Sync + 'static) -> Self {
        self.ctx_mut().genid = Some(Arc::new(genid));
        self
    }

    /// Reads the time from `clock` instead of the system clock: for tests that travel
    /// in time (idle and absolute timeouts, expiry) without sleeping. The layer lends
    /// this time to the store calls it makes, which the [`MemoryStore`] honours; stores
    /// on a server (Redis, PostgreSQL) keep the server's time for their own expiry.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::{Duration, SystemTime};
    /// # #[derive(tessera::SessionData, Default)] struct Visit { views: u64 }
    /// # fn main() -> Result<(), tessera::ConfigError> {
    /// let now = Arc::new(Mutex::new(SystemTime::now()));
    /// let clock = Arc::clone(&now);
    /// let layer = tessera::SessionLayer::<Visit>::new(tessera::Secret::new("a long, random secret of 32 bytes or more")?)
    ///     .with_clock(move || *clock.lock().unwrap());
    /// *now.lock().unwrap() += Duration::from_secs(3600); // an hour later, at once
    /// # let _ = layer; Ok(()) }
    /// ```
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> std::time::SystemTime + Send + Sync + 'static,
    ) -> Self {
        self.ctx_mut().clock = Some(Arc::new(clock));
        self
    }

    /// Replaces all options. The typed setters of [`SessionOptions`] check each value;
    /// combinations that browsers reject (such as `SameSite=None` without `Secure`) are
    /// checked by [`SessionLayer::try_with_options`], which configuration should use.
    pub fn with_options(mut self, options: SessionOptions) -> Self {
        self.ctx_mut().options = options;
        self
    }

    /// Like [`SessionLayer::with_options`], after [`SessionOptions::validate`]: use it for
    /// options built from configuration.
    pub fn try_with_options(self, options: SessionOptions) -> Result<Self, ConfigError> {
        options.validate()?;
        Ok(self.with_options(options))
    }

    /// The options in force.
    pub fn options(&self) -> &SessionOptions {
        &self.ctx.options
    }
}

impl<S, T, St> Layer<S> for SessionLayer<T, St> {
    type Service = SessionService<S, T, St>;
    fn layer(&self, inner: S) -> Self::Service {
        self.ctx.warn_of_implicit_defaults();
        SessionService {
            inner,
            ctx: Arc::clone(&self.ctx),
            store: Arc::clone(&self.store),
            _data: PhantomData,
        }
    }
}

/// The service made by [`SessionLayer`].
pub struct SessionService<S, T, St = MemoryStore> {
    inner: S,
    ctx: Arc<Ctx>,
    store: Arc<St>,
    _data: PhantomData<fn() -> T>,
}

impl<S: Clone, T, St> Clone for SessionService<S, T, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            ctx: Arc::clone(&self.ctx),
            store: Arc::clone(&self.store),
            _data: PhantomData,
        }
    }
}

impl<S, T, St, B> Service<Request<B>> for SessionService<S, T, St>
where
    S: Service<Request<B>, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    T: SessionData,
    St: SessionStore,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // Nothing is read or loaded here: the extractor opens the slot if the handler
        // asks for the session.
        let slot = in_cookie_path(&self.ctx, &req).then(|| {
            let secure = is_secure(&req, self.ctx.options.proxy);
            let slot = Arc::new(Slot::<T>::new(Arc::clone(&self.ctx), secure));
            req.extensions_mut().insert(SessionSlot(Arc::clone(&slot)));
            slot
        });
        let handled = self.inner.call(req);
        Box::pin(complete(Arc::clone(&self.store), handled, slot))
    }
}

/// The path gate: a plain prefix match, as in express-session.
fn in_cookie_path<B>(ctx: &Ctx, req: &Request<B>) -> bool {
    req.uri().path().starts_with(&*ctx.options.cookie.path)
}

fn is_secure<B>(req: &Request<B>, proxy: Option<bool>) -> bool {
    if req.uri().scheme() == Some(&Scheme::HTTPS)
        || req.extensions().get::<SecureConnection>().is_some()
    {
        return true;
    }
    if proxy != Some(true) {
        return false;
    }
    req.headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| first.trim().eq_ignore_ascii_case("https"))
}

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
        (Some(id), Some(now)) => {
            let load = {
                let _now = time::lent(now);
                ctx.store.get(id)
            };
            match load.await {
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
            }
        }
        _ => None,
    };
    let _now = now.map(time::lent);
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
fn complete<T, St, F, E>(
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
                && decide::clear_cookie_after_destroy(st.had_cookie)
            {
                append_cookie(headers, st.cookie.render_clear(&opts.name));
            }
            return Ok(());
        }
        Phase::Unset => {
            if let decide::AfterUnset::Destroy { clear_cookie } =
                decide::after_unset(opts.unset, st.had_cookie)
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
    let cookie_changed = st.cookie_changed || std::mem::take(&mut st.cookie.changed);
    st.cookie_changed = cookie_changed;
    let facts = decide::Facts {
        new_id: st.is_new_id(),
        id_changed: st.id_changed,
        modified: st.modified || !changes.is_empty() || st.id_changed || meta_changed,
        cookie_changed,
        unsaved_changes: !changes.is_empty() || meta_changed,
        in_store: st.in_store,
        saved_clean: st.saved_clean,
        saved_in_request: st.saved_in_request,
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
    time::lend(now, || st.cookie.touch());
    let lend = || time::lent(now);
    if st.meta_write != crate::session::MetaWrite::Clean {
        changes.extend(st.meta_change());
    }

    let outcome = match decide::write(&facts) {
        decide::Write::Patch => {
            let write = {
                let _now = lend();
                store.patch(&st.id, st.patch(&changes).with_user(st.user()))
            };
            write.await?
        }
        decide::Write::Set => {
            let write = {
                let _now = lend();
                store.set(
                    &st.id,
                    st.record(&changes)
                        .uninitialized(!facts.modified)
                        .with_user(st.user()),
                )
            };
            write.await?;
            Outcome::Applied
        }
        decide::Write::Touch => {
            let write = {
                let _now = lend();
                store.touch(
                    &st.id,
                    Touch::new(&st.cookie)
                        .lazy_ms(st.loaded_deadline, opts.touch_after)
                        .with_user(st.user()),
                )
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::Secret;

    #[test]
    fn with_the_cache_turned_off_a_verified_cookie_is_not_remembered() {
        for remember in [false, true] {
            let ctx = Ctx {
                store: Arc::new(MemoryStore::default()),
                signer: CookieSigner::Default,
                secrets: Secrets::from(
                    Secret::new("a test secret that is long enough to sign").unwrap(),
                ),
                options: SessionOptions::default(),
                genid: None,
                alerts: Arc::default(),
                clock: None,
                remember_verified: remember,
            };
            let id = default_id().unwrap();
            let cookie = ctx.render_cookie(&SessionCookie::default(), &id);
            let pair = cookie.split(';').next().unwrap();
            let raw = pair.split_once('=').unwrap().1;
            let mut headers = HeaderMap::new();
            headers.insert(http::header::COOKIE, HeaderValue::from_str(pair).unwrap());
            assert_eq!(ctx.read_id(&headers).1.as_deref(), Some(id.as_str()));
            assert_eq!(
                remembered_id(&ctx.secrets, raw.as_bytes()).is_some(),
                remember,
                "remember_verified_cookies({remember})"
            );
        }
    }

    #[test]
    fn the_default_cookie_written_in_place_equals_the_generic_rendering() {
        let secrets = Secrets::from(Secret::short_for_migration("keyboard cat").unwrap());
        let ctx = Ctx {
            store: Arc::new(MemoryStore::default()),
            signer: CookieSigner::Default,
            secrets,
            options: SessionOptions::default(),
            genid: None,
            alerts: Arc::default(),
            clock: None,
            remember_verified: true,
        };
        let cookie = SessionCookie::default();
        let mut ids: Vec<String> = (0..200).filter_map(|_| default_id().ok()).collect();
        ids.extend([
            "a b/c+d:é%".to_owned(),
            "x".to_owned(),
            "id.with.dots".to_owned(),
        ]);
        for id in &ids {
            assert_eq!(
                ctx.render_cookie(&cookie, id),
                cookie.render(&ctx.options.name, &ctx.signed_value(id)),
                "{id}"
            );
        }
    }
}
