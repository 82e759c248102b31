//! The ports the use cases need, implemented by adapters: storage (SQLite, PostgreSQL) and
//! notifications. Narrow traits, one per area; [`Store`] gathers them.

use async_trait::async_trait;

use crate::audit::{AuditEntry, AuditEvent};
use crate::clock::UnixTime;
use crate::contact::CodeChannel;
use crate::ids::AccountType;
use crate::lockout::Claim;
use crate::registry::HashedRecord;
use crate::service::SupportScope;

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
    /// The registry record behind the card (names it for unlinking; not a secret).
    pub id: i64,
    pub last4: String,
    pub product: String,
    /// The holder's name on the registry record (a merchant's trading name).
    pub holder_name: String,
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
    /// Queued in the same transaction (the registration message).
    pub messages: Vec<Outgoing>,
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
    /// What inactivity counts from: creation, the last sign-in or the reactivation.
    pub last_active_at: UnixTime,
    /// When the inactivity warning went out (cleared by a sign-in or a reactivation).
    pub inactivity_warned_at: Option<UnixTime>,
    /// Set while the account is deactivated (flow 10).
    pub deactivated_at: Option<UnixTime>,
}

impl AccountRow {
    pub fn is_deactivated(&self) -> bool {
        self.deactivated_at.is_some()
    }
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn create_account(&self, new: NewAccount) -> Result<i64, CreateAccountError>;
    async fn find_account(&self, user_id_canonical: &str) -> StoreResult<Option<AccountRow>>;
    async fn account_by_id(&self, id: i64) -> StoreResult<Option<AccountRow>>;
    async fn cards_for_account(&self, account_id: i64) -> StoreResult<Vec<CardSummary>>;
    /// The account and its cards in one read (the account home and `GET /me`, the most
    /// frequent authenticated request).
    async fn account_home(
        &self,
        account_id: i64,
    ) -> StoreResult<Option<(AccountRow, Vec<CardSummary>)>>;
    /// The keyed hashes (number, verification) of the account's linked cards.
    async fn card_hashes(&self, account_id: i64) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>>;
    /// The account's security answers: (question id, answer hash).
    async fn security_answers(&self, account_id: i64) -> StoreResult<Vec<(i64, String)>>;
    /// Accounts whose contact email is `email` (lower-cased), oldest first.
    async fn accounts_by_email(&self, email: &str) -> StoreResult<Vec<AccountRow>>;
    /// A successful sign-in: records the time and restarts the account's failure count (as
    /// [`LockoutStore::reset_failures`] on the account would; a lock already set stays).
    async fn record_sign_in(&self, account_id: i64, now: UnixTime) -> StoreResult<()>;
    async fn unlock_account(&self, account_id: i64) -> StoreResult<bool>;
    /// Replaces the hash in place (a rehash at new parameters: same password), only while the
    /// stored hash is still `old`: a password reset or change that landed meanwhile wins.
    /// Answers whether the hash was replaced.
    async fn rehash_password(&self, account_id: i64, old: &str, new: &str) -> StoreResult<bool>;
    /// A new password: the old hash moves to the history (keeping the newest `keep`), all in
    /// one transaction.
    async fn change_password(
        &self,
        account_id: i64,
        new_hash: &str,
        now: UnixTime,
        keep: usize,
        messages: &[Outgoing],
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
    async fn claim_attempt(
        &self,
        counter: Counter,
        now: UnixTime,
        limit: u32,
    ) -> StoreResult<Claim>;
    /// Sets the lock if it is not set; true when this call set it.
    /// `messages` (the owner's notice) are queued in the same transaction, only when this
    /// call set the lock.
    async fn lock(
        &self,
        counter: Counter,
        now: UnixTime,
        until: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool>;
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
    /// "Trust this device": no second factor asked here until then.
    pub trusted_until: Option<UnixTime>,
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
    /// Trusts the account's device until `until`, or revokes the trust (`None`); false when
    /// the device is not the account's.
    async fn set_device_trust(
        &self,
        id: i64,
        account_id: i64,
        until: Option<UnixTime>,
    ) -> StoreResult<bool>;
    /// Forgets every device of the account: each must sign in as a new device again (and so
    /// meets the account's lock rather than its own allowance).
    async fn forget_devices(&self, account_id: i64) -> StoreResult<()>;
}

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
    pub now: UnixTime,
}

#[async_trait]
pub trait FactorStore: Send + Sync {
    /// Stores a factor. An unconfirmed authenticator replaces any earlier unconfirmed one.
    async fn create_factor(&self, new: NewFactor) -> StoreResult<i64>;
    async fn list_factors(&self, account_id: i64) -> StoreResult<Vec<FactorRow>>;
    /// Confirms an authenticator with the step its first code was for; any other
    /// authenticator of the account is replaced by it. False when it is gone or confirmed.
    async fn confirm_factor(&self, id: i64, account_id: i64, step: i64) -> StoreResult<bool>;
    /// Takes a TOTP code's step: true only for a step later than any taken before, for the
    /// one caller that took it (never the same code twice).
    async fn take_totp_step(&self, id: i64, step: i64, now: UnixTime) -> StoreResult<bool>;
    /// Marks a factor used, storing its new secret when given (a passkey's counter moved).
    async fn touch_factor(&self, id: i64, secret: Option<&str>, now: UnixTime) -> StoreResult<()>;
    /// The factor holding this passkey credential.
    async fn factor_by_credential(&self, credential_id: &str) -> StoreResult<Option<FactorRow>>;
    /// Renames the account's factor; false when there is none.
    async fn rename_factor(&self, id: i64, account_id: i64, name: &str) -> StoreResult<bool>;
    /// Removes the account's factor; false when there was none.
    async fn delete_factor(&self, id: i64, account_id: i64) -> StoreResult<bool>;
    /// Replaces every recovery code of the account with `codes` (hint, argon2id hash).
    async fn replace_recovery_codes(
        &self,
        account_id: i64,
        codes: &[(i64, String)],
        now: UnixTime,
    ) -> StoreResult<()>;
    /// Unused recovery codes with this hint: (id, hash).
    async fn recovery_code_candidates(
        &self,
        account_id: i64,
        hint: i64,
    ) -> StoreResult<Vec<(i64, String)>>;
    /// Marks a recovery code used; true for the one caller that did.
    async fn use_recovery_code(&self, id: i64, now: UnixTime) -> StoreResult<bool>;
    /// How many unused recovery codes the account has.
    async fn recovery_codes_left(&self, account_id: i64) -> StoreResult<i64>;
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

/// A one-time code to store.
#[derive(Clone, Debug)]
pub struct NewCode {
    pub step_hash: [u8; 32],
    pub account_id: i64,
    pub purpose: String,
    pub code_hash: [u8; 32],
    pub channel: CodeChannel,
    pub now: UnixTime,
    pub expires_at: UnixTime,
    /// The message carrying the code, queued in the same transaction: no code without its
    /// message, no message without its code.
    pub messages: Vec<Outgoing>,
}

/// A code's state after an attempt was counted against it.
#[derive(Clone, Debug)]
pub struct CodeAttempt {
    pub code_hash: Vec<u8>,
    pub purpose: String,
    pub account_id: i64,
    pub attempts: u32,
}

#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores a code (replacing an unused one for the same step).
    async fn create_code(&self, code: NewCode) -> StoreResult<()>;
    /// Counts one try against the step's live code atomically; `None` when there is no live
    /// code (expired, used, or out of `max_tries`).
    async fn try_code(
        &self,
        step_hash: &[u8; 32],
        now: UnixTime,
        max_tries: u32,
    ) -> StoreResult<Option<CodeAttempt>>;
    /// Marks the code used; true for the one caller that did.
    async fn use_code(&self, step_hash: &[u8; 32], now: UnixTime) -> StoreResult<bool>;
    /// Replaces the code with a new one if the last was sent at least `resend_after` ago and
    /// fewer than `max_sends` were sent. Tries already made still count (NIST: a new code
    /// does not reset the failure count). `Err`-free outcomes: see [`crate::otp::Resend`].
    #[allow(clippy::too_many_arguments)]
    async fn resend_code(
        &self,
        step_hash: &[u8; 32],
        new_hash: &[u8; 32],
        now: UnixTime,
        ttl_secs: i64,
        resend_after_secs: i64,
        max_sends: u32,
        messages: &[Outgoing],
    ) -> StoreResult<crate::otp::Resend>;
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
    /// Counts a wrong answer on the step atomically: the new count, or `None` when the step
    /// is gone or already has `max` wrong answers.
    async fn step_attempt(
        &self,
        token_hash: &[u8; 32],
        kind: &str,
        max: u32,
    ) -> StoreResult<Option<u32>>;
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
    /// When the password was last re-entered in this session.
    pub reauth_at: Option<UnixTime>,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, new: NewSession) -> StoreResult<i64>;
    async fn session_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<SessionRow>>;
    async fn touch_session(&self, id: i64, now: UnixTime) -> StoreResult<()>;
    /// Records that the password was re-entered in this session.
    async fn mark_reauth(&self, id: i64, now: UnixTime) -> StoreResult<()>;
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
    async fn append_audit(
        &self,
        event: &AuditEvent,
        now: UnixTime,
        key: &portcullis_crypto::KeyedHasher,
    ) -> StoreResult<()>;
    /// Entries with `seq > after`, in order, at most `limit`.
    async fn audit_entries(&self, after: i64, limit: i64) -> StoreResult<Vec<AuditEntry>>;
    /// The newest entries for one account, newest first.
    async fn account_audit(&self, account_id: i64, limit: i64) -> StoreResult<Vec<AuditEntry>>;
    /// The chain's head: the last appended `seq` and its hash (`0` and the genesis hash
    /// before the first append).
    async fn audit_head(&self) -> StoreResult<(i64, Vec<u8>)>;
}

