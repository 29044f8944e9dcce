//! What the layer hands a store to write: a field patch ([`Patch`]), a renewal
//! ([`Touch`]) or a whole record ([`RecordView`]), and the changes they carry
//! ([`FieldChange`]).

use serde::Serialize;
use serde_json::Value;

use super::record::{COOKIE_KEY, Fields, Record, RecordError};
use crate::baseline::{Baseline, patch_object_text, scan_object, span_text};
use crate::cookie::SessionCookie;
use crate::time;

/// A change to one field of a session.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// The stored key.
    pub key: String,
    /// The new value; `None` removes the key.
    pub value: Option<Value>,
}

impl FieldChange {
    /// Sets `key` to `value`.
    pub fn set(key: impl Into<String>, value: Value) -> Self {
        Self {
            key: key.into(),
            value: Some(value),
        }
    }

    /// Removes `key`.
    pub fn remove(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: None,
        }
    }
}

/// What one request changed in a stored session: the changed fields, and the renewed
/// cookie that replaces the stored one. See [`crate::SessionStore::patch`].
///
/// ```
/// use serde_json::json;
/// use tessera::{FieldChange, Patch, SessionCookie};
///
/// let cookie = SessionCookie::default();
/// let changes = [FieldChange::set("views", json!(2)), FieldChange::remove("cart")];
/// let patch = Patch::new(&cookie, &changes);
/// let stored = br#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"views":1,"cart":[],"n":1.50}"#;
/// let patched = patch.apply_to_json(stored)?;
/// assert_eq!(
///     std::str::from_utf8(&patched).unwrap(),
///     r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"views":2,"n":1.50}"#,
/// );
/// # Ok::<(), tessera::RecordError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Patch<'a> {
    cookie: &'a SessionCookie,
    changes: &'a [FieldChange],
    loaded: Option<&'a [u8]>,
    attributes_changed: bool,
    user: Option<&'a str>,
}

impl<'a> Patch<'a> {
    /// A patch that stores `cookie` and applies `changes`.
    pub fn new(cookie: &'a SessionCookie, changes: &'a [FieldChange]) -> Self {
        Self {
            cookie,
            changes,
            loaded: None,
            attributes_changed: true,
            user: None,
        }
    }

    /// The same patch, naming the user the session is tied to once it is applied
    /// ([`crate::Session::set_user`]). A store with a per-user index adds the id to the
    /// user's sessions before writing (see [`crate::SessionAdmin::user_sessions`]).
    pub fn with_user(self, user: Option<&'a str>) -> Self {
        Self { user, ..self }
    }

    /// The user the session is tied to once the patch is applied, if any.
    pub fn user(&self) -> Option<&'a str> {
        self.user
    }

    /// The same patch, saying whether the cookie's attributes (everything but its
    /// `expires`) may differ from the stored cookie's. The layer knows: only the
    /// handler's cookie setters change them.
    pub fn with_cookie_attributes_changed(self, changed: bool) -> Self {
        Self {
            attributes_changed: changed,
            ..self
        }
    }

    /// Whether the cookie's attributes may differ from the stored ones (true unless the
    /// layer knows better). When false, a store that keeps the expiry apart (a key's
    /// TTL) may renew the expiry without rewriting the stored cookie.
    pub fn cookie_attributes_changed(&self) -> bool {
        self.attributes_changed
    }

    /// The same patch, noting the whole record text the session was loaded from (what
    /// [`LoadedRecord::from_json`](crate::LoadedRecord::from_json) was given). A compare-and-set store can use it as its
    /// guess of what is stored and so skip a read; it is only a guess.
    pub fn with_loaded_text(self, text: Option<&'a [u8]>) -> Self {
        Self {
            loaded: text,
            ..self
        }
    }

    /// The cookie to store in place of the stored one.
    pub fn cookie(&self) -> &'a SessionCookie {
        self.cookie
    }

    /// The changed fields.
    pub fn changes(&self) -> &'a [FieldChange] {
        self.changes
    }

    /// The whole record text the session was loaded from, if the layer knows it.
    pub fn loaded_text(&self) -> Option<&'a [u8]> {
        self.loaded
    }

    /// The stored record text `stored` (express-session's layout) with this patch
    /// applied: the cookie replaced, the changed keys set or removed, and every other
    /// byte of the text kept as it was (numbers, escapes and key order included).
    ///
    /// # Errors
    ///
    /// [`RecordError`] when `stored` is not a JSON object.
    pub fn apply_to_json(&self, stored: &[u8]) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::with_capacity(stored.len() + 64);
        self.write_applied(stored, &mut out)?;
        Ok(out)
    }

    /// [`Patch::apply_to_json`], appending to `out`.
    ///
    /// # Errors
    ///
    /// [`RecordError`] when `stored` is not a JSON object.
    pub fn write_applied(&self, stored: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        let cookie = self.cookie.to_json();
        patch_object_text(stored, Some(cookie.as_bytes()), self.changes, out)
    }

    /// Applies the patch to a decoded record.
    pub fn apply_to(&self, record: &mut Record) {
        record.cookie = self.cookie.clone();
        apply_changes(&mut record.fields, self.changes);
    }
}

