//! The duration, cookie-name, path and domain rules, against a plain reference written
//! from their documentation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::__fuzz::{
    check_cookie_domain, check_cookie_name, check_cookie_path, parse_duration_ms,
};

/// A number and a unit (`ms`, `s`, `m`, `h`, `d`), spaces around; never zero; a bare
/// number only as zero's refusal.
fn duration(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let factor = match t[digits.len()..].trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor).filter(|&ms| ms > 0)
}

/// RFC 6265's token.
fn name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Starts with `/`; no `;`, no control character, no whitespace at the end.
fn path(text: &str) -> bool {
    text.starts_with('/')
        && !text.ends_with(char::is_whitespace)
        && !text.chars().any(|c| c == ';' || c.is_control())
}

/// A host name: letters, digits, `-` and `.`.
fn domain(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(
        parse_duration_ms(text).ok(),
        duration(text),
        "duration {text:?}"
    );
    assert_eq!(check_cookie_name(text).is_ok(), name(text), "name {text:?}");
    assert_eq!(check_cookie_path(text).is_ok(), path(text), "path {text:?}");
    assert_eq!(
        check_cookie_domain(text).is_ok(),
        domain(text),
        "domain {text:?}"
    );
});
