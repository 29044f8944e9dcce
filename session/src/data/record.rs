//! The stored form of a session, laid out like express-session's stored object:
//! `{"cookie":{...},"views":1,...}`; what a store loads ([`LoadedRecord`]), writes whole
//! ([`RecordView`]) or patches ([`Patch`]).

use std::sync::Arc;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::baseline::{Baseline, scan_object, span_text};
use crate::cookie::SessionCookie;
use crate::options::{Priority, SameSite};
use crate::time;

pub(crate) use super::write::apply_changes;
pub use super::write::{FieldChange, Patch, RecordView, Touch};

/// The session's data fields as stored: one JSON value per key (the record without
/// its `cookie`).
pub type Fields = serde_json::Map<String, Value>;

/// The key that holds the cookie in the stored record; no field may use it.
pub const COOKIE_KEY: &str = "cookie";

/// One stored session, decoded: its cookie and its fields.
///
/// Stores do not need it on the request path (they load [`LoadedRecord`]s and write
/// [`RecordView`]s); it is the convenient form for tests and tools.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// The session cookie, stored under `"cookie"`.
    pub cookie: SessionCookie,
    /// Every other key of the stored object.
    pub fields: Fields,
}

/// A session record as a store loaded it, ready for the layer: the cookie, and the
/// fields kept as the JSON text the store holds.
///
/// Build it with [`LoadedRecord::from_json`] from a whole stored record (what a Redis
/// `GET` or a PostgreSQL `sess` column returns, as is), or with
/// [`LoadedRecord::from_parts`] when the store keeps the cookie apart from the fields.
#[derive(Debug)]
pub struct LoadedRecord {
    pub(crate) cookie: SessionCookie,
    pub(crate) fields: Baseline,
    /// When the store will drop the record, if it said (milliseconds since the epoch).
    pub(crate) deadline: Option<i64>,
}

impl LoadedRecord {
    /// A whole stored record in express-session's layout (`{"cookie":{...},...}`).
    ///
    /// ```
    /// let text = br#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"views":3}"#;
    /// let loaded = tessera::LoadedRecord::from_json(text.to_vec())?;
    /// assert_eq!(loaded.cookie().path(), "/");
    /// assert_eq!(loaded.to_record()?.fields["views"], 3);
    /// # Ok::<(), tessera::RecordError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`RecordError`] when the text is not a JSON object with a valid `cookie` object
    /// (the store then reports [`crate::StoreError::Corrupt`], and the layer starts a
    /// fresh session).
    pub fn from_json(text: impl Into<Box<[u8]>>) -> Result<Self, RecordError> {
        let text: Box<[u8]> = text.into();
        let cookie = match scan_object(&text) {
            Some(entries) => {
                let mut cookies = entries
                    .iter()
                    .filter(|(k, _)| span_text(&text, *k) == COOKIE_KEY.as_bytes());
                let last = cookies
                    .next_back()
                    .ok_or(RecordError::Shape("no `cookie` object"))?;
                // A repeated `cookie` is read as `JSON.parse` reads it, the last one
                // winning; the others must still be JSON, or Node could not read the
                // record either (found by the `stored_record` fuzz target).
                for (_, earlier) in cookies {
                    serde_json::from_slice::<serde::de::IgnoredAny>(span_text(&text, *earlier))?;
                }
                let cookie: Value = serde_json::from_slice(span_text(&text, last.1))?;
                cookie_from_value(cookie)?
            }
            None => {
                // Keys with escapes or malformed text: serde_json reads it, or says why not.
                let value: Value = serde_json::from_slice(&text)?;
                let Value::Object(mut map) = value else {
                    return Err(RecordError::Shape("not a JSON object"));
                };
                cookie_from_value(map.remove(COOKIE_KEY).unwrap_or(Value::Null))?
            }
        };
        Ok(Self {
            cookie,
            fields: Baseline::from_json(text, true)?,
            deadline: None,
        })
    }

    /// A cookie kept apart, and the JSON text of the fields object.
    ///
    /// # Errors
    ///
    /// [`RecordError`] when `fields_json` is not a JSON object.
    pub fn from_parts(
        cookie: SessionCookie,
        fields_json: impl Into<Box<[u8]>>,
    ) -> Result<Self, RecordError> {
        Ok(Self {
            cookie,
            fields: Baseline::from_json(fields_json.into(), false)?,
            deadline: None,
        })
    }

    /// [`LoadedRecord::from_parts`] for a fields text this crate wrote (the
    /// `MemoryStore`'s): not checked again for UTF-8 or a stray `cookie` entry.
    pub(crate) fn from_own_parts(
        cookie: SessionCookie,
        fields_json: &[u8],
    ) -> Result<Self, RecordError> {
        Ok(Self {
            cookie,
            fields: Baseline::from_own_json(fields_json.into())?,
            deadline: None,
        })
    }

