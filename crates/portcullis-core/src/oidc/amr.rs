//! Authentication method references (RFC 8176) and the two authentication context classes
//! this provider offers (`acr`): the password alone, or a second factor as well.
//!
//! A session records its `amr` when it starts: `pwd` for the password; a second step adds
//! the method (`otp` for an authenticator app, an emailed code or a recovery code, `sms` for
//! a texted code, `swk` for a passkey) and `mfa`; a passkey alone is `swk mfa` (it checks
//! possession and the person's PIN or biometric).

/// The `acr` of a sign-in with the password alone.
pub const ACR_PASSWORD: &str = "urn:portcullis:acr:password";
/// The `acr` of a sign-in with a second factor (asked for with `acr_values`).
pub const ACR_MFA: &str = "urn:portcullis:acr:mfa";
/// Every `acr` offered, weakest first (discovery's `acr_values_supported`).
pub const ACR_VALUES: &[&str] = &[ACR_PASSWORD, ACR_MFA];

/// The `amr` of a sign-in with the password.
pub const PASSWORD: &str = "pwd";
/// The `amr` of a sign-in with a passkey alone.
pub const PASSKEY: &str = "swk mfa";

/// The RFC 8176 value of a second-step method (`MfaMethod::as_str`).
pub fn of_method(method: &str) -> &'static str {
    match method {
        "sms" => "sms",
        "passkey" => "swk",
        // An authenticator app, a code by email, a recovery code: one-time passwords.
        _ => "otp",
    }
}

/// The `amr` of a sign-in with the password and then the second-step `method`.
pub fn with_second_step(method: &str) -> String {
    format!("{PASSWORD} {} mfa", of_method(method))
}

/// Whether a session's `amr` includes a second factor.
pub fn is_mfa(amr: &str) -> bool {
    amr.split(' ').any(|m| m == "mfa")
}

/// The `acr` a session's `amr` reached.
pub fn acr(amr: &str) -> &'static str {
    if is_mfa(amr) {
        ACR_MFA
    } else {
        ACR_PASSWORD
    }
}

/// Whether `acr_values` (space-separated, OpenID Connect Core §3.1.2.1) asks for a second
/// factor.
pub fn asks_mfa(acr_values: Option<&str>) -> bool {
    acr_values.is_some_and(|v| v.split(' ').any(|a| a == ACR_MFA))
}

/// The `amr` claim: the session's references as a JSON array.
pub fn claim(amr: &str) -> Vec<&str> {
    amr.split(' ').filter(|m| !m.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_levels() {
        assert_eq!(with_second_step("totp"), "pwd otp mfa");
        assert_eq!(with_second_step("sms"), "pwd sms mfa");
        assert_eq!(with_second_step("passkey"), "pwd swk mfa");
        assert_eq!(acr(PASSWORD), ACR_PASSWORD);
        assert_eq!(acr(&with_second_step("email")), ACR_MFA);
        assert_eq!(acr(PASSKEY), ACR_MFA);
        assert!(asks_mfa(Some(
            "urn:portcullis:acr:password urn:portcullis:acr:mfa"
        )));
        assert!(!asks_mfa(Some("urn:portcullis:acr:password")));
        assert!(!asks_mfa(None));
        assert_eq!(claim("pwd otp mfa"), ["pwd", "otp", "mfa"]);
    }
}
