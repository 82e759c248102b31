//! Leases of scheduled jobs (the inactivity job): one conditional UPDATE per claim, atomic
//! on both databases — the row is locked (PostgreSQL) or the database is (SQLite) while the
//! condition is evaluated — so of two nodes one wins. A node stopped in the middle of a
//! run gives its lease back (`release`), so that the next node to try runs the job.

use crate::Db;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::StoreResult;

use crate::db_err;
use crate::sql::statements;

statements! {
    CLAIM_JOB = "UPDATE job_leases SET holder = $2, lease_until = $3 \
        WHERE name = $1 AND lease_until <= $4";
    RELEASE_JOB = "UPDATE job_leases SET lease_until = 0 WHERE name = $1 AND holder = $2";
}

pub(crate) async fn claim(
    pool: &Db,
    job: &str,
    node: &str,
    now: UnixTime,
    until: UnixTime,
) -> StoreResult<bool> {
    let done = sqlx::query(CLAIM_JOB)
        .bind(job)
        .bind(node)
        .bind(until.0)
        .bind(now.0)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

/// Ends `node`'s lease of `job` now; false when another node holds it.
pub(crate) async fn release(pool: &Db, job: &str, node: &str) -> StoreResult<bool> {
    let done = sqlx::query(RELEASE_JOB)
        .bind(job)
        .bind(node)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}
