//! The Cookie header → the verified session id. Differential: an id the layer's reader
//! accepts must sign back to exactly the bytes the cookie carried (decoded), and the
//! reader must agree with itself (the verification cache answers as a fresh check).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::{HmacSigner, Secret, Secrets, Signer};

fn secrets() -> Secrets {
    let new = Secret::short_for_migration("keyboard cat").expect("non-empty");
    let old = Secret::new("an older secret, long and random enough!").expect("long");
    Secrets::new([new, old]).expect("two")
}

/// decodeURIComponent, or `None` where it would throw (as the cookie crate's reader
/// falls back to the raw value).
fn decode(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let h = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::COOKIE, value);
    let Some(raw) = tessera::__bench::find_cookie(&headers, "connect.sid") else {
        return;
    };
    let secrets = secrets();
    let first = tessera::__bench::read_signed_cookie(&secrets, &raw);
    // Again: now from the verification cache, which must answer the same.
    let second = tessera::__bench::read_signed_cookie(&secrets, &raw);
    assert_eq!(first, second, "the cache disagrees for {raw:?}");
    let Some(id) = first else {
        return;
    };
    let decoded = decode(&raw).unwrap_or_else(|| raw.clone());
    let resigned: Vec<String> = secrets
        .iter()
        .map(|s| format!("s:{}", HmacSigner.sign(&id, s)))
        .collect();
    assert!(
        resigned.contains(&decoded),
        "accepted id {id:?} from {raw:?} does not sign back to {decoded:?}"
    );
});
