//! The stored fields a session was loaded from: what the handler's changes are measured
//! against at the end of the request, and the writer that applies changes to stored
//! JSON text without touching the bytes of anything else.
//!
//! Every store hands the layer JSON text (a whole express-session record, or the text of
//! the fields object beside a cookie kept apart). A request decodes only the fields its
//! struct declares, straight from their text, and builds no tree of values; a touched
//! field is compared with its stored text byte for byte.
//!
//! The entries are found by one small reader, [`scan_entries`], for every caller: the
//! baseline, the patch writer, the record's cookie, Tessera's entry. A baseline whose
//! keys have escapes is decoded by serde_json into a map instead (its keys' text is not
//! the key, and lookups compare keys); the patch writer decodes such keys itself and
//! keeps every other byte. A malformed text is serde_json's to explain. Sessions with
//! many keys get a hash index over their keys, built once per load, so that every
//! lookup stays O(1) and a request costs time linear in the size of the session.
//!
//! The reader and the writer themselves are in `json.rs`.

pub(crate) use super::json::*;
use std::collections::HashMap;

use std::sync::OnceLock;

use serde_json::Value;

use crate::record::{COOKIE_KEY, FieldChange, Fields, RecordError, apply_changes};

/// Up to this many entries a linear search is cheaper than hashing.
pub(crate) const LINEAR: usize = 8;

/// The stored fields of a session, as loaded. Used by the code that
/// `#[derive(SessionData)]` generates; not a public API.
#[doc(hidden)]
#[derive(Debug)]
pub struct Baseline(Repr);

#[derive(Debug)]
enum Repr {
    /// A JSON object map (the encoded defaults of a new session, or a text whose keys
    /// have escapes).
    Map(Fields),
    /// JSON object text and, per field entry in order, the byte ranges of its key (the
    /// key's own text: keys with escapes are kept as a `Map` instead) and of its value.
    Text {
        json: Box<[u8]>,
        entries: Spans,
        /// The text is a whole stored record (its `cookie` entry is not in `entries`).
        whole: bool,
        /// Key → index of its last entry, for sessions with many keys.
        index: OnceLock<Box<KeyIndex>>,
    },
}

/// A byte range of a text: start, end.
pub(crate) type Span = (u32, u32);

/// The entries of a text: a few kept inline (a session usually has a handful of keys),
/// more on the heap.
#[derive(Clone, Debug)]
pub(crate) enum Spans {
    Inline(u8, [(Span, Span); Spans::INLINE]),
    Heap(Vec<(Span, Span)>),
}

impl Spans {
    const INLINE: usize = 4;

    pub(crate) fn new() -> Self {
        Self::Inline(0, [((0, 0), (0, 0)); Self::INLINE])
    }

    pub(crate) fn push(&mut self, entry: (Span, Span)) {
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

    fn retain(&mut self, mut keep: impl FnMut(&(Span, Span)) -> bool) {
        match self {
            Self::Inline(len, items) => {
                let mut kept = 0;
                for i in 0..usize::from(*len).min(Self::INLINE) {
                    if keep(&items[i]) {
                        items[kept] = items[i];
                        kept += 1;
                    }
                }
                *len = kept as u8;
            }
            Self::Heap(heap) => heap.retain(keep),
        }
    }
}

impl std::ops::Deref for Spans {
    type Target = [(Span, Span)];

