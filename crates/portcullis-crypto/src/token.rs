//! Random tokens (sessions, registration and recovery steps, admin tokens) and the SHA-256
//! under which they are stored. A token is 256 bits from the operating system's CSPRNG.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A freshly minted bearer secret: the value handed to the client once, and its hash, which
/// is all the server keeps.
pub struct Token {
    pub secret: SecretString,
    pub hash: [u8; 32],
}

impl Token {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        let hash = sha256(secret.as_bytes());
        zeroize::Zeroize::zeroize(&mut bytes);
        Self {
            secret: SecretString::from(secret),
            hash,
        }
    }

    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// `n` random decimal digits, uniformly distributed (one-time codes).
pub fn random_digits(n: usize) -> SecretString {
    let mut rng = OsRng;
    let s: String = (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    SecretString::from(s)
}

/// `n` characters drawn uniformly from `alphabet` (recovery codes).
pub fn random_from(alphabet: &[u8], n: usize) -> SecretString {
    let mut rng = OsRng;
    let s: String = (0..n)
        .filter_map(|_| alphabet.get(rng.gen_range(0..alphabet.len())))
        .map(|b| char::from(*b))
        .collect();
    SecretString::from(s)
}

/// `n` random bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_matches() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash, sha256(a.expose().as_bytes()));
        assert_eq!(a.expose().len(), 43);
    }

    #[test]
    fn digits_are_digits() {
        for _ in 0..100 {
            let d = random_digits(6);
            assert_eq!(d.expose_secret().len(), 6);
            assert!(d.expose_secret().bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
