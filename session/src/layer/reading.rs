//! The signed id on the wire: reading it from the cookie or the `id_header` and
//! verifying it, and writing it back (the `Set-Cookie` value, the header value).

use std::borrow::Cow;

use http::HeaderMap;

use super::{CookieSigner, Ctx, MAX_COOKIE_VALUE_LEN, MAX_ID_LEN, Transport};
use crate::cookie::{SessionCookie, decode_cookie_value, encode_uri_component, find_cookie_raw};
use crate::signing::{HmacSigner, Signer};
use crate::time;
use crate::verified::{remembered_id, unsign_remembering};

impl Ctx {
    /// The signed id as the `id_header` carries it: the cookie's value.
    pub(crate) fn header_value(&self, id: &str) -> String {
        let mut out = String::new();
        encode_uri_component(&self.signed_value(id), &mut out);
        out
    }
    /// "s:" and the id signed by the layer's signer (what the cookie carries, decoded).
    pub(crate) fn signed_value(&self, id: &str) -> String {
        let signed = match &self.signer {
            CookieSigner::Default => HmacSigner.sign(id, self.secrets.signing()),
            CookieSigner::Custom(signer) => signer.sign(id, self.secrets.signing()),
        };
        format!("s:{signed}")
    }

    /// The `Set-Cookie` value for the session `id`.
    pub(crate) fn render_cookie(&self, cookie: &SessionCookie, id: &str) -> String {
        if let CookieSigner::Custom(_) = self.signer {
            return cookie.render(&self.options.name, &self.signed_value(id));
        }
        // Written in place: "s%3A" (the encoded "s:"), the id, ".", the signature.
        cookie.render_with(&self.options.name, 2 + id.len() + 44, |out| {
            out.push_str("s%3A");
            encode_uri_component(id, out);
            out.push('.');
            HmacSigner::signature_encoded_into(id, self.secrets.signing(), out);
        })
    }

    /// Where the request carries its id (the `id_header`, when the option is on and
    /// the request sends it; else the cookie), and the verified id, if there is one.
    pub(crate) fn read_id(&self, headers: &HeaderMap) -> (Transport, Option<String>) {
        if let Some(value) = self.options.id_header.as_ref().and_then(|h| headers.get(h)) {
            // The header wins over a cookie: the client chose to send it, while the
            // browser sends cookies on its own. Empty: "give me a session".
            let raw = value.as_bytes();
            let id = if raw.is_empty() {
                None
            } else {
                self.read_signed(raw)
            };
            return (Transport::Header, id);
        }
        let id = find_cookie_raw(headers, &self.options.name).and_then(|raw| self.read_signed(raw));
        (Transport::Cookie, id)
    }

    /// The verified session id of a signed value, as a cookie or the id header
    /// carries it.
    fn read_signed(&self, raw: &[u8]) -> Option<String> {
        if raw.len() > MAX_COOKIE_VALUE_LEN {
            if let Some(suppressed) = self.alerts.bad_cookies.admit(time::now_ms()) {
                tracing::info!(
                    len = raw.len(),
                    suppressed,
                    "session cookie too long; starting a fresh session"
                );
            }
            return None;
        }
        let remembered = match self.signer {
            CookieSigner::Default if self.remember_verified => remembered_id(&self.secrets, raw),
            _ => None,
        };
        let id = match remembered {
            Some(id) => Some(id),
            None => self.verify(raw)?,
        };
        match id {
            Some(id) if !id.is_empty() && id.len() <= MAX_ID_LEN => Some(id),
            Some(_) => {
                if let Some(suppressed) = self.alerts.bad_cookies.admit(time::now_ms()) {
                    tracing::info!(
                        suppressed,
                        "signed session id has an invalid length; starting a fresh session"
                    );
                }
                None
            }
            None => {
                if let Some(suppressed) = self.alerts.bad_cookies.admit(time::now_ms()) {
                    tracing::info!(
                        suppressed,
                        "session cookie signature does not verify; starting a fresh session"
                    );
                }
                None
            }
        }
    }

