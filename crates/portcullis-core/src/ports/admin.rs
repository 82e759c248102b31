//! Admin tokens for the support console, held by their SHA-256.

use async_trait::async_trait;

use super::{StoreError, StoreResult};
use crate::clock::UnixTime;
use crate::support::SupportScope;

/// A new admin token: its SHA-256, never the token itself.
#[derive(Clone, Debug)]
pub struct NewAdminToken {
    /// The support agent it belongs to (audited as `support:<name>`).
    pub name: String,
    pub token_hash: [u8; 32],
    pub scopes: Vec<SupportScope>,
}

/// An admin token as stored (no hash: nothing that reads these needs it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminTokenRow {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<SupportScope>,
    pub created_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
    pub last_used_at: Option<UnixTime>,
}

/// Which admin token to revoke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminTokenRef {
    Id(i64),
    Name(String),
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAdminTokenError {
    /// An active (not revoked) token already has this name.
    #[error("an active admin token has this name")]
    NameTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait AdminTokenReads: Send + Sync {
    /// The token with this hash, revoked or not.
    async fn admin_token_by_hash(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<AdminTokenRow>>;
    /// Every token, revoked ones included, oldest first.
    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRow>>;
}

#[async_trait]
pub trait AdminTokenWrites: Send {
    /// Stores a token; [`CreateAdminTokenError::NameTaken`] when an active token has the
    /// name (a partial unique index decides, so two racing creations leave one).
    async fn create_admin_token(
        &mut self,
        new: NewAdminToken,
    ) -> Result<i64, CreateAdminTokenError>;
    /// Records a use now; `last_used_at` never moves backwards.
    async fn touch_admin_token(&mut self, id: i64) -> StoreResult<()>;
    /// Revokes the active token `which` names; the token as revoked, or `None` when no
    /// active token matched.
    async fn revoke_admin_token(
        &mut self,
        which: &AdminTokenRef,
    ) -> StoreResult<Option<AdminTokenRow>>;
}
