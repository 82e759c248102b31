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
    /// Rewrites record `id`'s HMACs under registry key `to_key_id` (the number is in hand
    /// when a card is found under an old key and its card ID is right); false when the
    /// record is no longer under `from_key_id` (an import or another node moved it first).
    async fn move_record(
        &mut self,
        id: i64,
        from_key_id: i64,
        to_key_id: i64,
        number_hash: &[u8; 32],
        verification_hash: &[u8; 32],
    ) -> StoreResult<bool>;
}
