//! The validation rules for tessera's session options, shared word for word by the
//! derive macro (`tessera-macros`, compile-time checks) and the runtime setters
//! (`tessera`, checks on values from configuration), so that a rule is written once and
//! judged the same at compile time and at run time. No dependencies. Not a public API:
//! its version is locked to `tessera`'s.

#![forbid(unsafe_code)]

pub mod date;

/// Parses a duration written as a number with a unit (`ms`, `s`, `m`, `h`, `d`):
/// `"90s"`, `"30m"`, `"1h"`, `"7d"`, `"1500ms"`. A bare number is rejected: express's
/// `maxAge` counts milliseconds, a Rust reader expects seconds, and `1800` would be 1.8 s
/// to one and half an hour to the other ([`bare_number_message`]). Zero and negative
/// values are rejected: a session that expires at once is a mistake.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if t.starts_with('-') {
        return Err(format!(
            "duration `{text}` is negative; use a positive duration such as \"30m\""
        ));
    }
    if digits.is_empty() {
        return Err(format!(
            "`{text}` is not a duration; write a number with a unit (\"90s\", \"30m\", \"1h\", \"7d\") or milliseconds"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("duration `{text}` is too large"))?;
    let factor: u64 = match unit.trim() {
        "" if n == 0 => 1,
        "" => return Err(bare_number_message(n)),
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}`; use ms, s, m, h or d"
            ));
        }
    };
    let ms = n
        .checked_mul(factor)
        .ok_or_else(|| format!("duration `{text}` is too large"))?;
    if ms == 0 {
        return Err(format!(
            "duration `{text}` is zero; omit `max_age` for a browser-session cookie"
        ));
    }
    Ok(ms)
}

/// Why a duration without a unit is refused, with the spellings that say what was meant:
/// for 1800, "30m", "1800s" or "1800000ms" (seconds), and "1800ms" (express's
/// milliseconds).
pub fn bare_number_message(n: u64) -> String {
    let as_seconds = if n % 86_400 == 0 {
        format!("\"{}d\", ", n / 86_400)
    } else if n % 3_600 == 0 {
        format!("\"{}h\", ", n / 3_600)
    } else if n % 60 == 0 {
        format!("\"{}m\", ", n / 60)
    } else {
        String::new()
    };
    format!(
        "the duration `{n}` has no unit, so it is ambiguous: as seconds write {as_seconds}\"{n}s\" or \"{}ms\"; as milliseconds (express-session's `maxAge`) write \"{n}ms\"",
        n.saturating_mul(1000)
    )
}

/// RFC 6265 `token`: the characters a cookie name may have.
pub fn check_cookie_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("cookie name is empty; use a token such as \"sid\"".to_owned());
    }
    if let Some(c) = name.chars().find(|c| !is_token_char(*c)) {
        return Err(format!(
            "cookie name `{name}` contains {}, which RFC 6265 does not allow in a cookie name; \
             use letters, digits and !#$%&'*+-.^_`|~",
            describe_char(c)
        ));
    }
    Ok(())
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c if !c.is_ascii() => format!("the non-ASCII character `{c}`"),
        c => format!("`{c}`"),
    }
}

/// A cookie path must start with `/` and must not contain `;` or control characters.
pub fn check_cookie_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "cookie path `{path}` must start with \"/\" (for example \"/app\")"
        ));
    }
    // Browsers trim an attribute's value: `Path=/app ` is stored as `/app`, which would
    // not be the path this server gates on (found by the `set_cookie` fuzz target).
    if path.trim() != path {
        return Err(format!(
            "cookie path `{path}` starts or ends with whitespace, which browsers drop; write \"{}\"",
            path.trim()
        ));
    }
    if let Some(c) = path.chars().find(|c| *c == ';' || c.is_control()) {
        return Err(format!(
            "cookie path `{path}` contains {}, which cannot appear in a Set-Cookie attribute",
            describe_char(c)
        ));
    }
    Ok(())
}

/// A cookie domain is a bare host name: no scheme, no port, no path.
pub fn check_cookie_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("cookie domain is empty; omit it for a host-only cookie".to_owned());
    }
    if domain.contains("://") {
        return Err(format!(
            "cookie domain `{domain}` has a scheme; write the host only (\"example.com\")"
        ));
    }
    if domain.contains(':') {
        return Err(format!(
            "cookie domain `{domain}` has a port; cookies are not scoped by port, write the host only"
        ));
    }
    if let Some(c) = domain
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "cookie domain `{domain}` contains {}; write a host name such as \"example.com\"",
            describe_char(c)
        ));
    }
    Ok(())
}

