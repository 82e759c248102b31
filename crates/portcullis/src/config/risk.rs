//! The `[risk]` section: second factors asked of new devices, trusted devices and
//! re-authentication.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Ask a device the account has not seen for a code, even without a second factor.
    pub new_device_step_up: bool,
    /// How long "Trust this device" skips the second factor.
    pub trust_device_days: i64,
    /// How recently the password must have been entered to add or remove a factor.
    pub reauth_secs: i64,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            new_device_step_up: true,
            trust_device_days: 30,
            reauth_secs: 300,
        }
    }
}
