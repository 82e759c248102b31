//! Webhook subscriptions and the delivery rows of security events (docs/design/webhooks.md).
//!
//! The rows are written by a unit of work's commit from the audit events it carries
//! ([`enqueue_events`]), one per event per matching subscription, in the same transaction
//! as the change: an event is delivered only for a change that committed, and never lost
//! for one that did. They are then leased to one node at a time exactly as the outbox's
//! rows are (`outbox.rs`): PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, SQLite with one
//! `UPDATE … RETURNING` under its single writer, and every later transition applies only
//! while `claimed_by` still names the caller.

use async_trait::async_trait;
use portcullis_core::audit::AuditEvent;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{
    StoreError, StoreResult, WebhookDelivery, WebhookStats, WebhookStore, WebhookSubscription,
    WebhookWrites,
};
use portcullis_core::webhooks::{event_type, EventFilter};
use portcullis_crypto::Sealer;
use secrecy::{ExposeSecret, SecretString};
use sqlx::AnyConnection;

use crate::sql::statements;
use crate::{db_err, Backend, SqlStore, SqlWork};

macro_rules! due {
    () => {
        "SELECT id FROM webhook_deliveries WHERE state = 'pending' \
         AND (next_attempt_at <= $1 OR attempts = 0) \
         AND (claimed_until IS NULL OR claimed_until < $1) \
         ORDER BY next_attempt_at, id LIMIT $2"
    };
}

statements! {
    SUBSCRIPTION_FILTERS = "SELECT id, events FROM webhook_subscriptions ORDER BY id";
    ACCOUNT_OF_EVENT = "SELECT public_id, account_type FROM online_accounts WHERE id = $1";
    ACCOUNT_OF_EVENT_ID = "SELECT public_id FROM online_accounts WHERE id = $1";
    /// An account created by a previous release (expand-only upgrade) gets its id here.
    FILL_PUBLIC_ID = "UPDATE online_accounts SET public_id = $2 \
        WHERE id = $1 AND public_id IS NULL";
    INSERT_DELIVERY = "INSERT INTO webhook_deliveries (subscription_id, event_type, body, \
        state, attempts, next_attempt_at, created_at, message_id) \
        VALUES ($1, $2, $3, 'pending', 0, $4, $4, $5)";
    INSERT_SUBSCRIPTION = "INSERT INTO webhook_subscriptions (url, events, secret, created_at) \
        VALUES ($1, $2, $3, $4) RETURNING id";
    LIST_SUBSCRIPTIONS = "SELECT s.id, s.url, s.events, s.created_at, \
        (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.subscription_id = s.id \
           AND d.state = 'pending') AS pending, \
        (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.subscription_id = s.id \
           AND d.state = 'sent') AS sent, \
        (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.subscription_id = s.id \
           AND d.state = 'failed') AS failed, \
        (SELECT d.last_error FROM webhook_deliveries d WHERE d.subscription_id = s.id \
           AND d.state = 'failed' ORDER BY d.id DESC LIMIT 1) AS last_error \
        FROM webhook_subscriptions s ORDER BY s.id";
    DELETE_DELIVERIES = "DELETE FROM webhook_deliveries WHERE subscription_id = $1";
    DELETE_SUBSCRIPTION = "DELETE FROM webhook_subscriptions WHERE id = $1";
    SUBSCRIPTION_SECRETS = "SELECT id, url, secret FROM webhook_subscriptions";
    STATS = "SELECT state, COUNT(*) AS n, MIN(created_at) AS oldest FROM webhook_deliveries \
        WHERE state <> 'sent' GROUP BY state";
    CLAIM_POSTGRES: postgres = concat!("WITH due AS (", due!(), " FOR UPDATE SKIP LOCKED) \
        UPDATE webhook_deliveries SET claimed_by = $3, claimed_until = $4, \
        attempts = webhook_deliveries.attempts + 1 FROM due \
        WHERE webhook_deliveries.id = due.id RETURNING webhook_deliveries.id, \
        webhook_deliveries.subscription_id, webhook_deliveries.event_type, \
        webhook_deliveries.body, webhook_deliveries.attempts, webhook_deliveries.created_at, \
        webhook_deliveries.message_id");
    CLAIM_SQLITE: sqlite = concat!("UPDATE webhook_deliveries SET claimed_by = $3, \
        claimed_until = $4, attempts = attempts + 1 WHERE id IN (", due!(), ") \
        AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < $1) \
        RETURNING id, subscription_id, event_type, body, attempts, created_at, message_id");
    MARK_SENT = "UPDATE webhook_deliveries SET state = 'sent', sent_at = $3, claimed_by = NULL, \
        claimed_until = NULL WHERE id = $1 AND claimed_by = $2 AND state = 'pending'";
    MARK_RETRY = "UPDATE webhook_deliveries SET next_attempt_at = $3, last_error = $4, \
        claimed_by = NULL, claimed_until = NULL \
        WHERE id = $1 AND claimed_by = $2 AND state = 'pending'";
    MARK_FAILED = "UPDATE webhook_deliveries SET state = 'failed', last_error = $3, \
        claimed_by = NULL, claimed_until = NULL \
        WHERE id = $1 AND claimed_by = $2 AND state = 'pending'";
    RELEASE_CLAIMS = "UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL, \
        attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
        WHERE claimed_by = $1 AND state = 'pending'";
}

