//! The session cookie: the per-session model stored with the record (express-session's
//! `Cookie`), its `Set-Cookie` rendering, and reading the request's `Cookie` header.
//!
//! Why not the `cookie` crate, which the fuzz target `set_cookie` uses to check this
//! rendering: it cannot produce express-session's bytes, which Node services sharing the
//! sessions and the tests against the real express-session compare.
//! - **Attribute order.** express writes `Domain, Path, Expires, HttpOnly, Secure,
//!   Partitioned, Priority, SameSite`; the `cookie` crate has its own order.
//! - **`Priority`.** The `cookie` crate has no `Priority` attribute.
//! - **Automatic `Secure` and `SameSite`.** `secure = "auto"` and `same_site = "auto"`
//!   depend on the request, and a `Secure` cookie is held back over plain http; the crate
//!   renders what it is given.
//! - **Strict decoding.** The value is express's `encodeURIComponent` of `s:` + id +
//!   signature, and reading undoes `decodeURIComponent`, keeping the raw text when that
//!   would throw; the crate's percent-encoding and -decoding are not JavaScript's.
//! - **First wins.** Of several cookies with the session's name the first is read, as
//!   express's `cookie.parse` does; the crate's jar keeps the last.

pub(crate) mod signing;
pub(crate) mod verified;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::COOKIE;

use crate::options::{CookieOptions, Priority, SameSite, Secure};
use crate::time;

/// The cookie of one session, stored with its record exactly like express-session's
/// `cookie` object, so Node and Rust read each other's sessions.
///
/// A loaded session keeps its stored attributes; the layer's options apply to new
/// sessions only (as in express-session).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCookie {
    pub(crate) original_max_age: Option<i64>,
    pub(crate) expires: Option<i64>,
    pub(crate) secure: Option<bool>,
    pub(crate) http_only: bool,
    pub(crate) domain: Option<Arc<str>>,
    pub(crate) path: Arc<str>,
    pub(crate) same_site: Option<SameSite>,
    pub(crate) partitioned: Option<bool>,
    pub(crate) priority: Option<Priority>,
    /// Set by the explicit setters; not stored.
    pub(crate) changed: bool,
}

/// The longest lifetime a session cookie gets: 400 days, the limit browsers apply to
/// any cookie (RFC 6265bis). A longer `maxAge` (from the options, a setter, or a record
/// another writer stored) is cut to it, and a shorter negative one to its negation, so
/// that no arithmetic on it overflows and no session outlives every browser's cookie.
pub const MAX_COOKIE_AGE: Duration = Duration::from_secs(400 * 24 * 60 * 60);

/// [`MAX_COOKIE_AGE`] in milliseconds.
const MAX_AGE_MS: i64 = 400 * 24 * 60 * 60 * 1000;

/// `ms` cut to `±MAX_COOKIE_AGE`.
pub(crate) fn clamp_age_ms(ms: i64) -> i64 {
    ms.clamp(-MAX_AGE_MS, MAX_AGE_MS)
}

/// The shared `"/"`: most cookies have it, and sharing it saves an allocation per session.
pub(crate) fn root_path() -> Arc<str> {
    static ROOT: OnceLock<Arc<str>> = OnceLock::new();
    Arc::clone(ROOT.get_or_init(|| Arc::from("/")))
}

impl Default for SessionCookie {
    fn default() -> Self {
        Self {
            original_max_age: None,
            expires: None,
            secure: None,
            http_only: true,
            domain: None,
            path: root_path(),
            same_site: None,
            partitioned: None,
            priority: None,
            changed: false,
        }
    }
}

impl SessionCookie {
    /// A cookie for a new session, resolving the `auto` settings against whether the
    /// request that creates it is secure.
    /// The cookie of a new session; `now` is only read when the options set an expiry.
    pub(crate) fn from_options(
        opts: &CookieOptions,
        request_is_secure: bool,
        now: impl FnOnce() -> i64,
    ) -> Self {
        let secure = match opts.secure {
            Secure::Always => Some(true),
            Secure::Never => None,
            Secure::Auto => Some(request_is_secure),
        };
        let same_site = opts.same_site.map(|s| match s {
            SameSite::Auto if request_is_secure => SameSite::None,
            SameSite::Auto => SameSite::Lax,
            other => other,
        });
        let (original_max_age, expires) = match (opts.max_age, opts.expires) {
            (Some(age), _) => {
                let age = clamp_age_ms(time::duration_ms(age));
                (Some(age), Some(now().saturating_add(age)))
            }
            (None, Some(at)) => {
                let now = now();
                let age = clamp_age_ms(time::system_time_to_ms(at).saturating_sub(now));
                (Some(age), Some(now.saturating_add(age)))
            }
            (None, None) => (None, None),
        };
        Self {
            original_max_age,
            expires,
            secure,
            http_only: opts.http_only,
            domain: opts.domain.clone(),
            path: opts.path.clone(),
            same_site,
            partitioned: opts.partitioned.then_some(true),
            priority: opts.priority,
            changed: false,
        }
    }

