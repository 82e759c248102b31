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
    /// The registry key id the record's hashes are under.
    pub key_id: i64,
}

#[async_trait]
pub trait RegistryReads: Send + Sync {
    /// The record whose number HMAC under registry key `key_id` is `number_hash`.
    async fn find_record(
        &self,
        key_id: i64,
        number_hash: &[u8; 32],
    ) -> StoreResult<Option<RegistryRow>>;
    async fn record_by_id(&self, id: i64) -> StoreResult<Option<RegistryRow>>;
    async fn count_records(&self) -> StoreResult<i64>;
    /// Records per registry key id, lowest id first.
    async fn count_by_key(&self) -> StoreResult<Vec<(i64, i64)>>;
    /// Whether the card takes no card ID online (paused by the card ID limit per card).
    async fn card_paused(&self, record_id: i64) -> StoreResult<bool>;
    /// Every registry record linked to the account, oldest link first.
    async fn linked_records(&self, account_id: i64) -> StoreResult<Vec<RegistryRow>>;
}

/// A registry row's move to the current registry key, inside a use case's unit of work
/// (the number is in hand when a card is found under an old key and its card ID is right).
#[async_trait]
pub trait RegistryWrites: Send {
    /// Rewrites record `id`'s HMACs under registry key `to_key_id`; false when the record is
    /// no longer under `from_key_id` (an import or another node moved it first).
    async fn move_record(
        &mut self,
        id: i64,
        from_key_id: i64,
        to_key_id: i64,
        number_hash: &[u8; 32],
        verification_hash: &[u8; 32],
    ) -> StoreResult<bool>;
}

/// An import in progress: one transaction of its own (millions of rows, no messages, no
/// audit events: the command line reports it); dropped without `commit`, it leaves nothing.
#[async_trait]
pub trait RegistryImport: Send {
    /// Inserts or updates (matched on the number's keyed hash) a batch of records; a record
    /// stored under an old key (`old_number_hashes`) is moved to the batch's key first.
    async fn upsert(&mut self, batch: &[HashedRecord]) -> StoreResult<()>;
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

#[async_trait]
pub trait RegistryImports: Send + Sync {
    async fn begin_import(&self) -> StoreResult<Box<dyn RegistryImport>>;
}