/// The options of `#[session(...)]` (and of configuration) outside `cookie(...)`.
pub const TOP_KEYS: &[&str] = &[
    "name",
    "cookie",
    "rolling",
    "resave",
    "save_uninitialized",
    "unset",
    "proxy",
    "idle_timeout",
    "absolute_timeout",
    "id_header",
];

/// The options inside `cookie(...)`.
pub const COOKIE_KEYS: &[&str] = &[
    "max_age",
    "expires",
    "path",
    "domain",
    "http_only",
    "secure",
    "same_site",
    "partitioned",
    "priority",
];

/// Accepted spellings of `same_site`.
pub const SAME_SITE_VALUES: &[&str] = &["strict", "lax", "none", "auto"];
/// Accepted spellings of `priority`.
pub const PRIORITY_VALUES: &[&str] = &["low", "medium", "high"];
/// Accepted spellings of `unset`.
pub const UNSET_VALUES: &[&str] = &["keep", "destroy"];
/// Accepted spellings of `secure` in configuration (the attribute takes a bool or `"auto"`).
pub const SECURE_VALUES: &[&str] = &["true", "false", "auto"];

/// A value that is not one of an option's choices, with the message that lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChoiceError {
    /// The option, as the attribute names it (`same_site`).
    pub option: &'static str,
    /// What is wrong, naming the accepted values.
    pub message: String,
}

impl std::fmt::Display for ChoiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ChoiceError {}

fn choose<T: Copy>(
    option: &'static str,
    value: &str,
    allowed: &[&str],
    variants: &[T],
) -> Result<T, ChoiceError> {
    check_choice(option, value, allowed)
        .map(|i| variants[i])
        .map_err(|message| ChoiceError { option, message })
}

/// The `SameSite` cookie attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (browsers require `Secure` with it).
    None,
    /// `None` on secure requests, `Lax` otherwise, decided when the session is created.
    Auto,
}

impl std::str::FromStr for SameSite {
    type Err = ChoiceError;
    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        choose(
            "same_site",
            s,
            SAME_SITE_VALUES,
            &[Self::Strict, Self::Lax, Self::None, Self::Auto],
        )
    }
}

/// The `Priority` cookie attribute (a Chrome extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// `Priority=Low`.
    Low,
    /// `Priority=Medium`.
    Medium,
    /// `Priority=High`.
    High,
}

impl Priority {
    /// The value as express-session stores it (`"low"`, `"medium"`, `"high"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = ChoiceError;
    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        choose(
            "priority",
            s,
            PRIORITY_VALUES,
            &[Self::Low, Self::Medium, Self::High],
        )
    }
}

/// The `secure` cookie option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secure {
    /// Always mark the cookie `Secure` (it is then only sent over HTTPS).
    Always,
    /// Never mark it `Secure` (express-session's default).
    Never,
    /// `Secure` when the request that creates the session is secure.
    Auto,
}

impl std::str::FromStr for Secure {
    type Err = ChoiceError;
    /// `"true"`, `"false"` or `"auto"`, as configuration writes it.
    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        choose(
            "secure",
            s,
            SECURE_VALUES,
            &[Self::Always, Self::Never, Self::Auto],
        )
    }
}

/// What happens when a handler unsets the session, express-session's `unset` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Unset {
    /// Keep the stored session; ignore this request's changes.
    #[default]
    Keep,
    /// Destroy the stored session.
    Destroy,
}

impl std::str::FromStr for Unset {
    type Err = ChoiceError;
    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        choose("unset", s, UNSET_VALUES, &[Self::Keep, Self::Destroy])
    }
}

/// Checks that `value` is one of `allowed` (ASCII case-insensitive, like express).
pub fn check_choice(option: &str, value: &str, allowed: &[&str]) -> Result<usize, String> {
    allowed
        .iter()
        .position(|a| a.eq_ignore_ascii_case(value))
        .ok_or_else(|| {
            let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
            format!(
                "`{option}` must be one of {}, not \"{value}\"",
                list.join(", ")
            )
        })
}

