//! The lockout counters of accounts, known devices and an account's security answers. Each
//! is a count and a lock time (`failed_count`/`locked_until`; the answers'
//! `answer_failed_count`/`answers_locked_until` on the account's row), and each transition of `portcullis_core::lockout::LockState` is one
//! statement here: the claim and its release are claims (their own statements, taken before
//! the password is checked); setting the lock and the reset after a success are state
//! changes, inside a unit of work. `tests/conformance/lockout.rs` proves the statements and
//! the pure machine equal, step by step, on both databases.

use crate::Db;
use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::lockout::Claim;
use portcullis_core::ports::{Counter, LockWrites, StoreResult};

use crate::sql::statements;
use crate::{db_err, SqlWork};

/// An attempt slot, for `$table`: an expired lock starts a fresh count; otherwise a slot is
/// taken only below the limit.
macro_rules! claim {
    ($table:literal) => {
        claim!($table, "failed_count", "locked_until")
    };
    ($table:literal, $count:literal, $until:literal) => {
        concat!(
            "UPDATE ",
            $table,
            " SET ",
            $count,
            " = CASE WHEN ",
            $until,
            " IS NOT NULL THEN 1 ELSE ",
            $count,
            " + 1 END, ",
            $until,
            " = NULL \
             WHERE id = $1 \
               AND (",
            $until,
            " IS NULL OR ",
            $until,
            " <= $2) \
               AND (",
            $count,
            " < $3 OR ",
            $until,
            " IS NOT NULL) \
             RETURNING ",
            $count
        )
    };
}

statements! {
    CLAIM_ACCOUNT = claim!("online_accounts");
    CLAIM_DEVICE = claim!("devices");
    LOCKED_UNTIL_ACCOUNT = "SELECT locked_until FROM online_accounts WHERE id = $1";
    LOCKED_UNTIL_DEVICE = "SELECT locked_until FROM devices WHERE id = $1";
    LOCK_ACCOUNT = "UPDATE online_accounts SET locked_until = $2 \
        WHERE id = $1 AND locked_until IS NULL";
    LOCK_DEVICE = "UPDATE devices SET locked_until = $2 WHERE id = $1 AND locked_until IS NULL";
    RELEASE_ACCOUNT = "UPDATE online_accounts SET failed_count = CASE WHEN failed_count > 0 \
        THEN failed_count - 1 ELSE 0 END WHERE id = $1";
    RELEASE_DEVICE = "UPDATE devices SET failed_count = CASE WHEN failed_count > 0 \
        THEN failed_count - 1 ELSE 0 END WHERE id = $1";
    RESET_ACCOUNT = "UPDATE online_accounts SET failed_count = 0 \
        WHERE id = $1 AND failed_count <> 0";
    RESET_DEVICE = "UPDATE devices SET failed_count = 0 WHERE id = $1 AND failed_count <> 0";
    /// Security answers: the account's own counter for them, across recovery steps.
    CLAIM_ANSWERS = claim!("online_accounts", "answer_failed_count", "answers_locked_until");
    LOCKED_UNTIL_ANSWERS = "SELECT answers_locked_until FROM online_accounts WHERE id = $1";
    LOCK_ANSWERS = "UPDATE online_accounts SET answers_locked_until = $2 \
        WHERE id = $1 AND answers_locked_until IS NULL";
    RELEASE_ANSWERS = "UPDATE online_accounts SET answer_failed_count = CASE \
        WHEN answer_failed_count > 0 THEN answer_failed_count - 1 ELSE 0 END WHERE id = $1";
    RESET_ANSWERS = "UPDATE online_accounts SET answer_failed_count = 0 \
        WHERE id = $1 AND answer_failed_count <> 0";
}

/// The counter's id and its statements: (claim, locked until, lock, release, reset).
fn on(counter: Counter) -> (i64, [&'static str; 5]) {
    match counter {
        Counter::Account(id) => (
            id,
            [
                CLAIM_ACCOUNT,
                LOCKED_UNTIL_ACCOUNT,
                LOCK_ACCOUNT,
                RELEASE_ACCOUNT,
                RESET_ACCOUNT,
            ],
        ),
        Counter::Device(id) => (
            id,
            [
                CLAIM_DEVICE,
                LOCKED_UNTIL_DEVICE,
                LOCK_DEVICE,
                RELEASE_DEVICE,
                RESET_DEVICE,
            ],
        ),
        Counter::Answers(id) => (
            id,
            [
                CLAIM_ANSWERS,
                LOCKED_UNTIL_ANSWERS,
                LOCK_ANSWERS,
                RELEASE_ANSWERS,
                RESET_ANSWERS,
            ],
        ),
    }
}

/// Takes an attempt slot ([`Claim`]); when none is taken, reads why.
pub(crate) async fn claim(
    pool: &Db,
    counter: Counter,
    now: UnixTime,
    limit: u32,
) -> StoreResult<Claim> {
    let (id, [claim, locked_until, ..]) = on(counter);
    let claimed: Option<i64> = sqlx::query_scalar(claim)
        .bind(id)
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    if let Some(n) = claimed {
        return Ok(Claim::Granted(u32::try_from(n).unwrap_or(u32::MAX)));
    }
    let until: Option<Option<i64>> = sqlx::query_scalar(locked_until)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    Ok(match until.flatten() {
        Some(t) if t > now.0 => Claim::Locked(UnixTime(t)),
        _ => Claim::Exhausted,
    })
}

/// Gives back a claimed slot.
pub(crate) async fn release(pool: &Db, counter: Counter) -> StoreResult<()> {
    let (id, [.., release, _]) = on(counter);
    sqlx::query(release)
        .bind(id)
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl LockWrites for SqlWork {
    async fn lock(&mut self, counter: Counter, until: UnixTime) -> StoreResult<bool> {
        let (id, [_, _, lock, ..]) = on(counter);
        let done = sqlx::query(lock)
            .bind(id)
            .bind(until.0)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn reset_failures(&mut self, counter: Counter) -> StoreResult<()> {
        let (id, [.., reset]) = on(counter);
        sqlx::query(reset)
            .bind(id)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
