//! Short-lived flow steps, held by token hash and found only under their own kind
//! (`portcullis_core::steps::StepKind`, bound as a parameter: the store never spells a kind).

use crate::Db;
use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{KeptAnswer, StepReads, StepRow, StepWrites, StoreError, StoreResult};
use portcullis_core::steps::StepKind;

use crate::error::is_unique_violation;
use crate::sql::statements;
use crate::{db_err, SqlStore, SqlWork};

statements! {
    FIND_STEP = "SELECT kind, subject_id, data, expires_at FROM steps \
        WHERE token_hash = $1 AND kind = $2 AND expires_at > $3";
    CREATE_STEP = "INSERT INTO steps (token_hash, kind, subject_id, data, expires_at) \
        VALUES ($1, $2, $3, $4, $5)";
    CONSUME_STEP = "DELETE FROM steps WHERE token_hash = $1 AND kind = $2";
    DROP_ACCOUNT_STEPS = "DELETE FROM steps WHERE subject_id = $1 AND kind = $2";
    /// A wrong answer counted on the step, only below `max` (a claim).
    STEP_ATTEMPT = "UPDATE steps SET attempts = attempts + 1 \
        WHERE token_hash = $1 AND kind = $2 AND attempts < $3 RETURNING attempts";
    FIND_IDEMPOTENCY_KEY = "SELECT request_hash, response FROM idempotency_keys \
        WHERE scope = $1 AND idempotency_key = $2";
    KEEP_IDEMPOTENCY_KEY = "INSERT INTO idempotency_keys \
        (scope, idempotency_key, request_hash, response, created_at) VALUES ($1, $2, $3, $4, $5)";
}

#[derive(sqlx::FromRow)]
struct StepRecord {
    kind: String,
    subject_id: i64,
    data: String,
    expires_at: i64,
}

impl TryFrom<StepRecord> for StepRow {
    type Error = StoreError;

    fn try_from(r: StepRecord) -> StoreResult<Self> {
        Ok(StepRow {
            kind: StepKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Internal(format!("unknown step kind {:?}", r.kind)))?,
            subject_id: r.subject_id,
            data: r.data,
            expires_at: UnixTime(r.expires_at),
        })
    }
}

/// Counts a wrong answer on the step: the new count, or `None` when the step is gone or
/// out of tries.
pub(crate) async fn attempt(
    pool: &Db,
    token_hash: &[u8; 32],
    kind: StepKind,
    max: u32,
) -> StoreResult<Option<u32>> {
    let n: Option<i64> = sqlx::query_scalar(STEP_ATTEMPT)
        .bind(token_hash.to_vec())
        .bind(kind.as_str())
        .bind(i64::from(max))
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    Ok(n.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
}

#[async_trait]
impl StepReads for SqlStore {
    async fn find_step(
        &self,
        token_hash: &[u8; 32],
        kind: StepKind,
        now: UnixTime,
    ) -> StoreResult<Option<StepRow>> {
        let row: Option<StepRecord> = sqlx::query_as(FIND_STEP)
            .bind(token_hash.to_vec())
            .bind(kind.as_str())
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(StepRow::try_from).transpose()
    }

    async fn find_idempotency_key(
        &self,
        scope: &str,
        key: &str,
    ) -> StoreResult<Option<KeptAnswer>> {
        let found: Option<(Vec<u8>, String)> = sqlx::query_as(FIND_IDEMPOTENCY_KEY)
            .bind(scope)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(found.map(|(request_hash, response)| KeptAnswer {
            request_hash,
            response,
        }))
    }
}

#[async_trait]
impl StepWrites for SqlWork {
    async fn create_step(
        &mut self,
        token_hash: &[u8; 32],
        kind: StepKind,
        subject_id: i64,
        data: &str,
        expires_at: UnixTime,
    ) -> StoreResult<()> {
        sqlx::query(CREATE_STEP)
            .bind(token_hash.to_vec())
            .bind(kind.as_str())
            .bind(subject_id)
            .bind(data)
            .bind(expires_at.0)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn consume_step(&mut self, token_hash: &[u8; 32], kind: StepKind) -> StoreResult<bool> {
        let done = sqlx::query(CONSUME_STEP)
            .bind(token_hash.to_vec())
            .bind(kind.as_str())
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn drop_account_steps(&mut self, account_id: i64, kind: StepKind) -> StoreResult<u64> {
        let done = sqlx::query(DROP_ACCOUNT_STEPS)
            .bind(account_id)
            .bind(kind.as_str())
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn keep_idempotency_key(
        &mut self,
        scope: &str,
        key: &str,
        request_hash: &[u8; 32],
        response: &str,
    ) -> StoreResult<()> {
        let now = self.stamp();
        // On PostgreSQL a parallel request with the same key waits here on the key's index
        // entry until this one commits or rolls back, then fails as a duplicate.
        sqlx::query(KEEP_IDEMPOTENCY_KEY)
            .bind(scope)
            .bind(key)
            .bind(request_hash.to_vec())
            .bind(response)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(|e| {
                if is_unique_violation(&e, "idempotency_keys") {
                    StoreError::Unavailable(
                        "a request with the same Idempotency-Key is in progress".into(),
                    )
                } else {
                    db_err(e)
                }
            })?;
        Ok(())
    }
}
