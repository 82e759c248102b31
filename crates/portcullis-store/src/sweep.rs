//! The background sweep: rows that have outlived their use (expired steps and codes,
//! buckets whose window closed long ago, devices whose cookie browsers have dropped, old
//! registry push keys, API idempotency keys, settled webhook deliveries, expired OpenID
//! Connect state) are
//! deleted in batches of [`BATCH`], one short statement each, so a large backlog never
//! holds a long transaction or a lock other requests wait on.

use crate::Db;
use portcullis_core::ports::{StoreResult, SweepCutoffs, Swept};

use crate::db_err;
use crate::sql::statements;

/// Rows deleted per statement.
const BATCH: i64 = 1000;

statements! {
    SWEEP_STEPS = "DELETE FROM steps WHERE token_hash IN \
        (SELECT token_hash FROM steps WHERE expires_at <= $1 LIMIT $2)";
    SWEEP_CODES = "DELETE FROM one_time_codes WHERE step_hash IN \
        (SELECT step_hash FROM one_time_codes WHERE expires_at <= $1 LIMIT $2)";
    SWEEP_THROTTLE = "DELETE FROM throttle WHERE bucket IN \
        (SELECT bucket FROM throttle WHERE window_start <= $1 LIMIT $2)";
    SWEEP_DEVICES = "DELETE FROM devices WHERE id IN \
        (SELECT id FROM devices WHERE last_seen_at <= $1 LIMIT $2)";
    SWEEP_CONTACTS = "DELETE FROM contact_history WHERE id IN \
        (SELECT id FROM contact_history WHERE changed_at <= $1 LIMIT $2)";
    SWEEP_PUSH_KEYS = "DELETE FROM registry_pushes WHERE idempotency_key IN \
        (SELECT idempotency_key FROM registry_pushes WHERE created_at <= $1 LIMIT $2)";
    SWEEP_IDEMPOTENCY_KEYS = "DELETE FROM idempotency_keys WHERE (scope, idempotency_key) IN \
        (SELECT scope, idempotency_key FROM idempotency_keys WHERE created_at <= $1 LIMIT $2)";
    SWEEP_WEBHOOKS_SENT = "DELETE FROM webhook_deliveries WHERE id IN \
        (SELECT id FROM webhook_deliveries WHERE state = 'sent' AND sent_at <= $1 LIMIT $2)";
    SWEEP_WEBHOOKS_FAILED = "DELETE FROM webhook_deliveries WHERE id IN \
        (SELECT id FROM webhook_deliveries WHERE state = 'failed' AND created_at <= $1 \
        LIMIT $2)";
    SWEEP_OIDC_REQUESTS = "DELETE FROM oidc_requests WHERE id IN \
        (SELECT id FROM oidc_requests WHERE expires_at <= $1 LIMIT $2)";
    SWEEP_OIDC_CODES = "DELETE FROM oidc_codes WHERE id IN \
        (SELECT id FROM oidc_codes WHERE expires_at <= $1 LIMIT $2)";
    SWEEP_OIDC_TOKENS = "DELETE FROM oidc_tokens WHERE id IN \
        (SELECT id FROM oidc_tokens WHERE expires_at <= $1 LIMIT $2)";
    SWEEP_OIDC_JTI = "DELETE FROM oidc_jti WHERE jti_hash IN \
        (SELECT jti_hash FROM oidc_jti WHERE expires_at <= $1 LIMIT $2)";
}

async fn batches(pool: &Db, sql: &'static str, cutoff: i64) -> StoreResult<u64> {
    let mut total = 0;
    loop {
        let done = sqlx::query(sql)
            .bind(cutoff)
            .bind(BATCH)
            .execute(pool)
            .await
            .map_err(db_err)?
            .rows_affected();
        total += done;
        if done < u64::try_from(BATCH).unwrap_or(u64::MAX) {
            return Ok(total);
        }
    }
}

pub(crate) async fn sweep(pool: &Db, cutoffs: SweepCutoffs) -> StoreResult<Swept> {
    Ok(Swept {
        steps: batches(pool, SWEEP_STEPS, cutoffs.steps_before.0).await?,
        codes: batches(pool, SWEEP_CODES, cutoffs.codes_before.0).await?,
        throttle: batches(pool, SWEEP_THROTTLE, cutoffs.throttle_before.0).await?,
        devices: batches(pool, SWEEP_DEVICES, cutoffs.devices_before.0).await?,
        contacts: batches(pool, SWEEP_CONTACTS, cutoffs.contacts_before.0).await?,
        push_keys: batches(pool, SWEEP_PUSH_KEYS, cutoffs.push_keys_before.0).await?,
        idempotency_keys: batches(
            pool,
            SWEEP_IDEMPOTENCY_KEYS,
            cutoffs.idempotency_keys_before.0,
        )
        .await?,
        webhooks_sent: batches(pool, SWEEP_WEBHOOKS_SENT, cutoffs.webhooks_sent_before.0).await?,
        webhooks_failed: batches(
            pool,
            SWEEP_WEBHOOKS_FAILED,
            cutoffs.webhooks_failed_before.0,
        )
        .await?,
        oidc: batches(pool, SWEEP_OIDC_REQUESTS, cutoffs.oidc_before.0).await?
            + batches(pool, SWEEP_OIDC_CODES, cutoffs.oidc_before.0).await?
            + batches(pool, SWEEP_OIDC_TOKENS, cutoffs.oidc_before.0).await?
            + batches(pool, SWEEP_OIDC_JTI, cutoffs.steps_before.0).await?,
    })
}