/// A new admin token: its SHA-256, never the token itself.
#[derive(Clone, Debug)]
pub struct NewAdminToken {
    /// The support agent it belongs to (audited as `support:<name>`).
    pub name: String,
    pub token_hash: [u8; 32],
    pub scopes: Vec<SupportScope>,
    pub now: UnixTime,
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

/// Admin tokens for the support console, held by their SHA-256.
#[async_trait]
pub trait AdminTokenStore: Send + Sync {
    async fn create_admin_token(&self, new: NewAdminToken) -> Result<i64, CreateAdminTokenError>;
    /// The token with this hash, revoked or not.
    async fn admin_token_by_hash(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<AdminTokenRow>>;
    /// Records a use; `last_used_at` never moves backwards.
    async fn touch_admin_token(&self, id: i64, now: UnixTime) -> StoreResult<()>;
    /// Every token, revoked ones included, oldest first.
    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRow>>;
    /// Revokes the active token `which` names; the token as revoked, or `None` when no
    /// active token matched.
    async fn revoke_admin_token(
        &self,
        which: &AdminTokenRef,
        now: UnixTime,
    ) -> StoreResult<Option<AdminTokenRow>>;
}

/// Everything the use cases need from storage.
#[async_trait]
pub trait Store:
    RegistryStore
    + AccountStore
    + CodeStore
    + LockoutStore
    + DeviceStore
    + FactorStore
    + ThrottleStore
    + StepStore
    + SessionStore
    + AuditStore
    + OutboxStore
    + AdminTokenStore
    + StatusStore
    + LifecycleStore
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
    /// The body carries a one-time code: blanked once delivered.
    pub sensitive: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("notification failed: {0}")]
pub struct NotifyError(pub String);

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, message: Message) -> Result<(), NotifyError>;
    /// Messages were queued in the outbox by a store transaction (not through `send`):
    /// a durable notifier wakes its delivery worker. Nothing to do for the others.
    fn wake(&self) {}
}

