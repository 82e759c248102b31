//! One-time codes. Each check counts a try in the same statement that reads the hash (a
//! claim), so parallel guesses cannot exceed the limit, and marking a code used is a
//! conditional update that exactly one caller wins.

use crate::Db;
use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::otp::{CodePolicy, Resend};
use portcullis_core::ports::{CodeAttempt, CodeWrites, NewCode, StoreResult};

use crate::sql::statements;
use crate::{db_err, SqlWork};

statements! {
    /// A new code for the step, replacing an unused one.
    CREATE_CODE = "INSERT INTO one_time_codes (step_hash, account_id, purpose, code_hash, \
        channel, created_at, expires_at, last_sent_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $6) \
        ON CONFLICT (step_hash) DO UPDATE SET code_hash = excluded.code_hash, \
        expires_at = excluded.expires_at, last_sent_at = excluded.last_sent_at, \
        sends = one_time_codes.sends + 1 \
        WHERE one_time_codes.used_at IS NULL";
    /// One try counted, in the statement that reads the hash (a claim).
    TRY_CODE = "UPDATE one_time_codes SET attempts = attempts + 1 \
        WHERE step_hash = $1 AND used_at IS NULL AND expires_at > $2 AND attempts < $3 \
        RETURNING code_hash, purpose, account_id, attempts";
    USE_CODE = "UPDATE one_time_codes SET used_at = $2 \
        WHERE step_hash = $1 AND used_at IS NULL AND expires_at > $2";
    RESEND_CODE = "UPDATE one_time_codes SET code_hash = $2, expires_at = $3, last_sent_at = $4, \
        sends = sends + 1 \
        WHERE step_hash = $1 AND used_at IS NULL AND last_sent_at <= $5 AND sends < $6";
    CODE_STATE = "SELECT last_sent_at, sends, used_at FROM one_time_codes WHERE step_hash = $1";
}

#[derive(sqlx::FromRow)]
struct AttemptRecord {
    code_hash: Vec<u8>,
    purpose: String,
    account_id: i64,
    attempts: i64,
}

#[derive(sqlx::FromRow)]
struct CodeState {
    last_sent_at: i64,
    sends: i64,
    used_at: Option<i64>,
}

/// Counts one try against the step's live code; `None` when there is none.
pub(crate) async fn try_code(
    pool: &Db,
    step_hash: &[u8; 32],
    now: UnixTime,
    max_tries: u32,
) -> StoreResult<Option<CodeAttempt>> {
    let row: Option<AttemptRecord> = sqlx::query_as(TRY_CODE)
        .bind(step_hash.to_vec())
        .bind(now.0)
        .bind(i64::from(max_tries))
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    Ok(row.map(|r| CodeAttempt {
        code_hash: r.code_hash,
        purpose: r.purpose,
        account_id: r.account_id,
        attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
    }))
}

#[async_trait]
impl CodeWrites for SqlWork {
    async fn create_code(&mut self, code: NewCode) -> StoreResult<()> {
        let now = self.stamp();
        sqlx::query(CREATE_CODE)
            .bind(code.step_hash.to_vec())
            .bind(code.account_id)
            .bind(code.purpose.as_str())
            .bind(code.code_hash.to_vec())
            .bind(code.channel.as_str())
            .bind(now)
            .bind(code.expires_at.0)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn use_code(&mut self, step_hash: &[u8; 32]) -> StoreResult<bool> {
        let now = self.stamp();
        let done = sqlx::query(USE_CODE)
            .bind(step_hash.to_vec())
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn resend_code(
        &mut self,
        step_hash: &[u8; 32],
        new_hash: &[u8; 32],
        policy: &CodePolicy,
    ) -> StoreResult<Resend> {
        let now = self.stamp();
        let conn = self.conn().await?;
        let done = sqlx::query(RESEND_CODE)
            .bind(step_hash.to_vec())
            .bind(new_hash.to_vec())
            .bind(now + policy.ttl_secs)
            .bind(now)
            .bind(now - policy.resend_after_secs)
            .bind(i64::from(policy.max_sends))
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 1 {
            return Ok(Resend::Sent);
        }
        let state: Option<CodeState> = sqlx::query_as(CODE_STATE)
            .bind(step_hash.to_vec())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(match state {
            None => Resend::NoCode,
            Some(s) if s.used_at.is_some() => Resend::NoCode,
            Some(s) if s.sends >= i64::from(policy.max_sends) => Resend::TooMany,
            Some(s) => Resend::TooSoon {
                retry_after: u64::try_from(s.last_sent_at + policy.resend_after_secs - now)
                    .unwrap_or(1)
                    .max(1),
            },
        })
    }
}
