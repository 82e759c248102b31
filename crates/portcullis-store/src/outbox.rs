//! The durable outbox and the SMS quota counters.
//!
//! A row is leased to one node at a time: `claim` sets `claimed_by` and `claimed_until` in one
//! atomic statement, and every later transition (`mark_sent`, `mark_retry`, `mark_failed`,
//! `fall_back_to_email`) applies only while `claimed_by` still names the caller, so a node
//! whose lease was taken over cannot settle a row another node now holds. The claim is the
//! one place where the dialects differ:
//!
//! - PostgreSQL: a CTE selects due rows `FOR UPDATE SKIP LOCKED` and an `UPDATE … FROM` leases
//!   them, so concurrent claimers skip each other's rows instead of waiting or sharing them.
//! - SQLite: one `UPDATE … WHERE id IN (SELECT … LIMIT n) … RETURNING`. SQLite serialises
//!   writers, so the select and the update cannot interleave with another claim.
//!
//! A body that carries a one-time code is sealed at rest (ChaCha20-Poly1305 under the
//! outbox key, a random nonce per row) when the store has a key, so neither the database
//! nor its write-ahead log nor a backup ever holds a live code in clear; it is opened when
//! claimed and blanked once the row is settled.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{
    OutboxReads, OutboxRow, OutboxStats, OutboxStore, Outgoing, QuotaClaim, StoreError, StoreResult,
};
use portcullis_crypto::Sealer;
use sqlx::AnyConnection;

use crate::sql::statements;
use crate::{db_err, tx, Backend, SqlStore};

/// The columns of a claimed row, with a table prefix (`""` or `"outbox."`).
macro_rules! row_columns {
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "channel, ",
            $p,
            "recipient, ",
            $p,
            "subject, ",
            $p,
            "body, ",
            $p,
            "fallback_email, ",
            $p,
            "fallback_phone, ",
            $p,
            "sensitive, ",
            $p,
            "attempts, ",
            $p,
            "created_at, ",
            $p,
            "claimed_until, ",
            $p,
            "last_error"
        )
    };
}

/// Due rows: pending, due at `$1` (or never attempted: a wall clock that jumped forward
/// when the row was queued must not hold it back), with no live lease, of channel `$5`
/// (`''` for both); one-time codes first.
macro_rules! due {
    () => {
        "SELECT id FROM outbox WHERE state = 'pending' \
         AND (next_attempt_at <= $1 OR attempts = 0) \
         AND (claimed_until IS NULL OR claimed_until < $1) AND ($5 = '' OR channel = $5) \
         ORDER BY sensitive DESC, next_attempt_at, id LIMIT $2"
    };
}

