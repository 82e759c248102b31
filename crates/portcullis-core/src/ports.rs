//! The ports the use cases need, implemented by adapters: storage (SQLite, PostgreSQL) and
//! notifications. Narrow traits, one per area; [`Store`] gathers them.

use async_trait::async_trait;

use crate::audit::{AuditEntry, AuditEvent};
use crate::clock::UnixTime;
use crate::contact::CodeChannel;
use crate::ids::AccountType;
use crate::lockout::Claim;
use crate::registry::HashedRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is saturated: worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

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

/// The figures shown on the account home for one linked card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardSummary {
    pub last4: String,
    pub product: String,
    pub balance: Option<i64>,
    pub credit_limit: Option<i64>,
    pub payment_due_date: Option<String>,
    pub minimum_due: Option<i64>,
}

/// An import in progress: one transaction; dropped without `commit`, it leaves nothing.
#[async_trait]
pub trait RegistryImport: Send {
    /// Inserts or updates (matched on the number's keyed hash) a batch of records.
    async fn upsert(&mut self, batch: &[HashedRecord]) -> StoreResult<()>;
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

#[async_trait]
pub trait RegistryStore: Send + Sync {
    async fn begin_import(&self) -> StoreResult<Box<dyn RegistryImport>>;
    async fn find_record(&self, number_hash: &[u8; 32]) -> StoreResult<Option<RegistryRow>>;
    async fn record_by_id(&self, id: i64) -> StoreResult<Option<RegistryRow>>;
    async fn count_records(&self) -> StoreResult<i64>;
}

/// What registration writes, all in one transaction.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub user_id: String,
    pub user_id_canonical: String,
    pub account_type: AccountType,
    pub password_hash: String,
    pub security_answers: Vec<(i64, String)>,
    pub code_channel: CodeChannel,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub registry_record_id: i64,
    /// The registration step consumed by this creation.
    pub step_token_hash: [u8; 32],
    pub now: UnixTime,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAccountError {
    #[error("user id taken")]
    UserIdTaken,
    #[error("card already registered")]
    CardAlreadyRegistered,
    #[error("registration step expired or already used")]
    StepGone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone, Debug)]
pub struct AccountRow {
    pub id: i64,
    pub user_id: String,
    pub account_type: AccountType,
    pub password_hash: String,
    pub code_channel: CodeChannel,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub failed_count: u32,
    pub locked_until: Option<UnixTime>,
    pub created_at: UnixTime,
    pub last_sign_in_at: Option<UnixTime>,
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn create_account(&self, new: NewAccount) -> Result<i64, CreateAccountError>;
    async fn find_account(&self, user_id_canonical: &str) -> StoreResult<Option<AccountRow>>;
    async fn account_by_id(&self, id: i64) -> StoreResult<Option<AccountRow>>;
    async fn cards_for_account(&self, account_id: i64) -> StoreResult<Vec<CardSummary>>;
    /// A successful sign-in: records the time (the counter is reset through
    /// [`LockoutStore::reset_failures`]).
    async fn record_sign_in(&self, account_id: i64, now: UnixTime) -> StoreResult<()>;
    async fn unlock_account(&self, account_id: i64) -> StoreResult<bool>;
    /// Replaces the hash in place (a rehash at new parameters: same password).
    async fn set_password_hash(&self, account_id: i64, hash: &str) -> StoreResult<()>;
    /// A new password: the old hash moves to the history (keeping the newest `keep`), all in
    /// one transaction.
    async fn change_password(
        &self,
        account_id: i64,
        new_hash: &str,
        now: UnixTime,
        keep: usize,
    ) -> StoreResult<()>;
    /// The newest `limit` earlier password hashes.
    async fn password_history(&self, account_id: i64, limit: usize) -> StoreResult<Vec<String>>;
}

/// Whose failure counter an attempt uses: the account's, or a known device's own allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Account(i64),
    Device(i64),
}

/// The lockout counters, each transition one atomic statement (see [`crate::lockout`]).
#[async_trait]
pub trait LockoutStore: Send + Sync {
    /// Takes an attempt slot.
    async fn claim_attempt(&self, counter: Counter, now: UnixTime, limit: u32) -> StoreResult<Claim>;
    /// Sets the lock if it is not set; true when this call set it.
    async fn lock(&self, counter: Counter, until: UnixTime) -> StoreResult<bool>;
    /// Gives back a claimed slot.
    async fn release_attempt(&self, counter: Counter) -> StoreResult<()>;
    /// A success: the count starts again from zero.
    async fn reset_failures(&self, counter: Counter) -> StoreResult<()>;
}

