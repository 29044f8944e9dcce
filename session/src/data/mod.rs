//! The contract between `#[derive(SessionData)]` and the runtime: the trait, the
//! tracked field wrapper, and the helpers the generated code calls.

pub(crate) mod baseline;
pub(crate) mod json;
pub(crate) mod meta;
pub(crate) mod record;
pub(crate) mod write;

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::baseline::Baseline;
use crate::options::SessionOptions;
use crate::record::{COOKIE_KEY, FieldChange, Fields};

/// A struct whose fields are kept in a session. Derive it; do not implement it by hand.
///
/// ```
/// use tessera::SessionData;
///
/// #[derive(SessionData, Default)]
/// #[session(name = "sid", cookie(max_age = "30m"), resave = false)]
/// struct Visit {
///     views: u64,
///     #[session(rename = "cartItems")]
///     cart: Vec<String>,
/// }
/// ```
///
/// The derive generates `VisitTracked`, the view that [`crate::Session<Visit>`] derefs
/// to: each stored field becomes a [`Field`], whose `DerefMut` marks it touched.
pub trait SessionData: Default + Send + 'static {
    /// The generated tracked view.
    type Tracked: Send + 'static;

    /// The options declared in `#[session(...)]`, on top of express-session's defaults.
    fn options() -> SessionOptions;

    #[doc(hidden)]
    fn __load(stored: &Baseline) -> Self::Tracked;
    #[doc(hidden)]
    fn __fresh() -> Self::Tracked;
    #[doc(hidden)]
    fn __encode_defaults(out: &mut Fields) -> Result<(), EncodeError>;
    #[doc(hidden)]
    fn __diff(
        view: &Self::Tracked,
        baseline: &Baseline,
        all: bool,
        out: &mut Vec<FieldChange>,
    ) -> Result<(), EncodeError>;
    #[doc(hidden)]
    fn __settle(view: &mut Self::Tracked);
    #[doc(hidden)]
    fn __snapshot(view: &Self::Tracked) -> Result<Self, EncodeError>;
}

/// A field value could not be turned into JSON (for example a map with non-string keys).
#[derive(Debug, thiserror::Error)]
#[error("session field `{field}` could not be encoded as JSON")]
pub struct EncodeError {
    /// The stored key of the field.
    pub field: String,
    /// What serde_json said.
    #[source]
    pub source: serde_json::Error,
}

/// One tracked field of a session. Reading goes through `Deref`; writing through
/// `DerefMut` (or [`Field::set`]) marks the field touched, and at the end of the request
/// only touched fields are re-encoded and compared with what was loaded. Writing back
/// the same value is therefore not a change.
///
/// Changes made through interior mutability (`Cell`, `Mutex`, ...) behind a shared
/// reference are not seen; write through `DerefMut`.
pub struct Field<U> {
    value: U,
    touched: bool,
}

impl<U> Field<U> {
    #[doc(hidden)]
    pub fn __new(value: U) -> Self {
        Self {
            value,
            touched: false,
        }
    }

    /// Replaces the value.
    pub fn set(&mut self, value: U) {
        self.value = value;
        self.touched = true;
    }

    /// Replaces the value, returning the old one.
    pub fn replace(&mut self, value: U) -> U {
        self.touched = true;
        std::mem::replace(&mut self.value, value)
    }

    /// Whether the field was borrowed mutably since it was loaded or saved.
    pub fn is_touched(&self) -> bool {
        self.touched
    }

    #[doc(hidden)]
    pub fn __settle(&mut self) {
        self.touched = false;
    }
}

impl<U> Deref for Field<U> {
    type Target = U;
    fn deref(&self) -> &U {
        &self.value
    }
}

impl<U> DerefMut for Field<U> {
    fn deref_mut(&mut self) -> &mut U {
        self.touched = true;
        &mut self.value
    }
}

impl<U: fmt::Debug> fmt::Debug for Field<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<U: fmt::Display> fmt::Display for Field<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<U: PartialEq> PartialEq<U> for Field<U> {
    fn eq(&self, other: &U) -> bool {
        self.value == *other
    }
}

