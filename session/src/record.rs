//! The stored form of a session, laid out like express-session's stored object:
//! `{"cookie":{...},"views":1,...}`, and the field-level patch that Tessera writes
//! when only some fields changed.

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use std::sync::Arc;

use serde_json::Value;

use crate::cookie::SessionCookie;
use crate::options::{Priority, SameSite};
use crate::time;

/// The session's data fields as stored: one JSON value per key (the record without
/// its `cookie`).
pub type Fields = serde_json::Map<String, Value>;

/// The key that holds the cookie in the stored record; no field may use it.
pub const COOKIE_KEY: &str = "cookie";

/// One stored session: its cookie and its fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// The session cookie, stored under `"cookie"`.
    pub cookie: SessionCookie,
    /// Every other key of the stored object.
    pub fields: Fields,
}

/// A change to one field: `Some` sets it, `None` removes the key.
pub type FieldChange = (String, Option<Value>);

/// The changes of one request: only the fields that changed, plus the (renewed) cookie.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Patch {
    /// The cookie to store (its expiry is renewed on every write).
    pub cookie: SessionCookie,
    /// The changed fields, in declaration order.
    pub changes: Vec<FieldChange>,
}

impl Patch {
    /// Applies the patch to a stored record.
    pub fn apply_to(&self, record: &mut Record) {
        record.cookie = self.cookie.clone();
        apply_changes(&mut record.fields, &self.changes);
    }
}

pub(crate) fn apply_changes(fields: &mut Fields, changes: &[FieldChange]) {
    for (key, value) in changes {
        match value {
            Some(v) => {
                fields.insert(key.clone(), v.clone());
            }
            None => {
                fields.remove(key);
            }
        }
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
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        let value: Value = serde_json::from_slice(bytes)?;
        Self::from_value(value)
    }

    /// Builds a record from a parsed JSON object.
    pub fn from_value(value: Value) -> Result<Self, RecordError> {
        let Value::Object(mut fields) = value else {
            return Err(RecordError::Shape("not a JSON object"));
        };
        let cookie = match fields.remove(COOKIE_KEY) {
            Some(Value::Object(c)) => cookie_from_json(&c)?,
            Some(_) => return Err(RecordError::Shape("`cookie` is not an object")),
            None => return Err(RecordError::Shape("no `cookie` object")),
        };
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

impl Serialize for SessionCookie {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // express-session's Cookie#toJSON key order; undefined keys are left out.
        let mut st = s.serialize_struct("Cookie", 9)?;
        st.serialize_field("originalMaxAge", &self.original_max_age)?;
        if let Some(p) = self.partitioned {
            st.serialize_field("partitioned", &p)?;
        }
        if let Some(p) = self.priority {
            st.serialize_field("priority", p.as_stored())?;
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

fn cookie_from_json(c: &Fields) -> Result<SessionCookie, RecordError> {
    let original_max_age = match c.get("originalMaxAge") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).ok_or(
            RecordError::Shape("`cookie.originalMaxAge` is not a number"),
        )?),
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
        domain: c.get("domain").and_then(Value::as_str).map(Arc::from),
        path: match c.get("path").and_then(Value::as_str) {
            None | Some("/") => crate::cookie::root_path(),
            Some(p) => Arc::from(p),
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
    fn default_record_is_laid_out_like_express_session() {
        let mut r = Record::default();
        r.fields.insert("views".into(), json!(1));
        assert_eq!(
            r.to_json(),
            r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"views":1}"#
        );
    }

    #[test]
    fn record_with_all_cookie_options_matches_express_layout() {
        let express = r#"{"cookie":{"originalMaxAge":60000,"partitioned":true,"priority":"high","expires":"2026-11-26T01:13:46.493Z","secure":false,"httpOnly":true,"domain":"example.com","path":"/","sameSite":"lax"},"views":1}"#;
        let r = Record::from_json(express.as_bytes()).unwrap();
        assert_eq!(r.cookie.original_max_age, Some(60000));
        assert_eq!(r.cookie.same_site, Some(SameSite::Lax));
        assert_eq!(r.fields["views"], json!(1));
        assert_eq!(r.to_json(), express);
    }

    #[test]
    fn record_without_cookie_is_rejected_not_panicking() {
        for bad in [
            r#"{"views":1}"#,
            r#"[1]"#,
            "nope",
            r#"{"cookie":3}"#,
            r#"{"cookie":{"expires":"soon"}}"#,
        ] {
            assert!(Record::from_json(bad.as_bytes()).is_err(), "{bad}");
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
        let p = Patch {
            cookie: cookie.clone(),
            changes: vec![("a".into(), Some(json!(10))), ("b".into(), None)],
        };
        p.apply_to(&mut r);
        assert_eq!(r.fields, json!({"a": 10}).as_object().unwrap().clone());
        assert_eq!(r.cookie, cookie);
    }
}
