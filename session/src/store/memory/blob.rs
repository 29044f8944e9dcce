//! The compact form a `MemoryStore` keeps per session, in one allocation: the session id,
//! the cookie in a few bytes, then the fields as compact JSON text. A small session costs
//! tens of bytes instead of a tree of allocations; a patch rewrites the text without
//! building a value tree.
//!
//! Layout: the id's length (`u32`, little-endian) and bytes; two flag bytes; the
//! `originalMaxAge` (`i64`) when set; the domain and a path other than `/` when set (each
//! a `u16` length and bytes); the fields JSON.

use std::sync::Arc;

use crate::baseline::patch_object_text;
use crate::cookie::{SessionCookie, root_path};
use crate::options::{Priority, SameSite};
use crate::record::{FieldChange, LoadedRecord, RecordError, RecordView};

const HTTP_ONLY: u8 = 1;
const SECURE_SET: u8 = 1 << 1;
const SECURE: u8 = 1 << 2;
const PARTITIONED_SET: u8 = 1 << 3;
const PARTITIONED: u8 = 1 << 4;
const ORIGINAL_MAX_AGE: u8 = 1 << 5;
const EXPIRES: u8 = 1 << 6;
const DOMAIN: u8 = 1 << 7;
const PATH_NOT_ROOT: u8 = 1 << 4; // in the second byte

/// The two flag bytes that start every blob.
fn head_bytes(cookie: &SessionCookie) -> [u8; 2] {
    let mut flags = 0u8;
    if cookie.http_only {
        flags |= HTTP_ONLY;
    }
    if let Some(s) = cookie.secure {
        flags |= SECURE_SET | if s { SECURE } else { 0 };
    }
    if let Some(p) = cookie.partitioned {
        flags |= PARTITIONED_SET | if p { PARTITIONED } else { 0 };
    }
    if cookie.original_max_age.is_some() {
        flags |= ORIGINAL_MAX_AGE;
    }
    if cookie.expires.is_some() {
        flags |= EXPIRES;
    }
    if cookie.domain.is_some() {
        flags |= DOMAIN;
    }
    let same_site = match cookie.same_site {
        None => 0,
        Some(SameSite::Strict) => 1,
        Some(SameSite::Lax | SameSite::Auto) => 2,
        Some(SameSite::None) => 3,
    };
    let priority = match cookie.priority {
        None => 0,
        Some(Priority::Low) => 1,
        Some(Priority::Medium) => 2,
        Some(Priority::High) => 3,
    };
    let path_not_root = if &*cookie.path == "/" {
        0
    } else {
        PATH_NOT_ROOT
    };
    [flags, same_site | (priority << 2) | path_not_root]
}

/// The texts stored after the flag bytes: the domain, then a path other than `/`.
fn head_texts(cookie: &SessionCookie) -> impl Iterator<Item = &[u8]> {
    let path = (&*cookie.path != "/").then_some(cookie.path.as_bytes());
    let domain = cookie.domain.as_deref().map(str::as_bytes);
    domain
        .into_iter()
        .chain(path)
        .map(|t| &t[..t.len().min(usize::from(u16::MAX))])
}

/// Encodes `key` + `cookie` + `fields` JSON into one allocation. `expires`, when set, is
/// the entry's deadline and is not repeated here.
pub(crate) fn encode(key: &str, cookie: &SessionCookie, fields_json: &[u8]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(head_len(key, cookie) + fields_json.len());
    encode_head(key, cookie, &mut out);
    out.extend_from_slice(fields_json);
    // Exactly the capacity reserved: no reallocation.
    out.into_boxed_slice()
}

/// Encodes `key` + a whole record into one allocation.
pub(crate) fn encode_view(key: &str, record: &RecordView<'_>) -> Result<Box<[u8]>, RecordError> {
    exact(|out| {
        encode_head(key, record.cookie(), out);
        record.write_fields_json(out)
    })
}

/// The blob under a new key: the same cookie and fields.
pub(crate) fn rekey(blob: &[u8], key: &str) -> Result<Box<[u8]>, RecordError> {
    let mut r = Reader(blob);
    r.key()?;
    let rest = r.0;
    let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + len as usize + rest.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&key.as_bytes()[..len as usize]);
    out.extend_from_slice(rest);
    Ok(out.into_boxed_slice())
}

