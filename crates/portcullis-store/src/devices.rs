//! Known devices, held by the hash of their device token.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{DeviceRow, DeviceStore, StoreResult};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{db_err, SqlStore};

const SELECT_DEVICE: &str = "SELECT id, account_id, created_at, last_seen_at, user_agent, \
     failed_count, locked_until, trusted_until FROM devices";

fn device_row(r: &AnyRow) -> Result<DeviceRow, sqlx::Error> {
    let failed: i64 = r.try_get("failed_count")?;
    Ok(DeviceRow {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        created_at: UnixTime(r.try_get("created_at")?),
        last_seen_at: UnixTime(r.try_get("last_seen_at")?),
        user_agent: r.try_get("user_agent")?,
        failed_count: u32::try_from(failed).unwrap_or(u32::MAX),
        locked_until: r.try_get::<Option<i64>, _>("locked_until")?.map(UnixTime),
        trusted_until: r.try_get::<Option<i64>, _>("trusted_until")?.map(UnixTime),
    })
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn create_device(
        &self,
        account_id: i64,
        token_hash: &[u8; 32],
        now: UnixTime,
        user_agent: Option<&str>,
    ) -> StoreResult<i64> {
        let row = sqlx::query(
            "INSERT INTO devices (account_id, token_hash, created_at, last_seen_at, user_agent) \
             VALUES ($1, $2, $3, $3, $4) RETURNING id",
        )
        .bind(account_id)
        .bind(token_hash.to_vec())
        .bind(now.0)
        .bind(user_agent.map(|ua| ua.chars().take(300).collect::<String>()))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        row.try_get("id").map_err(db_err)
    }

    async fn device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<DeviceRow>> {
        let row = sqlx::query(&format!("{SELECT_DEVICE} WHERE token_hash = $1"))
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(device_row).transpose().map_err(db_err)
    }

    async fn touch_device(&self, id: i64, now: UnixTime) -> StoreResult<()> {
        sqlx::query("UPDATE devices SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2")
            .bind(id)
            .bind(now.0)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn list_devices(&self, account_id: i64) -> StoreResult<Vec<DeviceRow>> {
        let rows = sqlx::query(&format!(
            "{SELECT_DEVICE} WHERE account_id = $1 ORDER BY last_seen_at DESC"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(device_row)
            .collect::<Result<_, _>>()
            .map_err(db_err)
    }

    async fn set_device_trust(
        &self,
        id: i64,
        account_id: i64,
        until: Option<UnixTime>,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE devices SET trusted_until = $3 WHERE id = $1 AND account_id = $2")
                .bind(id)
                .bind(account_id)
                .bind(until.map(|t| t.0))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn forget_devices(&self, account_id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM devices WHERE account_id = $1")
            .bind(account_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
