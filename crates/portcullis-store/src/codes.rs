//! One-time codes. Each check counts a try in the same statement that reads the hash, so
//! parallel guesses cannot exceed the limit, and marking a code used is a conditional update
//! that exactly one caller wins.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::otp::Resend;
use portcullis_core::ports::{CodeAttempt, CodeStore, NewCode, Outgoing, StoreResult};
use sqlx::Row;

use crate::{db_err, SqlStore};

#[async_trait]
impl CodeStore for SqlStore {
    async fn create_code(&self, code: NewCode) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO one_time_codes (step_hash, account_id, purpose, code_hash, channel, \
             created_at, expires_at, last_sent_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $6) \
             ON CONFLICT (step_hash) DO UPDATE SET code_hash = excluded.code_hash, \
             expires_at = excluded.expires_at, last_sent_at = excluded.last_sent_at, \
             sends = one_time_codes.sends + 1 \
             WHERE one_time_codes.used_at IS NULL",
        )
        .bind(code.step_hash.to_vec())
        .bind(code.account_id)
        .bind(code.purpose)
        .bind(code.code_hash.to_vec())
        .bind(code.channel.as_str())
        .bind(code.now.0)
        .bind(code.expires_at.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        self.enqueue_tx(&mut tx, &code.messages, code.now)
            .await
            .map_err(db_err)?;
        crate::health::commit(tx).await
    }

    async fn try_code(
        &self,
        step_hash: &[u8; 32],
        now: UnixTime,
        max_tries: u32,
    ) -> StoreResult<Option<CodeAttempt>> {
        let row = sqlx::query(
            "UPDATE one_time_codes SET attempts = attempts + 1 \
             WHERE step_hash = $1 AND used_at IS NULL AND expires_at > $2 AND attempts < $3 \
             RETURNING code_hash, purpose, account_id, attempts",
        )
        .bind(step_hash.to_vec())
        .bind(now.0)
        .bind(i64::from(max_tries))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| -> Result<CodeAttempt, sqlx::Error> {
            let attempts: i64 = r.try_get("attempts")?;
            Ok(CodeAttempt {
                code_hash: r.try_get("code_hash")?,
                purpose: r.try_get("purpose")?,
                account_id: r.try_get("account_id")?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            })
        })
        .transpose()
        .map_err(db_err)
    }

    async fn use_code(&self, step_hash: &[u8; 32], now: UnixTime) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE one_time_codes SET used_at = $2 WHERE step_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(step_hash.to_vec())
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn resend_code(
        &self,
        step_hash: &[u8; 32],
        new_hash: &[u8; 32],
        now: UnixTime,
        ttl_secs: i64,
        resend_after_secs: i64,
        max_sends: u32,
        messages: &[Outgoing],
    ) -> StoreResult<Resend> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = sqlx::query(
            "UPDATE one_time_codes SET code_hash = $2, expires_at = $3, last_sent_at = $4, \
             sends = sends + 1 \
             WHERE step_hash = $1 AND used_at IS NULL AND last_sent_at <= $5 AND sends < $6",
        )
        .bind(step_hash.to_vec())
        .bind(new_hash.to_vec())
        .bind(now.0 + ttl_secs)
        .bind(now.0)
        .bind(now.0 - resend_after_secs)
        .bind(i64::from(max_sends))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 1 {
            self.enqueue_tx(&mut tx, messages, now)
                .await
                .map_err(db_err)?;
            crate::health::commit(tx).await?;
            return Ok(Resend::Sent);
        }
        drop(tx);
        let row = sqlx::query(
            "SELECT last_sent_at, sends, used_at FROM one_time_codes WHERE step_hash = $1",
        )
        .bind(step_hash.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(Resend::NoCode);
        };
        let used: Option<i64> = row.try_get("used_at").map_err(db_err)?;
        let sends: i64 = row.try_get("sends").map_err(db_err)?;
        let last: i64 = row.try_get("last_sent_at").map_err(db_err)?;
        Ok(if used.is_some() {
            Resend::NoCode
        } else if sends >= i64::from(max_sends) {
            Resend::TooMany
        } else {
            Resend::TooSoon {
                retry_after: u64::try_from(last + resend_after_secs - now.0)
                    .unwrap_or(1)
                    .max(1),
            }
        })
    }
}
