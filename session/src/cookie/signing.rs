//! Cookie signing, byte-compatible with `cookie-signature` as used by express-session:
//! `value + "." + base64(HMAC-SHA256(secret, value))` with the `=` padding removed.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::STANDARD_NO_PAD;
pub(crate) use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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
/// let secret = Secret::new("a long random secret of 32 bytes or more").unwrap();
/// assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
/// ```
#[derive(Clone)]
pub struct Secret {
    bytes: Arc<[u8]>,
    // The HMAC state after absorbing the key: cloning it skips re-keying per request.
    keyed: HmacSha256,
}

impl Secret {
    /// The least number of bytes [`Secret::new`] accepts: 32, the size of the HMAC-SHA256
    /// key, so that the secret is not the weak point of the signature.
    pub const MIN_LEN: usize = 32;

    /// A secret from bytes or a string, at least [`Secret::MIN_LEN`] bytes long. Make it
    /// random (`openssl rand -base64 48`) and keep it out of the source.
    ///
    /// ```
    /// use tessera::{ConfigError, Secret};
    /// assert!(Secret::new("a long random secret of 32 bytes or more").is_ok());
    /// assert!(matches!(Secret::new("keyboard cat"), Err(ConfigError::ShortSecret { len: 12, .. })));
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::EmptySecret`] for no bytes, [`ConfigError::ShortSecret`] for fewer
    /// than [`Secret::MIN_LEN`].
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let bytes = secret.as_ref();
        if bytes.len() < Self::MIN_LEN {
            return Err(if bytes.is_empty() {
                ConfigError::EmptySecret
            } else {
                ConfigError::ShortSecret {
                    len: bytes.len(),
                    min: Self::MIN_LEN,
                }
            });
        }
        Self::keyed(bytes)
    }

    /// A secret of any non-empty length, for a team that moves from express-session and
    /// must keep verifying the cookies its existing (shorter) secret signed. Warns once
    /// per process, at start-up. Rotate to a long secret as soon as the move allows:
    /// sign with the new one and verify both ([`Secrets`]).
    ///
    /// ```
    /// # fn main() -> Result<(), tessera::ConfigError> {
    /// use tessera::{Secret, Secrets};
    /// let secrets = Secrets::new([
    ///     Secret::new("a new, long and random secret of 32 bytes or more")?,
    ///     Secret::short_for_migration("keyboard cat")?,
    /// ])?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::EmptySecret`] for no bytes.
    pub fn short_for_migration(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let bytes = secret.as_ref();
        if bytes.is_empty() {
            return Err(ConfigError::EmptySecret);
        }
        if bytes.len() < Self::MIN_LEN {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    len = bytes.len(),
                    min = Self::MIN_LEN,
                    "a session secret shorter than {} bytes is in use \
                     (Secret::short_for_migration); rotate to a long random secret",
                    Self::MIN_LEN
                );
            });
        }
        Self::keyed(bytes)
    }

    fn keyed(bytes: &[u8]) -> Result<Self, ConfigError> {
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
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingSecretVar`] when the variable is unset or empty, and the
    /// errors of [`Secret::new`].
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
/// let secrets = Secrets::new([
///     Secret::new("the new secret: long, random, from the environment")?,
///     Secret::new("the old secret: long, random, from the environment")?,
/// ])?;
/// assert_eq!(secrets.len(), 2);
/// # Ok::<(), tessera::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Secrets {
    list: Arc<[Secret]>,
    // Names this list in the per-thread cache of verified cookies: unique per list built,
    // shared by its clones (which verify exactly the same cookies).
    pub(crate) id: u64,
}

impl Secrets {
    /// Builds the list; fails when it is empty.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecrets`] for an empty list.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, ConfigError> {
        let list: Vec<Secret> = secrets.into_iter().collect();
        if list.is_empty() {
            return Err(ConfigError::NoSecrets);
        }
        Ok(Self::from_list(list.into()))
    }

    fn from_list(list: Arc<[Secret]>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            list,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The secret that signs new cookies.
    pub fn signing(&self) -> &Secret {
        // `new` guarantees at least one element.
        &self.list[0]
    }

    /// All secrets, in the order they are tried when verifying.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.list.iter()
    }

    /// How many secrets there are (at least one).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Always false: a `Secrets` holds at least one secret.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl From<Secret> for Secrets {
    fn from(secret: Secret) -> Self {
        Self::from_list(Arc::from(vec![secret]))
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
/// let secret = Secret::short_for_migration("keyboard cat").unwrap();
/// let signed = HmacSigner.sign("abc", &secret);
/// assert_eq!(signed, "abc.BpxCrWRpvZMh/wk/djl34N+m+VQEU7K/5WenLwJCgFU");
/// assert_eq!(HmacSigner.unsign(&signed, &secret), Some("abc"));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HmacSigner;

/// Length of an unpadded base64 HMAC-SHA256.
const SIG_LEN: usize = 43;

impl HmacSigner {
    /// Appends `value.signature` to `out` (what [`Signer::sign`] returns).
    pub(crate) fn sign_into(value: &str, secret: &Secret, out: &mut String) {
        let mut mac = secret.mac();
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        out.reserve(value.len() + 1 + SIG_LEN);
        out.push_str(value);
        out.push('.');
        base64_into(&tag, &STANDARD_NO_PAD, out);
    }
}

impl HmacSigner {
    /// Appends the signature of `value` alone (no value, no "."), URL-encoded as it
    /// appears in a `Set-Cookie`.
    pub(crate) fn signature_encoded_into(value: &str, secret: &Secret, out: &mut String) {
        let mut mac = secret.mac();
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut buf = [0u8; 64];
        crate::cookie::encode_uri_component(base64_block(&tag, &STANDARD_NO_PAD, &mut buf), out);
    }
}

/// Appends `bytes` in unpadded base64 with `engine` (standard for `cookie-signature`'s
/// signatures, URL-safe for ids, as `uid-safe` makes them), through a stack buffer:
/// base64's `encode_slice` costs 0.3 % more than the hand-written encoder it replaced
/// on a new session (`bench/instructions.sh`, B: 23,982 against 23,910 instructions), under
/// the 1 % that would justify keeping hand-written code.
pub(crate) fn base64_into(bytes: &[u8], engine: &GeneralPurpose, out: &mut String) {
    for block in bytes.chunks(48) {
        let mut buf = [0u8; 64];
        out.push_str(base64_block(block, engine, &mut buf));
    }
}

/// Up to 48 bytes in unpadded base64, written into `buf`.
fn base64_block<'b>(block: &[u8], engine: &GeneralPurpose, buf: &'b mut [u8; 64]) -> &'b str {
    let n = engine.encode_slice(block, &mut buf[..]).unwrap_or(0);
    // Base64 is ASCII, so this never fails.
    std::str::from_utf8(&buf[..n.min(64)]).unwrap_or_default()
}

