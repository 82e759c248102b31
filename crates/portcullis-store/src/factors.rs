//! Second factors and recovery codes. Taking a TOTP step and using a recovery code are
//! conditional updates that exactly one caller wins, so a code is never accepted twice.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{FactorKind, FactorRow, FactorStore, NewFactor, StoreResult};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{db_err, SqlStore};

const SELECT_FACTOR: &str = "SELECT id, account_id, kind, name, secret, credential_id, \
     confirmed, last_step, created_at, last_used_at FROM factors";

fn factor_row(r: &AnyRow) -> Result<FactorRow, sqlx::Error> {
    let kind: String = r.try_get("kind")?;
    let confirmed: i64 = r.try_get("confirmed")?;
    Ok(FactorRow {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        kind: FactorKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown factor kind {kind:?}").into()))?,
        name: r.try_get("name")?,
        secret: r.try_get("secret")?,
        credential_id: r.try_get("credential_id")?,
        confirmed: confirmed != 0,
        last_step: r.try_get("last_step")?,
        created_at: UnixTime(r.try_get("created_at")?),
        last_used_at: r.try_get::<Option<i64>, _>("last_used_at")?.map(UnixTime),
    })
}

#[async_trait]
impl FactorStore for SqlStore {
    async fn create_factor(&self, new: NewFactor) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if new.kind == FactorKind::Passkey {
            // Several passkeys per account.
        } else if !new.confirmed {
            sqlx::query(
                "DELETE FROM factors WHERE account_id = $1 AND kind = $2 AND confirmed = 0",
            )
            .bind(new.account_id)
            .bind(new.kind.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        } else {
            // One factor of each code channel: enabling it again changes nothing.
            sqlx::query("DELETE FROM factors WHERE account_id = $1 AND kind = $2")
                .bind(new.account_id)
                .bind(new.kind.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let row = sqlx::query(
            "INSERT INTO factors (account_id, kind, name, secret, credential_id, confirmed, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(new.account_id)
        .bind(new.kind.as_str())
        .bind(new.name)
        .bind(new.secret)
        .bind(new.credential_id)
        .bind(i64::from(new.confirmed))
        .bind(new.now.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let id: i64 = row.try_get("id").map_err(db_err)?;
        crate::health::commit(tx).await?;
        Ok(id)
    }

    async fn list_factors(&self, account_id: i64) -> StoreResult<Vec<FactorRow>> {
        let rows = sqlx::query(&format!(
            "{SELECT_FACTOR} WHERE account_id = $1 ORDER BY id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(factor_row)
            .collect::<Result<_, _>>()
            .map_err(db_err)
    }

    async fn confirm_factor(&self, id: i64, account_id: i64, step: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = sqlx::query(
            "UPDATE factors SET confirmed = 1, last_step = $3 \
             WHERE id = $1 AND account_id = $2 AND confirmed = 0",
        )
        .bind(id)
        .bind(account_id)
        .bind(step)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM factors WHERE account_id = $1 AND kind = 'totp' AND id <> $2")
            .bind(account_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        crate::health::commit(tx).await?;
        Ok(true)
    }

    async fn take_totp_step(&self, id: i64, step: i64, now: UnixTime) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE factors SET last_step = $2, last_used_at = $3 \
             WHERE id = $1 AND confirmed = 1 AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(id)
        .bind(step)
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_factor(&self, id: i64, secret: Option<&str>, now: UnixTime) -> StoreResult<()> {
        sqlx::query(
            "UPDATE factors SET last_used_at = $2, secret = COALESCE($3, secret) WHERE id = $1",
        )
        .bind(id)
        .bind(now.0)
        .bind(secret)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn factor_by_credential(&self, credential_id: &str) -> StoreResult<Option<FactorRow>> {
        let row = sqlx::query(&format!("{SELECT_FACTOR} WHERE credential_id = $1"))
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(factor_row).transpose().map_err(db_err)
    }

    async fn rename_factor(&self, id: i64, account_id: i64, name: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE factors SET name = $3 WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account_id)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_factor(&self, id: i64, account_id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM factors WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(
        &self,
        account_id: i64,
        codes: &[(i64, String)],
        now: UnixTime,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for (hint, hash) in codes {
            sqlx::query(
                "INSERT INTO recovery_codes (account_id, hint, code_hash, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(account_id)
            .bind(*hint)
            .bind(hash.as_str())
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        crate::health::commit(tx).await
    }

    async fn recovery_code_candidates(
        &self,
        account_id: i64,
        hint: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT id, code_hash FROM recovery_codes \
             WHERE account_id = $1 AND hint = $2 AND used_at IS NULL ORDER BY id",
        )
        .bind(account_id)
        .bind(hint)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("code_hash")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_err)
    }

    async fn use_recovery_code(&self, id: i64, now: UnixTime) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE recovery_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
                .bind(id)
                .bind(now.0)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_codes_left(&self, account_id: i64) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL",
        )
        .bind(account_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        row.try_get("n").map_err(db_err)
    }
}
