//! The stored fields a session was loaded from: what the handler's changes are measured
//! against at the end of the request, and the writer that applies changes to stored
//! JSON text without touching the bytes of anything else.
//!
//! Every store hands the layer JSON text (a whole express-session record, or the text of
//! the fields object beside a cookie kept apart). A request decodes only the fields its
//! struct declares, straight from their text, and builds no tree of values; a touched
//! field is compared with its stored text byte for byte.
//!
//! The entries are found by a small scanner; whatever it does not recognise (a key with
//! escapes, a malformed text) is left to serde_json. Sessions with many keys get a hash
//! index over their keys, built once per load, so that every lookup stays O(1) and a
//! request costs time linear in the size of the session.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::OnceLock;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::record::{COOKIE_KEY, FieldChange, Fields, RecordError, apply_changes};

/// Up to this many entries a linear search is cheaper than hashing.
const LINEAR: usize = 8;

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
        let entries = spans.iter().map(|&(k, v)| {
            (
                EntryKey::Plain(span_text(json, k)),
                EntryValue::Json(span_text(json, v)),
            )
        });
        return write_object(cookie, entries, changes, out);
    }
    // Keys with escapes: serde_json finds the entries.
    let Entries(found) = serde_json::from_slice(json)?;
    let entries = found.iter().map(|(Key(k), raw)| {
        let key = match k {
            Cow::Borrowed(k) => EntryKey::Plain(k.as_bytes()),
            Cow::Owned(k) => EntryKey::Str(k),
        };
        (key, EntryValue::Json(raw.get().as_bytes()))
    });
    write_object(cookie, entries, changes, out)
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