/// Damerau-free edit distance, for "did you mean" hints on option names.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let w = norm(word);
    candidates
        .iter()
        .map(|c| (levenshtein(&w, &norm(c)), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The candidate at most two edits from `word` (ignoring case only: `MANAGER` is three
/// edits from `MAX_AGE`), if any: a near miss worth a "did you mean".
pub fn near_miss<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&w, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The cookie settings that must agree with each other (the part of the options that
/// browsers judge as a whole).
#[derive(Clone, Copy, Debug)]
pub struct CookieSettings<'a> {
    /// The cookie name.
    pub name: &'a str,
    /// `secure`; `None` when not set (never).
    pub secure: Option<Secure>,
    /// `same_site`, if set.
    pub same_site: Option<SameSite>,
    /// Whether `partitioned` is on.
    pub partitioned: bool,
    /// The domain, if set.
    pub domain: Option<&'a str>,
    /// The path.
    pub path: &'a str,
}

/// Which option a combination error should point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Culprit {
    /// The cookie name.
    Name,
    /// `same_site`.
    SameSite,
    /// `partitioned`.
    Partitioned,
    /// `domain`.
    Domain,
    /// `path`.
    Path,
    /// `idle_timeout`.
    IdleTimeout,
    /// `absolute_timeout`.
    AbsoluteTimeout,
}

/// The rules that browsers apply to combinations of cookie attributes: a cookie that
/// breaks one of them is silently dropped by the browser, so it is a configuration error.
pub fn check_combination(s: &CookieSettings<'_>) -> Vec<(Culprit, String)> {
    let mut errors = Vec::new();
    let secure = s.secure == Some(Secure::Always);
    if s.same_site == Some(SameSite::None) && !secure {
        errors.push((
            Culprit::SameSite,
            "`same_site = \"none\"` needs `secure = true`: browsers reject SameSite=None cookies \
             that are not Secure; add `secure = true`, or use `same_site = \"auto\"` (None over \
             HTTPS, Lax otherwise)"
                .to_owned(),
        ));
    }
    if s.partitioned && !secure {
        errors.push((
            Culprit::Partitioned,
            "`partitioned` needs `secure = true`: browsers only accept Partitioned cookies that \
             are Secure"
                .to_owned(),
        ));
    }
    let lower = s.name.to_ascii_lowercase();
    if lower.starts_with("__host-") {
        if !secure {
            errors.push((
                Culprit::Name,
                format!(
                    "a `__Host-` cookie (`{}`) must be Secure: add `secure = true`",
                    s.name
                ),
            ));
        }
        if let Some(d) = s.domain {
            errors.push((
                Culprit::Domain,
                format!(
                    "a `__Host-` cookie cannot have a domain (`{d}`): remove `domain`, or drop the \
                     `__Host-` prefix to share the cookie with subdomains"
                ),
            ));
        }
        if s.path != "/" {
            errors.push((
                Culprit::Path,
                format!(
                    "a `__Host-` cookie must have `path = \"/\"`, not `{}`",
                    s.path
                ),
            ));
        }
    } else if lower.starts_with("__secure-") && !secure {
        errors.push((
            Culprit::Name,
            format!(
                "a `__Secure-` cookie (`{}`) must be Secure: add `secure = true`",
                s.name
            ),
        ));
    }
    errors
}

/// The session lifetime options that must agree with each other.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lifetimes {
    /// `idle_timeout`, in milliseconds.
    pub idle_ms: Option<u64>,
    /// `absolute_timeout`, in milliseconds.
    pub absolute_ms: Option<u64>,
    /// Whether the cookie's `max_age` or `expires` is set.
    pub cookie_lifetime: bool,
    /// `rolling`, if given.
    pub rolling: Option<bool>,
}

/// The rules on the timeouts: `idle_timeout` is the cookie's `max_age` with `rolling`,
/// so it cannot be combined with another lifetime or with `rolling = false`; and an
/// absolute timeout shorter than the idle timeout would always end the session first.
pub fn check_lifetimes(l: &Lifetimes) -> Vec<(Culprit, String)> {
    let mut errors = Vec::new();
    if l.idle_ms.is_some() {
        if l.cookie_lifetime {
            errors.push((
                Culprit::IdleTimeout,
                "`idle_timeout` sets the cookie's max-age (it is `max_age` with `rolling`); \
                 remove `cookie(max_age)` or `cookie(expires)`, or drop `idle_timeout`"
                    .to_owned(),
            ));
        }
        if l.rolling == Some(false) {
            errors.push((
                Culprit::IdleTimeout,
                "`idle_timeout` renews the session on every request, which is `rolling`; \
                 remove `rolling = false`"
                    .to_owned(),
            ));
        }
    }
    if let (Some(idle), Some(absolute)) = (l.idle_ms, l.absolute_ms) {
        if absolute < idle {
            errors.push((
                Culprit::AbsoluteTimeout,
                format!(
                    "`absolute_timeout` ({}) is shorter than `idle_timeout` ({}): every session \
                     would reach its absolute limit before it could idle out; make \
                     `absolute_timeout` at least as long as `idle_timeout`",
                    describe_ms(absolute),
                    describe_ms(idle)
                ),
            ));
        }
    }
    errors
}

/// A duration in the largest unit that divides it: `7200000` → `"2h"`.
pub fn describe_ms(ms: u64) -> String {
    for (unit, factor) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % factor == 0 {
            return format!("{}{unit}", ms / factor);
        }
    }
    format!("{ms}ms")
}