/// Builds a blob of a size not known in advance in a per-thread scratch buffer, and
/// returns an exact-size copy. Shrinking a `Vec` with slack into a box would `realloc`,
/// which splits the chunk and leaves a fragment behind that glibc has to consolidate
/// later, on some other request.
fn exact<E>(build: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<Box<[u8]>, E> {
    use std::cell::RefCell;
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    /// A scratch buffer grown past this by a large session is not kept.
    const KEEP: usize = 64 * 1024;
    SCRATCH.with(|scratch| {
        let Ok(mut buf) = scratch.try_borrow_mut() else {
            // Not reached (building a blob does not build another), but stay correct.
            let mut own = Vec::new();
            build(&mut own)?;
            return Ok(Box::from(&own[..]));
        };
        buf.clear();
        let blob = build(&mut buf).map(|()| Box::from(&buf[..]));
        if buf.capacity() > KEEP {
            *buf = Vec::new();
        }
        blob
    })
}

/// The length of the key and cookie part of a blob.
fn head_len(key: &str, cookie: &SessionCookie) -> usize {
    let age = if cookie.original_max_age.is_some() {
        8
    } else {
        0
    };
    4 + key.len() + 2 + age + head_texts(cookie).map(|t| 2 + t.len()).sum::<usize>()
}

/// Whether the blob is stored under `key`.
pub(crate) fn key_is(blob: &[u8], key: &[u8]) -> bool {
    let mut r = Reader(blob);
    r.key().is_ok_and(|k| k == key)
}

/// The key the blob is stored under.
pub(crate) fn key_of(blob: &[u8]) -> Result<&[u8], RecordError> {
    Reader(blob).key()
}

/// Writes the key and the cookie part of a blob.
fn encode_head(key: &str, cookie: &SessionCookie, out: &mut Vec<u8>) {
    // Ids come from the layer (at most 256 bytes) or a caller of the store; a `u32`
    // length fits anything that fits in memory next to it.
    let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&key.as_bytes()[..len as usize]);
    out.extend_from_slice(&head_bytes(cookie));
    if let Some(age) = cookie.original_max_age {
        out.extend_from_slice(&age.to_le_bytes());
    }
    for text in head_texts(cookie) {
        let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(text);
    }
}

/// A new blob: `cookie`, then the fields JSON `json` with `changes` applied.
pub(crate) fn encode_patched(
    key: &str,
    cookie: &SessionCookie,
    json: &[u8],
    changes: &[FieldChange],
) -> Result<Box<[u8]>, RecordError> {
    exact(|out| {
        encode_head(key, cookie, out);
        patch_object_text(json, None, changes, out)
    })
}

/// Whether `blob` stores exactly `cookie` (its expiry being the entry's deadline), so a
/// touch only has to move the deadline. Compares bytes; allocates nothing.
pub(crate) fn cookie_matches(blob: &[u8], cookie: &SessionCookie) -> bool {
    let mut r = Reader(blob);
    if r.key().is_err() {
        return false;
    }
    let Ok(head) = r.take(2) else {
        return false;
    };
    if head != head_bytes(cookie) {
        return false;
    }
    if let Some(age) = cookie.original_max_age {
        if r.take(8).ok() != Some(&age.to_le_bytes()[..]) {
            return false;
        }
    }
    head_texts(cookie).all(|text| {
        let len = u16::try_from(text.len()).unwrap_or(u16::MAX).to_le_bytes();
        r.take(2).ok() == Some(&len[..]) && r.take(text.len()).ok() == Some(text)
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Shape("truncated memory record"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// The key: a `u32` length and bytes.
    fn key(&mut self) -> Result<&'a [u8], RecordError> {
        let len = self.take(4)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        self.take(usize::try_from(len).unwrap_or(usize::MAX))
    }

    /// A length-prefixed text, as bytes.
    fn text(&mut self) -> Result<&'a [u8], RecordError> {
        let len = self.take(2)?;
        self.take(usize::from(u16::from_le_bytes([len[0], len[1]])))
    }
}

fn shared_text(bytes: &[u8]) -> Result<Arc<str>, RecordError> {
    std::str::from_utf8(bytes)
        .map(Arc::from)
        .map_err(|_| RecordError::Shape("memory record text is not UTF-8"))
}

/// A blob split into its parts, nothing decoded yet.
struct Parts<'a> {
    flags: u8,
    second: u8,
    original_max_age: Option<i64>,
    domain: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    fields_json: &'a [u8],
}