    /// Decodes and verifies a cookie value: `None` when it is not signed at all,
    /// `Some(None)` when its signature does not verify.
    fn verify(&self, raw: &[u8]) -> Option<Option<String>> {
        let value = decode_cookie_value(raw)?;
        let Some(signed) = value.strip_prefix("s:") else {
            if let Some(suppressed) = self.alerts.bad_cookies.admit(time::now_ms()) {
                tracing::debug!(
                    suppressed,
                    "session cookie is not signed (no `s:` prefix); starting a fresh session"
                );
            }
            return None;
        };
        if let CookieSigner::Custom(signer) = &self.signer {
            // A custom signer's value need not be a prefix of what it signed (a
            // key-versioned signer, say): take what `unsign` returns.
            return Some(
                self.secrets
                    .iter()
                    .find_map(|secret| signer.unsign(signed, secret))
                    .map(str::to_owned),
            );
        }
        // The default signer's id is the start of `signed` ("s:" + id + "." + signature).
        let verified = if self.remember_verified {
            unsign_remembering(&self.secrets, raw, signed)
        } else {
            self.secrets
                .iter()
                .find_map(|secret| HmacSigner.unsign(signed, secret))
        };
        let Some(len) = verified.map(str::len) else {
            return Some(None);
        };
        Some(Some(match value {
            // Reuse the decoded buffer.
            Cow::Owned(mut buf) => {
                buf.truncate(2 + len);
                buf.drain(..2);
                buf
            }
            Cow::Borrowed(v) => v.get(2..2 + len).unwrap_or_default().to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::HeaderValue;

    use super::*;
    use crate::layer::default_id;
    use crate::options::SessionOptions;
    use crate::signing::{Secret, Secrets};
    use crate::store::memory::MemoryStore;

    #[test]
    fn with_the_cache_turned_off_a_verified_cookie_is_not_remembered() {
        for remember in [false, true] {
            let ctx = Ctx {
                store: Arc::new(MemoryStore::default()),
                signer: CookieSigner::Default,
                secrets: Secrets::from(
                    Secret::new("a test secret that is long enough to sign").unwrap(),
                ),
                options: SessionOptions::default(),
                genid: None,
                alerts: Arc::default(),
                clock: None,
                remember_verified: remember,
            };
            let id = default_id().unwrap();
            let cookie = ctx.render_cookie(&SessionCookie::default(), &id);
            let pair = cookie.split(';').next().unwrap();
            let raw = pair.split_once('=').unwrap().1;
            let mut headers = HeaderMap::new();
            headers.insert(http::header::COOKIE, HeaderValue::from_str(pair).unwrap());
            assert_eq!(ctx.read_id(&headers).1.as_deref(), Some(id.as_str()));
            assert_eq!(
                remembered_id(&ctx.secrets, raw.as_bytes()).is_some(),
                remember,
                "remember_verified_cookies({remember})"
            );
        }
    }

    #[test]
    fn the_default_cookie_written_in_place_equals_the_generic_rendering() {
        let secrets = Secrets::from(Secret::short_for_migration("keyboard cat").unwrap());
        let ctx = Ctx {
            store: Arc::new(MemoryStore::default()),
            signer: CookieSigner::Default,
            secrets,
            options: SessionOptions::default(),
            genid: None,
            alerts: Arc::default(),
            clock: None,
            remember_verified: true,
        };
        let cookie = SessionCookie::default();
        let mut ids: Vec<String> = (0..200).filter_map(|_| default_id().ok()).collect();
        ids.extend([
            "a b/c+d:é%".to_owned(),
            "x".to_owned(),
            "id.with.dots".to_owned(),
        ]);
        for id in &ids {
            assert_eq!(
                ctx.render_cookie(&cookie, id),
                cookie.render(&ctx.options.name, &ctx.signed_value(id)),
                "{id}"
            );
        }
    }
}