statements! {
    ENQUEUE = "INSERT INTO outbox (channel, recipient, subject, body, fallback_email, \
        fallback_phone, sensitive, state, attempts, next_attempt_at, created_at) \
        VALUES ($1, $2, $3, $4, $5, $8, $6, 'pending', 0, $7, $7) RETURNING id";
    /// PostgreSQL: concurrent claimers skip each other's rows instead of waiting on them.
    CLAIM_POSTGRES: postgres = concat!("WITH due AS (", due!(), " FOR UPDATE SKIP LOCKED) \
        UPDATE outbox SET claimed_by = $3, claimed_until = $4, attempts = outbox.attempts + 1 \
        FROM due WHERE outbox.id = due.id RETURNING ", row_columns!("outbox."));
    /// SQLite: one statement under the single writer's lock, so the select and the update
    /// cannot interleave with another claim.
    CLAIM_SQLITE: sqlite = concat!("UPDATE outbox SET claimed_by = $3, claimed_until = $4, \
        attempts = attempts + 1 WHERE id IN (", due!(), ") \
        AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < $1) RETURNING ",
        row_columns!(""));
    MARK_SENT = "UPDATE outbox SET state = 'sent', sent_at = $3, claimed_by = NULL, \
        claimed_until = NULL, body = CASE WHEN sensitive <> 0 THEN '' ELSE body END \
        WHERE id = $1 AND claimed_by = $2 AND state = 'pending'";
    MARK_RETRY = "UPDATE outbox SET next_attempt_at = $3, last_error = $4, claimed_by = NULL, \
        claimed_until = NULL WHERE id = $1 AND claimed_by = $2 AND state = 'pending'";
    MARK_FAILED = "UPDATE outbox SET state = 'failed', last_error = $3, claimed_by = NULL, \
        claimed_until = NULL, body = CASE WHEN sensitive <> 0 THEN '' ELSE body END \
        WHERE id = $1 AND claimed_by = $2 AND state = 'pending'";
    FALL_BACK = "UPDATE outbox SET channel = 'email', recipient = fallback_email, \
        fallback_email = NULL, last_error = $3 \
        WHERE id = $1 AND claimed_by = $2 AND state = 'pending' \
        AND channel = 'sms' AND fallback_email IS NOT NULL";
    /// A code by email goes by text instead, once: no fallback is left either way.
    FALL_BACK_SMS = "UPDATE outbox SET channel = 'sms', recipient = fallback_phone, \
        fallback_phone = NULL, fallback_email = NULL, last_error = $3 \
        WHERE id = $1 AND claimed_by = $2 AND state = 'pending' \
        AND channel = 'email' AND fallback_phone IS NOT NULL";
    /// A released row was claimed but not attempted: the claim's count is taken back.
    RELEASE_CLAIMS = "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, \
        attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
        WHERE claimed_by = $1 AND state = 'pending'";
    STATS = "SELECT channel, COUNT(*) AS pending, MIN(created_at) AS oldest FROM outbox \
        WHERE state = 'pending' GROUP BY channel";
    /// PostgreSQL's own clock, shared by every node.
    DATABASE_TIME: postgres =
        "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT) AS now";
    CLAIM_QUOTA = "INSERT INTO sms_quota (counter, day, count) VALUES ($1, $2, 1) \
        ON CONFLICT (counter) DO UPDATE SET \
          count = CASE WHEN sms_quota.day <> $2 THEN 1 ELSE sms_quota.count + 1 END, \
          day = $2 \
        WHERE sms_quota.day <> $2 OR sms_quota.count < $3 \
        RETURNING count";
    RELEASE_QUOTA = "UPDATE sms_quota SET count = count - 1 \
        WHERE counter = $1 AND day = $2 AND count > 0";
}

const SEAL_AAD: &[u8] = b"portcullis outbox body v1";

/// The outbox key, for bodies that carry a code.
#[derive(Clone, Debug)]
pub(crate) struct OutboxSeal(Sealer);

impl OutboxSeal {
    /// The outbox keyring's sealer (other purposes re-label it with their own AAD).
    pub(crate) fn sealer(&self) -> &Sealer {
        &self.0
    }

    fn new(key: &[u8; 32]) -> Option<Self> {
        Some(Self(Sealer::new(key, SEAL_AAD)))
    }

    fn with_ring(keys: portcullis_crypto::LiveRing) -> Self {
        Self(Sealer::with_ring(keys, SEAL_AAD))
    }

    fn seal(&self, body: &str) -> Option<String> {
        self.0.seal(body.as_bytes())
    }

    fn open(&self, stored: &str) -> Option<String> {
        String::from_utf8(self.0.open(stored)?.to_vec()).ok()
    }
}

impl SqlStore {
    /// Seals outbox bodies that carry a one-time code under `key` (every node and command
    /// sharing the database must use the same key: `outbox.key` in the secrets folder).
    /// Without a key such bodies are stored in clear until the row is settled.
    pub fn with_outbox_key(mut self, key: &[u8; 32]) -> Self {
        self.outbox_seal = OutboxSeal::new(key);
        self
    }

    /// Seals those bodies under `outbox.key`'s keyring, followed as it is rotated (each
    /// body names its key id; bodies under an old key still open).
    pub fn with_outbox_ring(mut self, keys: portcullis_crypto::LiveRing) -> Self {
        self.outbox_seal = Some(OutboxSeal::with_ring(keys));
        self
    }

    /// The sealer of outbox bodies, if a key was given (the re-seal job's).
    pub fn outbox_sealer(&self) -> Option<Sealer> {
        self.outbox_seal.as_ref().map(|s| s.0.clone())
    }

    /// Opens a claimed row's sealed body; false when it cannot be opened (the key changed
    /// or is missing).
    fn open_body(&self, row: &mut OutboxRow) -> bool {
        if !(row.sensitive && Sealer::is_sealed(&row.body)) {
            return true;
        }
        match self.outbox_seal.as_ref().and_then(|s| s.open(&row.body)) {
            Some(plain) => {
                row.body = plain;
                true
            }
            None => false,
        }
    }
}

