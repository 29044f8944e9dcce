//! Session options: express-session's options with its defaults, checked by the rules in
//! [`crate::rules`] whether they come from the derive attribute or from configuration.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::rules;

/// A misconfiguration found when building a [`crate::SessionLayer`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A secret with no bytes.
    #[error("session secret is empty; pass a long random string")]
    EmptySecret,
    /// A secret shorter than [`crate::Secret::MIN_LEN`] bytes.
    #[error(
        "session secret is {len} bytes; use at least {min} random bytes \
         (for example `openssl rand -base64 48`), or `Secret::short_for_migration` \
         to keep an existing express-session secret while moving"
    )]
    ShortSecret {
        /// The secret's length in bytes.
        len: usize,
        /// The least accepted.
        min: usize,
    },
    /// An empty list of secrets.
    #[error("the secret list must contain one or more secrets")]
    NoSecrets,
    /// The environment variable that should hold the secret is unset or empty.
    #[error("environment variable `{0}` with the session secret is not set (or empty)")]
    MissingSecretVar(String),
    /// A configuration key that names no option.
    #[error("unknown session option `{key}`{}", suggestion.map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownOption {
        /// The key as written.
        key: String,
        /// The closest known option, if any is close.
        suggestion: Option<&'static str>,
    },
    /// An option value that breaks one of the rules.
    #[error("invalid session option `{option}`: {message}")]
    Invalid {
        /// The option, as named in the `#[session(...)]` attribute.
        option: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An environment variable read by [`SessionOptions::with_env`] holds a bad value.
    #[error("environment variable `{variable}`: {source}")]
    Env {
        /// The variable's full name.
        variable: String,
        /// What is wrong with its value.
        #[source]
        source: Box<ConfigError>,
    },
}

impl ConfigError {
    pub(crate) fn invalid(option: &'static str, message: String) -> Self {
        Self::Invalid { option, message }
    }
}

// The choice options are the enums of `tessera-rules`, shared with the derive: the macro
// and the runtime parse and check the same types, not strings.
pub use crate::rules::{Priority, SameSite, Secure, Unset};

impl From<crate::rules::ChoiceError> for ConfigError {
    fn from(e: crate::rules::ChoiceError) -> Self {
        ConfigError::invalid(e.option, e.message)
    }
}

/// A session that would outgrow a limit of [`SessionOptions`].
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitError {
    /// More keys than `max_keys`.
    #[error("the session would hold {keys} keys, more than max_keys ({max})")]
    TooManyKeys {
        /// The keys it would hold.
        keys: usize,
        /// The limit.
        max: usize,
    },
    /// More bytes than `max_record_bytes`.
    #[error("the session would be about {bytes} bytes of JSON, more than max_record_bytes ({max})")]
    TooLarge {
        /// About how many bytes it would be.
        bytes: usize,
        /// The limit.
        max: usize,
    },
}

/// What a request gets when the store fails while loading its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StoreErrorPolicy {
    /// Answer `500 Internal Server Error` without calling the handler (express-session's
    /// behaviour).
    #[default]
    Fail,
    /// Call the handler without a session: `Option<Session<T>>` is `None`.
    ContinueWithoutSession,
    /// Answer `503 Service Unavailable` with `Retry-After` (whole seconds, at least one)
    /// without calling the handler, so that a load balancer or a client retries later.
    /// A store that fails while saving gets the same answer.
    ServiceUnavailable {
        /// What `Retry-After` says.
        retry_after: Duration,
    },
}

/// Cookie settings applied to new sessions (a loaded session keeps its stored cookie,
/// as in express-session).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieOptions {
    pub(crate) path: Arc<str>,
    pub(crate) domain: Option<Arc<str>>,
    pub(crate) http_only: bool,
    pub(crate) secure: Secure,
    pub(crate) same_site: Option<SameSite>,
    pub(crate) partitioned: bool,
    pub(crate) priority: Option<Priority>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) expires: Option<SystemTime>,
}

impl Default for CookieOptions {
    fn default() -> Self {
        Self {
            path: crate::cookie::root_path(),
            domain: None,
            http_only: true,
            secure: Secure::Never,
            same_site: None,
            partitioned: false,
            priority: None,
            max_age: None,
            expires: None,
        }
    }
}

