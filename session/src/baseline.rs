//! The stored fields a session was loaded from: what the handler's changes are measured
//! against at the end of the request.
//!
//! A custom store hands over a JSON object map. The built-in `MemoryStore` hands over the
//! stored JSON text itself, with the place of each top-level entry: a request then decodes
//! only the fields its struct declares, straight from their text, and builds no tree of
//! values; a touched field is compared with its stored text byte for byte.
//!
//! The text of a `MemoryStore` is always what serde_json wrote for JSON values, so the
//! entries are found by a small scanner; whatever it does not recognise (a key with
//! escapes, a malformed text) is left to serde_json.

use std::borrow::Cow;
use std::fmt;
use std::io;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::cookie::SessionCookie;
use crate::record::{FieldChange, Fields, Record, RecordError, apply_changes};

/// The stored fields of a session, as loaded. Used by the code that
/// `#[derive(SessionData)]` generates; not a public API.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq)]
pub struct Baseline(Repr);

#[derive(Clone, Debug, PartialEq)]
enum Repr {
    /// A JSON object map (from a store's `Record`, or the encoded defaults).
    Map(Fields),
    /// Compact JSON object text and, per entry in order, the byte ranges of its key (the
    /// key's own text: keys with escapes are kept as a `Map` instead) and of its value.
    Text { json: Box<[u8]>, entries: Spans },
}

/// A byte range of a text: start, end.
pub(crate) type Span = (u32, u32);

/// The entries of a text: a few kept inline (a session usually has a handful of keys),
/// more on the heap.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Spans {
    Inline(u8, [(Span, Span); Spans::INLINE]),
    Heap(Vec<(Span, Span)>),
}

impl Spans {
    const INLINE: usize = 4;

    fn new() -> Self {
        Self::Inline(0, [((0, 0), (0, 0)); Self::INLINE])
    }

    fn push(&mut self, entry: (Span, Span)) {
        match self {
            Self::Inline(len, items) if usize::from(*len) < Self::INLINE => {
                items[usize::from(*len)] = entry;
                *len += 1;
            }
            Self::Inline(_, items) => {
                let mut heap = Vec::with_capacity(2 * Self::INLINE);
                heap.extend_from_slice(items);
                heap.push(entry);
                *self = Self::Heap(heap);
            }
            Self::Heap(heap) => heap.push(entry),
        }
    }

    /// The entries, in order.
    pub(crate) fn as_slice(&self) -> &[(Span, Span)] {
        match self {
            Self::Inline(len, items) => &items[..usize::from(*len).min(Self::INLINE)],
            Self::Heap(heap) => heap,
        }
    }
}

/// The bytes of `text` in `span` (empty if out of range).
pub(crate) fn span_text(text: &[u8], (start, end): Span) -> &[u8] {
    text.get(start as usize..end as usize).unwrap_or_default()
}

