//! JSON text, read and written without a tree of values: the one reader of an object's
//! entries ([`scan_entries`]), the writer that applies field changes to stored text
//! keeping every other byte ([`write_object`], [`patch_object_text`]), and comparisons
//! of stored text with values ([`json_text_holds`]).

use std::collections::HashMap;
use std::io;

use serde_json::Value;

use super::baseline::{LINEAR, Span, Spans, span_text};
use crate::record::{COOKIE_KEY, FieldChange, RecordError};

/// The length of `value` written as compact JSON.
pub(crate) fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Whether the JSON text `text` (as some writer stored it) holds `value`.
pub(crate) fn json_text_holds(text: &[u8], value: &Value) -> bool {
    // Writing an equal value gives the same bytes as serde_json (or JavaScript's
    // `JSON.stringify`) wrote, except for the order of an object's keys: when the text
    // holds an object, compare the values. (A number or escape that another writer spelt
    // differently counts as a change, and is written again: harmless.)
    let mut same = SameBytes {
        rest: text,
        same: true,
    };
    let identical =
        serde_json::to_writer(&mut same, value).is_ok() && same.same && same.rest.is_empty();
    identical
        || (memchr::memchr(b'{', text).is_some()
            && serde_json::from_slice::<Value>(text).is_ok_and(|v| v == *value))
}

/// A writer that only checks that what is written is exactly `rest`.
struct SameBytes<'a> {
    rest: &'a [u8],
    same: bool,
}

impl io::Write for SameBytes<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.same {
            match self.rest.strip_prefix(buf) {
                Some(rest) => self.rest = rest,
                None => self.same = false,
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A key of a stored object: its text when it has no escapes, else the decoded key.
#[derive(Clone, Copy)]
pub(crate) enum EntryKey<'a> {
    /// The bytes between the quotes (no escapes, so they are the key).
    Plain(&'a [u8]),
    /// A decoded key.
    Str(&'a str),
}

impl EntryKey<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Plain(b) => b,
            Self::Str(s) => s.as_bytes(),
        }
    }

    fn write(self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        match self {
            Self::Plain(k) => {
                out.push(b'"');
                out.extend_from_slice(k);
                out.push(b'"');
            }
            Self::Str(k) => serde_json::to_writer(&mut *out, k)?,
        }
        Ok(())
    }
}

/// A stored value: its JSON text, or a decoded value.
#[derive(Clone, Copy)]
pub(crate) enum EntryValue<'a> {
    Json(&'a [u8]),
    Value(&'a Value),
}

/// Finds changes by key: a linear search for a few, a hash map for many.
struct ChangeIndex<'c> {
    changes: &'c [FieldChange],
    map: Option<HashMap<&'c [u8], usize>>,
}

impl<'c> ChangeIndex<'c> {
    fn new(changes: &'c [FieldChange]) -> Self {
        let map = (changes.len() > LINEAR).then(|| {
            changes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.key.as_bytes(), i))
                .collect()
        });
        Self { changes, map }
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        match &self.map {
            Some(map) => map.get(key).copied(),
            None => self.changes.iter().rposition(|c| c.key.as_bytes() == key),
        }
    }
}

/// Which changes were applied: a word for the usual few, a vector for many.
enum Marks {
    Word(u64),
    Many(Vec<bool>),
}

impl Marks {
    fn new(len: usize) -> Self {
        if len <= 64 {
            Self::Word(0)
        } else {
            Self::Many(vec![false; len])
        }
    }

    fn set(&mut self, i: usize) {
        match self {
            Self::Word(w) => *w |= 1 << i,
            Self::Many(v) => {
                if let Some(m) = v.get_mut(i) {
                    *m = true;
                }
            }
        }
    }

    fn get(&self, i: usize) -> bool {
        match self {
            Self::Word(w) => *w & (1 << i) != 0,
            Self::Many(v) => v.get(i).copied().unwrap_or(false),
        }
    }
}