/// All options of a session layer. Start from [`SessionOptions::default`] (express-session's
/// defaults) or from what `#[session(...)]` declared, and change them with the setters.
///
/// ```
/// use tessera::{SessionOptions, SameSite};
/// let opts = SessionOptions::default()
///     .with_name("sid")?
///     .with_path("/app")?
///     .with_same_site(Some("lax".parse()?))
///     .with_rolling(true);
/// assert_eq!(opts.name(), "sid");
/// # Ok::<(), tessera::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    pub(crate) name: String,
    pub(crate) cookie: CookieOptions,
    pub(crate) resave: bool,
    pub(crate) rolling: bool,
    pub(crate) save_uninitialized: bool,
    pub(crate) unset: Unset,
    pub(crate) proxy: Option<bool>,
    pub(crate) store_error: StoreErrorPolicy,
    pub(crate) touch_after: Option<std::time::Duration>,
    pub(crate) max_keys: usize,
    pub(crate) max_record_bytes: usize,
    /// `idle_timeout`: the cookie's max-age, renewed on every request.
    pub(crate) idle_timeout: Option<Duration>,
    /// `absolute_timeout`: the longest a session lives from its creation.
    pub(crate) absolute_timeout: Option<Duration>,
    /// `id_header`: the header that carries the signed id for API clients.
    pub(crate) id_header: Option<http::HeaderName>,
    /// Whether `resave` and `save_uninitialized` were given (express warns when not).
    pub(crate) explicit_resave: bool,
    pub(crate) explicit_save_uninitialized: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            name: "connect.sid".to_owned(),
            cookie: CookieOptions::default(),
            resave: true,
            rolling: false,
            save_uninitialized: true,
            unset: Unset::Keep,
            proxy: None,
            store_error: StoreErrorPolicy::Fail,
            touch_after: None,
            max_keys: Self::DEFAULT_MAX_KEYS,
            max_record_bytes: Self::DEFAULT_MAX_RECORD_BYTES,
            idle_timeout: None,
            absolute_timeout: None,
            id_header: None,
            explicit_resave: false,
            explicit_save_uninitialized: false,
        }
    }
}

impl SessionOptions {
    /// The default of [`SessionOptions::with_max_keys`]: 10,000 keys.
    pub const DEFAULT_MAX_KEYS: usize = 10_000;
    /// The default of [`SessionOptions::with_max_record_bytes`]: 1 MiB.
    pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

    /// The most keys a session may hold (default [`Self::DEFAULT_MAX_KEYS`]). A change
    /// that would pass it is not saved: the request answers `500` naming the limit, a
    /// `tracing` event says which, and the stored session stays as it was. A stored
    /// session that already holds more (written by another service) is not loaded: the
    /// request starts a fresh session, with an event.
    pub fn with_max_keys(mut self, max: usize) -> Self {
        self.max_keys = max.max(1);
        self
    }