/// One stored value: a decoded JSON value, or the JSON text of one.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum StoredValue<'a> {
    /// A value of a map.
    Value(&'a Value),
    /// The JSON text of a value.
    Json(&'a [u8]),
}

/// A loaded session: its cookie and its stored fields.
pub(crate) struct Loaded {
    pub(crate) cookie: SessionCookie,
    pub(crate) fields: Baseline,
}

impl From<Record> for Loaded {
    fn from(record: Record) -> Self {
        Self {
            cookie: record.cookie,
            fields: Baseline::from(record.fields),
        }
    }
}

impl From<Fields> for Baseline {
    fn from(fields: Fields) -> Self {
        Self(Repr::Map(fields))
    }
}

impl Default for Baseline {
    fn default() -> Self {
        Self::from(Fields::new())
    }
}

impl Baseline {
    /// The fields of a stored JSON object text. Fails unless it is a JSON object.
    pub(crate) fn from_json(json: &[u8]) -> Result<Self, RecordError> {
        match scan_object(json) {
            Some(entries) => Ok(Self(Repr::Text {
                json: json.into(),
                entries,
            })),
            // A key with escapes, or not an object: serde_json decodes it, or says why not.
            None => Ok(Self(Repr::Map(serde_json::from_slice(json)?))),
        }
    }

    /// The stored value of `key` (the last one, if the JSON repeats a key, as a map keeps).
    pub fn get(&self, key: &str) -> Option<StoredValue<'_>> {
        match &self.0 {
            Repr::Map(map) => map.get(key).map(StoredValue::Value),
            Repr::Text { json, entries } => entries
                .as_slice()
                .iter()
                .rev()
                .find(|(k, _)| span_text(json, *k) == key.as_bytes())
                .map(|(_, v)| StoredValue::Json(span_text(json, *v))),
        }
    }

    /// Whether `key` is stored with a value equal to `value`.
    pub fn holds(&self, key: &str, value: &Value) -> bool {
        match self.get(key) {
            None => false,
            Some(StoredValue::Value(stored)) => stored == value,
            Some(StoredValue::Json(text)) => {
                // The stored text is what serde_json wrote for a value, and writing an
                // equal value gives the same bytes, except for the order of an object's
                // keys (a `HashMap`, or serde_json's `preserve_order`): when the text
                // holds an object, compare the values.
                let mut same = SameBytes {
                    rest: text,
                    same: true,
                };
                let identical = serde_json::to_writer(&mut same, value).is_ok()
                    && same.same
                    && same.rest.is_empty();
                identical
                    || (memchr::memchr(b'{', text).is_some()
                        && serde_json::from_slice::<Value>(text).is_ok_and(|v| v == *value))
            }
        }
    }

    /// The stored keys, in order (each once).
    pub fn keys(&self) -> Vec<&str> {
        match &self.0 {
            Repr::Map(map) => map.keys().map(String::as_str).collect(),
            Repr::Text { json, entries } => {
                let mut keys: Vec<&str> = Vec::with_capacity(entries.as_slice().len());
                for (k, _) in entries.as_slice() {
                    // The scanner took keys without escapes: their text is the key.
                    let Ok(k) = std::str::from_utf8(span_text(json, *k)) else {
                        continue;
                    };
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
                keys
            }
        }
    }

    /// The stored value of `key`, decoded.
    pub fn value(&self, key: &str) -> Option<Value> {
        match self.get(key)? {
            StoredValue::Value(v) => Some(v.clone()),
            StoredValue::Json(text) => serde_json::from_slice(text).ok(),
        }
    }

    /// The fields, if they are kept as a map.
    pub(crate) fn as_map(&self) -> Option<&Fields> {
        match &self.0 {
            Repr::Map(map) => Some(map),
            Repr::Text { .. } => None,
        }
    }

    /// The fields, if they are kept as JSON object text.
    pub(crate) fn as_text(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Map(_) => None,
            Repr::Text { json, .. } => Some(json),
        }
    }

    /// The fields as a JSON object map.
    pub(crate) fn to_fields(&self) -> Result<Fields, RecordError> {
        match &self.0 {
            Repr::Map(map) => Ok(map.clone()),
            Repr::Text { json, .. } => Ok(serde_json::from_slice(json)?),
        }
    }

    /// [`Baseline::to_fields`], consuming the baseline.
    pub(crate) fn into_fields(self) -> Result<Fields, RecordError> {
        match self.0 {
            Repr::Map(map) => Ok(map),
            text => Self(text).to_fields(),
        }
    }

    /// Applies saved changes.
    pub(crate) fn apply(&mut self, changes: &[FieldChange]) -> Result<(), RecordError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut fields = std::mem::take(self).into_fields()?;
        apply_changes(&mut fields, changes);
        *self = Self::from(fields);
        Ok(())
    }
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

/// The top-level entries of a JSON object text: the byte ranges of each key's text and
/// value, in order. `None` when a key has escapes (its text is not the key), or the text
/// is not an object this scanner understands; values are checked when they are decoded.
pub(crate) fn scan_object(t: &[u8]) -> Option<Spans> {
    let span = |start: usize, end: usize| -> Option<Span> {
        Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
    };
    let mut i = skip_ws(t, 0);
    if t.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(t, i + 1);
    let mut out = Spans::new();
    if t.get(i) == Some(&b'}') {
        return (skip_ws(t, i + 1) == t.len()).then_some(out);
    }
    loop {
        if t.get(i) != Some(&b'"') {
            return None;
        }
        let key_start = i + 1;
        let key_end = key_start
            + t.get(key_start..)?
                .iter()
                .position(|&b| b == b'"' || b == b'\\')?;
        if t.get(key_end) != Some(&b'"') {
            return None;
        }
        i = skip_ws(t, key_end + 1);
        if t.get(i) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(t, i + 1);
        i = skip_value(t, value_start)?;
        out.push((span(key_start, key_end)?, span(value_start, i)?));
        i = skip_ws(t, i);
        match t.get(i) {
            Some(b',') => i = skip_ws(t, i + 1),
            Some(b'}') => return (skip_ws(t, i + 1) == t.len()).then_some(out),
            _ => return None,
        }
    }
}

