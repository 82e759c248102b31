//! The lockout counters of accounts and known devices. Both tables carry `failed_count` and
//! `locked_until`, and each transition of `portcullis_core::lockout` is one statement here.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::lockout::Claim;
use portcullis_core::ports::{Counter, LockoutStore, Outgoing, StoreResult};
use sqlx::Row;

use crate::{db_err, SqlStore};

fn target(counter: Counter) -> (&'static str, i64) {
    match counter {
        Counter::Account(id) => ("online_accounts", id),
        Counter::Device(id) => ("devices", id),
    }
}

#[async_trait]
impl LockoutStore for SqlStore {
    async fn claim_attempt(
        &self,
        counter: Counter,
        now: UnixTime,
        limit: u32,
    ) -> StoreResult<Claim> {
        let (table, id) = target(counter);
        // An expired lock starts a fresh count; otherwise a slot is taken only below the limit.
        let sql = format!(
            "UPDATE {table} SET \
               failed_count = CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failed_count + 1 END, \
               locked_until = NULL \
             WHERE id = $1 \
               AND (locked_until IS NULL OR locked_until <= $2) \
               AND (failed_count < $3 OR locked_until IS NOT NULL) \
             RETURNING failed_count"
        );
        let claimed = sqlx::query(&sql)
            .bind(id)
            .bind(now.0)
            .bind(i64::from(limit))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        if let Some(row) = claimed {
            let n: i64 = row.try_get("failed_count").map_err(db_err)?;
            return Ok(Claim::Granted(u32::try_from(n).unwrap_or(u32::MAX)));
        }
        let row = sqlx::query(&format!("SELECT locked_until FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let until = match row {
            Some(r) => r
                .try_get::<Option<i64>, _>("locked_until")
                .map_err(db_err)?,
            None => None,
        };
        Ok(match until {
            Some(t) if t > now.0 => Claim::Locked(UnixTime(t)),
            _ => Claim::Exhausted,
        })
    }

    async fn lock(
        &self,
        counter: Counter,
        now: UnixTime,
        until: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool> {
        let (table, id) = target(counter);
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = sqlx::query(&format!(
            "UPDATE {table} SET locked_until = $2 WHERE id = $1 AND locked_until IS NULL"
        ))
        .bind(id)
        .bind(until.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let locked = done.rows_affected() == 1;
        if locked {
            // The lock and the owner's notice commit together.
            self.enqueue_tx(&mut tx, messages, now)
                .await
                .map_err(db_err)?;
        }
        crate::health::commit(tx).await?;
        Ok(locked)
    }

    async fn release_attempt(&self, counter: Counter) -> StoreResult<()> {
        let (table, id) = target(counter);
        sqlx::query(&format!(
            "UPDATE {table} SET failed_count = CASE WHEN failed_count > 0 \
             THEN failed_count - 1 ELSE 0 END WHERE id = $1"
        ))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn reset_failures(&self, counter: Counter) -> StoreResult<()> {
        let (table, id) = target(counter);
        sqlx::query(&format!(
            "UPDATE {table} SET failed_count = 0 WHERE id = $1 AND failed_count <> 0"
        ))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}
