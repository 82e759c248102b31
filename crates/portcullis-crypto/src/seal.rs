//! Authenticated encryption of small secrets at rest (ChaCha20-Poly1305, a random nonce per
//! value), under a key from the secrets folder. Each use binds its own label as associated
//! data, so a value sealed for one purpose cannot be opened as another.

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::keyring::{KeyRing, LiveRing};

/// Values sealed before keyrings: under the key that is now id 1.
const PREFIX_V1: &str = "sealed:v1:";
/// `sealed:v2:ID:` + base64: the key id is stored with the value.
const PREFIX_V2: &str = "sealed:v2:";

/// Seals and opens values under one keyring and one purpose label: sealing under the
/// current key (its id written into the value), opening under whichever key the value
/// names. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    keys: LiveRing,
    aad: &'static [u8],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

fn aead_key(key: &[u8; 32]) -> LessSafeKey {
    // A 32-byte key is always a valid ChaCha20-Poly1305 key.
    #[allow(clippy::expect_used)]
    let key = UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key");
    LessSafeKey::new(key)
}

impl Sealer {
    /// A sealer for `aad` (a fixed label naming what is sealed) under one key, id 1.
    pub fn new(key: &[u8; 32], aad: &'static [u8]) -> Self {
        Self::with_ring(
            LiveRing::fixed(KeyRing::single(zeroize::Zeroizing::new(*key))),
            aad,
        )
    }

    /// A sealer for `aad` under a keyring that may change while the process runs.
    pub fn with_ring(keys: LiveRing, aad: &'static [u8]) -> Self {
        Self { keys, aad }
    }

    /// The keyring in use.
    pub fn ring(&self) -> &LiveRing {
        &self.keys
    }

    /// `sealed:v2:ID:` + base64(nonce ‖ ciphertext ‖ tag) under the current key; `None` only
    /// if the system random source fails.
    pub fn seal(&self, plain: &[u8]) -> Option<String> {
        let ring = self.keys.snapshot();
        let key = aead_key(ring.current());
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut data = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(self.aad),
            &mut data,
        )
        .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Some(format!(
            "{PREFIX_V2}{}:{}",
            ring.current_id(),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
        ))
    }

    /// Whether `stored` looks sealed (rather than a legacy clear value).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX_V1) || stored.starts_with(PREFIX_V2)
    }

    /// The id of the key `stored` was sealed under, and the sealed part.
    fn split(stored: &str) -> Option<(u32, &str)> {
        if let Some(rest) = stored.strip_prefix(PREFIX_V1) {
            return Some((1, rest));
        }
        let (id, rest) = stored.strip_prefix(PREFIX_V2)?.split_once(':')?;
        Some((id.parse().ok()?, rest))
    }

    /// The id of the key `stored` was sealed under (`None` when it is not sealed).
    pub fn key_id(stored: &str) -> Option<u32> {
        Self::split(stored).map(|(id, _)| id)
    }

    /// SQL `LIKE` patterns matching the values sealed under key `id` (id 1 includes the
    /// values sealed before keyrings).
    pub fn like_patterns(id: u32) -> Vec<String> {
        let mut patterns = vec![format!("{PREFIX_V2}{id}:%")];
        if id == 1 {
            patterns.push(format!("{PREFIX_V1}%"));
        }
        patterns
    }

    /// The plain bytes, or `None` when the value was not sealed under a key of this ring and
    /// this label or was altered. A key id this process does not know yet makes it re-read
    /// its keyring first (another process may have rotated it).
    pub fn open(&self, stored: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let (id, sealed) = Self::split(stored)?;
        let mut ring = self.keys.snapshot();
        if ring.get(id).is_none() {
            ring = self.keys.refresh();
        }
        let key = aead_key(ring.get(id)?);
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(sealed)
            .ok()?;
        let (nonce, sealed) = raw.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = zeroize::Zeroizing::new(sealed.to_vec());
        let len = key
            .open_in_place(nonce, Aad::from(self.aad), &mut data)
            .ok()?
            .len();
        data.truncate(len);
        Some(data)
    }

    /// `stored` sealed again under the current key: `None` when it is already (or cannot be
    /// opened).
    pub fn reseal(&self, stored: &str) -> Option<String> {
        if Self::key_id(stored) == Some(self.keys.snapshot().current_id()) {
            return None;
        }
        self.seal(&self.open(stored)?)
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

    #[test]
    fn values_name_their_key_and_open_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let one = crate::keyring::load_or_create_ring(dir.path(), "factor.key").unwrap();
        // A value sealed before keyrings (v1, no id) is under key 1.
        let mut legacy_raw = [0u8; NONCE_LEN].to_vec();
        let mut data = b"old".to_vec();
        aead_key(one.current())
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
                Aad::from(b"t".as_slice()),
                &mut data,
            )
            .unwrap();
        legacy_raw.extend_from_slice(&data);
        let legacy = format!(
            "{PREFIX_V1}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(legacy_raw)
        );
        let s = Sealer::with_ring(LiveRing::open(dir.path(), "factor.key").unwrap(), b"t");
        assert_eq!(Sealer::key_id(&legacy), Some(1));
        assert_eq!(s.open(&legacy).unwrap().as_slice(), b"old");
        let under_one = s.seal(b"one").unwrap();
        assert!(under_one.starts_with("sealed:v2:1:"));
        // Another process rotates: the next value meets key 2, the old ones still open.
        let other = Sealer::with_ring(LiveRing::open(dir.path(), "factor.key").unwrap(), b"t");
        crate::keyring::rotate_ring(dir.path(), "factor.key").unwrap();
        let under_two = other.seal(b"two").unwrap_or_default();
        let under_two = if Sealer::key_id(&under_two) == Some(2) {
            under_two
        } else {
            other.ring().refresh();
            other.seal(b"two").unwrap()
        };
        assert_eq!(Sealer::key_id(&under_two), Some(2));
        // `s` has not looked at the file yet: a value under key 2 makes it look.
        assert_eq!(s.open(&under_two).unwrap().as_slice(), b"two");
        assert_eq!(s.open(&under_one).unwrap().as_slice(), b"one");
        let moved = s.reseal(&legacy).unwrap();
        assert_eq!(Sealer::key_id(&moved), Some(2));
        assert_eq!(s.open(&moved).unwrap().as_slice(), b"old");
        assert!(s.reseal(&moved).is_none(), "already under the current key");
        assert_eq!(
            Sealer::like_patterns(1),
            vec!["sealed:v2:1:%", "sealed:v1:%"]
        );
        // A key id no ring holds is refused.
        assert!(s
            .open(&under_two.replace("sealed:v2:2:", "sealed:v2:9:"))
            .is_none());
    }
}