    /// Time left until the cookie expires, in milliseconds (negative once expired);
    /// `None` for a browser-session cookie. This is express's `cookie.maxAge`.
    pub fn max_age_ms(&self) -> Option<i64> {
        self.expires.map(|e| e.saturating_sub(time::now_ms()))
    }

    /// Time left until the cookie expires (zero once expired); `None` for a
    /// browser-session cookie.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age_ms()
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }

    /// Sets the lifetime of this session from now on ("remember me"); `None` turns it
    /// into a browser-session cookie. Each later request renews it by the same amount.
    pub fn set_max_age(&mut self, max_age: Option<Duration>) {
        self.set_max_age_ms(max_age.map(time::duration_ms));
    }

    /// [`Self::set_max_age`] in milliseconds (a negative value expires the cookie). Cut to
    /// [`MAX_COOKIE_AGE`] either way.
    pub fn set_max_age_ms(&mut self, max_age_ms: Option<i64>) {
        match max_age_ms {
            Some(ms) => {
                let ms = clamp_age_ms(ms);
                self.expires = Some(time::now_ms().saturating_add(ms));
                self.original_max_age = Some(ms);
            }
            None => {
                self.expires = None;
                self.original_max_age = None;
            }
        }
        self.changed = true;
    }

    /// The max-age the session was given, in milliseconds (express's `originalMaxAge`).
    pub fn original_max_age_ms(&self) -> Option<i64> {
        self.original_max_age
    }

    /// When the cookie expires; `None` for a browser-session cookie.
    pub fn expires(&self) -> Option<SystemTime> {
        self.expires.map(time::ms_to_system_time)
    }

    /// Sets the expiry date; as in express the time left becomes the max-age that later
    /// requests renew. A date beyond [`MAX_COOKIE_AGE`] from now is brought back to it.
    pub fn set_expires(&mut self, expires: Option<SystemTime>) {
        match expires {
            Some(at) => {
                let now = time::now_ms();
                let age = clamp_age_ms(time::system_time_to_ms(at).saturating_sub(now));
                self.expires = Some(now.saturating_add(age));
                self.original_max_age = Some(age);
            }
            None => {
                self.expires = None;
                self.original_max_age = None;
            }
        }
        self.changed = true;
    }

    /// The cookie with its expiry moved to `at`, for a store that keeps the deadline
    /// apart from the stored cookie (a key's TTL) and reports it on load. A
    /// browser-session cookie (no expiry) stays one; nothing is marked changed.
    pub fn with_expires_at(mut self, at: SystemTime) -> Self {
        if self.expires.is_some() {
            self.expires = Some(time::system_time_to_ms(at));
        }
        self
    }

    /// Renews the expiry: `expires = now + originalMaxAge` (express's `touch`).
    pub fn touch(&mut self) {
        self.touch_at(time::now_ms());
    }

    /// [`Self::touch`] at `now` (milliseconds since the epoch, the layer's clock).
    pub(crate) fn touch_at(&mut self, now: i64) {
        if let Some(age) = self.original_max_age {
            self.expires = Some(now.saturating_add(age));
        }
    }

    /// Brings the expiry back to `deadline` (milliseconds since the epoch) if it is
    /// later: the absolute timeout's cap. A browser-session cookie (no expiry) stays
    /// one, and the max-age later requests renew by is unchanged.
    pub(crate) fn cap_expires_at(&mut self, deadline: i64) {
        if let Some(expires) = &mut self.expires {
            *expires = (*expires).min(deadline);
        }
    }

    /// The cookie `Path`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The cookie `Domain`, if any.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Whether the cookie is `Secure`.
    pub fn secure(&self) -> bool {
        self.secure == Some(true)
    }

    /// Whether the cookie is `HttpOnly`.
    pub fn http_only(&self) -> bool {
        self.http_only
    }

    /// The resolved `SameSite` attribute (never [`SameSite::Auto`]).
    pub fn same_site(&self) -> Option<SameSite> {
        self.same_site
    }

    /// Whether the cookie is `Partitioned`.
    pub fn partitioned(&self) -> bool {
        self.partitioned == Some(true)
    }

    /// The `Priority` attribute.
    pub fn priority(&self) -> Option<Priority> {
        self.priority
    }

    /// Renders the `Set-Cookie` value in express-session's attribute order:
    /// `Domain, Path, Expires, HttpOnly, Secure, Partitioned, Priority, SameSite`.
    pub(crate) fn render(&self, name: &str, signed_value: &str) -> String {
        self.render_with(name, signed_value.len(), |out| {
            encode_uri_component(signed_value, out);
        })
    }

    /// [`SessionCookie::render`] with the value (URL-encoded) written by `value`, in
    /// place; `len` is about how long the value is before encoding.
    pub(crate) fn render_with(
        &self,
        name: &str,
        len: usize,
        value: impl FnOnce(&mut String),
    ) -> String {
        let mut out = String::with_capacity(name.len() + len + 96);
        out.push_str(name);
        out.push('=');
        value(&mut out);
        self.render_attributes(self.expires, &mut out);
        out
    }

    /// A `Set-Cookie` that makes the browser drop the cookie.
    pub(crate) fn render_clear(&self, name: &str) -> String {
        let mut out = String::with_capacity(name.len() + 96);
        out.push_str(name);
        out.push('=');
        self.render_attributes(Some(0), &mut out);
        out
    }

    fn render_attributes(&self, expires: Option<i64>, out: &mut String) {
        if let Some(d) = &self.domain {
            out.push_str("; Domain=");
            out.push_str(d);
        }
        out.push_str("; Path=");
        out.push_str(&self.path);
        if let Some(e) = expires {
            out.push_str("; Expires=");
            time::push_http_date(e, out);
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if self.secure() {
            out.push_str("; Secure");
        }
        if self.partitioned() {
            out.push_str("; Partitioned");
        }
        if let Some(p) = self.priority {
            out.push_str(match p {
                Priority::Low => "; Priority=Low",
                Priority::Medium => "; Priority=Medium",
                Priority::High => "; Priority=High",
            });
        }
        if let Some(s) = self.same_site {
            out.push_str(match s {
                SameSite::Strict => "; SameSite=Strict",
                SameSite::Lax | SameSite::Auto => "; SameSite=Lax",
                SameSite::None => "; SameSite=None",
            });
        }
    }
}