/// Queues `messages` inside the caller's transaction (a unit of work's commit), so a
/// message commits (or not) with the state change that caused it. The new rows' ids, in
/// order.
pub(crate) async fn enqueue(
    conn: &mut AnyConnection,
    seal: Option<&OutboxSeal>,
    messages: &[Outgoing],
    now: UnixTime,
) -> StoreResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(messages.len());
    for out in messages {
        let m = &out.message;
        let body = match seal.filter(|_| m.sensitive) {
            Some(seal) => seal
                .seal(&m.body)
                .ok_or_else(|| StoreError::Internal("sealing an outbox body failed".into()))?,
            None => m.body.clone(),
        };
        let id: i64 = sqlx::query_scalar(ENQUEUE)
            .bind(m.channel.as_str())
            .bind(m.to.as_str())
            .bind(m.subject.as_str())
            .bind(body)
            .bind(out.fallback_email.as_deref())
            .bind(i64::from(m.sensitive))
            .bind(now.0)
            .bind(out.fallback_phone.as_deref())
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        ids.push(id);
    }
    Ok(ids)
}

impl SqlStore {
    /// Runs one of the statements that settle a row still held by `node` (`$1` id, `$2`
    /// node, `$3` a reason or error, clipped): whether the row was still `node`'s.
    pub(crate) async fn settle(
        &self,
        statement: &str,
        id: i64,
        node: &str,
        text: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(statement)
            .bind(id)
            .bind(node)
            .bind(clip(text))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Runs a statement that settles a row still held by `node` at a time (`$1` id, `$2`
    /// node, `$3` the time, `$4` the error, clipped, when given): whether the row was still
    /// `node`'s.
    pub(crate) async fn settle_at(
        &self,
        statement: &str,
        id: i64,
        node: &str,
        at: UnixTime,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        let mut query = sqlx::query(statement).bind(id).bind(node).bind(at.0);
        if let Some(error) = error {
            query = query.bind(clip(error));
        }
        let done = query.execute(&self.pool).await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}

#[derive(sqlx::FromRow)]
struct OutboxRecord {
    id: i64,
    channel: String,
    recipient: String,
    subject: String,
    body: String,
    fallback_email: Option<String>,
    fallback_phone: Option<String>,
    sensitive: i64,
    attempts: i64,
    created_at: i64,
    claimed_until: Option<i64>,
    last_error: Option<String>,
}

impl TryFrom<OutboxRecord> for OutboxRow {
    type Error = StoreError;

    fn try_from(r: OutboxRecord) -> StoreResult<Self> {
        Ok(OutboxRow {
            id: r.id,
            channel: CodeChannel::parse(&r.channel).ok_or_else(|| {
                StoreError::Internal(format!("unknown outbox channel {:?}", r.channel))
            })?,
            recipient: r.recipient,
            subject: r.subject,
            body: r.body,
            fallback_email: r.fallback_email,
            fallback_phone: r.fallback_phone,
            sensitive: r.sensitive != 0,
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            created_at: UnixTime(r.created_at),
            claimed_until: UnixTime(r.claimed_until.unwrap_or(0)),
            last_error: r.last_error,
        })
    }
}

/// Error texts are stored for operators; keep them short.
fn clip(error: &str) -> &str {
    match error.char_indices().nth(500) {
        Some((at, _)) => error.get(..at).unwrap_or(error),
        None => error,
    }
}

#[async_trait]
impl OutboxReads for SqlStore {
    async fn outbox_stats(&self, now: UnixTime) -> StoreResult<OutboxStats> {
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(STATS)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let age = |oldest: Option<i64>| oldest.map_or(0, |t| now.0.saturating_sub(t).max(0));
        let mut stats = OutboxStats::default();
        for (channel, pending, oldest) in rows {
            let oldest = age(oldest);
            stats.pending += pending;
            stats.oldest_pending_age_secs = stats.oldest_pending_age_secs.max(oldest);
            match channel.as_str() {
                "sms" => stats.oldest_sms_age_secs = oldest,
                _ => stats.oldest_email_age_secs = oldest,
            }
        }
        Ok(stats)
    }
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn enqueue(&self, messages: &[Outgoing], now: UnixTime) -> StoreResult<Vec<i64>> {
        let mut tx = tx::begin(&self.pool, self.backend, &self.gate).await?;
        let ids = enqueue(tx.conn()?, self.outbox_seal.as_ref(), messages, now).await?;
        tx::commit(tx).await?;
        Ok(ids)
    }

    async fn database_time(&self) -> StoreResult<Option<UnixTime>> {
        match self.backend {
            Backend::Sqlite => Ok(None),
            Backend::Postgres => {
                let now: i64 = sqlx::query_scalar(DATABASE_TIME)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err)?;
                Ok(Some(UnixTime(now)))
            }
        }
    }

    async fn claim_channel(
        &self,
        node: &str,
        now: UnixTime,
        lease_secs: i64,
        limit: u32,
        channel: Option<CodeChannel>,
    ) -> StoreResult<Vec<OutboxRow>> {
        let sql = match self.backend {
            Backend::Postgres => CLAIM_POSTGRES,
            Backend::Sqlite => CLAIM_SQLITE,
        };
        let records: Vec<OutboxRecord> = sqlx::query_as(sql)
            .bind(now.0)
            .bind(i64::from(limit))
            .bind(node)
            .bind(now.0.saturating_add(lease_secs))
            .bind(channel.map_or("", CodeChannel::as_str))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut rows = records
            .into_iter()
            .map(OutboxRow::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        // Codes first, then in the order they were queued.
        rows.sort_by_key(|r| (!r.sensitive, r.id));
        let mut readable = Vec::with_capacity(rows.len());
        for mut row in rows {
            if self.open_body(&mut row) {
                readable.push(row);
            } else {
                // Never send a sealed blob. Another node (with the right key) may open it, or
                // this one once its key file is fixed: the claim is released for a later
                // attempt, never given up for this node's fault (as webhooks do).
                tracing::error!(
                    outbox_id = row.id,
                    "outbox body cannot be opened with this node's outbox key; \
                     released for another attempt"
                );
                self.mark_retry(
                    row.id,
                    node,
                    "the sealed body cannot be opened: outbox.key differs between nodes or changed",
                    now.plus_secs(lease_secs.max(1)),
                )
                .await?;
            }
        }
        Ok(readable)
    }

    async fn mark_sent(&self, id: i64, node: &str, now: UnixTime) -> StoreResult<bool> {
        self.settle_at(MARK_SENT, id, node, now, None).await
    }

    async fn mark_retry(
        &self,
        id: i64,
        node: &str,
        error: &str,
        next_attempt_at: UnixTime,
    ) -> StoreResult<bool> {
        self.settle_at(MARK_RETRY, id, node, next_attempt_at, Some(error))
            .await
    }

    async fn mark_failed(&self, id: i64, node: &str, error: &str) -> StoreResult<bool> {
        self.settle(MARK_FAILED, id, node, error).await
    }

    async fn fall_back_to_email(&self, id: i64, node: &str, reason: &str) -> StoreResult<bool> {
        self.settle(FALL_BACK, id, node, reason).await
    }

    async fn fall_back_to_sms(&self, id: i64, node: &str, reason: &str) -> StoreResult<bool> {
        self.settle(FALL_BACK_SMS, id, node, reason).await
    }

    async fn release_claims(&self, node: &str) -> StoreResult<u64> {
        let done = sqlx::query(RELEASE_CLAIMS)
            .bind(node)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn claim_sms_quota(&self, claims: &[QuotaClaim], day: i64) -> StoreResult<Option<usize>> {
        // All counters in one transaction, always in the caller's order (number, prefix,
        // service), so two claimers cannot deadlock and a refused claim takes nothing (its
        // transaction is dropped, so rolled back).
        let mut tx = tx::begin(&self.pool, self.backend, &self.gate).await?;
        for (i, claim) in claims.iter().enumerate() {
            let granted: Option<i64> = sqlx::query_scalar(CLAIM_QUOTA)
                .bind(claim.key.as_str())
                .bind(day)
                .bind(i64::from(claim.limit))
                .fetch_optional(tx.conn()?)
                .await
                .map_err(db_err)?;
            if granted.is_none() || claim.limit == 0 {
                return Ok(Some(i));
            }
        }
        tx::commit(tx).await?;
        Ok(None)
    }

    async fn release_sms_quota(&self, keys: &[String], day: i64) -> StoreResult<()> {
        let mut tx = tx::begin(&self.pool, self.backend, &self.gate).await?;
        for key in keys {
            sqlx::query(RELEASE_QUOTA)
                .bind(key.as_str())
                .bind(day)
                .execute(tx.conn()?)
                .await
                .map_err(db_err)?;
        }
        tx::commit(tx).await
    }
}