    fn deref(&self) -> &[(Span, Span)] {
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

/// A hash index over the keys of a text: each key's last entry.
#[derive(Debug)]
struct KeyIndex(HashMap<Box<[u8]>, u32>);

impl KeyIndex {
    fn build(json: &[u8], entries: &[(Span, Span)]) -> Self {
        let mut map = HashMap::with_capacity(entries.len());
        for (i, (k, _)) in entries.iter().enumerate() {
            // Later entries win, as when a map is built from the text.
            map.insert(Box::from(span_text(json, *k)), i as u32);
        }
        Self(map)
    }
}

impl Baseline {
    /// The fields of a stored JSON object text (the fields alone, or with `whole`, a
    /// whole record whose `cookie` entry is left out). Fails unless it is a JSON object.
    pub(crate) fn from_json(json: Box<[u8]>, whole: bool) -> Result<Self, RecordError> {
        // Kept as text and copied into later writes as it is: it must be UTF-8.
        if std::str::from_utf8(&json).is_err() {
            return Err(RecordError::Shape("stored text is not UTF-8"));
        }
        Self::from_text(json, whole)
    }

    /// The fields of a text this crate wrote (a `MemoryStore`'s): UTF-8, and without a
    /// `cookie` entry.
    pub(crate) fn from_own_json(json: Box<[u8]>) -> Result<Self, RecordError> {
        match scan_object(&json) {
            Some(entries) => Ok(Self(Repr::Text {
                json,
                entries,
                whole: false,
                index: OnceLock::new(),
            })),
            None => Self::from_text(json, false),
        }
    }

    fn from_text(json: Box<[u8]>, whole: bool) -> Result<Self, RecordError> {
        match scan_object(&json) {
            Some(mut entries) => {
                entries.retain(|(k, _)| span_text(&json, *k) != COOKIE_KEY.as_bytes());
                Ok(Self(Repr::Text {
                    json,
                    entries,
                    whole,
                    index: OnceLock::new(),
                }))
            }
            // A key with escapes, or not an object: serde_json decodes it, or says why not.
            None => {
                let mut map: Fields = serde_json::from_slice(&json)?;
                map.remove(COOKIE_KEY);
                Ok(Self(Repr::Map(map)))
            }
        }
    }

    /// The index of the entry holding `key` (the last one, if the JSON repeats a key, as
    /// a map keeps).
    fn find(&self, key: &[u8]) -> Option<usize> {
        let Repr::Text {
            json,
            entries,
            index,
            ..
        } = &self.0
        else {
            return None;
        };
        if entries.len() <= LINEAR {
            return entries
                .iter()
                .rposition(|(k, _)| span_text(json, *k) == key);
        }
        let index = index.get_or_init(|| Box::new(KeyIndex::build(json, entries)));
        index.0.get(key).map(|&i| i as usize)
    }

    /// The stored value of `key`.
    pub fn get(&self, key: &str) -> Option<StoredValue<'_>> {
        match &self.0 {
            Repr::Map(map) => map.get(key).map(StoredValue::Value),
            Repr::Text { json, entries, .. } => {
                let i = self.find(key.as_bytes())?;
                entries
                    .get(i)
                    .map(|(_, v)| StoredValue::Json(span_text(json, *v)))
            }
        }
    }

    /// Whether `key` is stored with a value equal to `value`.
    pub fn holds(&self, key: &str, value: &Value) -> bool {
        match self.get(key) {
            None => false,
            Some(StoredValue::Value(stored)) => stored == value,
            Some(StoredValue::Json(text)) => json_text_holds(text, value),
        }
    }

    /// The stored keys, in order (each once).
    pub fn keys(&self) -> Vec<&str> {
        match &self.0 {
            Repr::Map(map) => map.keys().map(String::as_str).collect(),
            Repr::Text { json, entries, .. } => {
                let mut keys: Vec<&str> = Vec::with_capacity(entries.len());
                for (i, (k, _)) in entries.iter().enumerate() {
                    let text = span_text(json, *k);
                    // A repeated key is listed at its last entry only.
                    if self.find(text) != Some(i) {
                        continue;
                    }
                    // The scanner took keys without escapes: their text is the key.
                    if let Ok(k) = std::str::from_utf8(text) {
                        keys.push(k);
                    }
                }
                keys
            }
        }
    }

    /// How many keys are stored (a repeated key counts each time) and the length of the
    /// stored text, when the fields are still the text a store handed over.
    pub(crate) fn stored_size(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Repr::Map(map) => (map.len(), None),
            Repr::Text { json, entries, .. } => (entries.len(), Some(json.len())),
        }
    }

