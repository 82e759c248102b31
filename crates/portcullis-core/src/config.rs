//! The domain's settings, gathered from configuration by the binary.

use crate::card_guard::CardGuardPolicy;
use crate::inactivity::InactivityPolicy;
use crate::lockout::LockoutPolicy;
use crate::password::PasswordPolicy;
use crate::session::SessionPolicy;
use crate::throttle::ThrottlePolicy;

#[derive(Clone, Debug)]
pub struct Policies {
    pub issuer_name: String,
    pub support_phone: String,
    pub password: PasswordPolicy,
    pub lockout: LockoutPolicy,
    pub session: SessionPolicy,
    pub throttle: ThrottlePolicy,
    /// Wrong card IDs per card (across every address and flow) before it is paused.
    pub card_guard: CardGuardPolicy,
    /// How long a verified card may wait for step 2 of registration.
    pub registration_step_secs: i64,
    /// Whether security questions are offered at all.
    pub security_questions_enabled: bool,
    pub mfa: MfaPolicy,
    /// Where people reach the service, for links in messages ("This was not me").
    pub public_url: String,
    /// DPoP proofs must carry a server nonce (`oidc.dpop_nonce`, RFC 9449 §8).
    pub oidc_dpop_nonce: bool,
    /// How `private_key_jwt` key sets are fetched from `jwks_uri`s and cached (`oidc.jwks_*`).
    pub oidc_jwks: crate::oidc::JwksPolicy,
    /// Flow 10: when inactive accounts are warned and deactivated.
    pub inactivity: InactivityPolicy,
    /// Webhook endpoints may be `http://` to any host (`webhooks.allow_http`: tests, demos).
    pub webhooks_allow_http: bool,
    /// Webhook endpoints may be loopback hosts (`webhooks.allow_loopback`: tests).
    pub webhooks_allow_loopback: bool,
}

/// Second factors, step-up and re-authentication.
#[derive(Clone, Copy, Debug)]
pub struct MfaPolicy {
    /// Ask a device the account has not seen for a code even without a second factor.
    pub step_up_new_devices: bool,
    /// How long "Trust this device" skips the second factor.
    pub trust_device_secs: i64,
    /// How recently the password must have been entered to add or remove a factor.
    pub reauth_secs: i64,
    /// How long the "This was not me" link in a new-device notice works.
    pub not_me_secs: i64,
}

impl Default for MfaPolicy {
    fn default() -> Self {
        Self {
            step_up_new_devices: true,
            trust_device_secs: 30 * 24 * 3600,
            reauth_secs: 5 * 60,
            not_me_secs: 7 * 24 * 3600,
        }
    }
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            issuer_name: "Portcullis Bank".into(),
            support_phone: "1-800-555-0199".into(),
            password: PasswordPolicy::default(),
            lockout: LockoutPolicy::default(),
            session: SessionPolicy::default(),
            throttle: ThrottlePolicy::default(),
            card_guard: CardGuardPolicy::default(),
            registration_step_secs: 20 * 60,
            security_questions_enabled: true,
            mfa: MfaPolicy::default(),
            public_url: "http://127.0.0.1:8080".into(),
            oidc_dpop_nonce: false,
            oidc_jwks: Default::default(),
            inactivity: InactivityPolicy::default(),
            webhooks_allow_http: false,
            webhooks_allow_loopback: false,
        }
    }
}