/// JavaScript's `encodeURIComponent`, appended to `out`.
pub(crate) fn encode_uri_component(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // The bytes encodeURIComponent leaves alone, as a table (one load per byte).
    const KEEP: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
                );
            b += 1;
        }
        t
    };
    let mut rest = s;
    // Copy the runs that need no escaping whole.
    while let Some(at) = rest.bytes().position(|b| !KEEP[usize::from(b)]) {
        out.push_str(&rest[..at]);
        // The escaped character, byte by byte (all of a multi-byte character).
        let len = rest[at..].chars().next().map_or(1, char::len_utf8);
        for &b in &rest.as_bytes()[at..at + len] {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        rest = &rest[at + len..];
    }
    out.push_str(rest);
}

/// JavaScript's `decodeURIComponent`: `None` on a malformed escape or invalid UTF-8.
fn decode_uri_component(s: &[u8]) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    // Copy the runs between escapes whole.
    while let Some(at) = memchr::memchr(b'%', rest) {
        out.extend_from_slice(&rest[..at]);
        let hi = hex(*rest.get(at + 1)?)?;
        let lo = hex(*rest.get(at + 2)?)?;
        out.push(hi << 4 | lo);
        rest = &rest[at + 3..];
    }
    out.extend_from_slice(rest);
    String::from_utf8(out).ok()
}

/// Finds the value of cookie `name` in the request's `Cookie` headers the way the
/// `cookie` package parses them: pairs split on `;`, names and values trimmed, the
/// FIRST occurrence wins, surrounding quotes stripped, URL-decoded only when the value
/// holds a `%` (a malformed escape leaves the value raw). A value that is not UTF-8 is
/// ignored (it cannot be a signed session id).
pub(crate) fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, str>> {
    find_cookie_raw(headers, name).and_then(decode_cookie_value)
}

/// [`find_cookie`] before decoding: the value as sent, without its surrounding quotes.
pub(crate) fn find_cookie_raw<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    if name.is_empty() {
        return None;
    }
    for header in headers.get_all(COOKIE) {
        let bytes = header.as_bytes();
        let mut from = 0;
        // Jump between occurrences of the name (a fast substring search) instead of
        // splitting every pair; the first occurrence that is a whole pair name wins,
        // which is the first pair with that name.
        while let Some(found) = find_name(&bytes[from..], name.as_bytes()) {
            let at = from + found;
            from = at + 1;
            let before = trim_end(&bytes[..at]);
            if !(before.is_empty() || before.ends_with(b";")) {
                continue;
            }
            let after = trim_start(&bytes[at + name.len()..]);
            let Some(rest) = after.strip_prefix(b"=") else {
                continue;
            };
            let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
            return Some(unquote(trim(&rest[..end])));
        }
    }
    None
}

fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