    /// The most bytes of a session's stored fields, as compact JSON (default
    /// [`Self::DEFAULT_MAX_RECORD_BYTES`]); enforced like [`Self::max_keys`].
    pub fn with_max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max.max(1);
        self
    }

    /// Checks the size the fields would have after a change.
    pub(crate) fn check_size(&self, keys: usize, bytes: usize) -> Result<(), LimitError> {
        if keys > self.max_keys {
            return Err(LimitError::TooManyKeys {
                keys,
                max: self.max_keys,
            });
        }
        if bytes > self.max_record_bytes {
            return Err(LimitError::TooLarge {
                bytes,
                max: self.max_record_bytes,
            });
        }
        Ok(())
    }

    /// The cookie name (default `connect.sid`). Must be an RFC 6265 token.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a name that is not an RFC 6265 token.
    pub fn with_name(mut self, name: &str) -> Result<Self, ConfigError> {
        rules::check_cookie_name(name).map_err(|m| ConfigError::invalid("name", m))?;
        self.name = name.to_owned();
        Ok(self)
    }

    /// The cookie `Path` (default `/`). Requests outside it get no session.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a path that does not start with `/`, has `;`,
    /// control characters, or whitespace at either end.
    pub fn with_path(mut self, path: &str) -> Result<Self, ConfigError> {
        rules::check_cookie_path(path).map_err(|m| ConfigError::invalid("path", m))?;
        self.cookie.path = Arc::from(path);
        Ok(self)
    }

    /// The cookie `Domain` (default: none, a host-only cookie).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a domain with a scheme, a port or characters a host
    /// name cannot have.
    pub fn with_domain(mut self, domain: Option<&str>) -> Result<Self, ConfigError> {
        if let Some(d) = domain {
            rules::check_cookie_domain(d).map_err(|m| ConfigError::invalid("domain", m))?;
        }
        self.cookie.domain = domain.map(Arc::from);
        Ok(self)
    }

    /// `HttpOnly` (default true).
    pub fn with_http_only(mut self, on: bool) -> Self {
        self.cookie.http_only = on;
        self
    }

    /// `Secure` (default [`Secure::Never`]).
    pub fn with_secure(mut self, secure: Secure) -> Self {
        self.cookie.secure = secure;
        self
    }

    /// `SameSite` (default: not sent).
    pub fn with_same_site(mut self, same_site: Option<SameSite>) -> Self {
        self.cookie.same_site = same_site;
        self
    }

    /// `Partitioned` (CHIPS; default off).
    pub fn with_partitioned(mut self, on: bool) -> Self {
        self.cookie.partitioned = on;
        self
    }

    /// `Priority` (default: not sent).
    pub fn with_priority(mut self, priority: Option<Priority>) -> Self {
        self.cookie.priority = priority;
        self
    }

    /// The session lifetime, renewed on every request (express's `cookie.maxAge`).
    /// `None` (the default) makes a browser-session cookie. Replaces `expires`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a zero duration.
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> Result<Self, ConfigError> {
        if max_age == Some(Duration::ZERO) {
            return Err(ConfigError::invalid(
                "max_age",
                "a zero max-age expires the session at once; use None for a browser-session cookie"
                    .to_owned(),
            ));
        }
        self.cookie.max_age = max_age;
        self.cookie.expires = None;
        Ok(self)
    }

    /// A fixed expiry date for new sessions (express's `cookie.expires`): as in
    /// express-session the time left at creation becomes the session's max-age.
    /// Replaces `max_age`.
    pub fn with_expires(mut self, expires: Option<SystemTime>) -> Self {
        self.cookie.expires = expires;
        self.cookie.max_age = None;
        self
    }

    /// Save sessions that were not modified (express default: true).
    pub fn with_resave(mut self, on: bool) -> Self {
        self.resave = on;
        self.explicit_resave = true;
        self
    }

    /// Send the cookie (and renew its expiry) on every response (default false).
    pub fn with_rolling(mut self, on: bool) -> Self {
        self.rolling = on;
        self
    }

    /// Store new sessions that were not modified (express default: true).
    pub fn with_save_uninitialized(mut self, on: bool) -> Self {
        self.save_uninitialized = on;
        self.explicit_save_uninitialized = true;
        self
    }

    /// What [`crate::Session::unset`] does (default [`Unset::Keep`]).
    pub fn with_unset(mut self, unset: Unset) -> Self {
        self.unset = unset;
        self
    }

    /// Trust `X-Forwarded-Proto` (`Some(true)`), or only the connection (`Some(false)` and
    /// `None`; axum has no "trust proxy" setting to fall back to).
    pub fn with_proxy(mut self, proxy: Option<bool>) -> Self {
        self.proxy = proxy;
        self
    }

    /// What happens when the store fails to load a session (default: 500).
    pub fn with_store_error_policy(mut self, policy: StoreErrorPolicy) -> Self {
        self.store_error = policy;
        self
    }

    /// Lazy touches (connect-mongo's `touchAfter`): an unchanged session is not touched
    /// while the touch would move its expiry by less than `after`, which saves a store
    /// round trip on most read-only requests. `None` (the default) touches on every
    /// request, as express-session does. A session then expires up to `after` earlier
    /// than it would with express.
    pub fn with_touch_after(mut self, after: Option<std::time::Duration>) -> Self {
        self.touch_after = after;
        self
    }

    /// Ends a session that has seen no request for `idle` (OWASP's idle timeout). It is
    /// the cookie's max-age with [`rolling`](Self::rolling): every request renews the
    /// session for another `idle`, in the browser and in the store. It replaces
    /// `max_age` and `expires`, and turns `rolling` on; [`Self::validate`] refuses a
    /// later `max_age` or `rolling(false)` that would contradict it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let o = tessera::SessionOptions::default()
    ///     .with_idle_timeout(Some(Duration::from_secs(30 * 60)))?
    ///     .with_absolute_timeout(Some(Duration::from_secs(12 * 3600)))?;
    /// assert!(o.validate().is_ok());
    /// # Ok::<(), tessera::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a zero duration.
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Result<Self, ConfigError> {
        if idle == Some(Duration::ZERO) {
            return Err(ConfigError::invalid(
                "idle_timeout",
                "a zero idle timeout ends every session at once; use None for no idle timeout"
                    .to_owned(),
            ));
        }
        self.idle_timeout = idle;
        if idle.is_some() {
            self.cookie.max_age = idle;
            self.cookie.expires = None;
            self.rolling = true;
        }
        Ok(self)
    }

    /// Ends every session `absolute` after it was created, however active it is (OWASP's
    /// absolute timeout). The creation time is stored in the record under the
    /// [`META_KEY`](crate::META_KEY) entry; [`crate::Session::rotate_id`] keeps it and
    /// [`crate::Session::regenerate`] starts it again. A session past it is destroyed and
    /// replaced by a fresh one, with a `tracing` event. A stored session without a
    /// creation time (written by a Node service, or before this option was on) is
    /// counted from the first request that sees it. The cookie's expiry, and so the
    /// store's, is never renewed past `created + absolute`: the browser drops the cookie
    /// and the store the record at the deadline, whether or not a request comes (a
    /// browser-session cookie, without an expiry, stays one).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a zero duration.
    pub fn with_absolute_timeout(
        mut self,
        absolute: Option<Duration>,
    ) -> Result<Self, ConfigError> {
        if absolute == Some(Duration::ZERO) {
            return Err(ConfigError::invalid(
                "absolute_timeout",
                "a zero absolute timeout ends every session at once; use None for no absolute timeout"
                    .to_owned(),
            ));
        }
        self.absolute_timeout = absolute;
        Ok(self)
    }

    /// Lets API clients (mobile apps, command-line tools) carry the signed session id in
    /// the request header `name` (for example `X-Session-Id`) instead of a cookie. The
    /// value is the cookie's value: `s:` + id + `.` + signature, URL-encoded or not.
    ///
    /// - A request that sends the header uses it, and the cookie is ignored: the header
    ///   is what the client chose to send, while a cookie is sent by the browser on its
    ///   own. An empty header asks for a new session over the header.
    /// - Such a request gets the signed id back in the same response header when it is
    ///   new or changed (a new session, `regenerate`, `rotate_id`), and never a
    ///   `Set-Cookie`.
    /// - A request without the header uses the cookie, as before.
    ///
    /// CSRF: browsers never add a custom header to a cross-site request by themselves
    /// (it needs a CORS preflight that your server must allow), so a header-carried id
    /// cannot be ridden by another site. That is the point of it. The client keeps the
    /// id where its platform keeps secrets; unlike an `HttpOnly` cookie, script on your
    /// own pages could read it if you hand it to a browser.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a name that is not a header token, or names a header
    /// with a meaning of its own (`Cookie`, `Authorization`, ...).
    pub fn with_id_header(mut self, name: Option<&str>) -> Result<Self, ConfigError> {
        self.id_header = match name {
            None => None,
            Some(n) => {
                rules::check_id_header(n).map_err(|m| ConfigError::invalid("id_header", m))?;
                Some(
                    http::HeaderName::from_bytes(n.as_bytes())
                        .map_err(|e| ConfigError::invalid("id_header", e.to_string()))?,
                )
            }
        };
        Ok(self)
    }
}