// ---------------------------------------------------------------------------------------
// The durable outbox: messages committed with the state change that caused them, then
// delivered by a worker that claims rows under a lease (see `portcullis_notify::worker`).

/// A message as queued for delivery: a text message may name an email address to fall back
/// to when the SMS cost controls refuse it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub message: Message,
    pub fallback_email: Option<String>,
}

impl From<Message> for Outgoing {
    fn from(message: Message) -> Self {
        Self {
            message,
            fallback_email: None,
        }
    }
}

/// Where an outbox row is in its life: `pending` until the worker sends it (`sent`) or gives
/// up (`failed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Sent,
    Failed,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "sent" => Some(Self::Sent),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A row a node has claimed: it alone may send it until `claimed_until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub channel: CodeChannel,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub fallback_email: Option<String>,
    pub sensitive: bool,
    /// Attempts so far, this one included (a claim counts as an attempt).
    pub attempts: u32,
    pub created_at: UnixTime,
    pub claimed_until: UnixTime,
    pub last_error: Option<String>,
}

/// The outbox at a glance, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub pending: i64,
    /// Age of the oldest pending message; 0 when none is pending.
    pub oldest_pending_age_secs: i64,
}

/// One daily SMS counter to claim a place in: `key` names it (a number, a country prefix,
/// or the whole service), `limit` is the day's allowance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaClaim {
    pub key: String,
    pub limit: u32,
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues messages, all in one transaction.
    async fn enqueue(&self, messages: &[Outgoing], now: UnixTime) -> StoreResult<Vec<i64>>;
    /// Claims up to `limit` pending rows due at `now` whose lease (if any) has run out,
    /// leasing them to `node` until `now + lease_secs` and counting an attempt. Two nodes
    /// never get the same row while a lease is live.
    async fn claim(
        &self,
        node: &str,
        now: UnixTime,
        lease_secs: i64,
        limit: u32,
    ) -> StoreResult<Vec<OutboxRow>>;
    /// Marks the row sent (blanking a sensitive body), if `node` still holds it. False when
    /// the row is no longer this node's.
    async fn mark_sent(&self, id: i64, node: &str, now: UnixTime) -> StoreResult<bool>;
    /// Gives the row back for another attempt at `next_attempt_at`.
    async fn mark_retry(
        &self,
        id: i64,
        node: &str,
        error: &str,
        next_attempt_at: UnixTime,
    ) -> StoreResult<bool>;
    /// Gives up on the row (blanking a sensitive body).
    async fn mark_failed(&self, id: i64, node: &str, error: &str) -> StoreResult<bool>;
    /// Turns a text message the cost controls refused into an email to its fallback address.
    async fn fall_back_to_email(&self, id: i64, node: &str, reason: &str) -> StoreResult<bool>;
    /// Releases every lease `node` holds without counting the attempt (graceful shutdown).
    async fn release_claims(&self, node: &str) -> StoreResult<u64>;
    async fn outbox_stats(&self, now: UnixTime) -> StoreResult<OutboxStats>;
    /// Takes one place in each counter for `day` (days since the epoch, UTC), all or
    /// nothing: `None` when granted, `Some(i)` naming the first counter that is full.
    async fn claim_sms_quota(&self, claims: &[QuotaClaim], day: i64) -> StoreResult<Option<usize>>;
    /// Gives back places taken by [`Self::claim_sms_quota`] (the message was not sent).
    async fn release_sms_quota(&self, keys: &[String], day: i64) -> StoreResult<()>;
}

// ---------------------------------------------------------------------------------------
// Service status: operators' incidents and planned maintenance, the history of each part's
// state, and the maintenance-mode row every node reads (see `crate::service::status`).

/// An incident or planned maintenance to store (kind and state already checked by core).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewIncident {
    pub kind: String,
    pub title: String,
    pub message: String,
    pub state: String,
    pub starts_at: Option<UnixTime>,
    pub ends_at: Option<UnixTime>,
    pub now: UnixTime,
}

/// An incident as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentRow {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub message: String,
    pub state: String,
    pub starts_at: Option<UnixTime>,
    pub ends_at: Option<UnixTime>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// One recorded change of a part's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    pub component: String,
    pub state: String,
    pub changed_at: UnixTime,
}

/// Maintenance mode, as stored: on while the row exists and `until` is ahead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceRow {
    pub until: UnixTime,
    pub message: String,
    pub set_at: UnixTime,
}

#[async_trait]
pub trait StatusStore: Send + Sync {
    async fn create_incident(&self, new: &NewIncident) -> StoreResult<i64>;
    /// Moves an incident to `state` (and replaces its message when given); `None` when no
    /// incident has this id.
    async fn update_incident(
        &self,
        id: i64,
        state: &str,
        message: Option<&str>,
        now: UnixTime,
    ) -> StoreResult<Option<IncidentRow>>;
    async fn incident_by_id(&self, id: i64) -> StoreResult<Option<IncidentRow>>;
    /// Incidents updated at or after `since`, plus every one not yet settled, newest first.
    async fn list_incidents(&self, since: UnixTime, limit: i64) -> StoreResult<Vec<IncidentRow>>;
    async fn record_status_change(&self, change: &StatusChange) -> StoreResult<()>;
    /// Changes at or after `since`, oldest first; also the newest change of each part
    /// before `since`, so the state at `since` is known.
    async fn status_changes(&self, since: UnixTime) -> StoreResult<Vec<StatusChange>>;
    /// Sets (`Some`) or clears (`None`) maintenance mode for every node.
    async fn set_maintenance(&self, maintenance: Option<&MaintenanceRow>) -> StoreResult<()>;
    async fn maintenance(&self) -> StoreResult<Option<MaintenanceRow>>;
}

// ---------------------------------------------------------------------------------------
// The account's lifecycle: contact details, linked cards, inactivity (flows 9 and 10).

/// Which contact detail a change replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactField {
    Email,
    Phone,
}

impl ContactField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "phone" => Some(Self::Phone),
            _ => None,
        }
    }
}

/// What unlinking a card did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unlink {
    Unlinked,
    /// The account has no such card.
    NotLinked,
    /// The card is the account's last: an account always keeps one.
    LastCard,
}

/// A deactivated account coming back through the registration path (card number + card
/// ID): new sign-in details on the same account, all in one transaction.
#[derive(Clone, Debug)]
pub struct Reregistration {
    pub account_id: i64,
    pub user_id: String,
    pub user_id_canonical: String,
    pub password_hash: String,
    pub security_answers: Vec<(i64, String)>,
    pub code_channel: crate::contact::CodeChannel,
    /// The registration step consumed by it.
    pub step_token_hash: [u8; 32],
    pub now: UnixTime,
    pub messages: Vec<Outgoing>,
}

#[async_trait]
pub trait LifecycleStore: Send + Sync {
    /// Replaces the account's email or phone, with `messages` (the notice to the old
    /// address) queued in the same transaction.
    async fn change_contact(
        &self,
        account_id: i64,
        field: ContactField,
        value: &str,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool>;
    /// Every registry record linked to the account, oldest link first.
    async fn linked_records(&self, account_id: i64) -> StoreResult<Vec<RegistryRow>>;
    /// Links a record to the account; false when the record already backs an account
    /// (this one or another): the record's primary key decides, atomically.
    async fn link_card(
        &self,
        account_id: i64,
        record_id: i64,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool>;
    /// Unlinks a card unless it is the account's last (checked under the account's row
    /// lock, so two parallel unlinks cannot leave it with none).
    async fn unlink_card(
        &self,
        account_id: i64,
        record_id: i64,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<Unlink>;
    /// Claims the lease of the scheduled job `job` for `node` until `until`, if no lease is
    /// live at `now`: one conditional UPDATE, so one node wins.
    async fn claim_job(
        &self,
        job: &str,
        node: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> StoreResult<bool>;
    /// Active, not yet warned accounts last active at or before `inactive_since`.
    async fn accounts_to_warn(
        &self,
        inactive_since: UnixTime,
        limit: i64,
    ) -> StoreResult<Vec<AccountRow>>;
    /// Active accounts warned at or before `warned_before`.
    async fn accounts_to_deactivate(
        &self,
        warned_before: UnixTime,
        limit: i64,
    ) -> StoreResult<Vec<AccountRow>>;
    /// Records the warning (and queues it) if the account is still active, unwarned and
    /// inactive since `inactive_since`; true for the one caller that did.
    async fn mark_inactivity_warned(
        &self,
        account_id: i64,
        inactive_since: UnixTime,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool>;
    /// Deactivates the account (ending its sessions) if it is still active and was warned
    /// at or before `warned_before`; true for the one caller that did.
    async fn deactivate_account(
        &self,
        account_id: i64,
        warned_before: UnixTime,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool>;
    /// Reactivates a deactivated account (support); true when it was deactivated.
    async fn reactivate_account(
        &self,
        account_id: i64,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool>;
    /// Reactivates a deactivated account with new sign-in details (the registration path).
    async fn reregister_account(&self, r: Reregistration) -> Result<(), CreateAccountError>;
}
