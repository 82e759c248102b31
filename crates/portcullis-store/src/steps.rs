//! Short-lived flow steps, held by token hash.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{StepRow, StepStore, StoreResult};
use sqlx::Row;

use crate::{db_err, SqlStore};

#[async_trait]
impl StepStore for SqlStore {
    async fn create_step(
        &self,
        token_hash: &[u8; 32],
        kind: &str,
        subject_id: i64,
        data: &str,
        expires_at: UnixTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO steps (token_hash, kind, subject_id, data, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash.to_vec())
        .bind(kind)
        .bind(subject_id)
        .bind(data)
        .bind(expires_at.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn find_step(
        &self,
        token_hash: &[u8; 32],
        kind: &str,
        now: UnixTime,
    ) -> StoreResult<Option<StepRow>> {
        let row = sqlx::query(
            "SELECT kind, subject_id, data, expires_at FROM steps \
             WHERE token_hash = $1 AND kind = $2 AND expires_at > $3",
        )
        .bind(token_hash.to_vec())
        .bind(kind)
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| -> Result<StepRow, sqlx::Error> {
            Ok(StepRow {
                kind: r.try_get("kind")?,
                subject_id: r.try_get("subject_id")?,
                data: r.try_get("data")?,
                expires_at: UnixTime(r.try_get("expires_at")?),
            })
        })
        .transpose()
        .map_err(db_err)
    }

    async fn consume_step(&self, token_hash: &[u8; 32], kind: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM steps WHERE token_hash = $1 AND kind = $2")
            .bind(token_hash.to_vec())
            .bind(kind)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn step_attempt(
        &self,
        token_hash: &[u8; 32],
        kind: &str,
        max: u32,
    ) -> StoreResult<Option<u32>> {
        let row = sqlx::query(
            "UPDATE steps SET attempts = attempts + 1 WHERE token_hash = $1 AND kind = $2 AND attempts < $3 \
             RETURNING attempts",
        )
        .bind(token_hash.to_vec())
        .bind(kind)
        .bind(i64::from(max))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        match row {
            Some(r) => {
                let n: i64 = r.try_get("attempts").map_err(db_err)?;
                Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)))
            }
            None => Ok(None),
        }
    }
}