mod checked;
mod getters;

pub use checked::CheckedSetters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_express_session_defaults() {
        let o = SessionOptions::default();
        assert_eq!(o.name, "connect.sid");
        assert_eq!(&*o.cookie.path, "/");
        assert!(o.cookie.http_only);
        assert_eq!(o.cookie.secure, Secure::Never);
        assert_eq!(o.cookie.max_age, None);
        assert!(o.resave && o.save_uninitialized && !o.rolling);
        assert_eq!(o.unset, Unset::Keep);
        assert_eq!(o.proxy, None);
    }

    #[test]
    fn runtime_setters_reject_invalid_values_with_clear_messages() {
        let err = SessionOptions::default().with_name("bad name").unwrap_err();
        assert!(err.to_string().contains("a space"), "{err}");
        let err = SessionOptions::default().with_path("app").unwrap_err();
        assert!(err.to_string().contains("must start with"), "{err}");
        let err = SessionOptions::default()
            .with_domain(Some("http://x.com"))
            .unwrap_err();
        assert!(err.to_string().contains("scheme"), "{err}");
        assert!(
            SessionOptions::default()
                .with_max_age(Some(Duration::ZERO))
                .is_err()
        );
        let err = "sometimes".parse::<SameSite>().unwrap_err();
        assert!(
            err.to_string()
                .contains("\"strict\", \"lax\", \"none\", \"auto\""),
            "{err}"
        );
        assert!("maybe".parse::<Unset>().is_err());
        assert!("urgent".parse::<Priority>().is_err());
        assert_eq!("AUTO".parse::<Secure>(), Ok(Secure::Auto));
    }
}
