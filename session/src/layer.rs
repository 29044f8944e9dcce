//! The middleware: the whole request lifecycle in one place.

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

use crate::baseline::Loaded;
use crate::cookie::{SessionCookie, decode_cookie_value, encode_uri_component, find_cookie_raw};
use crate::data::SessionData;
use crate::memory::MemoryStore;
use crate::options::{ConfigError, SessionOptions, StoreErrorPolicy, Unset};
use crate::session::{Phase, SessionError, SessionSlot, Slot, State, reclaim_state};
use crate::signing::{
    HmacSigner, Secrets, Signer, URL_SAFE_ALPHABET, base64_into, remembered_id, unsign_remembering,
};
use crate::store::{DynStore, PatchOutcome, SessionStore, StoreError};
use crate::time;

/// Longest session id accepted from a cookie or a custom `genid`.
pub(crate) const MAX_ID_LEN: usize = 256;
/// Longest session cookie value read; longer ones are ignored (a fresh session).
const MAX_COOKIE_VALUE_LEN: usize = 4096;

type GenId = dyn Fn(&Parts) -> String + Send + Sync;

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
    base64_into(&id, URL_SAFE_ALPHABET, &mut out);
    Ok(out)
}

/// What the layer and the extractor share.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) store: Arc<dyn DynStore>,
    pub(crate) signer: Arc<dyn Signer>,
    pub(crate) secrets: Secrets,
    pub(crate) options: SessionOptions,
    pub(crate) genid: Option<Arc<GenId>>,
    /// The signer is the default [`HmacSigner`], whose verified values may be remembered
    /// (a custom signer may, for example, expire signatures).
    pub(crate) default_signer: bool,
}

