//! Messages to people and the durable outbox they go through: a message is committed with
//! the state change that caused it (by that change's unit of work), then delivered by a
//! worker that claims rows under a lease (see `portcullis_notify::worker`).

use async_trait::async_trait;

use super::StoreResult;
use crate::clock::UnixTime;
use crate::contact::CodeChannel;

/// One message to a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub channel: CodeChannel,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The body carries a one-time code: sealed at rest, blanked once delivered.
    pub sensitive: bool,
}

/// A message as queued for delivery: a text message may name an email address to fall back
/// to when the SMS cost controls refuse it or the gateway fails; a code by email may name a
/// phone to fall back to when the relay fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub message: Message,
    pub fallback_email: Option<String>,
    pub fallback_phone: Option<String>,
}

impl From<Message> for Outgoing {
    fn from(message: Message) -> Self {
        Self {
            message,
            fallback_email: None,
            fallback_phone: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("notification failed: {0}")]
pub struct NotifyError(pub String);

/// This node's delivery worker, as the use cases see it: told when a unit of work committed
/// messages, so it sends them at once instead of at its next poll. It never sends anything
/// itself: the messages are already in the outbox, committed.
pub trait Notifier: Send + Sync {
    /// `count` messages were just committed to the outbox.
    fn queued(&self, count: usize);
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
    pub fallback_phone: Option<String>,
    pub sensitive: bool,
    /// Attempts so far, this one included (a claim counts as an attempt).
    pub attempts: u32,
    pub created_at: UnixTime,
    pub claimed_until: UnixTime,
    pub last_error: Option<String>,
}

impl OutboxRow {
    /// The address on the other channel this message may fall back to, if any.
    pub fn fallback(&self) -> Option<&str> {
        match self.channel {
            CodeChannel::Sms => self.fallback_email.as_deref(),
            CodeChannel::Email => self.fallback_phone.as_deref(),
        }
    }
}

/// The outbox at a glance, for `/metrics` and the status prober.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub pending: i64,
    /// Age of the oldest pending message; 0 when none is pending.
    pub oldest_pending_age_secs: i64,
    /// The same, by channel (each channel has its own provider and its own state).
    pub oldest_email_age_secs: i64,
    pub oldest_sms_age_secs: i64,
}

/// One daily SMS counter to claim a place in: `key` names it (a number, a country prefix,
/// or the whole service), `limit` is the day's allowance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaClaim {
    pub key: String,
    pub limit: u32,
}

#[async_trait]
pub trait OutboxReads: Send + Sync {
    async fn outbox_stats(&self, now: UnixTime) -> StoreResult<OutboxStats>;
}

/// The delivery worker's port: leases on outbox rows, and the SMS quota counters.
#[async_trait]
pub trait OutboxStore: OutboxReads {
    /// Queues messages on their own, in one transaction. No use case calls this (their
    /// messages go through their unit of work): it is for the worker's own tests and tools.
    async fn enqueue(&self, messages: &[Outgoing], now: UnixTime) -> StoreResult<Vec<i64>>;
    /// Claims up to `limit` pending rows due at `now` whose lease (if any) has run out,
    /// leasing them to `node` until `now + lease_secs` and counting an attempt. Two nodes
    /// never get the same row while a lease is live. One-time codes come first. A row never
    /// attempted is due whatever its time says (a wall clock that jumped forward when it was
    /// queued must not hold it back).
    async fn claim(
        &self,
        node: &str,
        now: UnixTime,
        lease_secs: i64,
        limit: u32,
    ) -> StoreResult<Vec<OutboxRow>> {
        self.claim_channel(node, now, lease_secs, limit, None).await
    }
    /// [`Self::claim`], for one channel only (each channel has its own worker, so a slow
    /// provider holds up only its own messages).
    async fn claim_channel(
        &self,
        node: &str,
        now: UnixTime,
        lease_secs: i64,
        limit: u32,
        channel: Option<CodeChannel>,
    ) -> StoreResult<Vec<OutboxRow>>;
    /// The database's own clock (PostgreSQL), which every node shares and no node's wall
    /// clock moves; `None` when the database is in this process (SQLite).
    async fn database_time(&self) -> StoreResult<Option<UnixTime>>;
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
    /// Turns a code by email the relay could not take into a text message to its fallback
    /// phone (once: the row then has no fallback either way).
    async fn fall_back_to_sms(&self, id: i64, node: &str, reason: &str) -> StoreResult<bool>;
    /// Releases every lease `node` holds without counting the attempt (graceful shutdown).
    async fn release_claims(&self, node: &str) -> StoreResult<u64>;
    /// Takes one place in each counter for `day` (days since the epoch, UTC), all or
    /// nothing: `None` when granted, `Some(i)` naming the first counter that is full.
    async fn claim_sms_quota(&self, claims: &[QuotaClaim], day: i64) -> StoreResult<Option<usize>>;
    /// Gives back places taken by [`Self::claim_sms_quota`] (the message was not sent).
    async fn release_sms_quota(&self, keys: &[String], day: i64) -> StoreResult<()>;
}
