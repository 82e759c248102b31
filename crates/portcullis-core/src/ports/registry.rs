//! The issuer registry as stored (keyed hashes only), and its bulk import.

use async_trait::async_trait;

use super::StoreResult;
use crate::ids::AccountType;
use crate::registry::HashedRecord;

/// A registry record as stored (no card number, no card ID).
#[derive(Clone, Debug)]
pub struct RegistryRow {
    pub id: i64,
    pub account_type: AccountType,
    pub verification_hash: Vec<u8>,
    pub last4: String,
    pub holder_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub product: String,
    /// The online account this record backs, if any.
    pub account_id: Option<i64>,
}

#[async_trait]
pub trait RegistryReads: Send + Sync {
    async fn find_record(&self, number_hash: &[u8; 32]) -> StoreResult<Option<RegistryRow>>;
    async fn record_by_id(&self, id: i64) -> StoreResult<Option<RegistryRow>>;
    async fn count_records(&self) -> StoreResult<i64>;
    /// Whether the card takes no card ID online (paused by the card ID limit per card).
    async fn card_paused(&self, record_id: i64) -> StoreResult<bool>;
    /// Every registry record linked to the account, oldest link first.
    async fn linked_records(&self, account_id: i64) -> StoreResult<Vec<RegistryRow>>;
}

/// An import in progress: one transaction of its own (millions of rows, no messages, no
/// audit events: the command line reports it); dropped without `commit`, it leaves nothing.
#[async_trait]
pub trait RegistryImport: Send {
    /// Inserts or updates (matched on the number's keyed hash) a batch of records.
    async fn upsert(&mut self, batch: &[HashedRecord]) -> StoreResult<()>;
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

#[async_trait]
pub trait RegistryImports: Send + Sync {
    async fn begin_import(&self) -> StoreResult<Box<dyn RegistryImport>>;
}