impl Signer for HmacSigner {
    fn sign(&self, value: &str, secret: &Secret) -> String {
        let mut out = String::new();
        Self::sign_into(value, secret, &mut out);
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
    use crate::verified::{remembered_id, unsign_remembering};

    fn secret(s: &str) -> Secret {
        Secret::short_for_migration(s).unwrap()
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
    fn base64_matches_the_reference_engine_for_every_length_and_both_alphabets() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let bytes: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
        for len in 0..100 {
            for start in [0, 1, 7, 250] {
                let input = &bytes[start..start + len];
                let mut out = String::from("x");
                base64_into(input, &STANDARD_NO_PAD, &mut out);
                assert_eq!(
                    out[1..],
                    STANDARD_NO_PAD.encode(input),
                    "standard, {len} bytes"
                );
                let mut out = String::new();
                base64_into(input, &URL_SAFE_NO_PAD, &mut out);
                assert_eq!(out, URL_SAFE_NO_PAD.encode(input), "url-safe, {len} bytes");
            }
        }
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

    /// What the layer does with a cookie value as the request sent it: answered from the
    /// remembered values, else decoded and verified.
    fn verify(secrets: &Secrets, raw: &str) -> Option<String> {
        if let Some(id) = remembered_id(secrets, raw.as_bytes()) {
            return Some(id);
        }
        let decoded = crate::cookie::decode_cookie_value(raw.as_bytes())?;
        let signed = decoded.strip_prefix("s:")?;
        unsign_remembering(secrets, raw.as_bytes(), signed).map(str::to_owned)
    }

    /// The cookie value express-session sends for `signed`.
    fn raw(signed: &str) -> String {
        let mut out = String::new();
        crate::cookie::encode_uri_component(&format!("s:{signed}"), &mut out);
        out
    }

    #[test]
    fn remembered_values_still_reject_every_tampered_character() {
        let secrets = Secrets::from(secret("keyboard cat"));
        let id = "0123456789abcdefghijklmnopqrstuv";
        let value = raw(&HmacSigner.sign(id, secrets.signing()));
        assert_eq!(remembered_id(&secrets, value.as_bytes()), None);
        for _ in 0..2 {
            // The second round is answered from the remembered values.
            assert_eq!(verify(&secrets, &value).as_deref(), Some(id));
        }
        assert_eq!(
            remembered_id(&secrets, value.as_bytes()).as_deref(),
            Some(id)
        );
        let bytes = value.as_bytes();
        for i in 0..bytes.len() {
            let mut t = bytes.to_vec();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            assert_eq!(verify(&secrets, &t), None, "tampered at {i}: {t}");
        }
        assert_eq!(verify(&secrets, &value[..value.len() - 1]), None);
        assert_eq!(verify(&secrets, &format!("{value}A")), None);
    }

    #[test]
    fn an_unencoded_prefix_is_remembered_too_and_an_encoded_id_never_is() {
        let secrets = Secrets::from(secret("keyboard cat"));
        let plain = format!("s:{}", HmacSigner.sign("plain-id", secrets.signing()));
        assert_eq!(verify(&secrets, &plain).as_deref(), Some("plain-id"));
        assert_eq!(
            remembered_id(&secrets, plain.as_bytes()).as_deref(),
            Some("plain-id")
        );
        // An id that needed URL-encoding verifies, with the HMAC, every time.
        let odd = raw(&HmacSigner.sign("a b/c%d", secrets.signing()));
        for _ in 0..2 {
            assert_eq!(verify(&secrets, &odd).as_deref(), Some("a b/c%d"));
            assert_eq!(remembered_id(&secrets, odd.as_bytes()), None);
        }
    }

    #[test]
    fn a_value_remembered_under_one_secret_list_does_not_verify_under_another() {
        let old = Secrets::from(secret("old secret"));
        let new = Secrets::from(secret("new secret"));
        let value = raw(&HmacSigner.sign("some-id", old.signing()));
        assert_eq!(verify(&old, &value).as_deref(), Some("some-id"));
        assert_eq!(verify(&new, &value), None);
        // A rotation list that still holds the old secret accepts it.
        let rotated = Secrets::new([secret("new secret"), secret("old secret")]).unwrap();
        assert_eq!(verify(&rotated, &value).as_deref(), Some("some-id"));
    }

    #[test]
    fn evicted_and_long_values_fall_back_to_the_hmac() {
        let secrets = Secrets::from(secret("keyboard cat"));
        // Far more values than slots: most are evicted, all still verify.
        let values: Vec<String> = (0..3000)
            .map(|i| raw(&HmacSigner.sign(&format!("id-{i:06}"), secrets.signing())))
            .collect();
        for (i, v) in values.iter().chain(values.iter()).enumerate() {
            assert_eq!(verify(&secrets, v), Some(format!("id-{:06}", i % 3000)));
        }
        let long_id = "x".repeat(200);
        let long = raw(&HmacSigner.sign(&long_id, secrets.signing()));
        assert_eq!(verify(&secrets, &long), Some(long_id.clone()));
        assert_eq!(remembered_id(&secrets, long.as_bytes()), None);
        assert_eq!(verify(&secrets, &long), Some(long_id));
    }

    #[test]
    fn empty_secrets_are_rejected() {
        assert!(matches!(Secret::new(""), Err(ConfigError::EmptySecret)));
        assert!(matches!(Secrets::new([]), Err(ConfigError::NoSecrets)));
    }
}
