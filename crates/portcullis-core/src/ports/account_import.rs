//! Accounts brought over from an issuer's earlier login system (`portcullis accounts
//! import`): what the store writes for each, inside the import's one unit of work.

use async_trait::async_trait;

use super::accounts::CreateAccountError;
use super::StoreResult;
use crate::clock::UnixTime;
use crate::contact::CodeChannel;
use crate::ids::AccountType;

/// One imported online account, validated: its card found in the registry, its password
/// hash in a form sign-in can check (kept as it is until the first successful sign-in).
/// Debug leaves out the password hash.
#[derive(Clone)]
pub struct ImportedAccount {
    pub user_id: String,
    pub user_id_canonical: String,
    pub account_type: AccountType,
    pub password_hash: String,
    pub code_channel: CodeChannel,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub registry_record_id: i64,
    /// When the earlier system created it (kept for support; inactivity counts from the
    /// import).
    pub created_at: UnixTime,
    /// The earlier system wanted the password changed: sign-in sends the person to change it.
    pub must_change_password: bool,
}

impl std::fmt::Debug for ImportedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedAccount")
            .field("user_id", &self.user_id)
            .field("account_type", &self.account_type)
            .field("password_hash", &"[redacted]")
            .field("registry_record_id", &self.registry_record_id)
            .field("must_change_password", &self.must_change_password)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait AccountImportWrites: Send {
    /// Creates the account and links its card; [`CreateAccountError::UserIdTaken`] or
    /// [`CreateAccountError::CardAlreadyRegistered`] when the database already has either
    /// (the import is then dropped whole).
    async fn import_account(
        &mut self,
        account: &ImportedAccount,
    ) -> Result<i64, CreateAccountError>;
}

#[async_trait]
pub trait AccountImportReads: Send + Sync {
    /// Up to `limit` password hashes of imported accounts whose hash does not match the SQL
    /// `LIKE` pattern `current` (the current argon2id's prefix): those not yet signed in to.
    async fn imported_hash_sample(&self, current: &str, limit: i64) -> StoreResult<Vec<String>>;
}
