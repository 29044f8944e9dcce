//! The getters of [`SessionOptions`]: one per option, named after it.

use std::time::{Duration, SystemTime};

use super::{Priority, SameSite, Secure, SessionOptions, StoreErrorPolicy, Unset};

impl SessionOptions {
    /// The cookie name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie `Path`: requests outside it get no session.
    pub fn path(&self) -> &str {
        &self.cookie.path
    }

    /// The cookie `Domain`, if set.
    pub fn domain(&self) -> Option<&str> {
        self.cookie.domain.as_deref()
    }

    /// `HttpOnly`.
    pub fn http_only(&self) -> bool {
        self.cookie.http_only
    }

    /// The `secure` option.
    pub fn secure(&self) -> Secure {
        self.cookie.secure
    }

    /// `SameSite`, if set.
    pub fn same_site(&self) -> Option<SameSite> {
        self.cookie.same_site
    }

    /// `Partitioned`.
    pub fn partitioned(&self) -> bool {
        self.cookie.partitioned
    }

    /// `Priority`, if set.
    pub fn priority(&self) -> Option<Priority> {
        self.cookie.priority
    }

    /// The max-age of new sessions, if set.
    pub fn max_age(&self) -> Option<Duration> {
        self.cookie.max_age
    }

    /// The fixed expiry date of new sessions, if set.
    pub fn expires(&self) -> Option<SystemTime> {
        self.cookie.expires
    }

    /// `resave`.
    pub fn resave(&self) -> bool {
        self.resave
    }

    /// `rolling`.
    pub fn rolling(&self) -> bool {
        self.rolling
    }

    /// `saveUninitialized`.
    pub fn save_uninitialized(&self) -> bool {
        self.save_uninitialized
    }

    /// `unset`.
    pub fn unset(&self) -> Unset {
        self.unset
    }

    /// `proxy`.
    pub fn proxy(&self) -> Option<bool> {
        self.proxy
    }

    /// What a failed load answers.
    pub fn store_error_policy(&self) -> StoreErrorPolicy {
        self.store_error
    }

    /// `touch_after`, if set.
    pub fn touch_after(&self) -> Option<Duration> {
        self.touch_after
    }

    /// The most keys a session may hold.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// The most bytes of a session's stored fields.
    pub fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }

    /// The idle timeout, if set.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// The absolute timeout, if set.
    pub fn absolute_timeout(&self) -> Option<Duration> {
        self.absolute_timeout
    }

    /// The header that carries the signed id for API clients, if set.
    pub fn id_header(&self) -> Option<&http::HeaderName> {
        self.id_header.as_ref()
    }
}
