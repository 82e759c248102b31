//! Webhook subscriptions and the delivery rows of security events (docs/design/webhooks.md).
//! The rows are written by the unit of work's commit, from the audit events it carries
//! (see [`crate::webhooks::event_type`]); this port is the subscriptions' administration
//! and the delivery worker's leases, which work like the outbox's.

use async_trait::async_trait;
use secrecy::SecretString;

use super::StoreResult;
use crate::clock::UnixTime;
use crate::webhooks::EventFilter;

/// A subscription as listed (never its secret), with its deliveries by state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSubscription {
    pub id: i64,
    pub url: String,
    pub events: EventFilter,
    pub created_at: UnixTime,
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
    /// The last error of its most recently given-up delivery.
    pub last_error: Option<String>,
}

/// A delivery a node has claimed: it alone may send it until `claimed_until`.
#[derive(Clone, Debug)]
pub struct WebhookDelivery {
    pub id: i64,
    /// The `webhook-id` (`msg_` + 128 random bits in hex), fixed when the row was written:
    /// the same on every attempt, never reused.
    pub message_id: String,
    pub subscription_id: i64,
    pub url: String,
    /// The subscription's signing secret, opened from its sealed form.
    pub secret: SecretString,
    pub event_type: String,
    /// The JSON payload, exactly as it is signed and sent.
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub created_at: UnixTime,
}

/// Deliveries at a glance, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookStats {
    pub pending: i64,
    pub failed: i64,
    pub oldest_pending_age_secs: i64,
}

/// Subscription changes, made in a unit of work so the operator's audit entry commits with
/// them (or neither does).
#[async_trait]
pub trait WebhookWrites: Send {
    /// Adds a subscription; its secret is sealed under the outbox keyring. Its id.
    async fn add_subscription(
        &mut self,
        url: &str,
        events: &EventFilter,
        secret: &SecretString,
    ) -> StoreResult<i64>;
    /// Removes a subscription and its deliveries not yet made; false when there is none.
    async fn remove_subscription(&mut self, id: i64) -> StoreResult<bool>;
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn list_subscriptions(&self) -> StoreResult<Vec<WebhookSubscription>>;
    async fn webhook_stats(&self, now: UnixTime) -> StoreResult<WebhookStats>;
    /// Claims up to `limit` due deliveries (pending, due at `now`, no live lease), leasing
    /// them to `node` until `now + lease_secs` and counting an attempt. PostgreSQL skips rows
    /// other claimers hold (`SKIP LOCKED`). A row whose secret cannot be opened is failed.
    async fn claim_webhooks(
        &self,
        node: &str,
        now: UnixTime,
        lease_secs: i64,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Marks the delivery made, if `node` still holds it.
    async fn webhook_sent(&self, id: i64, node: &str, now: UnixTime) -> StoreResult<bool>;
    /// Gives the delivery back for another attempt at `next_attempt_at`.
    async fn webhook_retry(
        &self,
        id: i64,
        node: &str,
        error: &str,
        next_attempt_at: UnixTime,
    ) -> StoreResult<bool>;
    /// Gives up on the delivery.
    async fn webhook_failed(&self, id: i64, node: &str, error: &str) -> StoreResult<bool>;
    /// Releases every lease `node` holds without counting the attempt (graceful shutdown).
    async fn release_webhook_claims(&self, node: &str) -> StoreResult<u64>;
}
