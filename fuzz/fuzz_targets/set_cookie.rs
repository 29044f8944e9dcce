//! Cookie attributes (as another writer might store them) → Set-Cookie. Differential:
//! the `cookie` crate parses the header back to the same attributes, and no input makes a
//! header with a second Path or Domain, or any attribute the record did not hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use tessera::LoadedRecord;

fuzz_target!(|data: &[u8]| {
    // Bytes → a few attribute values: path, domain, sameSite, priority, flags.
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let path = parts.next().unwrap_or("/");
    let domain = parts.next();
    let same_site = parts.next();
    let priority = parts.next();
    let flags = parts
        .next()
        .map_or(0u8, |f| f.bytes().fold(0, u8::wrapping_add));
    let mut cookie = Map::new();
    cookie.insert("originalMaxAge".into(), Value::Null);
    cookie.insert("expires".into(), Value::Null);
    cookie.insert("httpOnly".into(), json!(flags & 1 != 0));
    cookie.insert("secure".into(), json!(flags & 2 != 0));
    cookie.insert("partitioned".into(), json!(flags & 4 != 0));
    cookie.insert("path".into(), json!(path));
    if let Some(d) = domain {
        cookie.insert("domain".into(), json!(d));
    }
    if let Some(s) = same_site {
        cookie.insert("sameSite".into(), json!(s));
    }
    if let Some(p) = priority {
        cookie.insert("priority".into(), json!(p));
    }
    let record = json!({ "cookie": cookie, "views": 1 });
    let Ok(loaded) = LoadedRecord::from_json(serde_json::to_vec(&record).expect("json")) else {
        return;
    };
    let c = loaded.cookie();
    let header = tessera::__bench::render_set_cookie(c, "connect.sid", "s:id.sig");
    assert_eq!(header.matches("; Path=").count(), 1, "{header}");
    assert!(header.matches("; Domain=").count() <= 1, "{header}");
    assert!(!header.contains(['\r', '\n', '\0']), "{header:?}");
    let parsed = cookie::Cookie::parse(header.as_str()).expect("the cookie crate parses it");
    assert_eq!(parsed.name(), "connect.sid");
    assert_eq!(parsed.path(), Some(c.path()), "{header}");
    assert_eq!(
        parsed.domain().map(|d| d.trim_start_matches('.')),
        c.domain().map(|d| d.trim_start_matches('.')),
        "{header}"
    );
    assert_eq!(
        parsed.http_only(),
        Some(c.http_only()).filter(|&b| b),
        "{header}"
    );
    assert_eq!(parsed.secure(), Some(c.secure()).filter(|&b| b), "{header}");
    assert_eq!(
        parsed.partitioned(),
        Some(c.partitioned()).filter(|&b| b),
        "{header}"
    );
    let same_site = c.same_site().map(|s| format!("{s:?}").to_ascii_lowercase());
    assert_eq!(
        parsed
            .same_site()
            .map(|s| s.to_string().to_ascii_lowercase()),
        same_site,
        "{header}"
    );
    // Every attribute the header has is one the record held.
    let allowed = [
        "Domain",
        "Path",
        "Expires",
        "HttpOnly",
        "Secure",
        "Partitioned",
        "Priority",
        "SameSite",
    ];
    for attr in header.split("; ").skip(1) {
        let name = attr.split('=').next().unwrap_or_default();
        assert!(
            allowed.contains(&name),
            "unexpected attribute {attr:?} in {header}"
        );
    }
});