/// Appends a JSON object to `out`: `cookie` first (when given, replacing any stored
/// `cookie` entry), then the entries with `changes` applied, then the keys the changes
/// add. Linear in the number of entries and changes.
pub(crate) fn write_object<'a>(
    cookie: Option<&[u8]>,
    entries: impl Iterator<Item = (EntryKey<'a>, EntryValue<'a>)>,
    changes: &[FieldChange],
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    let index = ChangeIndex::new(changes);
    let mut applied = Marks::new(changes.len());
    out.push(b'{');
    let mut first = true;
    let mut comma = |out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        first = false;
    };
    if let Some(cookie) = cookie {
        comma(out);
        out.extend_from_slice(b"\"cookie\":");
        out.extend_from_slice(cookie);
    }
    for (key, value) in entries {
        let bytes = key.bytes();
        if bytes == COOKIE_KEY.as_bytes() {
            // The record's cookie is written once, first, by the caller; never a field.
            continue;
        }
        let change = index.find(bytes);
        if let Some(i) = change {
            applied.set(i);
        }
        let new = match change.map(|i| &changes[i].value) {
            Some(None) => continue,
            Some(Some(new)) => Some(new),
            None => None,
        };
        comma(out);
        key.write(out)?;
        out.push(b':');
        match (new, value) {
            (Some(new), _) | (None, EntryValue::Value(new)) => {
                serde_json::to_writer(&mut *out, new)?
            }
            (None, EntryValue::Json(raw)) => out.extend_from_slice(raw),
        }
    }
    for (i, change) in changes.iter().enumerate() {
        let Some(new) = &change.value else { continue };
        if applied.get(i) || change.key == COOKIE_KEY {
            continue;
        }
        // Changes may repeat a key: only the last one is written (`find` answers it).
        if index
            .find(change.key.as_bytes())
            .is_some_and(|i| !std::ptr::eq(&changes[i], change))
        {
            continue;
        }
        comma(out);
        serde_json::to_writer(&mut *out, &change.key)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, new)?;
    }
    out.push(b'}');
    Ok(())
}

/// Appends the JSON object text `json` with `changes` applied to `out`, `cookie` first
/// when given. The text may be a whole record or a fields object.
pub(crate) fn patch_object_text(
    json: &[u8],
    cookie: Option<&[u8]>,
    changes: &[FieldChange],
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    if let Some(spans) = scan_object(json) {
        // The usual text: no key has escapes, every key is copied as it is.
        let entries = spans.iter().map(|&(k, v)| {
            (
                EntryKey::Plain(span_text(json, k)),
                EntryValue::Json(span_text(json, v)),
            )
        });
        return write_object(cookie, entries, changes, out);
    }
    // Keys with escapes: the same reader, and those keys decoded here, once.
    let mut found: Vec<(Option<String>, Span, Span)> = Vec::new();
    let mut bad_key = None;
    let read = scan_entries(json, |k, escaped, v| {
        let decoded = if escaped {
            let quoted = json
                .get(k.0 as usize - 1..k.1 as usize + 1)
                .unwrap_or_default();
            match serde_json::from_slice::<String>(quoted) {
                Ok(key) => Some(key),
                Err(e) => {
                    bad_key = Some(e);
                    return false;
                }
            }
        } else {
            None
        };
        found.push((decoded, k, v));
        true
    });
    if let Some(e) = bad_key {
        return Err(RecordError::Json(e));
    }
    if !read {
        // Not an object this reader reads: serde_json says why, if it can.
        serde_json::from_slice::<serde::de::IgnoredAny>(json)?;
        return Err(RecordError::Shape("stored text is not a JSON object"));
    }
    let entries = found.iter().map(|(decoded, k, v)| {
        let key = match decoded {
            Some(key) => EntryKey::Str(key),
            None => EntryKey::Plain(span_text(json, *k)),
        };
        (key, EntryValue::Json(span_text(json, *v)))
    });
    write_object(cookie, entries, changes, out)
}