#[inline]
fn skip_ws(t: &[u8], mut i: usize) -> usize {
    while matches!(t.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// The end of the string whose opening quote is just before `i`. (A plain loop: session
/// strings are short, and `memchr` costs more to set up than it saves on them.)
fn skip_string(t: &[u8], mut i: usize) -> Option<usize> {
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
fn skip_value(t: &[u8], start: usize) -> Option<usize> {
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
fn skip_container(t: &[u8], start: usize) -> Option<usize> {
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
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
}

/// A key of the stored JSON: borrowed from the text unless it has escapes.
pub(crate) struct Key<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The entries of a JSON object text, in order, values left as raw text.
pub(crate) struct Entries<'a>(pub(crate) Vec<(Key<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((k, v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn both(text: &str) -> [Baseline; 2] {
        let map: Fields = serde_json::from_str(text).unwrap();
        [
            Baseline::from_json(text.as_bytes()).unwrap(),
            Baseline::from(map),
        ]
    }

    #[test]
    fn text_and_map_baselines_answer_alike() {
        let text = r#"{"views":3,"cart":["a","b"],"user":{"b":1,"a":2},"n":null}"#;
        for b in both(text) {
            assert!(b.holds("views", &json!(3)));
            assert!(!b.holds("views", &json!(4)));
            assert!(!b.holds("views", &json!("3")));
            assert!(b.holds("cart", &json!(["a", "b"])));
            // Another writer's key order is still the same value.
            assert!(b.holds("user", &json!({"a": 2, "b": 1})));
            assert!(b.holds("n", &Value::Null));
            assert!(!b.holds("missing", &Value::Null));
            let mut keys = b.keys();
            keys.sort_unstable();
            assert_eq!(keys, ["cart", "n", "user", "views"]);
            assert_eq!(b.value("cart"), Some(json!(["a", "b"])));
            assert_eq!(b.value("missing"), None);
            assert_eq!(
                b.to_fields().unwrap(),
                serde_json::from_str::<Fields>(text).unwrap()
            );
        }
    }

    #[test]
    fn a_stored_text_is_kept_as_text_unless_a_key_has_escapes() {
        let [text, _] = both(r#"{"a":1,"b":"x"}"#);
        assert!(matches!(text.0, Repr::Text { .. }));
        let [escaped, map] = both(r#"{"a\"b":1,"c":2}"#);
        assert!(matches!(escaped.0, Repr::Map(_)));
        assert_eq!(escaped, map);
        assert!(escaped.holds("a\"b", &json!(1)));
    }

    #[test]
    fn a_repeated_key_answers_with_its_last_value_as_a_map_does() {
        for b in both(r#"{"a":1,"a":2}"#) {
            assert!(b.holds("a", &json!(2)));
            assert_eq!(b.keys(), ["a"]);
        }
    }

    #[test]
    fn applying_changes_updates_the_fields() {
        for mut b in both(r#"{"a":1,"b":2}"#) {
            b.apply(&[("a".into(), Some(json!(5))), ("b".into(), None)])
                .unwrap();
            assert_eq!(
                b.to_fields().unwrap(),
                json!({"a": 5}).as_object().cloned().unwrap()
            );
        }
    }

    #[test]
    fn the_scanner_finds_every_entry_of_nested_and_spaced_text() {
        let text =
            br#" { "a" : [1, {"x": "}]\"["}] , "b":"q\"uote","c":-1.5e3,"d":{} ,"e":true } "#;
        let Some(entries) = scan_object(text) else {
            panic!("not scanned")
        };
        let s = |(a, b): Span| std::str::from_utf8(&text[a as usize..b as usize]).unwrap();
        let parts: Vec<(&str, &str)> = entries
            .as_slice()
            .iter()
            .map(|(k, v)| (s(*k), s(*v)))
            .collect();
        assert_eq!(
            parts,
            [
                ("a", r#"[1, {"x": "}]\"["}]"#),
                ("b", r#""q\"uote""#),
                ("c", "-1.5e3"),
                ("d", "{}"),
                ("e", "true")
            ]
        );
        assert_eq!(scan_object(b"{}").map(|e| e.as_slice().len()), Some(0));
    }

    #[test]
    fn the_scanner_leaves_what_it_does_not_recognise_to_serde_json() {
        for text in [
            &br#"{"a":1"#[..],
            br#"{"a":1,}"#,
            br#"{"a":}"#,
            br#"{"a" 1}"#,
            br#"{"a":1} x"#,
            br#"{a:1}"#,
            br#"{"a":"unterminated}"#,
            br#"{"a":[1,2}"#,
            br#"["a"]"#,
            b"",
        ] {
            assert!(
                scan_object(text).is_none(),
                "{:?}",
                String::from_utf8_lossy(text)
            );
            assert!(Baseline::from_json(text).is_err());
        }
        // Every prefix of a valid text is rejected, without a panic.
        let text = br#"{"a":[1,{"b":"c\"d"}],"e":null}"#;
        assert!(scan_object(text).is_some());
        for n in 0..text.len() {
            assert!(scan_object(&text[..n]).is_none());
        }
    }

    #[test]
    fn stored_text_that_is_not_an_object_is_an_error() {
        for bad in ["[1]", "1", "{", "", "{\"a\":}", "\u{0}"] {
            assert!(Baseline::from_json(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(Baseline::from_json(&[b'{', 0xff, b'}']).is_err());
    }
}