/// A renewal of a session's expiry ([`crate::SessionStore::touch`]): the renewed cookie,
/// and what the layer knows of the stored deadline.
#[derive(Clone, Copy, Debug)]
pub struct Touch<'a> {
    cookie: &'a SessionCookie,
    loaded: Option<i64>,
    after: Option<std::time::Duration>,
    user: Option<&'a str>,
    /// The layer's now, when the layer made it.
    now: Option<i64>,
}

impl<'a> Touch<'a> {
    /// A touch that renews the expiry from `cookie`.
    pub fn new(cookie: &'a SessionCookie) -> Self {
        Self {
            cookie,
            loaded: None,
            after: None,
            user: None,
            now: None,
        }
    }

    /// The same touch, naming the user the session is tied to: a store whose per-user
    /// index expires (a Redis set with a TTL) keeps it alive as long as the session.
    pub fn with_user(self, user: Option<&'a str>) -> Self {
        Self { user, ..self }
    }

    /// The user the session is tied to, if any.
    pub fn user(&self) -> Option<&'a str> {
        self.user
    }

    /// The same touch, knowing the deadline the store reported when it loaded the
    /// session, and skippable while it would move it by less than `after` (the layer's
    /// `touch_after`).
    pub fn lazy(
        self,
        loaded_deadline: Option<std::time::SystemTime>,
        after: Option<std::time::Duration>,
    ) -> Self {
        self.lazy_ms(loaded_deadline.map(time::system_time_to_ms), after)
    }

    pub(crate) fn lazy_ms(self, loaded: Option<i64>, after: Option<std::time::Duration>) -> Self {
        Self {
            loaded,
            after,
            ..self
        }
    }

    /// The same touch, judged at the layer's `now`.
    pub(crate) fn at(self, now: i64) -> Self {
        Self {
            now: Some(now),
            ..self
        }
    }

    /// The renewed cookie.
    pub fn cookie(&self) -> &'a SessionCookie {
        self.cookie
    }

    /// The deadline the store reported when the session was loaded, if it did.
    pub fn loaded_deadline(&self) -> Option<std::time::SystemTime> {
        self.loaded.map(time::ms_to_system_time)
    }

    /// Whether the touch is worth writing: always, unless the layer's `touch_after`
    /// is set and the touch would move the loaded deadline by less than it. `ttl` is the
    /// store's lifetime for a record without `expires`.
    pub fn is_due(&self, ttl: std::time::Duration) -> bool {
        let (Some(loaded), Some(after)) = (self.loaded, self.after) else {
            return true;
        };
        let renewed = match self.cookie.expires {
            Some(at) => at,
            None => self
                .now
                .unwrap_or_else(time::now_ms)
                .saturating_add(time::duration_ms(ttl)),
        };
        renewed.saturating_sub(loaded) >= time::duration_ms(after)
    }
}

pub(crate) fn apply_changes(fields: &mut Fields, changes: &[FieldChange]) {
    for change in changes {
        if change.key == COOKIE_KEY {
            continue;
        }
        match &change.value {
            Some(v) => {
                fields.insert(change.key.clone(), v.clone());
            }
            None => {
                fields.remove(&change.key);
            }
        }
    }
}

/// A whole session record to write ([`crate::SessionStore::set`]): a cookie and its
/// fields, which a store renders in the form it keeps.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    cookie: &'a SessionCookie,
    fields: FieldsOf<'a>,
    uninitialized: bool,
    user: Option<&'a str>,
}

#[derive(Clone, Copy, Debug)]
enum FieldsOf<'a> {
    Map(&'a Fields),
    Baseline(&'a Baseline, &'a [FieldChange]),
}

impl<'a> From<&'a Record> for RecordView<'a> {
    fn from(record: &'a Record) -> Self {
        Self {
            cookie: &record.cookie,
            fields: FieldsOf::Map(&record.fields),
            uninitialized: false,
            user: record
                .fields
                .get(crate::meta::META_KEY)
                .and_then(|m| m.get("user"))
                .and_then(serde_json::Value::as_str),
        }
    }
}