/// What the secrets are sealed as (a value sealed for another purpose does not open).
const SECRET_AAD: &[u8] = b"portcullis webhook secret v1";

/// The payload of one event: `{"type", "timestamp", "data": {…}}`. The data carry the
/// account's public id (random, fixed for its life: `online_accounts.public_id`) and type, and the audit entry's actor, client address and detail,
/// which never hold a secret (contact details are masked, cards are last four).
fn payload(
    kind: &str,
    event: &AuditEvent,
    account: Option<&(String, String)>,
    now: UnixTime,
) -> String {
    let mut data = serde_json::Map::new();
    if let Some((public_id, account_type)) = account {
        data.insert("account".into(), public_id.clone().into());
        data.insert("account_type".into(), account_type.clone().into());
    }
    data.insert("actor".into(), event.actor.clone().into());
    if let Some(ip) = &event.client_ip {
        data.insert("client_ip".into(), ip.clone().into());
    }
    if !event.detail.is_empty() {
        data.insert("detail".into(), event.detail.clone().into());
    }
    serde_json::json!({
        "type": kind,
        "timestamp": now.to_rfc3339(),
        "data": data,
    })
    .to_string()
}

/// Writes the delivery rows of `events` inside the caller's transaction (a unit of work's
/// commit): one per event that has a webhook type, per subscription that wants it. Reads
/// the subscriptions only when some event has a type. The number of rows written.
pub(crate) async fn enqueue_events(
    conn: &mut AnyConnection,
    events: &[AuditEvent],
    now: UnixTime,
) -> StoreResult<usize> {
    let typed: Vec<(&'static str, &AuditEvent)> = events
        .iter()
        .filter_map(|e| event_type(e.kind).map(|t| (t, e)))
        .collect();
    if typed.is_empty() {
        return Ok(0);
    }
    let subscriptions: Vec<(i64, String)> = sqlx::query_as(SUBSCRIPTION_FILTERS)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    if subscriptions.is_empty() {
        return Ok(0);
    }
    let subscriptions: Vec<(i64, EventFilter)> = subscriptions
        .into_iter()
        .map(|(id, events)| (id, EventFilter::from_stored(&events)))
        .collect();
    let mut written = 0;
    for (kind, event) in typed {
        let wanted: Vec<i64> = subscriptions
            .iter()
            .filter(|(_, f)| f.matches(kind))
            .map(|(id, _)| *id)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let account = match event.account_id {
            Some(id) => account_of_event(conn, id).await?,
            None => None,
        };
        let body = payload(kind, event, account.as_ref(), now);
        for subscription in wanted {
            sqlx::query(INSERT_DELIVERY)
                .bind(subscription)
                .bind(kind)
                .bind(body.as_str())
                .bind(now.0)
                .bind(message_id())
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            written += 1;
        }
    }
    Ok(written)
}

impl SqlStore {
    /// The sealer of webhook secrets: the outbox keyring under this purpose's label (also
    /// the re-seal job's, which moves them to the current key).
    pub fn webhook_sealer(&self) -> Option<Sealer> {
        self.outbox_sealer().as_ref().map(secret_sealer)
    }
}

/// The outbox keyring's sealer relabelled for webhook secrets (a value sealed for another
/// purpose does not open as a secret).
fn secret_sealer(outbox: &Sealer) -> Sealer {
    Sealer::with_ring(outbox.ring().clone(), SECRET_AAD)
}

type SubscriptionRecord = (i64, String, String, i64, i64, i64, i64, Option<String>);
type DeliveryRecord = (i64, i64, String, String, i64, i64, String);

/// The public id and type of an event's account (none once the account is gone). An
/// account a previous release created has no public id yet: it is given one here, in the
/// event's transaction, so every event of the account carries the same id from then on.
async fn account_of_event(
    conn: &mut AnyConnection,
    account_id: i64,
) -> StoreResult<Option<(String, String)>> {
    let row: Option<(Option<String>, String)> = sqlx::query_as(ACCOUNT_OF_EVENT)
        .bind(account_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    let Some((public_id, account_type)) = row else {
        return Ok(None);
    };
    if let Some(public_id) = public_id {
        return Ok(Some((public_id, account_type)));
    }
    sqlx::query(FILL_PUBLIC_ID)
        .bind(account_id)
        .bind(crate::accounts::new_public_id())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let filled: Option<Option<String>> = sqlx::query_scalar(ACCOUNT_OF_EVENT_ID)
        .bind(account_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(filled.flatten().map(|id| (id, account_type)))
}

/// A delivery's `webhook-id`: `msg_` + 128 random bits in hex, fixed at enqueue.
fn message_id() -> String {
    let bytes: [u8; 16] = portcullis_crypto::token::random_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

#[async_trait]
impl WebhookWrites for SqlWork {
    async fn add_subscription(
        &mut self,
        url: &str,
        events: &EventFilter,
        secret: &SecretString,
    ) -> StoreResult<i64> {
        let sealer = self.outbox_sealer().map(secret_sealer).ok_or_else(|| {
            StoreError::Internal("webhook secrets need the outbox key to be sealed".into())
        })?;
        let sealed = sealer
            .seal(secret.expose_secret().as_bytes())
            .ok_or_else(|| StoreError::Internal("sealing a webhook secret failed".into()))?;
        let now = self.stamp();
        sqlx::query_scalar(INSERT_SUBSCRIPTION)
            .bind(url)
            .bind(events.stored())
            .bind(sealed)
            .bind(now)
            .fetch_one(self.conn().await?)
            .await
            .map_err(db_err)
    }

    async fn remove_subscription(&mut self, id: i64) -> StoreResult<bool> {
        let conn = self.conn().await?;
        sqlx::query(DELETE_DELIVERIES)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        let done = sqlx::query(DELETE_SUBSCRIPTION)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn list_subscriptions(&self) -> StoreResult<Vec<WebhookSubscription>> {
        let rows: Vec<SubscriptionRecord> = sqlx::query_as(LIST_SUBSCRIPTIONS)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, url, events, created_at, pending, sent, failed, last_error)| {
                    WebhookSubscription {
                        id,
                        url,
                        events: EventFilter::from_stored(&events),
                        created_at: UnixTime(created_at),
                        pending,
                        sent,
                        failed,
                        last_error,
                    }
                },
            )
            .collect())
    }

    async fn webhook_stats(&self, now: UnixTime) -> StoreResult<WebhookStats> {
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(STATS)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut stats = WebhookStats::default();
        for (state, n, oldest) in rows {
            match state.as_str() {
                "pending" => {
                    stats.pending = n;
                    stats.oldest_pending_age_secs =
                        oldest.map_or(0, |t| now.0.saturating_sub(t).max(0));
                }
                _ => stats.failed = n,
            }
        }
        Ok(stats)
    }

    async fn claim_webhooks(
        &self,
        node: &str,
        now: UnixTime,
        lease_secs: i64,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let sql = match self.backend {
            Backend::Postgres => CLAIM_POSTGRES,
            Backend::Sqlite => CLAIM_SQLITE,
        };
        let mut claimed: Vec<DeliveryRecord> = sqlx::query_as(sql)
            .bind(now.0)
            .bind(i64::from(limit))
            .bind(node)
            .bind(now.0.saturating_add(lease_secs))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        claimed.sort_by_key(|r| r.0);
        let subscriptions: Vec<(i64, String, String)> = sqlx::query_as(SUBSCRIPTION_SECRETS)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let sealer = self.webhook_sealer();
        let mut out = Vec::with_capacity(claimed.len());
        for (id, subscription_id, event_type, body, attempts, created_at, message_id) in claimed {
            let found = subscriptions.iter().find(|s| s.0 == subscription_id);
            let secret = found.and_then(|(_, _, sealed)| {
                let plain = sealer.as_ref()?.open(sealed)?;
                String::from_utf8(plain.to_vec()).ok()
            });
            match (found, secret) {
                (Some((_, url, _)), Some(secret)) => out.push(WebhookDelivery {
                    id,
                    message_id,
                    subscription_id,
                    url: url.clone(),
                    secret: SecretString::from(secret),
                    event_type,
                    body,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    created_at: UnixTime(created_at),
                }),
                (Some(_), None) => {
                    // Another node (with the right key) may open it, or this one once its
                    // key file is fixed: the claim is released for a later attempt, never
                    // given up for this node's fault. Nothing of the secret is logged.
                    tracing::error!(
                        delivery_id = id,
                        subscription_id,
                        "webhook secret cannot be opened with this node's outbox key; \
                         released for another attempt"
                    );
                    self.webhook_retry(
                        id,
                        node,
                        "a node's outbox.key could not open the subscription's secret \
                         (outbox.key differs between nodes or changed)",
                        now.plus_secs(lease_secs.max(1)),
                    )
                    .await?;
                }
                (None, _) => {
                    // The subscription was removed after the claim (its rows go with it).
                    self.webhook_failed(id, node, "the subscription was removed")
                        .await?;
                }
            }
        }
        Ok(out)
    }

    async fn webhook_sent(&self, id: i64, node: &str, now: UnixTime) -> StoreResult<bool> {
        self.settle_at(MARK_SENT, id, node, now, None).await
    }

    async fn webhook_retry(
        &self,
        id: i64,
        node: &str,
        error: &str,
        next_attempt_at: UnixTime,
    ) -> StoreResult<bool> {
        self.settle_at(MARK_RETRY, id, node, next_attempt_at, Some(error))
            .await
    }

    async fn webhook_failed(&self, id: i64, node: &str, error: &str) -> StoreResult<bool> {
        self.settle(MARK_FAILED, id, node, error).await
    }

    async fn release_webhook_claims(&self, node: &str) -> StoreResult<u64> {
        let done = sqlx::query(RELEASE_CLAIMS)
            .bind(node)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