/// A raw cookie value decoded as express-session decodes it (`decodeURIComponent`, the
/// value kept as is when that fails); `None` when it is not UTF-8.
pub(crate) fn decode_cookie_value(value: &[u8]) -> Option<Cow<'_, str>> {
    if memchr::memchr(b'%', value).is_some() {
        if let Some(decoded) = decode_uri_component(value) {
            return Some(Cow::Owned(decoded));
        }
    }
    std::str::from_utf8(value).ok().map(Cow::Borrowed)
}

/// The first occurrence of `name` (not empty) in `haystack`: a SIMD scan for its first
/// byte, then a comparison (`memmem` costs more to set up than a Cookie header to scan).
fn find_name(haystack: &[u8], name: &[u8]) -> Option<usize> {
    let (&first, _) = name.split_first()?;
    let mut from = 0;
    while let Some(p) = memchr::memchr(first, &haystack[from..]) {
        let at = from + p;
        if haystack[at..].starts_with(name) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn trim_start(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

fn trim_end(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

fn trim(b: &[u8]) -> &[u8] {
    trim_end(trim_start(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn encode_uri_component_matches_javascript() {
        let mut s = String::new();
        encode_uri_component("s:abc.Bp/x+y=%é -_.!~*'()", &mut s);
        assert_eq!(s, "s%3Aabc.Bp%2Fx%2By%3D%25%C3%A9%20-_.!~*'()");
    }

    #[test]
    fn a_name_inside_another_name_or_a_value_is_not_the_cookie() {
        let h = headers(&["xconnect.sid=1; a=connect.sid=2; connect.sidx=3; connect.sid =4"]);
        assert_eq!(find_cookie(&h, "connect.sid").as_deref(), Some("4"));
        let h = headers(&["connect.sid"]);
        assert_eq!(find_cookie(&h, "connect.sid"), None);
        let h = headers(&["connect.sid;connect.sid=5"]);
        assert_eq!(find_cookie(&h, "connect.sid").as_deref(), Some("5"));
    }

    #[test]
    fn first_occurrence_of_a_cookie_wins() {
        let h = headers(&["connect.sid=first; connect.sid=second"]);
        assert_eq!(find_cookie(&h, "connect.sid").as_deref(), Some("first"));
        let h = headers(&["a=1", "connect.sid=one", "connect.sid=two"]);
        assert_eq!(find_cookie(&h, "connect.sid").as_deref(), Some("one"));
    }

    #[test]
    fn cookie_values_are_trimmed_unquoted_and_decoded_only_with_percent() {
        let h = headers(&["x=1;  sid = \"s%3Aabc\" ; y=2"]);
        assert_eq!(find_cookie(&h, "sid").as_deref(), Some("s:abc"));
        let h = headers(&["sid=s:a+b"]);
        assert_eq!(find_cookie(&h, "sid").as_deref(), Some("s:a+b"));
        let h = headers(&["sid=bad%zzescape"]);
        assert_eq!(find_cookie(&h, "sid").as_deref(), Some("bad%zzescape"));
        let h = headers(&["sid_other=1; xsid=2"]);
        assert_eq!(find_cookie(&h, "sid"), None);
    }

    #[test]
    fn render_follows_express_attribute_order() {
        let c = SessionCookie {
            domain: Some(Arc::from("example.com")),
            expires: Some(0),
            secure: Some(true),
            partitioned: Some(true),
            priority: Some(Priority::High),
            same_site: Some(SameSite::Lax),
            ..SessionCookie::default()
        };
        assert_eq!(
            c.render("connect.sid", "s:abc"),
            "connect.sid=s%3Aabc; Domain=example.com; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; \
             HttpOnly; Secure; Partitioned; Priority=High; SameSite=Lax"
        );
    }

    #[test]
    fn auto_settings_resolve_against_the_request() {
        let opts = CookieOptions {
            secure: Secure::Auto,
            same_site: Some(SameSite::Auto),
            ..CookieOptions::default()
        };
        let secure = SessionCookie::from_options(&opts, true, || 0);
        assert_eq!(
            (secure.secure(), secure.same_site),
            (true, Some(SameSite::None))
        );
        let plain = SessionCookie::from_options(&opts, false, || 0);
        assert_eq!(
            (plain.secure(), plain.same_site),
            (false, Some(SameSite::Lax))
        );
    }

    #[test]
    fn max_age_sets_expires_and_touch_renews_it() {
        let mut c = SessionCookie::default();
        assert_eq!(c.max_age_ms(), None);
        c.set_max_age(Some(Duration::from_secs(60)));
        let left = c.max_age_ms().unwrap();
        assert!((59_000..=60_000).contains(&left), "{left}");
        c.expires = Some(time::now_ms() - 10);
        assert!(c.max_age_ms().unwrap() < 0);
        c.touch();
        assert!(c.max_age_ms().unwrap() > 59_000);
        c.set_max_age(None);
        assert_eq!((c.expires, c.original_max_age), (None, None));
    }
}