/// The top-level entries of a JSON object text: the byte ranges of each key's text and
/// value, in order. `None` when a key has escapes (its text is not the key), or the text
/// is not an object this scanner understands; values are checked when they are decoded.
pub(crate) fn scan_object(t: &[u8]) -> Option<Spans> {
    let mut out = Spans::new();
    let read = scan_entries(t, |k, escaped, v| {
        out.push((k, v));
        !escaped
    });
    read.then_some(out)
}

/// The one reader of a JSON object's entries, for every caller: `each(key, escaped,
/// value)` gets the byte ranges of each top-level key's text (between its quotes; with
/// `escaped`, that text has escapes and is not the key as it is) and of its value, in
/// order, and stops the scan by answering `false`. Answers whether the whole text was
/// read as an object. Values are skipped by their structure, not validated: they are
/// checked when decoded.
pub(crate) fn scan_entries(t: &[u8], mut each: impl FnMut(Span, bool, Span) -> bool) -> bool {
    let span = |start: usize, end: usize| -> Option<Span> {
        Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
    };
    let mut i = skip_ws(t, 0);
    if t.get(i) != Some(&b'{') {
        return false;
    }
    i = skip_ws(t, i + 1);
    if t.get(i) == Some(&b'}') {
        return skip_ws(t, i + 1) == t.len();
    }
    loop {
        if t.get(i) != Some(&b'"') {
            return false;
        }
        let key_start = i + 1;
        let Some(stop) = t
            .get(key_start..)
            .and_then(|rest| rest.iter().position(|&b| b == b'"' || b == b'\\'))
        else {
            return false;
        };
        let (key_end, escaped) = if t.get(key_start + stop) == Some(&b'"') {
            (key_start + stop, false)
        } else {
            match skip_string(t, key_start) {
                Some(after) => (after - 1, true),
                None => return false,
            }
        };
        i = skip_ws(t, key_end + 1);
        if t.get(i) != Some(&b':') {
            return false;
        }
        let value_start = skip_ws(t, i + 1);
        let Some(value_end) = skip_value(t, value_start) else {
            return false;
        };
        let (Some(k), Some(v)) = (span(key_start, key_end), span(value_start, value_end)) else {
            return false;
        };
        if !each(k, escaped, v) {
            return false;
        }
        i = skip_ws(t, value_end);
        match t.get(i) {
            Some(b',') => i = skip_ws(t, i + 1),
            Some(b'}') => return skip_ws(t, i + 1) == t.len(),
            _ => return false,
        }
    }
}

#[inline]
pub(crate) fn skip_ws(t: &[u8], mut i: usize) -> usize {
    while matches!(t.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// The end of the string whose opening quote is just before `i`. (A plain loop: session
/// strings are short, and `memchr` costs more to set up than it saves on them.)
pub(crate) fn skip_string(t: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match *t.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// The end of the value that starts at `start` (not empty).
#[inline]
pub(crate) fn skip_value(t: &[u8], start: usize) -> Option<usize> {
    match *t.get(start)? {
        b'"' => skip_string(t, start + 1),
        b'{' | b'[' => skip_container(t, start),
        // A number, `true`, `false` or `null`: up to the next delimiter.
        _ => {
            let rest = t.get(start..)?;
            let len = rest
                .iter()
                .position(|&b| {
                    matches!(b, b',' | b'}' | b']' | b':' | b' ' | b'\n' | b'\r' | b'\t')
                })
                .unwrap_or(rest.len());
            (len > 0).then_some(start + len)
        }
    }
}

/// The end of the object or array that starts at `start`.
pub(crate) fn skip_container(t: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    loop {
        match *t.get(i)? {
            b'"' => i = skip_string(t, i + 1)?,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
}
