//! Tessera's own entry in a stored record: when the session was created, and the user
//! it belongs to. It sits next to the fields under [`META_KEY`], as one more
//! top-level key of express-session's object, so Node services that share the store
//! load it, keep it and write it back untouched (express-session keeps every key of
//! `req.session` it does not know), and can ignore it.
//!
//! ```json
//! {"cookie":{...},"views":3,"_tessera":{"created":1796316000000,"user":"alice","agent":"Mozilla/5.0 ..."}}
//! ```
//!
//! - `created`: milliseconds since the Unix epoch (JavaScript's `Date.now()`), the start
//!   of the absolute timeout. Written when `absolute_timeout` is on or a user is set.
//! - `user`: the id given to [`crate::Session::set_user`]; what the per-user index of
//!   [`crate::SessionAdmin`] lists and revokes by.
//! - `agent`: optional text to recognise the device by (for example the `User-Agent`),
//!   from [`crate::Session::set_user_agent`].
//!
//! A session with none of these has no entry at all: anonymous sessions cost nothing.

use serde_json::{Map, Value};

/// The key of Tessera's own entry in a stored session record (see the module docs of
/// [`crate::store`] and `Session::set_user`). No field may use it.
pub const META_KEY: &str = "_tessera";

/// Longest user id accepted by `set_user`: it becomes part of a store key.
pub(crate) const MAX_USER_LEN: usize = 512;
/// Longest `agent` kept; longer text is cut at a character boundary.
pub(crate) const MAX_AGENT_LEN: usize = 256;

/// The decoded entry. Wrong types in a stored entry read as absent: a record written by
/// another program never fails to load because of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) created: Option<i64>,
    pub(crate) user: Option<String>,
    pub(crate) agent: Option<String>,
}

impl Meta {
    pub(crate) fn from_value(value: &Value) -> Self {
        let Some(o) = value.as_object() else {
            return Self::default();
        };
        Self {
            created: o.get("created").and_then(Value::as_i64),
            user: o
                .get("user")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty() && u.len() <= MAX_USER_LEN)
                .map(str::to_owned),
            agent: o.get("agent").and_then(Value::as_str).map(cut_agent),
        }
    }

    /// The entry from its JSON text: read straight into the fields (no `Value` map on
    /// the way), or, when a field has an unexpected type, leniently through a `Value`.
    pub(crate) fn from_json(text: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Wire<'a> {
            #[serde(default)]
            created: Option<i64>,
            #[serde(default, borrow)]
            user: Option<std::borrow::Cow<'a, str>>,
            #[serde(default, borrow)]
            agent: Option<std::borrow::Cow<'a, str>>,
        }
        match serde_json::from_slice::<Wire<'_>>(text) {
            Ok(w) => Self {
                created: w.created,
                user: w
                    .user
                    .filter(|u| !u.is_empty() && u.len() <= MAX_USER_LEN)
                    .map(std::borrow::Cow::into_owned),
                agent: w.agent.as_deref().map(cut_agent),
            },
            Err(_) => serde_json::from_slice::<Value>(text)
                .map(|v| Self::from_value(&v))
                .unwrap_or_default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.created.is_none() && self.user.is_none() && self.agent.is_none()
    }

    /// The stored entry; `None` when there is nothing to store.
    pub(crate) fn to_value(&self) -> Option<Value> {
        if self.is_empty() {
            return None;
        }
        let mut o = Map::new();
        if let Some(c) = self.created {
            o.insert("created".to_owned(), Value::from(c));
        }
        if let Some(u) = &self.user {
            o.insert("user".to_owned(), Value::from(u.as_str()));
        }
        if let Some(a) = &self.agent {
            o.insert("agent".to_owned(), Value::from(a.as_str()));
        }
        Some(Value::Object(o))
    }
}

/// The `user` of an entry's JSON text, borrowed from it: the end of every request
/// asks for it (a store may index by it), so the common entry is read by the record
/// scanner without decoding or allocating. `None` when the text has no such user;
/// `Err(())` when the scanner does not read it (escapes, odd shapes): then decode it.
pub(crate) fn user_in(text: &[u8]) -> Result<Option<&str>, ()> {
    let entries = crate::baseline::scan_object(text).ok_or(())?;
    let Some((_, value)) = entries
        .iter()
        .rev()
        .find(|(k, _)| crate::baseline::span_text(text, *k) == b"user")
    else {
        return Ok(None);
    };
    match crate::baseline::span_text(text, *value) {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
            let user = std::str::from_utf8(inner).map_err(|_| ())?;
            Ok((!user.is_empty() && user.len() <= MAX_USER_LEN).then_some(user))
        }
        b"null" => Ok(None),
        _ => Err(()),
    }
}

pub(crate) fn cut_agent(agent: &str) -> String {
    let mut end = agent.len().min(MAX_AGENT_LEN);
    while !agent.is_char_boundary(end) {
        end -= 1;
    }
    agent[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_round_trips_and_an_empty_one_is_not_stored() {
        let m = Meta {
            created: Some(1_796_316_000_000),
            user: Some("alice".into()),
            agent: Some("curl/8".into()),
        };
        let v = m.to_value().unwrap();
        assert_eq!(
            v,
            json!({"created":1_796_316_000_000_i64,"user":"alice","agent":"curl/8"})
        );
        assert_eq!(Meta::from_value(&v), m);
        assert_eq!(Meta::default().to_value(), None);
    }

    #[test]
    fn a_foreign_or_broken_entry_reads_as_absent_values() {
        let m = Meta::from_value(&json!({"created":"yesterday","user":42,"agent":null}));
        assert!(m.is_empty());
        assert!(Meta::from_value(&json!([1, 2])).is_empty());
        assert!(Meta::from_json(b"{not json").is_empty());
        let long = "x".repeat(MAX_USER_LEN + 1);
        assert_eq!(Meta::from_value(&json!({ "user": long })).user, None);
    }

    #[test]
    fn the_user_is_read_from_the_text_as_a_decoder_reads_it() {
        for text in [
            r#"{"created":1,"user":"alice","agent":"x"}"#,
            r#"{ "user" : "alice" }"#,
            r#"{"user":null}"#,
            r#"{"created":1}"#,
            r#"{"user":""}"#,
            r#"{"user":"a\"b"}"#,
            r#"{"user":42}"#,
            r#"{"user":"x","user":"y"}"#,
            r#"{"user":"Zoë 🦀"}"#,
            "[1]",
            "{broken",
        ] {
            let decoded = Meta::from_json(text.as_bytes()).user;
            match user_in(text.as_bytes()) {
                Ok(user) => assert_eq!(user, decoded.as_deref(), "{text}"),
                Err(()) => assert!(
                    text.contains('\\')
                        || text.contains("42")
                        || !text.starts_with('{')
                        || text.contains("broken"),
                    "the scanner gave up on {text}"
                ),
            }
        }
    }

    #[test]
    fn a_long_agent_is_cut_at_a_character_boundary() {
        let agent = "é".repeat(MAX_AGENT_LEN);
        let cut = cut_agent(&agent);
        assert!(cut.len() <= MAX_AGENT_LEN && cut.chars().all(|c| c == 'é'));
    }
}