fn split(blob: &[u8]) -> Result<Parts<'_>, RecordError> {
    let mut r = Reader(blob);
    r.key()?;
    let head = r.take(2)?;
    let (flags, second) = (head[0], head[1]);
    let original_max_age = if flags & ORIGINAL_MAX_AGE != 0 {
        let mut a = [0u8; 8];
        a.copy_from_slice(r.take(8)?);
        Some(i64::from_le_bytes(a))
    } else {
        None
    };
    let domain = if flags & DOMAIN != 0 {
        Some(r.text()?)
    } else {
        None
    };
    let path = if second & PATH_NOT_ROOT != 0 {
        Some(r.text()?)
    } else {
        None
    };
    Ok(Parts {
        flags,
        second,
        original_max_age,
        domain,
        path,
        fields_json: r.0,
    })
}

/// The fields JSON text of a blob, without decoding its cookie.
pub(crate) fn fields_of(blob: &[u8]) -> Result<&[u8], RecordError> {
    split(blob).map(|p| p.fields_json)
}

/// Splits a blob into the cookie and the fields JSON text.
pub(crate) fn decode_cookie(
    blob: &[u8],
    deadline: i64,
) -> Result<(SessionCookie, &[u8]), RecordError> {
    let Parts {
        flags,
        second,
        original_max_age,
        domain,
        path,
        fields_json,
    } = split(blob)?;
    let domain = domain.map(shared_text).transpose()?;
    let path = match path {
        Some(p) => shared_text(p)?,
        None => root_path(),
    };
    let cookie = SessionCookie {
        original_max_age,
        expires: (flags & EXPIRES != 0).then_some(deadline),
        secure: (flags & SECURE_SET != 0).then_some(flags & SECURE != 0),
        http_only: flags & HTTP_ONLY != 0,
        domain,
        path,
        same_site: match second & 3 {
            1 => Some(SameSite::Strict),
            2 => Some(SameSite::Lax),
            3 => Some(SameSite::None),
            _ => None,
        },
        partitioned: (flags & PARTITIONED_SET != 0).then_some(flags & PARTITIONED != 0),
        priority: match (second >> 2) & 3 {
            1 => Some(Priority::Low),
            2 => Some(Priority::Medium),
            3 => Some(Priority::High),
            _ => None,
        },
        changed: false,
    };
    Ok((cookie, fields_json))
}

/// The cookie, and the fields as their JSON text (for a session being loaded).
pub(crate) fn decode_loaded(blob: &[u8], deadline: i64) -> Result<LoadedRecord, RecordError> {
    let (cookie, json) = decode_cookie(blob, deadline)?;
    LoadedRecord::from_own_parts(cookie, json)
}

