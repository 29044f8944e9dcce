//! The setters the derive calls with values it checked at compile time.

use std::sync::Arc;
use std::time::Duration;

use super::SessionOptions;
use crate::rules;

/// The setters `#[derive(SessionData)]` calls with the values it checked at compile
/// time. Not a public API: generated code reaches them through `tessera::__private`.
#[doc(hidden)]
pub trait CheckedSetters: Sized {
    #[doc(hidden)]
    fn __name(self, name: &str) -> Self;
    #[doc(hidden)]
    fn __path(self, path: &str) -> Self;
    #[doc(hidden)]
    fn __domain(self, domain: &str) -> Self;
    #[doc(hidden)]
    fn __max_age_ms(self, ms: u64) -> Self;
    #[doc(hidden)]
    fn __idle_timeout_ms(self, ms: u64) -> Self;
    #[doc(hidden)]
    fn __absolute_timeout_ms(self, ms: u64) -> Self;
    #[doc(hidden)]
    fn __id_header(self, name: &str) -> Self;
    #[doc(hidden)]
    fn __expires_ms(self, ms: i64) -> Self;
}

impl CheckedSetters for SessionOptions {
    // The hidden setters take what `#[derive(SessionData)]` checked at compile time. They
    // check again, so that a value that never went through the macro cannot reach a
    // `Set-Cookie` header: an invalid one is refused with an error event and the option
    // keeps its previous value.

    fn __name(mut self, name: &str) -> Self {
        match rules::check_cookie_name(name) {
            Ok(()) => self.name = name.to_owned(),
            Err(m) => tracing::error!(option = "name", "{m}; the option is left unchanged"),
        }
        self
    }

    fn __path(mut self, path: &str) -> Self {
        match rules::check_cookie_path(path) {
            Ok(()) => self.cookie.path = Arc::from(path),
            Err(m) => tracing::error!(option = "path", "{m}; the option is left unchanged"),
        }
        self
    }

    fn __domain(mut self, domain: &str) -> Self {
        match rules::check_cookie_domain(domain) {
            Ok(()) => self.cookie.domain = Some(Arc::from(domain)),
            Err(m) => tracing::error!(option = "domain", "{m}; the option is left unchanged"),
        }
        self
    }

    fn __max_age_ms(mut self, ms: u64) -> Self {
        self.cookie.max_age = Some(Duration::from_millis(ms));
        self.cookie.expires = None;
        self
    }

    fn __idle_timeout_ms(self, ms: u64) -> Self {
        self.with_idle_timeout(Some(Duration::from_millis(ms.max(1))))
            .unwrap_or_else(|_| unreachable!("a nonzero duration is accepted"))
    }

    fn __absolute_timeout_ms(mut self, ms: u64) -> Self {
        self.absolute_timeout = Some(Duration::from_millis(ms.max(1)));
        self
    }

    fn __id_header(self, name: &str) -> Self {
        let fallback = self.clone();
        match self.with_id_header(Some(name)) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(option = "id_header", "{e}; the option is left unchanged");
                fallback
            }
        }
    }

    fn __expires_ms(self, ms: i64) -> Self {
        self.with_expires(Some(crate::time::ms_to_system_time(ms)))
    }
}
