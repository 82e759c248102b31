//! Throttle buckets: one atomic upsert claims a place in a fixed window, or reports the
//! bucket full, so parallel requests cannot slip past the limit.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{StoreResult, ThrottleStore};
use sqlx::Row;

use crate::{db_err, SqlStore};

#[async_trait]
impl ThrottleStore for SqlStore {
    async fn throttle_claim(
        &self,
        bucket: &str,
        now: UnixTime,
        window_secs: i64,
        limit: u32,
    ) -> StoreResult<Option<i64>> {
        // A window that has closed starts again at 1; an open one grows only below the limit.
        let claimed = sqlx::query(
            "INSERT INTO throttle (bucket, window_start, count) VALUES ($1, $2, 1) \
             ON CONFLICT (bucket) DO UPDATE SET \
               count = CASE WHEN throttle.window_start <= $3 THEN 1 ELSE throttle.count + 1 END, \
               window_start = CASE WHEN throttle.window_start <= $3 THEN $2 ELSE throttle.window_start END \
             WHERE throttle.window_start <= $3 OR throttle.count < $4 \
             RETURNING count",
        )
        .bind(bucket)
        .bind(now.0)
        .bind(now.0 - window_secs)
        .bind(i64::from(limit))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        if claimed.is_some() {
            return Ok(None);
        }
        let row = sqlx::query("SELECT window_start FROM throttle WHERE bucket = $1")
            .bind(bucket)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match row {
            Some(r) => Ok(Some(r.try_get("window_start").map_err(db_err)?)),
            None => Ok(None),
        }
    }

    async fn throttle_release(&self, bucket: &str) -> StoreResult<()> {
        sqlx::query("UPDATE throttle SET count = count - 1 WHERE bucket = $1 AND count > 0")
            .bind(bucket)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
