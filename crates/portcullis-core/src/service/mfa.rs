//! Flows 2, 6 and 7: second factors. One file per concern:
//!
//! - [`challenge`]: the second step of a sign-in (a code from an authenticator app, by
//!   email or text, a recovery code or a passkey), and step-up on a device the account has
//!   not seen;
//! - [`totp`]: setting up an authenticator app;
//! - [`recovery_codes`]: making ten recovery codes and taking one;
//! - [`reauth`]: re-entering the password before changing sign-in settings;
//! - [`not_me`]: "This was not me", and trusted devices;
//! - [`factors`]: the factors on `/security` (turning codes on, removing a factor).
//!
//! A sign-in whose password is right but which still needs a second step leaves a
//! *challenge* (a step held by the hash of a random token). Every try on a challenge is
//! counted (at most five), and every wrong second-step answer also counts as a failed
//! sign-in on the same counter the password used, so the lockout rule bounds guessing of
//! second-factor codes as it bounds guessing of passwords.

pub(super) mod challenge;
mod factors;
mod not_me;
mod reauth;
mod recovery_codes;
mod totp;

use secrecy::SecretString;

use super::sessions::SignedIn;
use crate::clock::UnixTime;
use crate::ports::FactorKind;

/// What a sign-in with the right password leads to.
pub enum SignInOutcome {
    /// Signed in.
    SignedIn(SignedIn),
    /// A second step is needed first.
    MfaRequired(MfaChallenge),
}

/// A way to pass the second step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MfaMethod {
    /// A passkey on this or another device.
    Passkey,
    Totp,
    /// A code by email to the (masked) address.
    Email {
        destination: String,
    },
    /// A code by text message to the (masked) number.
    Sms {
        destination: String,
    },
    RecoveryCode,
}

impl MfaMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::Totp => "totp",
            Self::Email { .. } => "email",
            Self::Sms { .. } => "sms",
            Self::RecoveryCode => "recovery_code",
        }
    }
}

/// The second step a sign-in must pass.
pub struct MfaChallenge {
    pub token: SecretString,
    pub methods: Vec<MfaMethod>,
    /// Asked because the device is new to the account (step-up), not for a set-up factor.
    pub step_up: bool,
    pub expires_at: UnixTime,
}

/// An authenticator app being set up: shown once, active after its first code.
pub struct TotpEnrolment {
    /// Base32, for typing into the app.
    pub secret: SecretString,
    /// `otpauth://…`, for the QR code.
    pub otpauth_uri: SecretString,
}

/// A second factor, as the owner sees it.
#[derive(Clone, Debug)]
pub struct FactorInfo {
    pub id: i64,
    pub kind: FactorKind,
    pub name: String,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

/// A device trusted to skip the second step.
#[derive(Clone, Debug)]
pub struct TrustedDevice {
    pub id: i64,
    pub description: String,
    pub trusted_until: UnixTime,
    pub last_seen_at: UnixTime,
}

/// The second-factor part of `/security`.
#[derive(Clone, Debug)]
pub struct SecuritySettings {
    pub factors: Vec<FactorInfo>,
    pub recovery_codes_left: i64,
    pub trusted_devices: Vec<TrustedDevice>,
    /// Whether the password was entered recently enough to change factors now.
    pub recently_authenticated: bool,
    pub has_email: bool,
    pub has_phone: bool,
}
