//! One-time codes and recovery-code hints under the registry keyring (docs/design/keys.md,
//! "The registry key"): a code's hash is made under the ring's current key and checked
//! under every key, so a code sent just before a rotation is still good after it, and ten
//! minutes (the longest code lifetime) after a rotation no live code is under the old key.
//! A recovery code's hint is made under the current key and looked up under every key.

use portcullis_crypto::{ct_eq, KeyedHasher};

use super::Portcullis;
use crate::otp;

impl Portcullis {
    /// The key new codes and hints are made under: the registry ring's current key.
    pub(crate) fn code_key(&self) -> KeyedHasher {
        self.registry_keys()
            .into_iter()
            .next()
            .map_or_else(|| self.keys.clone(), |(_, key)| key)
    }

    /// The hash stored for a new `code` of the step `step_hash`.
    pub(crate) fn code_hash(&self, step_hash: &[u8; 32], code: &str) -> [u8; 32] {
        otp::code_hash(&self.code_key(), step_hash, code)
    }

    /// Whether `code` is the one `stored` is the hash of, under any key of the ring. Every
    /// key is tried, matched or not, each compared in constant time: how long it takes
    /// says nothing about which key matched.
    pub(crate) fn code_matches(&self, step_hash: &[u8; 32], code: &str, stored: &[u8]) -> bool {
        self.registry_keys().iter().fold(false, |found, (_, key)| {
            ct_eq(&otp::code_hash(key, step_hash, code), stored) | found
        })
    }

    /// `parts`' keyed hash in `domain` under every key of the ring, the current one first,
    /// without repeats.
    pub(crate) fn hashes_under_every_key(&self, domain: &str, parts: &[&[u8]]) -> Vec<[u8; 32]> {
        let mut out: Vec<[u8; 32]> = Vec::new();
        for (_, key) in self.registry_keys() {
            let hash = key.hash(domain, parts);
            if !out.contains(&hash) {
                out.push(hash);
            }
        }
        out
    }
}
