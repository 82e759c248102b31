//! The card ID limit per card (`portcullis_core::card_guard`): the claim and its release
//! are claims (one atomic statement each on the pool, taken before the card ID is
//! compared); pausing and support's clear are state changes inside a unit of work.
//! `tests/conformance/card_guard.rs` proves the statements and the pure `CardGuard` equal
//! on both databases, and that parallel guesses never get past the limit.

use crate::Db;
use async_trait::async_trait;
use portcullis_core::card_guard::{CardGuardPolicy, GuardClaim};
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{CardGuardWrites, StoreResult};

use crate::sql::statements;
use crate::{db_err, SqlWork};

statements! {
    /// A paused card takes no try. A window that has closed starts again at 1; an open one
    /// grows only below the limit.
    CLAIM = "INSERT INTO card_guard (registry_record_id, tries, window_start) \
        VALUES ($1, 1, $2) \
        ON CONFLICT (registry_record_id) DO UPDATE SET \
          tries = CASE WHEN card_guard.window_start <= $3 THEN 1 ELSE card_guard.tries + 1 END, \
          window_start = CASE WHEN card_guard.window_start <= $3 THEN $2 \
                         ELSE card_guard.window_start END \
        WHERE card_guard.paused_at IS NULL \
          AND (card_guard.window_start <= $3 OR card_guard.tries < $4) \
        RETURNING tries";
    RELEASE = "UPDATE card_guard SET tries = tries - 1 \
        WHERE registry_record_id = $1 AND tries > 0";
    PAUSE = "UPDATE card_guard SET paused_at = $2 \
        WHERE registry_record_id = $1 AND paused_at IS NULL";
    CLEAR = "DELETE FROM card_guard WHERE registry_record_id = $1 RETURNING paused_at";
    /// The holder's way back: a card ID try counted on a paused card, below the limit.
    UNPAUSE_CLAIM = "UPDATE card_guard SET unpause_tries = unpause_tries + 1 \
        WHERE registry_record_id = $1 AND paused_at IS NOT NULL AND unpause_tries < $2 \
        RETURNING unpause_tries";
    PAUSED = "SELECT COUNT(*) FROM card_guard \
        WHERE registry_record_id = $1 AND paused_at IS NOT NULL";
}

pub(crate) async fn claim(
    pool: &Db,
    record_id: i64,
    now: UnixTime,
    policy: CardGuardPolicy,
) -> StoreResult<GuardClaim> {
    let claimed: Option<i64> = sqlx::query_scalar(CLAIM)
        .bind(record_id)
        .bind(now.0)
        .bind(now.0 - policy.window_secs)
        .bind(i64::from(policy.failures))
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    Ok(match claimed {
        Some(n) => GuardClaim::Granted(u32::try_from(n).unwrap_or(u32::MAX)),
        None => GuardClaim::Refused,
    })
}

pub(crate) async fn release(pool: &Db, record_id: i64) -> StoreResult<()> {
    sqlx::query(RELEASE)
        .bind(record_id)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

pub(crate) async fn unpause_claim(
    pool: &Db,
    record_id: i64,
    policy: CardGuardPolicy,
) -> StoreResult<Option<u32>> {
    let claimed: Option<i64> = sqlx::query_scalar(UNPAUSE_CLAIM)
        .bind(record_id)
        .bind(i64::from(policy.failures))
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    Ok(claimed.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
}

pub(crate) async fn paused(pool: &Db, record_id: i64) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(PAUSED)
        .bind(record_id)
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    Ok(n > 0)
}

#[async_trait]
impl CardGuardWrites for SqlWork {
    async fn pause_card(&mut self, record_id: i64) -> StoreResult<bool> {
        let now = self.stamp();
        let done = sqlx::query(PAUSE)
            .bind(record_id)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn clear_card_guard(&mut self, record_id: i64) -> StoreResult<bool> {
        let gone: Option<Option<i64>> = sqlx::query_scalar(CLEAR)
            .bind(record_id)
            .fetch_optional(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(gone.flatten().is_some())
    }
}