    /// Whether the fields with `changes` applied are surely within the limits of
    /// `options`, by a bound that needs no lookups (every change adds a key and its whole
    /// value): the usual request, a few small changes to a small session, pays for no
    /// more. When it cannot tell, [`Self::size_after`] counts.
    pub(crate) fn surely_within(
        &self,
        changes: &[FieldChange],
        options: &crate::options::SessionOptions,
    ) -> bool {
        // A map (a new session's defaults) is counted exactly.
        let Repr::Text { json, entries, .. } = &self.0 else {
            return false;
        };
        let (keys, bytes) = (entries.len(), json.len());
        if keys.saturating_add(changes.len()) > options.max_keys {
            return false;
        }
        let mut bound = bytes;
        for change in changes {
            let value = match &change.value {
                None => 0,
                Some(Value::Null | Value::Bool(_)) => 5,
                // The longest number serde_json writes: `-1.7976931348623157e308`.
                Some(Value::Number(_)) => 24,
                // Every character escaped as `\uXXXX`, and the quotes.
                Some(Value::String(s)) => s.len().saturating_mul(6).saturating_add(2),
                Some(v) => json_len(v),
            };
            bound = bound.saturating_add(change.key.len() * 6 + 4 + value);
        }
        bound <= options.max_record_bytes
    }

    /// How many keys, and about how many bytes of JSON, the fields hold with `changes`
    /// applied. Linear in the changes (and, for fields not kept as text, in the fields).
    pub(crate) fn size_after(&self, changes: &[FieldChange]) -> (usize, usize) {
        let entry = |key: &str, value_len: usize| key.len() + 4 + value_len;
        let (mut keys, mut bytes) = match &self.0 {
            Repr::Map(map) => (
                map.len(),
                2 + map
                    .iter()
                    .map(|(k, v)| entry(k, json_len(v)))
                    .sum::<usize>(),
            ),
            Repr::Text { json, entries, .. } => (entries.len(), json.len()),
        };
        for change in changes {
            if change.key == COOKIE_KEY {
                continue;
            }
            let old = match self.get(&change.key) {
                None => None,
                Some(StoredValue::Json(text)) => Some(text.len()),
                Some(StoredValue::Value(v)) => Some(json_len(v)),
            };
            if let Some(old) = old {
                bytes = bytes.saturating_sub(entry(&change.key, old));
                keys = keys.saturating_sub(1);
            }
            if let Some(new) = &change.value {
                bytes = bytes.saturating_add(entry(&change.key, json_len(new)));
                keys += 1;
            }
        }
        (keys, bytes)
    }

    /// The stored value of `key`, decoded.
    pub fn value(&self, key: &str) -> Option<Value> {
        match self.get(key)? {
            StoredValue::Value(v) => Some(v.clone()),
            StoredValue::Json(text) => serde_json::from_slice(text).ok(),
        }
    }

    /// The whole stored record text this baseline was loaded from, if it was.
    pub(crate) fn record_text(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Text {
                json, whole: true, ..
            } => Some(json),
            _ => None,
        }
    }

    /// The fields as a JSON object map.
    pub(crate) fn to_fields(&self) -> Result<Fields, RecordError> {
        match &self.0 {
            Repr::Map(map) => Ok(map.clone()),
            Repr::Text { .. } => {
                let mut out = Vec::new();
                self.write_patched(None, &[], &mut out)?;
                Ok(serde_json::from_slice(&out)?)
            }
        }
    }

    /// Applies saved changes.
    pub(crate) fn apply(&mut self, changes: &[FieldChange]) -> Result<(), RecordError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut fields = match std::mem::take(&mut self.0) {
            Repr::Map(map) => map,
            text => Self(text).to_fields()?,
        };
        apply_changes(&mut fields, changes);
        *self = Self::from(fields);
        Ok(())
    }

    /// Appends the JSON object of these fields with `changes` applied to `out`, with
    /// `cookie` (its JSON text) as the first entry when given. Untouched entries are
    /// copied as text; changed values are written from their `Value`s.
    pub(crate) fn write_patched(
        &self,
        cookie: Option<&[u8]>,
        changes: &[FieldChange],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        match &self.0 {
            Repr::Map(map) => write_object(
                cookie,
                map.iter()
                    .map(|(k, v)| (EntryKey::Str(k), EntryValue::Value(v))),
                changes,
                out,
            ),
            Repr::Text { json, entries, .. } => write_object(
                cookie,
                entries.iter().map(|&(k, v)| {
                    (
                        EntryKey::Plain(span_text(json, k)),
                        EntryValue::Json(span_text(json, v)),
                    )
                }),
                changes,
                out,
            ),
        }
    }
}