    /// The same record, with the instant the store will drop it (a key's TTL, an
    /// `expire` column). The layer hands it back in [`Touch::loaded_deadline`], so that
    /// a touch that would change nothing worth a round trip can be skipped.
    pub fn with_deadline(mut self, deadline: std::time::SystemTime) -> Self {
        self.deadline = Some(time::system_time_to_ms(deadline));
        self
    }

    /// When the store said it will drop the record.
    pub fn deadline(&self) -> Option<std::time::SystemTime> {
        self.deadline.map(time::ms_to_system_time)
    }

    /// The stored cookie.
    pub fn cookie(&self) -> &SessionCookie {
        &self.cookie
    }

    /// The JSON text of one stored field, as the store holds it (or as serde_json writes
    /// it, for a record whose keys have escapes).
    pub fn field_json(&self, key: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        use crate::baseline::StoredValue;
        match self.fields.get(key)? {
            StoredValue::Json(text) => Some(std::borrow::Cow::Borrowed(text)),
            StoredValue::Value(v) => serde_json::to_vec(v).ok().map(std::borrow::Cow::Owned),
        }
    }

    /// The user the stored session is tied to ([`crate::Session::set_user`]), read from
    /// its [`crate::META_KEY`] entry. Stores check it before revoking a session by user,
    /// so that an index entry that went stale never removes another user's session.
    pub fn user(&self) -> Option<String> {
        self.meta().user
    }

    /// When the stored session was created, if its [`crate::META_KEY`] entry says.
    pub fn created(&self) -> Option<std::time::SystemTime> {
        self.meta().created.map(time::ms_to_system_time)
    }

    pub(crate) fn meta(&self) -> crate::meta::Meta {
        self.field_json(crate::meta::META_KEY)
            .map(|text| crate::meta::Meta::from_json(&text))
            .unwrap_or_default()
    }

    /// The whole stored text, if the record was built by [`LoadedRecord::from_json`].
    pub fn text(&self) -> Option<&[u8]> {
        self.fields.record_text()
    }

    /// The decoded record.
    ///
    /// # Errors
    ///
    /// [`RecordError`] when a stored value is not valid JSON.
    pub fn to_record(&self) -> Result<Record, RecordError> {
        Ok(Record {
            cookie: self.cookie.clone(),
            fields: self.fields.to_fields()?,
        })
    }
}