impl Ctx {
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
        format!("s:{}", self.signer.sign(id, self.secrets.signing()))
    }

    /// The `Set-Cookie` value for the session `id`.
    fn render_cookie(&self, cookie: &SessionCookie, id: &str) -> String {
        if !self.default_signer {
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

    /// The verified session id of the request, if its cookie carries one.
    fn read_id(&self, headers: &HeaderMap) -> Option<String> {
        let raw = find_cookie_raw(headers, &self.options.name)?;
        if raw.len() > MAX_COOKIE_VALUE_LEN {
            tracing::info!(
                len = raw.len(),
                "session cookie too long; starting a fresh session"
            );
            return None;
        }
        let remembered = if self.default_signer {
            remembered_id(&self.secrets, raw)
        } else {
            None
        };
        let id = match remembered {
            Some(id) => Some(id),
            None => self.verify(raw)?,
        };
        match id {
            Some(id) if !id.is_empty() && id.len() <= MAX_ID_LEN => Some(id),
            Some(_) => {
                tracing::info!("signed session id has an invalid length; starting a fresh session");
                None
            }
            None => {
                tracing::info!(
                    "session cookie signature does not verify; starting a fresh session"
                );
                None
            }
        }
    }

    /// Decodes and verifies a cookie value: `None` when it is not signed at all,
    /// `Some(None)` when its signature does not verify.
    fn verify(&self, raw: &[u8]) -> Option<Option<String>> {
        let value = decode_cookie_value(raw)?;
        let Some(signed) = value.strip_prefix("s:") else {
            tracing::debug!(
                "session cookie is not signed (no `s:` prefix); starting a fresh session"
            );
            return None;
        };
        let id = if self.default_signer {
            unsign_remembering(&self.secrets, raw, signed)
        } else {
            self.secrets
                .iter()
                .find_map(|secret| self.signer.unsign(signed, secret))
        };
        // The id is the start of `signed`, which follows the "s:" of `value`.
        let Some(len) = id.map(str::len) else {
            return Some(None);
        };
        Some(Some(match value {
            // Reuse the decoded buffer: "s:" + id + "." + signature.
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
/// let layer = SessionLayer::<Visit>::new(Secret::new("a long random secret")?)
///     .with_store(MemoryStore::default());
/// let app: Router = Router::new().route("/", get(index)).layer(layer);
/// # Ok(()) }
/// ```
pub struct SessionLayer<T> {
    ctx: Arc<Ctx>,
    _data: PhantomData<fn() -> T>,
}

impl<T> Clone for SessionLayer<T> {
    fn clone(&self) -> Self {
        Self {
            ctx: Arc::clone(&self.ctx),
            _data: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for SessionLayer<T> {
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
        Self {
            ctx: Arc::new(Ctx {
                store: Arc::new(MemoryStore::default()),
                signer: Arc::new(HmacSigner),
                secrets: secrets.into(),
                options: T::options(),
                genid: None,
                default_signer: true,
            }),
            _data: PhantomData,
        }
    }
}

impl<T> SessionLayer<T> {
    fn ctx_mut(&mut self) -> &mut Ctx {
        Arc::make_mut(&mut self.ctx)
    }

    /// Uses `store` for the sessions.
    pub fn with_store(mut self, store: impl SessionStore) -> Self {
        self.ctx_mut().store = Arc::new(store);
        self
    }

    /// Uses a custom cookie [`Signer`] (express's `signature` option).
    ///
    /// A custom signer is asked to verify the cookie on every request. (The default
    /// [`HmacSigner`] lets each thread remember the values that verified, so a browser's
    /// repeated cookie costs one constant-time comparison instead of an HMAC.)
    pub fn with_signer(mut self, signer: impl Signer) -> Self {
        let ctx = self.ctx_mut();
        ctx.signer = Arc::new(signer);
        ctx.default_signer = false;
        self
    }

    /// Generates session ids with `genid`, which receives the request head (express's
    /// `genid(req)`). Ids must be unique, unguessable, non-empty and at most 256 bytes.
    pub fn with_genid(mut self, genid: impl Fn(&Parts) -> String + Send + Sync + 'static) -> Self {
        self.ctx_mut().genid = Some(Arc::new(genid));
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

impl<S, T> Layer<S> for SessionLayer<T> {
    type Service = SessionService<S, T>;
    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            ctx: Arc::clone(&self.ctx),
            _data: PhantomData,
        }
    }
}

/// The service made by [`SessionLayer`].
pub struct SessionService<S, T> {
    inner: S,
    ctx: Arc<Ctx>,
    _data: PhantomData<fn() -> T>,
}

impl<S: Clone, T> Clone for SessionService<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            ctx: Arc::clone(&self.ctx),
            _data: PhantomData,
        }
    }
}

impl<S, T, B> Service<Request<B>> for SessionService<S, T>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    T: SessionData,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let ctx = Arc::clone(&self.ctx);
        if let Some(memory) = ctx.store.memory() {
            // The built-in store answers at once: prepare the session now and call the
            // service that was made ready, instead of a clone of it later.
            let secure = is_secure(&req, ctx.options.proxy);
            let prepared = if in_cookie_path(&ctx, &req) {
                let genid_parts = ctx.genid.as_ref().map(|_| Arc::new(head_copy(&req)));
                prepare_now::<T>(&ctx, memory, req.headers(), secure, genid_parts)
            } else {
                Prepared::Without
            };
            let slot = match attach(prepared, &mut req) {
                Ok(slot) => slot,
                Err(response) => return Box::pin(std::future::ready(Ok(response))),
            };
            let handled = self.inner.call(req);
            return Box::pin(complete(ctx, handled, slot, secure));
        }
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(run::<T, S, B>(ctx, inner, req))
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

fn head_copy<B>(req: &Request<B>) -> Parts {
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = req.method().clone();
    parts.uri = req.uri().clone();
    parts.version = req.version();
    parts.headers = req.headers().clone();
    parts
}

fn error_response(message: &'static str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
}

/// What the layer does for one request before the handler runs.
enum Prepared<T: SessionData> {
    /// No session: outside the cookie path, or the store is down and the policy is to
    /// continue without one.
    Without,
    /// The request's session (boxed: it moves as a pointer from here on).
    With(Box<State<T>>),
    /// Answer without calling the handler.
    Respond(Response),
}

/// Reads the cookie and loads (or creates) the request's session.
async fn prepare<T: SessionData>(
    ctx: &Arc<Ctx>,
    headers: &HeaderMap,
    secure: bool,
    genid_parts: Option<Arc<Parts>>,
) -> Prepared<T> {
    let (cookie_id, now) = cookie_and_clock(ctx, headers);
    let found = match (&cookie_id, now) {
        (Some(id), Some(now)) => time::lend(now, || ctx.store.load(id)).await,
        _ => Ok(None),
    };
    conclude(ctx, cookie_id, now, found, secure, genid_parts)
}

/// The verified id of the request's cookie, and the time when there is a session to
/// load (a new session reads the clock only if its cookie expires).
fn cookie_and_clock(ctx: &Ctx, headers: &HeaderMap) -> (Option<String>, Option<i64>) {
    let cookie_id = ctx.read_id(headers);
    let now = cookie_id.as_ref().map(|_| time::now_ms());
    (cookie_id, now)
}

/// [`prepare`] without a future, for the built-in store (which answers at once).
fn prepare_now<T: SessionData>(
    ctx: &Arc<Ctx>,
    memory: &MemoryStore,
    headers: &HeaderMap,
    secure: bool,
    genid_parts: Option<Arc<Parts>>,
) -> Prepared<T> {
    let (cookie_id, now) = cookie_and_clock(ctx, headers);
    let found = match (&cookie_id, now) {
        (Some(id), Some(now)) => time::lend(now, || memory.load_now(id)),
        _ => Ok(None),
    };
    conclude(ctx, cookie_id, now, found, secure, genid_parts)
}

/// The session of the request, from what its cookie and the store said.
fn conclude<T: SessionData>(
    ctx: &Arc<Ctx>,
    cookie_id: Option<String>,
    now: Option<i64>,
    found: Result<Option<Loaded>, StoreError>,
    secure: bool,
    genid_parts: Option<Arc<Parts>>,
) -> Prepared<T> {
    let loaded = match found {
        // (A session is only loaded when `now` was read.)
        Ok(Some(loaded))
            if loaded
                .cookie
                .expires
                .zip(now)
                .is_some_and(|(expires, now)| expires <= now) =>
        {
            tracing::warn!("store returned an expired session; starting a fresh session");
            None
        }
        Ok(found) => found,
        Err(StoreError::Corrupt(error)) => {
            tracing::warn!(%error, "stored session is corrupt; starting a fresh session");
            None
        }
        Err(error) => {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "session store failed to load a session"
            );
            return match ctx.options.store_error {
                StoreErrorPolicy::Fail => {
                    Prepared::Respond(error_response("session store unavailable"))
                }
                StoreErrorPolicy::ContinueWithoutSession => Prepared::Without,
            };
        }
    };

    let make = || match loaded {
        Some(mut loaded) => {
            loaded.cookie.changed = false;
            let id = cookie_id.unwrap_or_default();
            let resave = ctx.options.resave;
            Ok(State::<T>::loaded(
                Arc::clone(ctx),
                id,
                secure,
                genid_parts,
                loaded,
                !resave,
            ))
        }
        None => {
            let id = ctx.generate_id(genid_parts.as_deref())?;
            Ok(State::<T>::new(
                Arc::clone(ctx),
                id,
                cookie_id.is_some(),
                secure,
                genid_parts,
            ))
        }
    };
    let state: Result<State<T>, SessionError> = match now {
        Some(now) => time::lend(now, make),
        None => make(),
    };
    match state {
        Ok(state) => Prepared::With(Box::new(state)),
        Err(error) => {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "could not create a session"
            );
            Prepared::Respond(error_response("could not create a session"))
        }
    }
}

/// Lends the prepared session to the handler through the request extensions, or gives
/// the response to send instead.
#[allow(clippy::result_large_err)] // returned once per request, never stored
fn attach<T: SessionData, B>(
    prepared: Prepared<T>,
    req: &mut Request<B>,
) -> Result<Option<Slot<T>>, Response> {
    match prepared {
        Prepared::Without => Ok(None),
        Prepared::Respond(response) => Err(response),
        Prepared::With(state) => {
            let slot = Arc::new(std::sync::Mutex::new(Some(state)));
            req.extensions_mut().insert(SessionSlot(Arc::clone(&slot)));
            Ok(Some(slot))
        }
    }
}

// Plain fns returning async blocks rather than `async fn`s: an async fn keeps its
// arguments twice in its future (as captured and as locals). With the handler called from
// one place only, the boxed future stays under 1 KiB, within the allocator's fast path
// for small sizes.

/// The whole request, for a store that may make the session wait: prepare, then the
/// handler, then [`complete`].
#[allow(clippy::manual_async_fn)]
fn run<T, S, B>(
    ctx: Arc<Ctx>,
    mut inner: S,
    mut req: Request<B>,
) -> impl Future<Output = Result<Response, S::Error>>
where
    S: Service<Request<B>, Response = Response>,
    T: SessionData,
{
    async move {
        let secure = is_secure(&req, ctx.options.proxy);
        let prepared = if in_cookie_path(&ctx, &req) {
            let genid_parts = ctx.genid.as_ref().map(|_| Arc::new(head_copy(&req)));
            prepare::<T>(&ctx, req.headers(), secure, genid_parts).await
        } else {
            Prepared::Without
        };
        let slot = match attach(prepared, &mut req) {
            Ok(slot) => slot,
            Err(response) => return Ok(response),
        };
        complete(ctx, inner.call(req), slot, secure).await
    }
}

/// Waits for the handler's response, then takes the session back and persists it.
#[allow(clippy::manual_async_fn)]
fn complete<T, F, E>(
    ctx: Arc<Ctx>,
    handled: F,
    slot: Option<Slot<T>>,
    secure: bool,
) -> impl Future<Output = Result<Response, E>>
where
    F: Future<Output = Result<Response, E>>,
    T: SessionData,
{
    async move {
        let mut response = handled.await?;
        let Some(slot) = slot else {
            return Ok(response);
        };
        let Some(mut state) = reclaim_state(slot) else {
            tracing::error!(
                "the session is still held after the handler returned (moved into a spawned task?); \
             this request's session changes were not saved"
            );
            return Ok(error_response("session still in use"));
        };
        if let Err(error) = finish(&ctx, &mut state, secure, response.headers_mut()).await {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "failed to persist the session"
            );
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
async fn finish<T: SessionData>(
    ctx: &Ctx,
    st: &mut State<T>,
    request_secure: bool,
    headers: &mut HeaderMap,
) -> Result<(), SessionError> {
    let opts = &ctx.options;
    match st.phase {
        Phase::Destroyed => {
            if st.had_cookie {
                append_cookie(headers, st.cookie.render_clear(&opts.name));
            }
            return Ok(());
        }
        Phase::Unset => {
            if opts.unset == Unset::Destroy {
                ctx.store.destroy(&st.id).await?;
                if st.had_cookie {
                    append_cookie(headers, st.cookie.render_clear(&opts.name));
                }
            }
            return Ok(());
        }
        Phase::Active => {}
    }

    let changes = st.changes()?;
    // One clock read for the cookie's renewal and the store call.
    let now = time::now_ms();
    // The flag is per request: clear it before the cookie is handed to the store.
    let cookie_changed = st.cookie_changed || std::mem::take(&mut st.cookie.changed);
    let modified = st.modified || !changes.is_empty() || st.id_changed;
    let new_id = st.is_new_id();

    let mut set_cookie = if new_id {
        // Unlike express-session, a session the handler saved explicitly also gets its
        // cookie (express leaves an orphan record).
        opts.save_uninitialized || modified || st.in_store
    } else {
        opts.rolling || cookie_changed || (st.cookie.expires.is_some() && modified)
    };
    if set_cookie && st.cookie.secure() && !request_secure {
        tracing::debug!("not sending a Secure session cookie in reply to an insecure request");
        set_cookie = false;
    }
    time::lend(now, || st.cookie.touch());

    let should_save = if !opts.save_uninitialized && !st.in_store && new_id {
        modified
    } else {
        !(st.in_store && st.saved_clean && changes.is_empty() && !cookie_changed)
    };

    if should_save {
        if st.in_store {
            let patched = time::lend(now, || ctx.store.patch_fields(&st.id, &st.cookie, changes));
            if patched.await? == PatchOutcome::Missing {
                tracing::info!(
                    "session was destroyed or expired during the request; not recreating it"
                );
                set_cookie = false;
            }
        } else if let Some(memory) = ctx.store.memory() {
            // The built-in store writes the record straight from its parts.
            let fields = st.take_baseline()?;
            time::lend(now, || {
                memory.set_parts_now(&st.id, &st.cookie, &fields, &changes)
            })?;
        } else {
            let record = st.take_whole_record(&changes)?;
            time::lend(now, || ctx.store.set(&st.id, &record)).await?;
        }
    } else if st.in_store && !new_id && !st.saved_in_request {
        time::lend(now, || ctx.store.touch(&st.id, &st.cookie)).await?;
    }

    if set_cookie {
        append_cookie(headers, ctx.render_cookie(&st.cookie, &st.id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::Secret;

    #[test]
    fn the_default_cookie_written_in_place_equals_the_generic_rendering() {
        let secrets = Secrets::from(Secret::new("keyboard cat").unwrap());
        let ctx = Ctx {
            store: Arc::new(MemoryStore::default()),
            signer: Arc::new(HmacSigner),
            secrets,
            options: SessionOptions::default(),
            genid: None,
            default_signer: true,
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