/// The whole record.
#[cfg(test)]
pub(crate) fn decode(blob: &[u8], deadline: i64) -> Result<crate::Record, RecordError> {
    let (cookie, json) = decode_cookie(blob, deadline)?;
    let fields: crate::Fields = serde_json::from_slice(json)?;
    Ok(crate::Record { cookie, fields })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blob_round_trips_every_cookie_attribute() {
        let cookie = SessionCookie {
            original_max_age: Some(60_000),
            expires: Some(123_456),
            secure: Some(true),
            http_only: false,
            domain: Some(Arc::from("example.com")),
            path: Arc::from("/app"),
            same_site: Some(SameSite::None),
            partitioned: Some(true),
            priority: Some(Priority::High),
            changed: false,
        };
        let mut fields = crate::Fields::new();
        fields.insert("views".into(), json!(3));
        let record = crate::Record {
            cookie: cookie.clone(),
            fields: fields.clone(),
        };
        let blob = encode_view("id", &RecordView::from(&record)).unwrap();
        assert_eq!(key_of(&blob).unwrap(), b"id");
        assert!(key_is(&blob, b"id") && !key_is(&blob, b"i") && !key_is(&blob, b"idx"));
        let r = decode(&blob, 123_456).unwrap();
        assert_eq!(r.cookie, cookie);
        assert_eq!(r.fields, fields);
        let plain = SessionCookie::default();
        let blob = encode("", &plain, b"{}");
        assert_eq!(
            blob.len(),
            8,
            "an empty key costs four bytes, a default cookie two"
        );
        assert_eq!(decode(&blob, 0).unwrap().cookie, plain);
    }

    #[test]
    fn a_patched_blob_changes_only_the_listed_keys() {
        let json = br#"{"a":{"deep":[1,2,3]},"b":"x","c":1,"he said \"hi\"":"\u00e9"}"#;
        let changes = [
            FieldChange::set("c", json!(2)),
            FieldChange::remove("b"),
            FieldChange::set("d", json!(null)),
        ];
        let blob = encode_patched("id", &SessionCookie::default(), json, &changes).unwrap();
        let v: serde_json::Value = serde_json::from_slice(fields_of(&blob).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"a": {"deep": [1, 2, 3]}, "c": 2, "d": null, "he said \"hi\"": "é"})
        );
    }

    #[test]
    fn a_rekeyed_blob_keeps_its_cookie_and_fields() {
        let cookie = SessionCookie {
            original_max_age: Some(60_000),
            domain: Some(Arc::from("example.com")),
            ..SessionCookie::default()
        };
        let blob = encode("old-id", &cookie, br#"{"views":1}"#);
        let moved = rekey(&blob, "a-new-and-longer-id").unwrap();
        assert_eq!(key_of(&moved).unwrap(), b"a-new-and-longer-id");
        assert_eq!(fields_of(&moved).unwrap(), br#"{"views":1}"#);
        assert_eq!(
            decode(&moved, 0).unwrap().cookie.domain(),
            Some("example.com")
        );
    }

    #[test]
    fn cookie_matches_exactly_the_encoded_cookie() {
        let base = SessionCookie {
            original_max_age: Some(60_000),
            expires: Some(1),
            domain: Some(Arc::from("example.com")),
            path: Arc::from("/app"),
            ..SessionCookie::default()
        };
        let variants = [
            base.clone(),
            SessionCookie::default(),
            SessionCookie {
                original_max_age: Some(60_001),
                ..base.clone()
            },
            SessionCookie {
                original_max_age: None,
                expires: None,
                ..base.clone()
            },
            SessionCookie {
                domain: Some(Arc::from("example.org")),
                ..base.clone()
            },
            SessionCookie {
                domain: None,
                ..base.clone()
            },
            SessionCookie {
                path: Arc::from("/apq"),
                ..base.clone()
            },
            SessionCookie {
                path: Arc::from("/app/x"),
                ..base.clone()
            },
            SessionCookie {
                secure: Some(true),
                ..base.clone()
            },
            SessionCookie {
                http_only: false,
                ..base.clone()
            },
            SessionCookie {
                same_site: Some(SameSite::Strict),
                ..base.clone()
            },
            SessionCookie {
                priority: Some(Priority::Low),
                ..base.clone()
            },
            SessionCookie {
                partitioned: Some(false),
                ..base.clone()
            },
        ];
        for (i, a) in variants.iter().enumerate() {
            let blob = encode("k", a, br#"{"views":1}"#);
            assert_eq!(
                blob.len(),
                head_len("k", a) + 11,
                "the reserved size is exact"
            );
            for (j, b) in variants.iter().enumerate() {
                assert_eq!(cookie_matches(&blob, b), i == j, "{i} against {j}");
            }
            // The expiry lives in the deadline: another instant still matches.
            let later = SessionCookie {
                expires: a.expires.map(|e| e + 1000),
                ..a.clone()
            };
            assert!(cookie_matches(&blob, &later));
            for n in 0..blob.len().min(28) {
                // Only the head (key and cookie) is compared.
                assert_eq!(cookie_matches(&blob[..n], a), n >= head_len("k", a), "{n}");
            }
        }
    }

    #[test]
    fn truncated_blob_is_an_error_not_a_panic() {
        let blob = encode(
            "key",
            &SessionCookie {
                original_max_age: Some(5),
                ..SessionCookie::default()
            },
            b"{}",
        );
        // The head is 4 + 3 key bytes, 2 flag bytes and 8 bytes of max-age.
        let head = 4 + 3 + 2 + 8;
        for n in 0..blob.len() {
            assert!(decode(&blob[..n], 0).is_err(), "{n}");
            assert_eq!(fields_of(&blob[..n]).is_ok(), n >= head, "{n}");
            assert_eq!(key_of(&blob[..n]).is_ok(), n >= 7, "{n}");
            assert_eq!(key_is(&blob[..n], b"key"), n >= 7);
        }
        assert_eq!(fields_of(&blob).unwrap(), b"{}");
    }
}
