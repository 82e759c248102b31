//! The issuer registry as stored (keyed hashes only), its bulk loads (the file import and
//! the registry API), and what a load does to the online accounts of the cards it changes.

use async_trait::async_trait;

use super::accounts::AccountRow;
use super::committed::Committed;
use super::outbox::Outgoing;
use super::StoreResult;
use crate::audit::AuditEvent;
use crate::clock::UnixTime;
use crate::ids::AccountType;
use crate::registry::{CardStatus, HashedRecord};

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
    pub status: CardStatus,
    /// Another record names this one in `replaces`: the card was reissued or renewed
    /// under a new number, and this number proves nothing any more.
    pub replaced: bool,
}

impl RegistryRow {
    /// Whether the card proves anything online (registration, linking, recovery): only an
    /// active card that no other card replaces. Any other answers as an unknown card.
    pub fn usable(&self) -> bool {
        self.status == CardStatus::Active && !self.replaced
    }
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
    /// Active accounts with at least one card, every one of them `closed`, the last of
    /// them closed at or before `closed_before`: due for deactivation. Oldest first.
    async fn accounts_with_cards_closed(
        &self,
        closed_before: UnixTime,
        limit: i64,
    ) -> StoreResult<Vec<AccountRow>>;
}

/// A linked card whose status a load changed.
#[derive(Clone, Debug)]
pub struct CardStatusChange {
    pub record_id: i64,
    pub last4: String,
    pub status: CardStatus,
    pub account: AccountRow,
}

/// A reissue a load applied: the online account of the replaced card now holds its
/// replacement.
#[derive(Clone, Debug)]
pub struct CardReissue {
    pub old_record_id: i64,
    pub old_last4: String,
    pub new_record_id: i64,
    pub new_last4: String,
    pub account: AccountRow,
}

/// What a load's records did to online accounts (see [`RegistryImport::settle`]).
#[derive(Clone, Debug, Default)]
pub struct Settled {
    pub status_changes: Vec<CardStatusChange>,
    pub reissues: Vec<CardReissue>,
}

/// What a registry push with an `Idempotency-Key` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushKey {
    /// The key is new: it is now held by this load (and kept if it commits).
    Fresh,
    /// The key was used with the same request: its answer, to give again.
    Replay(String),
    /// The key was used with another request.
    Conflict,
}

/// A registry load in progress: one transaction of its own. Its records are upserted in
/// batches, then [`settle`](Self::settle) applies their effects on online accounts, the
/// caller queues the notices and audit events those cause, and the commit writes them
/// with the records, all or nothing. Dropped without `commit`, it leaves nothing.
#[async_trait]
pub trait RegistryImport: Send {
    /// The time the load was opened with.
    fn now(&self) -> UnixTime;
    /// Inserts or updates (matched on the number's keyed hash) a batch of records.
    async fn upsert(&mut self, batch: &[HashedRecord]) -> StoreResult<()>;
    /// After the last batch: reports the linked cards whose status this load changed, and
    /// moves the online account of every replaced card to its replacement (following
    /// chains), reporting each move.
    async fn settle(&mut self) -> StoreResult<Settled>;
    /// Takes `key` for this load, or says it was used before (and how).
    async fn claim_push_key(
        &mut self,
        key: &str,
        request_hash: &[u8; 32],
        response: &str,
    ) -> StoreResult<PushKey>;
    /// Queues a message, written to the outbox by the commit.
    fn send(&mut self, message: Outgoing);
    /// Queues an audit event, appended to the chain by the commit.
    fn audit(&mut self, event: AuditEvent);
    async fn commit(self: Box<Self>, audit_key: &crate::audit::ChainKey) -> StoreResult<Committed>;
}

#[async_trait]
pub trait RegistryImports: Send + Sync {
    async fn begin_import(&self, now: UnixTime) -> StoreResult<Box<dyn RegistryImport>>;
}
