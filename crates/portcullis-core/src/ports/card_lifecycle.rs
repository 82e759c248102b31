//! The card lifecycle's writes inside a use case's unit of work (issue 17): apart from
//! `registry.rs`, whose loads commit through the unit of work's types.

use async_trait::async_trait;

use super::StoreResult;
use crate::clock::UnixTime;

/// The registry's writes inside a use case's unit of work.
#[async_trait]
pub trait RegistryWrites: Send {
    /// Deactivates the account when it is still active and every card of it is still
    /// closed since `closed_before` at the latest; true for the one caller that did.
    async fn deactivate_closed_account(
        &mut self,
        account_id: i64,
        closed_before: UnixTime,
    ) -> StoreResult<bool>;
}
