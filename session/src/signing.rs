//! Cookie signing, byte-compatible with `cookie-signature` as used by express-session:
//! `value + "." + base64(HMAC-SHA256(secret, value))` with the `=` padding removed.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::options::ConfigError;

type HmacSha256 = Hmac<Sha256>;

/// One secret used to sign session cookies.
///
/// The bytes are never printed: `Debug` shows `Secret(<redacted>)`.
///
/// ```
/// use tessera::Secret;
/// let secret = Secret::new("keyboard cat").unwrap();
/// assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
/// ```
#[derive(Clone)]
pub struct Secret {
    bytes: Arc<[u8]>,
    // The HMAC state after absorbing the key: cloning it skips re-keying per request.
    keyed: HmacSha256,
}

impl Secret {
    /// A secret from bytes or a string. Fails on an empty secret.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let bytes = secret.as_ref();
        if bytes.is_empty() {
            return Err(ConfigError::EmptySecret);
        }
        let keyed = HmacSha256::new_from_slice(bytes).map_err(|_| ConfigError::EmptySecret)?;
        Ok(Self {
            bytes: bytes.into(),
            keyed,
        })
    }

    /// Reads the secret from the environment variable `var`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), tessera::ConfigError> {
    /// let secret = tessera::Secret::from_env("SESSION_SECRET")?;
    /// # Ok(()) }
    /// ```
    pub fn from_env(var: &str) -> Result<Self, ConfigError> {
        match std::env::var_os(var) {
            None => Err(ConfigError::MissingSecretVar(var.to_owned())),
            Some(v) if v.is_empty() => Err(ConfigError::MissingSecretVar(var.to_owned())),
            Some(v) => Self::new(v.as_encoded_bytes()),
        }
    }

    /// The raw bytes, for custom [`Signer`]s.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The secrets of a layer: the first signs, every one verifies (key rotation).
///
/// ```
/// use tessera::{Secret, Secrets};
/// let secrets = Secrets::new([Secret::new("new")?, Secret::new("old")?])?;
/// assert_eq!(secrets.len(), 2);
/// # Ok::<(), tessera::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Secrets(Arc<[Secret]>);

impl Secrets {
    /// Builds the list; fails when it is empty.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, ConfigError> {
        let list: Vec<Secret> = secrets.into_iter().collect();
        if list.is_empty() {
            return Err(ConfigError::NoSecrets);
        }
        Ok(Self(list.into()))
    }

    /// The secret that signs new cookies.
    pub fn signing(&self) -> &Secret {
        // `new` guarantees at least one element.
        &self.0[0]
    }

    /// All secrets, in the order they are tried when verifying.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }

    /// How many secrets there are (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a `Secrets` holds at least one secret.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl From<Secret> for Secrets {
    fn from(secret: Secret) -> Self {
        Self(Arc::from(vec![secret]))
    }
}

/// Signs and verifies cookie values (express-session's `signature` option).
///
/// The default, [`HmacSigner`], is byte-compatible with express-session.
pub trait Signer: Send + Sync + 'static {
    /// Returns `value` with a signature made with `secret` appended.
    fn sign(&self, value: &str, secret: &Secret) -> String;
    /// Returns the value if `signed` carries a valid signature for `secret`.
    /// Implementations must compare in constant time.
    fn unsign<'a>(&self, signed: &'a str, secret: &Secret) -> Option<&'a str>;
}

/// `cookie-signature`'s scheme: `value.base64(HMAC-SHA256(secret, value))`, no padding.
///
/// ```
/// use tessera::{HmacSigner, Secret, Signer};
/// let secret = Secret::new("keyboard cat").unwrap();
/// let signed = HmacSigner.sign("abc", &secret);
/// assert_eq!(signed, "abc.BpxCrWRpvZMh/wk/djl34N+m+VQEU7K/5WenLwJCgFU");
/// assert_eq!(HmacSigner.unsign(&signed, &secret), Some("abc"));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HmacSigner;

/// Length of an unpadded base64 HMAC-SHA256.
const SIG_LEN: usize = 43;

impl Signer for HmacSigner {
    fn sign(&self, value: &str, secret: &Secret) -> String {
        let mut mac = secret.mac();
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(value.len() + 1 + SIG_LEN);
        out.push_str(value);
        out.push('.');
        STANDARD_NO_PAD.encode_string(tag, &mut out);
        out
    }

    fn unsign<'a>(&self, signed: &'a str, secret: &Secret) -> Option<&'a str> {
        let dot = signed.rfind('.')?;
        let (value, sig) = (&signed[..dot], &signed[dot + 1..]);
        if sig.len() != SIG_LEN {
            return None;
        }
        // The strict decoder rejects padding and non-canonical trailing bits, so exactly
        // one signature string verifies, as with express's string comparison.
        let mut tag = [0u8; 33];
        let n = STANDARD_NO_PAD.decode_slice(sig, &mut tag).ok()?;
        let mut mac = secret.mac();
        mac.update(value.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&tag[..n]).ok().map(|()| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s).unwrap()
    }

    #[test]
    fn sign_matches_cookie_signature_known_answer() {
        assert_eq!(
            HmacSigner.sign("abc", &secret("keyboard cat")),
            "abc.BpxCrWRpvZMh/wk/djl34N+m+VQEU7K/5WenLwJCgFU"
        );
    }

    #[test]
    fn unsign_accepts_own_signature_and_rejects_any_flipped_character() {
        let s = secret("keyboard cat");
        let signed = HmacSigner.sign("some-id", &s);
        assert_eq!(HmacSigner.unsign(&signed, &s), Some("some-id"));
        let bytes = signed.as_bytes();
        for i in 0..bytes.len() {
            let mut t = bytes.to_vec();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            if t != signed {
                assert_eq!(HmacSigner.unsign(&t, &s), None, "tampered at {i}: {t}");
            }
        }
    }

    #[test]
    fn unsign_rejects_wrong_secret_padding_and_truncation() {
        let s = secret("keyboard cat");
        let signed = HmacSigner.sign("abc", &s);
        assert_eq!(HmacSigner.unsign(&signed, &secret("other")), None);
        assert_eq!(HmacSigner.unsign(&format!("{signed}="), &s), None);
        assert_eq!(HmacSigner.unsign(&signed[..signed.len() - 1], &s), None);
        assert_eq!(HmacSigner.unsign("abc", &s), None);
        assert_eq!(HmacSigner.unsign("", &s), None);
    }

    #[test]
    fn unsign_rejects_non_canonical_base64_trailing_bits() {
        let s = secret("keyboard cat");
        let signed = HmacSigner.sign("abc", &s);
        // The last character encodes 2 significant bits; 'U' = 0b010100, so 'V' only
        // changes the 4 ignored bits. express compares strings and rejects it.
        assert!(signed.ends_with('U'));
        let bent = format!("{}V", &signed[..signed.len() - 1]);
        assert_eq!(HmacSigner.unsign(&bent, &s), None);
    }

    #[test]
    fn empty_secrets_are_rejected() {
        assert!(matches!(Secret::new(""), Err(ConfigError::EmptySecret)));
        assert!(matches!(Secrets::new([]), Err(ConfigError::NoSecrets)));
    }
}
