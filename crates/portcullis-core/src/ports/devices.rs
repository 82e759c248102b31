//! Known devices: a device that has signed in to an account, held by the hash of its device
//! token, with its own failure allowance and, when asked, trust.

use async_trait::async_trait;

use super::StoreResult;
use crate::clock::UnixTime;

/// A device that has signed in successfully to an account.
#[derive(Clone, Debug)]
pub struct DeviceRow {
    pub id: i64,
    pub account_id: i64,
    pub created_at: UnixTime,
    pub last_seen_at: UnixTime,
    pub user_agent: Option<String>,
    pub failed_count: u32,
    pub locked_until: Option<UnixTime>,
    /// "Trust this device": no second factor asked here until then.
    pub trusted_until: Option<UnixTime>,
}

#[async_trait]
pub trait DeviceReads: Send + Sync {
    async fn device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<DeviceRow>>;
    /// The account's devices, most recently seen first.
    async fn list_devices(&self, account_id: i64) -> StoreResult<Vec<DeviceRow>>;
}

#[async_trait]
pub trait DeviceWrites: Send {
    async fn create_device(
        &mut self,
        account_id: i64,
        token_hash: &[u8; 32],
        user_agent: Option<&str>,
    ) -> StoreResult<i64>;
    /// Marks the device seen now (never backwards).
    async fn touch_device(&mut self, id: i64) -> StoreResult<()>;
    /// Trusts the account's device until `until`, or revokes the trust (`None`); false when
    /// the device is not the account's.
    async fn set_device_trust(
        &mut self,
        id: i64,
        account_id: i64,
        until: Option<UnixTime>,
    ) -> StoreResult<bool>;
    /// Forgets every device of the account: each must sign in as a new device again (and so
    /// meets the account's lock rather than its own allowance).
    async fn forget_devices(&mut self, account_id: i64) -> StoreResult<()>;
    /// Ends "Trust this device" on every device of the account (a password reset); how
    /// many were trusted.
    async fn untrust_devices(&mut self, account_id: i64) -> StoreResult<u64>;
}