/// Why a stored record could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes are not JSON.
    #[error("stored session is not valid JSON")]
    Json(#[from] serde_json::Error),
    /// The JSON is not an object with a valid `cookie` object.
    #[error("stored session is malformed: {0}")]
    Shape(&'static str),
}

impl Record {
    /// Serializes the record as express-session stores it (compact JSON, `cookie` first).
    pub fn to_json(&self) -> String {
        // Serializing a map of JSON values and known cookie fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a record written by Tessera or by express-session.
    ///
    /// # Errors
    ///
    /// [`RecordError`] when the text is not a JSON object with a valid `cookie` object.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        let value: Value = serde_json::from_slice(bytes)?;
        Self::from_value(value)
    }

    /// Builds a record from a parsed JSON object.
    ///
    /// # Errors
    ///
    /// [`RecordError`] when the value is not an object with a valid `cookie` object.
    pub fn from_value(value: Value) -> Result<Self, RecordError> {
        let Value::Object(mut fields) = value else {
            return Err(RecordError::Shape("not a JSON object"));
        };
        let cookie = cookie_from_value(fields.remove(COOKIE_KEY).unwrap_or(Value::Null))?;
        Ok(Self { cookie, fields })
    }

    /// The expiry instant in milliseconds since the epoch, if the cookie has one.
    pub fn expires_at_ms(&self) -> Option<i64> {
        self.cookie.expires
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.fields.len() + 1))?;
        map.serialize_entry(COOKIE_KEY, &self.cookie)?;
        for (k, v) in &self.fields {
            if k != COOKIE_KEY {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

impl SessionCookie {
    /// The cookie as express-session stores it under `"cookie"` (compact JSON).
    pub fn to_json(&self) -> String {
        // A struct of numbers, booleans and strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for SessionCookie {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // express-session's Cookie#toJSON key order; undefined keys are left out.
        let mut st = s.serialize_struct("Cookie", 9)?;
        st.serialize_field("originalMaxAge", &self.original_max_age)?;
        if let Some(p) = self.partitioned {
            st.serialize_field("partitioned", &p)?;
        }
        if let Some(p) = self.priority {
            st.serialize_field("priority", p.as_str())?;
        }
        st.serialize_field("expires", &self.expires.map(time::iso_date))?;
        if let Some(sec) = self.secure {
            st.serialize_field("secure", &sec)?;
        }
        st.serialize_field("httpOnly", &self.http_only)?;
        if let Some(d) = &self.domain {
            st.serialize_field("domain", &**d)?;
        }
        st.serialize_field("path", &*self.path)?;
        if let Some(same) = self.same_site {
            st.serialize_field(
                "sameSite",
                match same {
                    SameSite::Strict => "strict",
                    SameSite::Lax | SameSite::Auto => "lax",
                    SameSite::None => "none",
                },
            )?;
        }
        st.end()
    }
}

fn cookie_from_value(value: Value) -> Result<SessionCookie, RecordError> {
    match value {
        Value::Object(c) => cookie_from_json(&c),
        Value::Null => Err(RecordError::Shape("no `cookie` object")),
        _ => Err(RecordError::Shape("`cookie` is not an object")),
    }
}

fn cookie_from_json(c: &Fields) -> Result<SessionCookie, RecordError> {
    let original_max_age = match c.get("originalMaxAge") {
        None | Some(Value::Null) => None,
        // Another writer's `1e300` is cut to the longest cookie age, never an
        // overflow or a session that never expires.
        Some(Value::Number(n)) => Some(crate::cookie::clamp_age_ms(
            n.as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .ok_or(RecordError::Shape(
                    "`cookie.originalMaxAge` is not a number",
                ))?,
        )),
        Some(_) => {
            return Err(RecordError::Shape(
                "`cookie.originalMaxAge` is not a number",
            ));
        }
    };
    let expires = match c.get("expires") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            time::parse_iso_date(s).ok_or(RecordError::Shape("`cookie.expires` is not a date"))?,
        ),
        Some(_) => return Err(RecordError::Shape("`cookie.expires` is not a date")),
    };
    let same_site = match c.get("sameSite") {
        Some(Value::Bool(true)) => Some(SameSite::Strict),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("strict") => Some(SameSite::Strict),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("lax") => Some(SameSite::Lax),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("none") => Some(SameSite::None),
        _ => None,
    };
    let priority = match c.get("priority").and_then(Value::as_str) {
        Some(p) if p.eq_ignore_ascii_case("low") => Some(Priority::Low),
        Some(p) if p.eq_ignore_ascii_case("medium") => Some(Priority::Medium),
        Some(p) if p.eq_ignore_ascii_case("high") => Some(Priority::High),
        _ => None,
    };
    Ok(SessionCookie {
        original_max_age,
        expires,
        secure: c.get("secure").and_then(Value::as_bool),
        http_only: c.get("httpOnly").and_then(Value::as_bool).unwrap_or(false),
        // Checked by the rules the options follow: another writer sharing the store must
        // not add attributes (`; Domain=evil.example`) to this app's `Set-Cookie`.
        domain: match c.get("domain") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) if crate::rules::check_cookie_domain(d).is_ok() => {
                Some(Arc::from(d.as_str()))
            }
            Some(_) => return Err(RecordError::Shape("`cookie.domain` is not a valid domain")),
        },
        path: match c.get("path") {
            None | Some(Value::Null) => crate::cookie::root_path(),
            Some(Value::String(p)) if p == "/" => crate::cookie::root_path(),
            Some(Value::String(p)) if crate::rules::check_cookie_path(p).is_ok() => {
                Arc::from(p.as_str())
            }
            Some(_) => return Err(RecordError::Shape("`cookie.path` is not a valid path")),
        },
        same_site,
        partitioned: c.get("partitioned").and_then(Value::as_bool),
        priority,
        changed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_repeated_cookie_entry_that_is_not_json_makes_the_record_corrupt() {
        // The fuzz target's crash: JSON.parse throws on this text, so it is corrupt.
        let text =
            br#"{"cookie":{"origicom","sameSite":"stricl"},"cookie":{"y":[1,2,{"z":null}]}}"#;
        assert!(serde_json::from_slice::<Value>(text).is_err());
        assert!(LoadedRecord::from_json(text.to_vec()).is_err());
        // Repeated and valid, the last one wins, as in JSON.parse.
        let text = br#"{"cookie":{"path":"/a"},"views":1,"cookie":{"path":"/b"}}"#;
        let loaded = LoadedRecord::from_json(text.to_vec()).unwrap();
        assert_eq!(loaded.cookie().path(), "/b");
    }

    #[test]
    fn default_record_is_laid_out_like_express_session() {
        let mut r = Record::default();
        r.fields.insert("views".into(), json!(1));
        assert_eq!(
            r.to_json(),
            r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"views":1}"#
        );
        assert_eq!(RecordView::from(&r).to_json().unwrap(), r.to_json());
    }

    #[test]
    fn record_with_all_cookie_options_matches_express_layout() {
        let express = r#"{"cookie":{"originalMaxAge":60000,"partitioned":true,"priority":"high","expires":"2026-11-26T01:13:46.493Z","secure":false,"httpOnly":true,"domain":"example.com","path":"/","sameSite":"lax"},"views":1}"#;
        let r = Record::from_json(express.as_bytes()).unwrap();
        assert_eq!(r.cookie.original_max_age, Some(60000));
        assert_eq!(r.cookie.same_site, Some(SameSite::Lax));
        assert_eq!(r.fields["views"], json!(1));
        assert_eq!(r.to_json(), express);
        let loaded = LoadedRecord::from_json(express.as_bytes().to_vec()).unwrap();
        assert_eq!(loaded.cookie, r.cookie);
        assert_eq!(loaded.to_record().unwrap(), r);
        assert_eq!(loaded.text(), Some(express.as_bytes()));
    }

    #[test]
    fn record_without_cookie_is_rejected_not_panicking() {
        for bad in [
            r#"{"views":1}"#,
            r#"[1]"#,
            "nope",
            r#"{"cookie":3}"#,
            r#"{"cookie":{"expires":"soon"}}"#,
            r#"{"cookie":{"expires":"soon"},"k\"ey":1}"#,
            "",
        ] {
            assert!(Record::from_json(bad.as_bytes()).is_err(), "{bad}");
            assert!(
                LoadedRecord::from_json(bad.as_bytes().to_vec()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn patch_sets_and_removes_keys_and_replaces_cookie() {
        let mut r = Record::default();
        r.fields.insert("a".into(), json!(1));
        r.fields.insert("b".into(), json!(2));
        let cookie = SessionCookie {
            original_max_age: Some(5),
            ..SessionCookie::default()
        };
        let changes = [FieldChange::set("a", json!(10)), FieldChange::remove("b")];
        let p = Patch::new(&cookie, &changes);
        p.apply_to(&mut r);
        assert_eq!(r.fields, json!({"a": 10}).as_object().unwrap().clone());
        assert_eq!(r.cookie, cookie);
    }

    #[test]
    fn a_patched_text_keeps_every_byte_it_does_not_change() {
        let stored = br#"{"n":1.50,"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"s":"a\/b \u00e9","gone":[],"e":{}}"#;
        let cookie = SessionCookie::default();
        let changes = [
            FieldChange::set("added", json!({"x": [1, 2]})),
            FieldChange::remove("gone"),
            FieldChange::set("cookie", json!("never a field")),
        ];
        let out = Patch::new(&cookie, &changes).apply_to_json(stored).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"n":1.50,"s":"a\/b \u00e9","e":{},"added":{"x":[1,2]}}"#
        );
        // A text whose keys have escapes goes through serde_json, and keeps its values' bytes.
        let escaped = br#"{"cookie":{"path":"/"},"k\"q":1.0,"z":2}"#;
        let changes = [FieldChange::set("z", json!(3))];
        let out = Patch::new(&cookie, &changes)
            .apply_to_json(escaped)
            .unwrap();
        assert!(
            std::str::from_utf8(&out)
                .unwrap()
                .ends_with(r#","k\"q":1.0,"z":3}"#),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn many_changes_on_many_keys_apply_like_a_map() {
        let mut stored = Fields::new();
        for i in 0..500 {
            stored.insert(format!("k{i}"), json!(i));
        }
        let text = Record {
            cookie: SessionCookie::default(),
            fields: stored.clone(),
        }
        .to_json();
        let mut changes = Vec::new();
        for i in (0..700).step_by(3) {
            changes.push(if i % 2 == 0 {
                FieldChange::set(format!("k{i}"), json!(-i))
            } else {
                FieldChange::remove(format!("k{i}"))
            });
        }
        let out = Patch::new(&SessionCookie::default(), &changes)
            .apply_to_json(text.as_bytes())
            .unwrap();
        let mut expected = stored;
        apply_changes(&mut expected, &changes);
        assert_eq!(Record::from_json(&out).unwrap().fields, expected);
    }

    #[test]
    fn a_record_view_writes_the_stored_entries_in_order_with_the_changes() {
        let loaded =
            LoadedRecord::from_json(br#"{"cookie":{"path":"/"},"a":1,"b":"x","a":2}"#.to_vec())
                .unwrap();
        let changes = [FieldChange::set("c", json!(true)), FieldChange::remove("b")];
        let view = RecordView::of(&loaded.cookie, &loaded.fields, &changes);
        let mut seen = Vec::new();
        view.for_each_field(|k, v| seen.push((k.to_owned(), v.to_vec())))
            .unwrap();
        assert_eq!(
            seen,
            [
                ("a".to_owned(), b"1".to_vec()),
                ("a".to_owned(), b"2".to_vec()),
                ("c".to_owned(), b"true".to_vec())
            ]
        );
        let record = view.to_record().unwrap();
        assert_eq!(
            record.fields,
            json!({"a": 2, "c": true}).as_object().unwrap().clone()
        );
    }
}