impl<'a> RecordView<'a> {
    /// A session's stored fields with this request's changes applied.
    pub(crate) fn of(
        cookie: &'a SessionCookie,
        base: &'a Baseline,
        changes: &'a [FieldChange],
    ) -> Self {
        Self {
            cookie,
            fields: FieldsOf::Baseline(base, changes),
            uninitialized: false,
            user: None,
        }
    }

    /// The same record, tied to `user` (the layer says so; the record's
    /// [`crate::META_KEY`] entry holds the same user).
    pub(crate) fn with_user(mut self, user: Option<&'a str>) -> Self {
        self.user = user;
        self
    }

    /// The user the session is tied to ([`crate::Session::set_user`]), if any. A store
    /// with a per-user index adds the id to the user's sessions before writing.
    pub fn user(&self) -> Option<&'a str> {
        self.user
    }

    /// Marks the record of a session saved without having been modified.
    pub(crate) fn uninitialized(mut self, on: bool) -> Self {
        self.uninitialized = on;
        self
    }

    /// Whether the session was never modified: it is saved only because of
    /// `save_uninitialized` (an anonymous visitor). A store with a capacity bound may
    /// evict such records before any other; nothing else depends on it.
    pub fn is_uninitialized(&self) -> bool {
        self.uninitialized
    }

    /// The session cookie.
    pub fn cookie(&self) -> &'a SessionCookie {
        self.cookie
    }

    /// Appends the whole record as express-session stores it: compact JSON, `cookie`
    /// first.
    ///
    /// # Errors
    ///
    /// [`RecordError`] if a stored text it was built from is not a JSON object.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        let cookie = self.cookie.to_json();
        self.write_object(Some(cookie.as_bytes()), out)
    }

    /// The whole record as express-session stores it.
    ///
    /// # Errors
    ///
    /// [`RecordError`] if a stored text it was built from is not a JSON object.
    pub fn to_json(&self) -> Result<String, RecordError> {
        let mut out = Vec::with_capacity(128);
        self.write_json(&mut out)?;
        // Written from `&str`s, JSON values and texts a scanner found in a `&[u8]` that
        // serde_json parsed... or did not: check rather than assume.
        String::from_utf8(out).map_err(|_| RecordError::Shape("stored text is not UTF-8"))
    }

    /// Appends the fields alone as a JSON object (for stores that keep the cookie apart).
    ///
    /// # Errors
    ///
    /// [`RecordError`] if a stored text it was built from is not a JSON object.
    pub fn write_fields_json(&self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        self.write_object(None, out)
    }

    fn write_object(&self, cookie: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), RecordError> {
        match self.fields {
            FieldsOf::Map(map) => crate::baseline::write_object(
                cookie,
                map.iter().map(|(k, v)| {
                    (
                        crate::baseline::EntryKey::Str(k),
                        crate::baseline::EntryValue::Value(v),
                    )
                }),
                &[],
                out,
            ),
            FieldsOf::Baseline(base, changes) => base.write_patched(cookie, changes, out),
        }
    }

    /// Calls `f` with each field's key and its JSON text (for stores that keep one entry
    /// per field, such as a Redis hash).
    ///
    /// # Errors
    ///
    /// [`RecordError`] if a stored text it was built from is not a JSON object.
    pub fn for_each_field(&self, mut f: impl FnMut(&str, &[u8])) -> Result<(), RecordError> {
        let mut json = Vec::new();
        self.write_fields_json(&mut json)?;
        let spans = scan_object(&json).ok_or(RecordError::Shape("fields are not a JSON object"))?;
        for &(k, v) in spans.iter() {
            let key = span_text(&json, k);
            // Keys with escapes are written as JSON strings: decode them.
            let key = if key.contains(&b'\\') {
                let mut quoted = Vec::with_capacity(key.len() + 2);
                quoted.push(b'"');
                quoted.extend_from_slice(key);
                quoted.push(b'"');
                serde_json::from_slice::<String>(&quoted)?
            } else {
                String::from_utf8(key.to_vec())
                    .map_err(|_| RecordError::Shape("field key is not UTF-8"))?
            };
            f(&key, span_text(&json, v));
        }
        Ok(())
    }

    /// The decoded record.
    ///
    /// # Errors
    ///
    /// [`RecordError`] if a stored text it was built from is not a JSON object.
    pub fn to_record(&self) -> Result<Record, RecordError> {
        let fields = match self.fields {
            FieldsOf::Map(map) => map.clone(),
            FieldsOf::Baseline(base, changes) => {
                let mut fields = base.to_fields()?;
                apply_changes(&mut fields, changes);
                fields
            }
        };
        Ok(Record {
            cookie: self.cookie.clone(),
            fields,
        })
    }
}