/// The request and response header that carries the signed session id for API
/// clients: an HTTP token, and not a header that has a meaning of its own.
pub fn check_id_header(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("`id_header` is empty; use a header name such as \"X-Session-Id\"".to_owned());
    }
    if let Some(c) = name.chars().find(|c| !is_token_char(*c)) {
        return Err(format!(
            "`id_header` `{name}` contains {}, which a header name cannot contain; \
             use a name such as \"X-Session-Id\"",
            describe_char(c)
        ));
    }
    let lower = name.to_ascii_lowercase();
    if [
        "cookie",
        "set-cookie",
        "authorization",
        "host",
        "content-length",
        "content-type",
    ]
    .contains(&lower.as_str())
    {
        return Err(format!(
            "`id_header` cannot be `{name}`, which has a meaning of its own; \
             use a name such as \"X-Session-Id\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_that_cannot_work_together_are_reported() {
        let ok = Lifetimes {
            idle_ms: Some(1_800_000),
            absolute_ms: Some(43_200_000),
            ..Lifetimes::default()
        };
        assert!(check_lifetimes(&ok).is_empty());
        let short = Lifetimes {
            absolute_ms: Some(600_000),
            ..ok
        };
        let errors = check_lifetimes(&short);
        assert_eq!(errors[0].0, Culprit::AbsoluteTimeout);
        assert!(
            errors[0]
                .1
                .contains("(10m) is shorter than `idle_timeout` (30m)"),
            "{}",
            errors[0].1
        );
        let with_max_age = Lifetimes {
            cookie_lifetime: true,
            rolling: Some(false),
            ..ok
        };
        let culprits: Vec<Culprit> = check_lifetimes(&with_max_age)
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(culprits, vec![Culprit::IdleTimeout, Culprit::IdleTimeout]);
        // An absolute timeout alone is fine with any cookie lifetime.
        let alone = Lifetimes {
            idle_ms: None,
            absolute_ms: Some(1000),
            cookie_lifetime: true,
            rolling: Some(false),
        };
        assert!(check_lifetimes(&alone).is_empty());
    }

    #[test]
    fn id_headers_are_tokens_without_a_meaning_of_their_own() {
        assert!(check_id_header("X-Session-Id").is_ok());
        for bad in ["", "X Session", "x-session-id:", "Cookie", "authorization"] {
            assert!(check_id_header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_accept_units_and_milliseconds() {
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("30m"), Ok(1_800_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("7d"), Ok(604_800_000));
        assert_eq!(parse_duration_ms("1500ms"), Ok(1500));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
    }

    #[test]
    fn a_bare_number_is_refused_with_the_spellings_that_say_what_was_meant() {
        let m = parse_duration_ms("1800").unwrap_err();
        assert!(m.contains("\"30m\", \"1800s\" or \"1800000ms\""), "{m}");
        assert!(m.contains("\"1800ms\""), "{m}");
        let m = parse_duration_ms("90").unwrap_err();
        assert!(m.contains("\"90s\" or \"90000ms\""), "{m}");
    }

    #[test]
    fn durations_reject_zero_negative_and_garbage() {
        for bad in [
            "0",
            "1800",
            "0s",
            "-5m",
            "",
            "m",
            "5 weeks",
            "5w",
            "99999999999999999999d",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cookie_names_must_be_tokens() {
        assert!(check_cookie_name("connect.sid").is_ok());
        assert!(check_cookie_name("__Host-sid").is_ok());
        for bad in ["", "a b", "a;b", "a=b", "sïd", "a\tb", "a,b", "(x)"] {
            assert!(check_cookie_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_and_domains_are_checked() {
        assert!(check_cookie_path("/").is_ok());
        assert!(check_cookie_path("/app").is_ok());
        assert!(check_cookie_path("app").is_err());
        assert!(check_cookie_path("/a;b").is_err());
        // Browsers would store `/ap`: the path this server gates on must be that.
        assert!(check_cookie_path("/ap ").is_err());
        assert!(check_cookie_path("/ap\u{a0}").is_err());
        assert!(check_cookie_path("/a p").is_ok());
        assert!(check_cookie_domain("example.com").is_ok());
        assert!(check_cookie_domain(".example.com").is_ok());
        assert!(check_cookie_domain("https://example.com").is_err());
        assert!(check_cookie_domain("example.com:8080").is_err());
        assert!(check_cookie_domain("").is_err());
    }

    #[test]
    fn the_enums_parse_their_spellings_case_insensitively_and_name_the_alternatives() {
        assert_eq!("Lax".parse::<SameSite>(), Ok(SameSite::Lax));
        assert_eq!("AUTO".parse::<Secure>(), Ok(Secure::Auto));
        assert_eq!("high".parse::<Priority>().map(Priority::as_str), Ok("high"));
        assert_eq!("destroy".parse::<Unset>(), Ok(Unset::Destroy));
        let err = "sometimes".parse::<SameSite>().unwrap_err();
        assert_eq!(err.option, "same_site");
        assert!(
            err.to_string()
                .contains("\"strict\", \"lax\", \"none\", \"auto\""),
            "{err}"
        );
    }

    #[test]
    fn choices_are_case_insensitive_and_name_the_alternatives() {
        assert_eq!(check_choice("same_site", "Lax", SAME_SITE_VALUES), Ok(1));
        let err = check_choice("unset", "drop", UNSET_VALUES).unwrap_err();
        assert!(err.contains("\"keep\", \"destroy\""), "{err}");
    }

    #[test]
    fn closest_suggests_near_misses_only() {
        let names = ["max_age", "same_site", "http_only", "domain"];
        assert_eq!(closest("maxage", &names), Some("max_age"));
        assert_eq!(closest("samesite", &names), Some("same_site"));
        assert_eq!(closest("frobnicate", &names), None);
    }

    fn settings(name: &'static str) -> CookieSettings<'static> {
        CookieSettings {
            name,
            secure: None,
            same_site: None,
            partitioned: false,
            domain: None,
            path: "/",
        }
    }

    #[test]
    fn combinations_browsers_reject_are_reported() {
        let mut s = settings("sid");
        assert!(check_combination(&s).is_empty());
        s.same_site = Some(SameSite::None);
        s.partitioned = true;
        let culprits: Vec<Culprit> = check_combination(&s).into_iter().map(|e| e.0).collect();
        assert_eq!(culprits, vec![Culprit::SameSite, Culprit::Partitioned]);
        s.secure = Some(Secure::Always);
        assert!(check_combination(&s).is_empty());
        s.secure = Some(Secure::Auto);
        assert_eq!(check_combination(&s).len(), 2, "auto may be insecure");
    }

    #[test]
    fn cookie_prefixes_are_enforced() {
        let mut s = settings("__Host-sid");
        s.domain = Some("example.com");
        s.path = "/app";
        let culprits: Vec<Culprit> = check_combination(&s).into_iter().map(|e| e.0).collect();
        assert_eq!(
            culprits,
            vec![Culprit::Name, Culprit::Domain, Culprit::Path]
        );
        let mut s = settings("__secure-sid");
        assert_eq!(check_combination(&s)[0].0, Culprit::Name);
        s.secure = Some(Secure::Always);
        assert!(check_combination(&s).is_empty());
    }
}