/// Helpers called by the generated code. Not a public API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use crate::baseline::{Baseline, StoredValue};
    pub use crate::options::{CheckedSetters, Priority, SameSite, Secure, SessionOptions, Unset};
    pub use serde_json::{Map, Value};

    /// Decodes one stored field; `None` when absent or when the stored value no longer
    /// fits the type (then a warning says which field, and the default is used).
    pub fn decode<U: DeserializeOwned>(stored: &Baseline, key: &str) -> Option<U> {
        let decoded = match stored.get(key)? {
            StoredValue::Value(value) => U::deserialize(value),
            StoredValue::Json(text) => serde_json::from_slice(text),
        };
        match decoded {
            Ok(v) => Some(v),
            Err(error) => {
                tracing::warn!(
                    field = key,
                    %error,
                    "stored session field does not decode into its type; using the field's default \
                     (the stored value is kept until the field is written)"
                );
                None
            }
        }
    }

    /// Encodes a field's value.
    pub fn encode<U: Serialize>(key: &str, value: &U) -> Result<Value, EncodeError> {
        serde_json::to_value(value).map_err(|source| EncodeError {
            field: key.to_owned(),
            source,
        })
    }

    /// The encode/decode functions of one field type. Generated code builds it once per
    /// field, so a type that is not `Serialize + Deserialize` gives one error, at the field.
    pub struct FieldOps<U> {
        decode: fn(&Baseline, &str) -> Option<U>,
        encode: fn(&str, &U) -> Result<Value, EncodeError>,
        copy: fn(&str, &U) -> Result<U, EncodeError>,
    }

    /// A copy of a field's value through its stored form (the field type need not be
    /// `Clone`; it is `Serialize + Deserialize`).
    pub fn copy<U: Serialize + DeserializeOwned>(key: &str, value: &U) -> Result<U, EncodeError> {
        serde_json::from_value(encode(key, value)?).map_err(|source| EncodeError {
            field: key.to_owned(),
            source,
        })
    }

    impl<U: Serialize + DeserializeOwned> FieldOps<U> {
        /// Checks the bounds and captures the functions.
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            Self {
                decode: decode::<U>,
                encode: encode::<U>,
                copy: copy::<U>,
            }
        }
    }

    /// What a session field's type must be: stored as JSON and read back. One trait for
    /// both bounds, its blanket impl kept out of the compiler's suggestions, so that a
    /// type with neither gets one short error, at the field, saying what to derive.
    #[diagnostic::on_unimplemented(
        message = "the session field type `{Self}` must implement serde's `Serialize` and `Deserialize`",
        label = "not `Serialize + Deserialize`",
        note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to the type, or mark the field `#[session(skip)]`"
    )]
    pub trait FieldValue: Serialize + DeserializeOwned {}

    #[diagnostic::do_not_recommend]
    impl<U: Serialize + DeserializeOwned> FieldValue for U {}

    /// The field functions of `U`; the only place generated code requires
    /// `Serialize + Deserialize`, so a bad field type gives one error, at the field.
    pub fn field_ops<U: FieldValue>() -> FieldOps<U> {
        FieldOps::new()
    }

    /// `T::default()` through the `SessionData` bound, so that a missing `Default`
    /// is reported once, at the struct (by the trait's supertrait), not again here.
    pub fn defaults<T: SessionData>() -> T {
        T::default()
    }

    impl<U> FieldOps<U> {
        /// See [`decode`].
        pub fn decode(&self, stored: &Baseline, key: &str) -> Option<U> {
            (self.decode)(stored, key)
        }

        /// See [`copy`].
        pub fn copy(&self, key: &str, value: &U) -> Result<U, EncodeError> {
            (self.copy)(key, value)
        }

        /// Inserts the field's encoded value into `out`.
        pub fn encode_into(
            &self,
            key: &str,
            value: &U,
            out: &mut Fields,
        ) -> Result<(), EncodeError> {
            out.insert(key.to_owned(), (self.encode)(key, value)?);
            Ok(())
        }

        /// Records a change if the (touched) field's value differs from the baseline.
        pub fn diff(
            &self,
            field: &Field<U>,
            key: &str,
            baseline: &Baseline,
            all: bool,
            out: &mut Vec<FieldChange>,
        ) -> Result<(), EncodeError> {
            if !(field.touched || all) {
                return Ok(());
            }
            let now = (self.encode)(key, &field.value)?;
            if !baseline.holds(key, &now) {
                out.push(FieldChange::set(key, now));
            }
            Ok(())
        }
    }

    /// The stored keys the struct does not declare, for the `flatten` field.
    pub fn load_flatten(stored: &Baseline, declared: &[&str]) -> Map<String, Value> {
        stored
            .keys()
            .into_iter()
            .filter(|k| !declared.contains(k) && *k != COOKIE_KEY && *k != crate::META_KEY)
            .filter_map(|k| Some((k.to_owned(), stored.value(k)?)))
            .collect()
    }

    /// Per-key changes of the `flatten` map: each key is a field of its own.
    pub fn diff_flatten(
        field: &Field<Map<String, Value>>,
        baseline: &Baseline,
        declared: &[&str],
        all: bool,
        out: &mut Vec<FieldChange>,
    ) {
        if !(field.touched || all) {
            return;
        }
        let reserved = |k: &str| declared.contains(&k) || k == COOKIE_KEY || k == crate::META_KEY;
        for (k, v) in &field.value {
            if reserved(k) {
                if let Some(suppressed) = crate::gate::RESERVED_KEYS.admit(crate::time::now_ms()) {
                    tracing::warn!(
                        key = k.as_str(),
                        suppressed,
                        "ignoring a flatten-map key that names a declared field, `cookie` or `_tessera`"
                    );
                }
                continue;
            }
            if !baseline.holds(k, v) {
                out.push(FieldChange::set(k.clone(), v.clone()));
            }
        }
        for k in baseline.keys() {
            if !reserved(k) && !field.value.contains_key(k) {
                out.push(FieldChange::remove(k));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::__private::*;
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Baseline {
        Baseline::from(v.as_object().cloned().unwrap_or_default())
    }

    fn text(v: Value) -> Baseline {
        Baseline::from_json(v.to_string().into_bytes().into(), false).unwrap()
    }

    #[test]
    fn writing_back_the_same_value_is_not_a_change() {
        for baseline in [fields(json!({"views": 3})), text(json!({"views": 3}))] {
            writing_back_the_same_value_is_not_a_change_against(&baseline);
        }
    }

    fn writing_back_the_same_value_is_not_a_change_against(baseline: &Baseline) {
        let mut f = Field::__new(3u64);
        *f += 0;
        assert!(f.is_touched());
        let mut out = Vec::new();
        field_ops::<u64>()
            .diff(&f, "views", baseline, false, &mut out)
            .unwrap();
        assert!(out.is_empty());
        *f += 1;
        field_ops::<u64>()
            .diff(&f, "views", baseline, false, &mut out)
            .unwrap();
        assert_eq!(out, vec![FieldChange::set("views", json!(4))]);
    }

    #[test]
    fn untouched_fields_are_not_encoded() {
        let baseline = fields(json!({"views": 3}));
        let f = Field::__new(99u64);
        let mut out = Vec::new();
        field_ops::<u64>()
            .diff(&f, "views", &baseline, false, &mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn undecodable_value_falls_back_to_none() {
        for stored in [
            fields(json!({"views": "lots"})),
            text(json!({"views": "lots"})),
        ] {
            assert_eq!(decode::<u64>(&stored, "views"), None);
            assert_eq!(decode::<String>(&stored, "views"), Some("lots".to_owned()));
            assert_eq!(decode::<String>(&stored, "missing"), None);
        }
    }

    #[test]
    fn flatten_map_changes_are_per_key_and_include_removals() {
        let stored = json!({"views": 1, "a": 1, "b": 2});
        for baseline in [fields(stored.clone()), text(stored.clone())] {
            flatten_map_changes_against(&baseline);
        }
    }

    fn flatten_map_changes_against(baseline: &Baseline) {
        let declared = ["views"];
        let mut map = Field::__new(load_flatten(baseline, &declared));
        assert_eq!(Value::Object((*map).clone()), json!({"a": 1, "b": 2}));
        map.insert("a".into(), json!(1));
        map.insert("c".into(), json!(3));
        map.remove("b");
        let mut out = Vec::new();
        diff_flatten(&map, baseline, &declared, false, &mut out);
        out.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(
            out,
            vec![FieldChange::remove("b"), FieldChange::set("c", json!(3))]
        );
    }
}
