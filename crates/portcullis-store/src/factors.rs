//! Second factors and recovery codes. Taking a TOTP step and using a recovery code are
//! conditional updates that exactly one caller wins, so a code is never accepted twice.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{
    FactorKind, FactorReads, FactorRow, FactorWrites, NewFactor, StoreError, StoreResult,
};

use crate::sql::statements;
use crate::{db_err, SqlStore, SqlWork};

macro_rules! factor_select {
    () => {
        "SELECT id, account_id, kind, name, secret, credential_id, confirmed, last_step, \
         created_at, last_used_at FROM factors"
    };
}

statements! {
    LIST_FACTORS = concat!(factor_select!(), " WHERE account_id = $1 ORDER BY id");
    FACTOR_BY_CREDENTIAL = concat!(factor_select!(), " WHERE credential_id = $1");
    RECOVERY_CODE_CANDIDATES = "SELECT id, code_hash FROM recovery_codes \
        WHERE account_id = $1 AND hint = $2 AND used_at IS NULL ORDER BY id";
    RECOVERY_CODES_LEFT = "SELECT COUNT(*) FROM recovery_codes \
        WHERE account_id = $1 AND used_at IS NULL";
    /// An unconfirmed authenticator replaces an earlier unconfirmed one.
    DELETE_UNCONFIRMED = "DELETE FROM factors WHERE account_id = $1 AND kind = $2 \
        AND confirmed = 0";
    /// One factor of each code channel: enabling it again changes nothing.
    DELETE_OF_KIND = "DELETE FROM factors WHERE account_id = $1 AND kind = $2";
    CREATE_FACTOR = "INSERT INTO factors (account_id, kind, name, secret, credential_id, \
        confirmed, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
    CONFIRM_FACTOR = "UPDATE factors SET confirmed = 1, last_step = $3 \
        WHERE id = $1 AND account_id = $2 AND confirmed = 0";
    /// `kind` is bound: `$3` is always 'totp'.
    DELETE_OTHER_OF_KIND = "DELETE FROM factors WHERE account_id = $1 AND kind = $3 AND id <> $2";
    TAKE_TOTP_STEP = "UPDATE factors SET last_step = $2, last_used_at = $3 \
        WHERE id = $1 AND confirmed = 1 AND (last_step IS NULL OR last_step < $2)";
    TOUCH_FACTOR = "UPDATE factors SET last_used_at = $2, secret = COALESCE($3, secret) \
        WHERE id = $1";
    RENAME_FACTOR = "UPDATE factors SET name = $3 WHERE id = $1 AND account_id = $2";
    DELETE_FACTOR = "DELETE FROM factors WHERE id = $1 AND account_id = $2";
    DELETE_RECOVERY_CODES = "DELETE FROM recovery_codes WHERE account_id = $1";
    /// "This was not me": what was added since the disputed sign-in goes.
    DELETE_FACTORS_SINCE = "DELETE FROM factors WHERE account_id = $1 AND created_at >= $2";
    DELETE_RECOVERY_CODES_SINCE = "DELETE FROM recovery_codes \
        WHERE account_id = $1 AND created_at >= $2";
    INSERT_RECOVERY_CODE = "INSERT INTO recovery_codes (account_id, hint, code_hash, created_at) \
        VALUES ($1, $2, $3, $4)";
    USE_RECOVERY_CODE = "UPDATE recovery_codes SET used_at = $3 \
        WHERE id = $1 AND account_id = $2 AND used_at IS NULL";
}

#[derive(sqlx::FromRow)]
struct FactorRecord {
    id: i64,
    account_id: i64,
    kind: String,
    name: String,
    secret: Option<String>,
    credential_id: Option<String>,
    confirmed: i64,
    last_step: Option<i64>,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl TryFrom<FactorRecord> for FactorRow {
    type Error = StoreError;

    fn try_from(r: FactorRecord) -> StoreResult<Self> {
        Ok(FactorRow {
            id: r.id,
            account_id: r.account_id,
            kind: FactorKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Internal(format!("unknown factor kind {:?}", r.kind)))?,
            name: r.name,
            secret: r.secret,
            credential_id: r.credential_id,
            confirmed: r.confirmed != 0,
            last_step: r.last_step,
            created_at: UnixTime(r.created_at),
            last_used_at: r.last_used_at.map(UnixTime),
        })
    }
}

