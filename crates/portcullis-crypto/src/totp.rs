//! Time-based one-time passwords (RFC 6238): HMAC-SHA-1, 6 digits, 30-second steps, through
//! the `totp-rs` crate. What counts as acceptable (the window, no replays) is the domain's.

use secrecy::{ExposeSecret, SecretString};
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Secret length: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

/// A fresh random secret.
pub fn generate_secret() -> zeroize::Zeroizing<Vec<u8>> {
    use rand::RngCore;
    let mut secret = zeroize::Zeroizing::new(vec![0u8; SECRET_BYTES]);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret in base32 (no padding), as authenticator apps take it.
pub fn encode_secret(secret: &[u8]) -> SecretString {
    SecretString::from(Secret::Raw(secret.to_vec()).to_encoded().to_string())
}

fn totp(secret: &[u8], digits: usize, issuer: Option<String>, account: String) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        digits,
        1,
        STEP_SECS,
        secret.to_vec(),
        issuer,
        account,
    )
    .ok()
}

/// The code for time step `step` (`unix_time / 30`), with `digits` digits (6 in use; 8 for
/// RFC 6238's published vectors).
pub fn code_at_step(secret: &[u8], step: u64, digits: usize) -> Option<SecretString> {
    let t = totp(secret, digits, None, String::new())?;
    Some(SecretString::from(t.generate(step * STEP_SECS)))
}

/// `otpauth://totp/Issuer:account?secret=…&issuer=…` for a QR code.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Option<SecretString> {
    // totp-rs refuses ':' in either part (it separates them in the label).
    let issuer = issuer.replace(':', " ");
    let account = account.replace(':', " ");
    let t = totp(secret, DIGITS, Some(issuer), account)?;
    Some(SecretString::from(t.get_url()))
}

/// Whether `code` is the code for `step`, compared in constant time.
pub fn matches_step(secret: &[u8], step: u64, code: &str) -> bool {
    code_at_step(secret, step, code.len())
        .is_some_and(|c| crate::ct_eq(c.expose_secret().as_bytes(), code.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 column: the seed is the ASCII "12345678901234567890".
    #[test]
    fn rfc6238_sha1_vectors() {
        let seed = b"12345678901234567890";
        for (time, expected) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let code = code_at_step(seed, time / STEP_SECS, 8).unwrap();
            assert_eq!(code.expose_secret(), expected, "T = {time}");
            assert!(matches_step(seed, time / STEP_SECS, expected));
        }
    }

    #[test]
    fn six_digit_codes_are_the_vectors_last_six() {
        let seed = b"12345678901234567890";
        let code = code_at_step(seed, 59 / STEP_SECS, 6).unwrap();
        assert_eq!(code.expose_secret(), "287082");
        assert!(!matches_step(seed, 59 / STEP_SECS, "287083"));
    }

    #[test]
    fn uri_names_issuer_and_account() {
        let uri = otpauth_uri(&[1; 20], "Portcullis Bank", "ann.example").unwrap();
        let uri = uri.expose_secret();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains("secret="), "{uri}");
        assert!(uri.contains("issuer=Portcullis"), "{uri}");
        assert!(encode_secret(&[1; 20]).expose_secret().len() == 32);
    }
}
