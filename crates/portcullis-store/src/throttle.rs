//! Throttle buckets: one atomic upsert claims a place in a fixed window, or reports the
//! bucket full, so parallel requests cannot slip past the limit (a claim: see
//! `portcullis_core::ports::Claims`). `tests/conformance/limits.rs` proves the statements
//! and the pure `portcullis_core::throttle::Bucket` equal on both databases.

use crate::Db;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::StoreResult;

use crate::db_err;
use crate::sql::statements;

statements! {
    /// A window that has closed starts again at 1; an open one grows only below the limit.
    CLAIM = "INSERT INTO throttle (bucket, window_start, count) VALUES ($1, $2, 1) \
        ON CONFLICT (bucket) DO UPDATE SET \
          count = CASE WHEN throttle.window_start <= $3 THEN 1 ELSE throttle.count + 1 END, \
          window_start = CASE WHEN throttle.window_start <= $3 THEN $2 \
                         ELSE throttle.window_start END \
        WHERE throttle.window_start <= $3 OR throttle.count < $4 \
        RETURNING count";
    WINDOW_START = "SELECT window_start FROM throttle WHERE bucket = $1";
    RELEASE = "UPDATE throttle SET count = count - 1 WHERE bucket = $1 AND count > 0";
}

/// `None` when a place was taken; `Some(window_start)` when the bucket is full.
pub(crate) async fn claim(
    pool: &Db,
    bucket: &str,
    now: UnixTime,
    window_secs: i64,
    limit: u32,
) -> StoreResult<Option<i64>> {
    let claimed: Option<i64> = sqlx::query_scalar(CLAIM)
        .bind(bucket)
        .bind(now.0)
        .bind(now.0 - window_secs)
        .bind(i64::from(limit))
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    if claimed.is_some() {
        return Ok(None);
    }
    sqlx::query_scalar(WINDOW_START)
        .bind(bucket)
        .fetch_optional(pool)
        .await
        .map_err(db_err)
}

pub(crate) async fn release(pool: &Db, bucket: &str) -> StoreResult<()> {
    sqlx::query(RELEASE)
        .bind(bucket)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}
