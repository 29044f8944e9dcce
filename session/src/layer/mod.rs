//! The middleware. The layer lends each request an unopened session slot; the extractor
//! opens it (`lifecycle::open`: the store's one read); the layer takes it back after
//! the handler and persists it (`lifecycle::finish`), by express-session's decisions
//! (`decide.rs`). The rooms: this file (the layer, its builder and the service),
//! `reading.rs` (the signed id on the wire: cookie or header, verified or written),
//! `lifecycle.rs` (open, complete, finish) and `id.rs` (session ids).

mod id;
mod lifecycle;
mod reading;

pub(crate) use id::default_id;
use lifecycle::complete;
pub(crate) use lifecycle::open;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::response::Response;
use http::Request;
use http::request::Parts;
use http::uri::Scheme;
use tower_layer::Layer;
use tower_service::Service;

use crate::data::SessionData;
use crate::options::{ConfigError, SessionOptions};
use crate::session::{SessionError, SessionSlot, Slot};
use crate::signing::{Secrets, Signer};
use crate::store::memory::MemoryStore;
use crate::store::{DynStore, SessionStore};
use crate::time;

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

/// Who signs the cookie.
#[derive(Clone)]
pub(crate) enum CookieSigner {
    /// express-session's [`HmacSigner`](crate::HmacSigner): its verified values may be remembered, and the
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
                 (#[session(resave = false)] or SessionOptions::with_resave); the default is true"
            );
        }
        if !self.options.explicit_save_uninitialized {
            tracing::warn!(
                "undefined saveUninitialized option; provide saveUninitialized option \
                 (#[session(save_uninitialized = false)] or SessionOptions::with_save_uninitialized); \
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
    /// [`HmacSigner`](crate::HmacSigner) and random 32-character ids. Pass one [`crate::Secret`] or a
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
    /// [`HmacSigner`](crate::HmacSigner) lets each thread remember the values that verified, so a browser's
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
    /// in time (idle and absolute timeouts, expiry) without sleeping. The layer reads it
    /// once per step of a request and passes that `now` down (the cookie's renewal, the
    /// timeouts); stores keep their own clocks, as Redis and PostgreSQL keep the
    /// server's, so give the [`MemoryStore`] the same one with
    /// [`MemoryStore::with_clock`] when its expiry should travel too.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::{Duration, SystemTime};
    /// # #[derive(tessera::SessionData, Default)] struct Visit { views: u64 }
    /// # fn main() -> Result<(), tessera::ConfigError> {
    /// let now = Arc::new(Mutex::new(SystemTime::now()));
    /// let (for_layer, for_store) = (Arc::clone(&now), Arc::clone(&now));
    /// let store = tessera::MemoryStore::new().with_clock(move || *for_store.lock().unwrap());
    /// let layer = tessera::SessionLayer::<Visit>::new(tessera::Secret::new("a long, random secret of 32 bytes or more")?)
    ///     .with_store(store)
    ///     .with_clock(move || *for_layer.lock().unwrap());
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
    ///
    /// # Errors
    ///
    /// The errors of [`SessionOptions::validate`].
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
