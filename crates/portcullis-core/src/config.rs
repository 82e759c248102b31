//! The domain's settings, gathered from configuration by the binary.

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
    /// How long a verified card may wait for step 2 of registration.
    pub registration_step_secs: i64,
    /// Whether security questions are offered at all.
    pub security_questions_enabled: bool,
    /// Flow 10: when inactive accounts are warned and deactivated.
    pub inactivity: InactivityPolicy,
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
            registration_step_secs: 20 * 60,
            security_questions_enabled: true,
            inactivity: InactivityPolicy::default(),
        }
    }
}
