//! Second factors (authenticator apps, codes by email or text, passkeys) and recovery codes.

use async_trait::async_trait;

use super::StoreResult;
use crate::clock::UnixTime;

/// What a second factor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorKind {
    /// An authenticator app (RFC 6238).
    Totp,
    /// Codes by email.
    Email,
    /// Codes by text message.
    Sms,
    /// A passkey (WebAuthn).
    Passkey,
}

impl FactorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Passkey => "passkey",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "totp" => Some(Self::Totp),
            "email" => Some(Self::Email),
            "sms" => Some(Self::Sms),
            "passkey" => Some(Self::Passkey),
            _ => None,
        }
    }
}

/// A second factor of an account.
#[derive(Clone, Debug)]
pub struct FactorRow {
    pub id: i64,
    pub account_id: i64,
    pub kind: FactorKind,
    pub name: String,
    /// The sealed secret (authenticator apps) or credential (passkeys).
    pub secret: Option<String>,
    /// A passkey's credential ID (base64url).
    pub credential_id: Option<String>,
    pub confirmed: bool,
    pub last_step: Option<i64>,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

/// A factor to store.
#[derive(Clone, Debug)]
pub struct NewFactor {
    pub account_id: i64,
    pub kind: FactorKind,
    pub name: String,
    pub secret: Option<String>,
    pub credential_id: Option<String>,
    pub confirmed: bool,
}

#[async_trait]
pub trait FactorReads: Send + Sync {
    /// The account's factors, confirmed or not, oldest first.
    async fn list_factors(&self, account_id: i64) -> StoreResult<Vec<FactorRow>>;
    /// The factor holding this passkey credential.
    async fn factor_by_credential(&self, credential_id: &str) -> StoreResult<Option<FactorRow>>;
    /// Unused recovery codes with this hint: (id, hash).
    async fn recovery_code_candidates(
        &self,
        account_id: i64,
        hint: i64,
    ) -> StoreResult<Vec<(i64, String)>>;
    /// How many unused recovery codes the account has.
    async fn recovery_codes_left(&self, account_id: i64) -> StoreResult<i64>;
}

#[async_trait]
pub trait FactorWrites: Send {
    /// Stores a factor. An unconfirmed authenticator replaces any earlier unconfirmed one; a
    /// code channel replaces the same channel; passkeys add up.
    async fn create_factor(&mut self, new: NewFactor) -> StoreResult<i64>;
    /// Confirms an authenticator with the step its first code was for; any other
    /// authenticator of the account is replaced by it. False when it is gone or confirmed.
    async fn confirm_factor(&mut self, id: i64, account_id: i64, step: i64) -> StoreResult<bool>;
    /// Takes a TOTP code's step: true only for a step later than any taken before, for the
    /// one caller that took it (never the same code twice).
    async fn take_totp_step(&mut self, id: i64, step: i64) -> StoreResult<bool>;
    /// Marks a factor used, storing its new secret when given (a passkey's counter moved).
    async fn touch_factor(&mut self, id: i64, secret: Option<&str>) -> StoreResult<()>;
    /// Renames the account's factor; false when there is none.
    async fn rename_factor(&mut self, id: i64, account_id: i64, name: &str) -> StoreResult<bool>;
    /// Removes every factor (authenticator, passkey, code channel) and recovery code the
    /// account gained at or after `since` ("This was not me"); how many went.
    async fn remove_factors_since(&mut self, account_id: i64, since: UnixTime) -> StoreResult<u64>;
    /// Removes the account's factor; false when there was none.
    async fn delete_factor(&mut self, id: i64, account_id: i64) -> StoreResult<bool>;
    /// Replaces every recovery code of the account with `codes` (hint, argon2id hash).
    async fn replace_recovery_codes(
        &mut self,
        account_id: i64,
        codes: &[(i64, String)],
    ) -> StoreResult<()>;
    /// Marks the account's recovery code `id` used: for the one caller that did, how many
    /// unused codes the account has left; `None` for every other caller.
    async fn use_recovery_code(&mut self, account_id: i64, id: i64) -> StoreResult<Option<i64>>;
}
