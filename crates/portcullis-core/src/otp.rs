//! One-time codes sent by email or text: 6 digits from the CSPRNG, valid 10 minutes, used
//! once, at most 5 tries each, resent at most once a minute (and at most 5 times), stored
//! only as a keyed hash bound to the flow step they belong to (a code is good for the
//! request that asked for it and nothing else).

use portcullis_crypto::KeyedHasher;
use secrecy::SecretString;

#[derive(Clone, Copy, Debug)]
pub struct CodePolicy {
    pub ttl_secs: i64,
    pub max_tries: u32,
    pub resend_after_secs: i64,
    pub max_sends: u32,
}

impl Default for CodePolicy {
    fn default() -> Self {
        Self {
            ttl_secs: 10 * 60,
            max_tries: 5,
            resend_after_secs: 60,
            max_sends: 5,
        }
    }
}

pub const CODE_DIGITS: usize = 6;
const DOMAIN: &str = "portcullis/one-time-code/v1";

pub fn generate() -> SecretString {
    portcullis_crypto::token::random_digits(CODE_DIGITS)
}

/// The stored form of `code` for the step `step_hash`.
pub fn code_hash(keys: &KeyedHasher, step_hash: &[u8; 32], code: &str) -> [u8; 32] {
    keys.hash(DOMAIN, &[step_hash, code.as_bytes()])
}

/// A code as typed: spaces and dashes ignored; `None` unless exactly six digits.
pub fn normalise(input: &str) -> Option<String> {
    let digits: String = input.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    (digits.len() == CODE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The outcome of presenting a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    Accepted,
    Wrong {
        tries_left: u32,
    },
    /// Expired, used, or out of tries: ask for a new one.
    Spent,
}

/// The outcome of asking for the code again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resend {
    Sent,
    TooSoon { retry_after: u64 },
    TooMany,
    NoCode,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use zeroize::Zeroizing;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..50 {
            assert!(normalise(generate().expose_secret()).is_some());
        }
    }

    #[test]
    fn normalising() {
        assert_eq!(normalise(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(normalise("123-456").as_deref(), Some("123456"));
        assert_eq!(normalise("12345"), None);
        assert_eq!(normalise("12345a"), None);
        assert_eq!(normalise("1234567"), None);
    }

    #[test]
    fn hashes_are_bound_to_their_step() {
        let keys = KeyedHasher::new(Zeroizing::new([3; 32]));
        assert_ne!(
            code_hash(&keys, &[1; 32], "123456"),
            code_hash(&keys, &[2; 32], "123456")
        );
        assert_eq!(
            code_hash(&keys, &[1; 32], "123456"),
            code_hash(&keys, &[1; 32], "123456")
        );
    }
}