#[async_trait]
impl FactorReads for SqlStore {
    async fn list_factors(&self, account_id: i64) -> StoreResult<Vec<FactorRow>> {
        let rows: Vec<FactorRecord> = sqlx::query_as(LIST_FACTORS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(FactorRow::try_from).collect()
    }

    async fn factor_by_credential(&self, credential_id: &str) -> StoreResult<Option<FactorRow>> {
        let row: Option<FactorRecord> = sqlx::query_as(FACTOR_BY_CREDENTIAL)
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(FactorRow::try_from).transpose()
    }

    async fn recovery_code_candidates(
        &self,
        account_id: i64,
        hint: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        sqlx::query_as(RECOVERY_CODE_CANDIDATES)
            .bind(account_id)
            .bind(hint)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn recovery_codes_left(&self, account_id: i64) -> StoreResult<i64> {
        sqlx::query_scalar(RECOVERY_CODES_LEFT)
            .bind(account_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }
}

#[async_trait]
impl FactorWrites for SqlWork {
    async fn create_factor(&mut self, new: NewFactor) -> StoreResult<i64> {
        let now = self.stamp();
        let conn = self.conn().await?;
        // Several passkeys per account; one of every other kind.
        let replaced = match (new.kind, new.confirmed) {
            (FactorKind::Passkey, _) => None,
            (_, false) => Some(DELETE_UNCONFIRMED),
            (_, true) => Some(DELETE_OF_KIND),
        };
        if let Some(sql) = replaced {
            sqlx::query(sql)
                .bind(new.account_id)
                .bind(new.kind.as_str())
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        sqlx::query_scalar(CREATE_FACTOR)
            .bind(new.account_id)
            .bind(new.kind.as_str())
            .bind(new.name)
            .bind(new.secret)
            .bind(new.credential_id)
            .bind(i64::from(new.confirmed))
            .bind(now)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)
    }

    async fn confirm_factor(&mut self, id: i64, account_id: i64, step: i64) -> StoreResult<bool> {
        let conn = self.conn().await?;
        let done = sqlx::query(CONFIRM_FACTOR)
            .bind(id)
            .bind(account_id)
            .bind(step)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        // The confirmed authenticator replaces any other of the account.
        sqlx::query(DELETE_OTHER_OF_KIND)
            .bind(account_id)
            .bind(id)
            .bind(FactorKind::Totp.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(true)
    }

    async fn take_totp_step(&mut self, id: i64, step: i64) -> StoreResult<bool> {
        let now = self.stamp();
        let done = sqlx::query(TAKE_TOTP_STEP)
            .bind(id)
            .bind(step)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_factor(&mut self, id: i64, secret: Option<&str>) -> StoreResult<()> {
        let now = self.stamp();
        sqlx::query(TOUCH_FACTOR)
            .bind(id)
            .bind(now)
            .bind(secret)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn rename_factor(&mut self, id: i64, account_id: i64, name: &str) -> StoreResult<bool> {
        let done = sqlx::query(RENAME_FACTOR)
            .bind(id)
            .bind(account_id)
            .bind(name)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_factors_since(&mut self, account_id: i64, since: UnixTime) -> StoreResult<u64> {
        let conn = self.conn().await?;
        let factors = sqlx::query(DELETE_FACTORS_SINCE)
            .bind(account_id)
            .bind(since.0)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        let codes = sqlx::query(DELETE_RECOVERY_CODES_SINCE)
            .bind(account_id)
            .bind(since.0)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(factors.rows_affected() + codes.rows_affected())
    }

    async fn delete_factor(&mut self, id: i64, account_id: i64) -> StoreResult<bool> {
        let done = sqlx::query(DELETE_FACTOR)
            .bind(id)
            .bind(account_id)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(
        &mut self,
        account_id: i64,
        codes: &[(i64, String)],
    ) -> StoreResult<()> {
        let now = self.stamp();
        let conn = self.conn().await?;
        sqlx::query(DELETE_RECOVERY_CODES)
            .bind(account_id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        for (hint, hash) in codes {
            sqlx::query(INSERT_RECOVERY_CODE)
                .bind(account_id)
                .bind(*hint)
                .bind(hash.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    async fn use_recovery_code(&mut self, account_id: i64, id: i64) -> StoreResult<Option<i64>> {
        let now = self.stamp();
        let conn = self.conn().await?;
        let done = sqlx::query(USE_RECOVERY_CODE)
            .bind(id)
            .bind(account_id)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let left: i64 = sqlx::query_scalar(RECOVERY_CODES_LEFT)
            .bind(account_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(Some(left))
    }
}