impl Default for Repr {
    fn default() -> Self {
        Self::Map(Fields::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_text_with_escaped_keys_is_patched_by_the_one_reader_as_a_map_would_be() {
        let text = br#"{"a\"b":1,"plain":[1.50],"\u00e9t\u00e9":{"x":true}}"#;
        let changes = [
            FieldChange::set("plain", json!(2)),
            FieldChange::set("a\"b", json!("q")),
            FieldChange::remove("\u{e9}t\u{e9}"),
            FieldChange::set("new", json!(null)),
        ];
        let mut out = Vec::new();
        patch_object_text(text, None, &changes, &mut out).unwrap();
        let patched: Value = serde_json::from_slice(&out).unwrap();
        let mut expected: Fields = serde_json::from_slice(text).unwrap();
        crate::record::apply_changes(&mut expected, &changes);
        assert_eq!(patched, Value::Object(expected));
        // Entries the patch does not touch keep their bytes.
        let mut out = Vec::new();
        patch_object_text(text, None, &[FieldChange::set("a\"b", json!(0))], &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(r#""plain":[1.50]"#), "{out}");
        assert!(out.contains(r#"{"x":true}"#), "{out}");
        // Malformed text and bad escapes are errors, never panics.
        for bad in [
            &br#"{"a\q":1}"#[..],
            br#"{"a":}"#,
            b"[1]",
            br#"{"a":1"#,
            b"\xff",
        ] {
            assert!(
                patch_object_text(bad, None, &changes, &mut Vec::new()).is_err(),
                "{bad:?}"
            );
        }
    }

    fn both(text: &str) -> [Baseline; 2] {
        let map: Fields = serde_json::from_str(text).unwrap();
        [
            Baseline::from_json(text.as_bytes().into(), false).unwrap(),
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
        assert_eq!(escaped.to_fields().unwrap(), map.to_fields().unwrap());
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
            b.apply(&[FieldChange::set("a", json!(5)), FieldChange::remove("b")])
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
        let parts: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (s(*k), s(*v))).collect();
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
        assert_eq!(scan_object(b"{}").map(|e| e.len()), Some(0));
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
            assert!(Baseline::from_json(text.into(), false).is_err());
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
            assert!(
                Baseline::from_json(bad.as_bytes().into(), false).is_err(),
                "{bad:?}"
            );
        }
        assert!(Baseline::from_json(Box::from(&[b'{', 0xff, b'}'][..]), false).is_err());
    }

    #[test]
    fn a_session_with_many_keys_is_indexed_and_answers_like_a_map() {
        let mut map = Fields::new();
        let mut text = String::from("{");
        for i in 0..2000 {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!("\"k{}\":{i}", i % 1500));
            map.insert(format!("k{}", i % 1500), json!(i));
        }
        text.push('}');
        let b = Baseline::from_json(text.into_bytes().into(), false).unwrap();
        assert!(matches!(b.0, Repr::Text { .. }));
        // Repeated keys answer their last value, and are listed once.
        assert!(b.holds("k0", &json!(1500)));
        assert!(b.holds("k1499", &json!(1499)));
        assert!(!b.holds("k1500", &json!(1500)));
        assert_eq!(b.keys().len(), 1500);
        assert_eq!(b.to_fields().unwrap(), map);
    }

    #[test]
    fn a_whole_record_text_leaves_its_cookie_out_of_the_fields() {
        let text = br#"{"cookie":{"path":"/"},"views":1}"#;
        let b = Baseline::from_json(text.to_vec().into(), true).unwrap();
        assert_eq!(b.keys(), ["views"]);
        assert_eq!(b.get(COOKIE_KEY).map(|_| ()), None);
        assert_eq!(b.record_text(), Some(&text[..]));
        let fields_only = Baseline::from_json(br#"{"views":1}"#.to_vec().into(), false).unwrap();
        assert_eq!(fields_only.record_text(), None);
    }
}
