//! Known devices, held by the hash of their device token.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{DeviceReads, DeviceRow, DeviceWrites, StoreResult};

use crate::sql::statements;
use crate::{db_err, SqlStore, SqlWork};

/// A device's columns, of the table or of `$prefix` in a join, in [`DeviceRecord`]'s names
/// (prefixed, so that they stand beside an account's in one row).
macro_rules! device_columns {
    ($prefix:literal) => {
        concat!(
            $prefix,
            "id AS device_id, ",
            $prefix,
            "account_id AS device_account_id, ",
            $prefix,
            "created_at AS device_created_at, ",
            $prefix,
            "last_seen_at AS device_last_seen_at, ",
            $prefix,
            "user_agent AS device_user_agent, ",
            $prefix,
            "failed_count AS device_failed_count, ",
            $prefix,
            "locked_until AS device_locked_until, ",
            $prefix,
            "trusted_until AS device_trusted_until"
        )
    };
}

pub(crate) use device_columns;

statements! {
    DEVICE_BY_TOKEN = concat!("SELECT ", device_columns!(""),
        " FROM devices WHERE token_hash = $1");
    LIST_DEVICES = concat!("SELECT ", device_columns!(""),
        " FROM devices WHERE account_id = $1 ORDER BY last_seen_at DESC");
    CREATE_DEVICE = "INSERT INTO devices (account_id, token_hash, created_at, last_seen_at, \
        user_agent) VALUES ($1, $2, $3, $3, $4) RETURNING id";
    TOUCH_DEVICE = "UPDATE devices SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2";
    SET_DEVICE_TRUST = "UPDATE devices SET trusted_until = $3 WHERE id = $1 AND account_id = $2";
    FORGET_DEVICES = "DELETE FROM devices WHERE account_id = $1";
    UNTRUST_DEVICES = "UPDATE devices SET trusted_until = NULL \
        WHERE account_id = $1 AND trusted_until IS NOT NULL";
}

#[derive(sqlx::FromRow)]
struct DeviceRecord {
    device_id: i64,
    device_account_id: i64,
    device_created_at: i64,
    device_last_seen_at: i64,
    device_user_agent: Option<String>,
    device_failed_count: i64,
    device_locked_until: Option<i64>,
    device_trusted_until: Option<i64>,
}

impl From<DeviceRecord> for DeviceRow {
    fn from(r: DeviceRecord) -> Self {
        DeviceRow {
            id: r.device_id,
            account_id: r.device_account_id,
            created_at: UnixTime(r.device_created_at),
            last_seen_at: UnixTime(r.device_last_seen_at),
            user_agent: r.device_user_agent,
            failed_count: u32::try_from(r.device_failed_count).unwrap_or(u32::MAX),
            locked_until: r.device_locked_until.map(UnixTime),
            trusted_until: r.device_trusted_until.map(UnixTime),
        }
    }
}

/// [`DeviceRecord`] as read through an outer join ([`device_columns`]): every column absent
/// when no device matched.
#[derive(sqlx::FromRow)]
pub(crate) struct JoinedDeviceRecord {
    device_id: Option<i64>,
    device_account_id: Option<i64>,
    device_created_at: Option<i64>,
    device_last_seen_at: Option<i64>,
    device_user_agent: Option<String>,
    device_failed_count: Option<i64>,
    device_locked_until: Option<i64>,
    device_trusted_until: Option<i64>,
}

impl JoinedDeviceRecord {
    /// The device, if one matched.
    pub(crate) fn device(self) -> Option<DeviceRow> {
        Some(DeviceRow::from(DeviceRecord {
            device_id: self.device_id?,
            device_account_id: self.device_account_id?,
            device_created_at: self.device_created_at?,
            device_last_seen_at: self.device_last_seen_at?,
            device_user_agent: self.device_user_agent,
            device_failed_count: self.device_failed_count?,
            device_locked_until: self.device_locked_until,
            device_trusted_until: self.device_trusted_until,
        }))
    }
}

/// A user agent as stored: at most 300 characters.
pub(crate) fn clip_user_agent(ua: Option<&str>) -> Option<String> {
    ua.map(|ua| ua.chars().take(300).collect())
}

#[async_trait]
impl DeviceReads for SqlStore {
    async fn device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<DeviceRow>> {
        let row: Option<DeviceRecord> = sqlx::query_as(DEVICE_BY_TOKEN)
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.map(DeviceRow::from))
    }

    async fn list_devices(&self, account_id: i64) -> StoreResult<Vec<DeviceRow>> {
        let rows: Vec<DeviceRecord> = sqlx::query_as(LIST_DEVICES)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(DeviceRow::from).collect())
    }
}

#[async_trait]
impl DeviceWrites for SqlWork {
    async fn create_device(
        &mut self,
        account_id: i64,
        token_hash: &[u8; 32],
        user_agent: Option<&str>,
    ) -> StoreResult<i64> {
        let now = self.stamp();
        sqlx::query_scalar(CREATE_DEVICE)
            .bind(account_id)
            .bind(token_hash.to_vec())
            .bind(now)
            .bind(clip_user_agent(user_agent))
            .fetch_one(self.conn().await?)
            .await
            .map_err(db_err)
    }

    async fn touch_device(&mut self, id: i64) -> StoreResult<()> {
        let now = self.stamp();
        sqlx::query(TOUCH_DEVICE)
            .bind(id)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_device_trust(
        &mut self,
        id: i64,
        account_id: i64,
        until: Option<UnixTime>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(SET_DEVICE_TRUST)
            .bind(id)
            .bind(account_id)
            .bind(until.map(|t| t.0))
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn forget_devices(&mut self, account_id: i64) -> StoreResult<()> {
        sqlx::query(FORGET_DEVICES)
            .bind(account_id)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn untrust_devices(&mut self, account_id: i64) -> StoreResult<u64> {
        let done = sqlx::query(UNTRUST_DEVICES)
            .bind(account_id)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
