//! Keyed hashes (HMAC-SHA-256) for values with too few possibilities for an unkeyed hash to
//! protect them: card numbers, card IDs, merchant codes, one-time codes. The key lives in the
//! secrets directory, never in the database.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA-256 under one key, with domain separation and length-prefixed parts so that
/// `("ab", "c")` and `("a", "bc")` never collide.
#[derive(Clone)]
pub struct KeyedHasher {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHasher(..)")
    }
}

impl KeyedHasher {
    pub fn new(key: Zeroizing<[u8; 32]>) -> Self {
        Self { key }
    }

    /// The keyed hash of `parts` in the context `domain`.
    pub fn hash(&self, domain: &str, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail; fall back to an all-zero
        // output would be wrong, so the error branch is unreachable by construction.
        let mut mac = match <HmacSha256 as Mac>::new_from_slice(self.key.as_ref()) {
            Ok(mac) => mac,
            Err(_) => unreachable_hmac(),
        };
        mac.update(&(domain.len() as u64).to_be_bytes());
        mac.update(domain.as_bytes());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

#[cold]
fn unreachable_hmac() -> ! {
    // HMAC's InvalidLength is only returned for fixed-key-size MACs; HMAC takes any key.
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(byte: u8) -> KeyedHasher {
        KeyedHasher::new(Zeroizing::new([byte; 32]))
    }

    #[test]
    fn deterministic_and_keyed() {
        let a = hasher(1).hash("pan", &[b"4111111111111111"]);
        assert_eq!(a, hasher(1).hash("pan", &[b"4111111111111111"]));
        assert_ne!(a, hasher(2).hash("pan", &[b"4111111111111111"]));
        assert_ne!(a, hasher(1).hash("cid", &[b"4111111111111111"]));
    }

    #[test]
    fn parts_are_length_prefixed() {
        let h = hasher(7);
        assert_ne!(h.hash("d", &[b"ab", b"c"]), h.hash("d", &[b"a", b"bc"]));
    }

    #[test]
    fn rfc4231_case_2_through_raw_hmac() {
        // Sanity check that the HMAC underneath is the standard one (RFC 4231 test case 2).
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
