//! Authenticated encryption of small secrets at rest (ChaCha20-Poly1305, a random nonce per
//! value), under a key from the secrets folder. Each use binds its own label as associated
//! data, so a value sealed for one purpose cannot be opened as another.

use std::sync::Arc;

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "sealed:v1:";

/// Seals and opens values under one key and one purpose label. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    key: Arc<LessSafeKey>,
    aad: &'static [u8],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer for `aad` (a fixed label naming what is sealed).
    pub fn new(key: &[u8; 32], aad: &'static [u8]) -> Self {
        // A 32-byte key is always a valid ChaCha20-Poly1305 key.
        #[allow(clippy::expect_used)]
        let key = UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key");
        Self {
            key: Arc::new(LessSafeKey::new(key)),
            aad,
        }
    }

    /// `sealed:v1:` + base64(nonce ‖ ciphertext ‖ tag); `None` only if the system random
    /// source fails.
    pub fn seal(&self, plain: &[u8]) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.aad),
                &mut data,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Some(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
        ))
    }

    /// Whether `stored` looks sealed (rather than a legacy clear value).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// The plain bytes, or `None` when the value was not sealed under this key and label or
    /// was altered.
    pub fn open(&self, stored: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(stored.strip_prefix(PREFIX)?)
            .ok()?;
        let (nonce, sealed) = raw.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = zeroize::Zeroizing::new(sealed.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(self.aad), &mut data)
            .ok()?
            .len();
        data.truncate(len);
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let s = Sealer::new(&[7; 32], b"test");
        let sealed = s.seal(b"secret").unwrap();
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.contains("secret"));
        assert_eq!(s.open(&sealed).unwrap().as_slice(), b"secret");
        // Two seals of one value differ (random nonce).
        assert_ne!(sealed, s.seal(b"secret").unwrap());
        // Another label or key cannot open it.
        assert!(Sealer::new(&[7; 32], b"other").open(&sealed).is_none());
        assert!(Sealer::new(&[8; 32], b"test").open(&sealed).is_none());
        // A flipped character is refused.
        let mut bad = sealed.clone().into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert!(s.open(&String::from_utf8(bad).unwrap()).is_none());
    }
}
