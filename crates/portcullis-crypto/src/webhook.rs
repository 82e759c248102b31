//! Standard Webhooks signing (<https://www.standardwebhooks.com>): a subscription's secret is
//! `whsec_` + base64 of random bytes, and each delivery carries
//! `webhook-signature: v1,<base64 of HMAC-SHA-256 over "id.timestamp.body">` computed with
//! the secret's decoded bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::token::random_bytes;

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> SecretString {
    let bytes = Zeroizing::new(random_bytes::<32>());
    SecretString::from(format!("{SECRET_PREFIX}{}", STANDARD.encode(*bytes)))
}

/// The key bytes of a secret (`whsec_` + base64); `None` when it is not one.
fn key_bytes(secret: &str) -> Option<Zeroizing<Vec<u8>>> {
    let b64 = secret.strip_prefix(SECRET_PREFIX)?;
    STANDARD.decode(b64).ok().map(Zeroizing::new)
}

/// The `webhook-signature` header value for one delivery attempt: `v1,` + base64 of
/// HMAC-SHA-256(secret bytes, `id.timestamp.body`). `None` when `secret` is malformed.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = key_bytes(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn secrets_are_prefixed_random_and_decode_to_32_bytes() {
        let a = new_secret();
        let b = new_secret();
        assert!(a.expose_secret().starts_with(SECRET_PREFIX));
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(key_bytes(a.expose_secret()).unwrap().len(), 32);
    }

    /// The example of the Standard Webhooks reference libraries' tests.
    #[test]
    fn matches_the_reference_signature() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1614265330;
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, ts, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(sign("nope", id, ts, body).is_none());
    }
}