/// A device that has signed in successfully to an account.
#[derive(Clone, Debug)]
pub struct DeviceRow {
    pub id: i64,
    pub account_id: i64,
    pub created_at: UnixTime,
    pub last_seen_at: UnixTime,
    pub user_agent: Option<String>,
    pub failed_count: u32,
    pub locked_until: Option<UnixTime>,
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    async fn create_device(
        &self,
        account_id: i64,
        token_hash: &[u8; 32],
        now: UnixTime,
        user_agent: Option<&str>,
    ) -> StoreResult<i64>;
    async fn device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<DeviceRow>>;
    async fn touch_device(&self, id: i64, now: UnixTime) -> StoreResult<()>;
    async fn list_devices(&self, account_id: i64) -> StoreResult<Vec<DeviceRow>>;
}

#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Claims a place in `bucket`'s window of `window_secs` holding `limit` places. `None`
    /// when granted; `Some(window_start)` when the bucket is full.
    async fn throttle_claim(
        &self,
        bucket: &str,
        now: UnixTime,
        window_secs: i64,
        limit: u32,
    ) -> StoreResult<Option<i64>>;
    /// Gives a place back (the attempt succeeded).
    async fn throttle_release(&self, bucket: &str) -> StoreResult<()>;
}

/// Short-lived steps of a flow (registration, a second-factor challenge, recovery), held by
/// the hash of a random token.
#[derive(Clone, Debug)]
pub struct StepRow {
    pub kind: String,
    pub subject_id: i64,
    pub data: String,
    pub expires_at: UnixTime,
}

#[async_trait]
pub trait StepStore: Send + Sync {
    async fn create_step(
        &self,
        token_hash: &[u8; 32],
        kind: &str,
        subject_id: i64,
        data: &str,
        expires_at: UnixTime,
    ) -> StoreResult<()>;
    /// The step if it exists, is of `kind` and has not expired.
    async fn find_step(
        &self,
        token_hash: &[u8; 32],
        kind: &str,
        now: UnixTime,
    ) -> StoreResult<Option<StepRow>>;
    /// Removes the step; true for the one caller that removed it.
    async fn consume_step(&self, token_hash: &[u8; 32], kind: &str) -> StoreResult<bool>;
}

#[derive(Clone, Debug)]
pub struct NewSession {
    pub token_hash: [u8; 32],
    pub account_id: i64,
    pub now: UnixTime,
    pub user_agent: Option<String>,
    pub client_ip: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SessionRow {
    pub id: i64,
    pub account_id: i64,
    pub created_at: UnixTime,
    pub last_seen_at: UnixTime,
    pub user_agent: Option<String>,
    pub client_ip: Option<String>,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, new: NewSession) -> StoreResult<i64>;
    async fn session_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<SessionRow>>;
    async fn touch_session(&self, id: i64, now: UnixTime) -> StoreResult<()>;
    async fn delete_session(&self, id: i64) -> StoreResult<bool>;
    async fn delete_account_sessions(
        &self,
        account_id: i64,
        except: Option<i64>,
    ) -> StoreResult<u64>;
    async fn list_sessions(&self, account_id: i64) -> StoreResult<Vec<SessionRow>>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event to the chain atomically.
    async fn append_audit(&self, event: &AuditEvent, now: UnixTime) -> StoreResult<()>;
    /// Entries with `seq > after`, in order, at most `limit`.
    async fn audit_entries(&self, after: i64, limit: i64) -> StoreResult<Vec<AuditEntry>>;
    /// The newest entries for one account, newest first.
    async fn account_audit(&self, account_id: i64, limit: i64) -> StoreResult<Vec<AuditEntry>>;
}

/// Everything the use cases need from storage.
#[async_trait]
pub trait Store:
    RegistryStore + AccountStore + LockoutStore + DeviceStore + ThrottleStore + StepStore + SessionStore + AuditStore
 {
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;
}

/// One message to a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub channel: CodeChannel,
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
#[error("notification failed: {0}")]
pub struct NotifyError(pub String);

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, message: Message) -> Result<(), NotifyError>;
}
