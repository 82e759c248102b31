//! The card ID limit per card (see [`crate::card_guard`] for the machine): the claim and
//! its release are claims, each one atomic statement of its own taken before the card ID is
//! compared; pausing a card and support clearing it are state changes, inside a unit of
//! work (with the holder's notice and the audit event).

use async_trait::async_trait;

use super::StoreResult;
use crate::card_guard::{CardGuardPolicy, GuardClaim};
use crate::clock::UnixTime;

/// The claims on a card's guard (part of [`super::Claims`]).
#[async_trait]
pub trait CardGuardClaims: Send + Sync {
    /// Claims a try on registry record `record_id`'s guard at `now`: one conditional
    /// upsert, so parallel guesses never get more than `policy.failures` tries a window.
    async fn card_guard_claim(
        &self,
        record_id: i64,
        now: UnixTime,
        policy: CardGuardPolicy,
    ) -> StoreResult<GuardClaim>;
    /// Gives a try back (the card ID was right).
    async fn card_guard_release(&self, record_id: i64) -> StoreResult<()>;
    /// Claims a card ID try on the holder's way back to a paused card (one conditional
    /// update): its number, or `None` when the card is not paused or has had
    /// `policy.failures` such tries (see [`crate::card_guard::CardGuard::unpause_claim`]).
    async fn card_unpause_claim(
        &self,
        record_id: i64,
        policy: CardGuardPolicy,
    ) -> StoreResult<Option<u32>>;
}

/// Pausing and clearing, inside a unit of work.
#[async_trait]
pub trait CardGuardWrites: Send {
    /// Pauses the card; true when this call paused it (only then is the holder told).
    async fn pause_card(&mut self, record_id: i64) -> StoreResult<bool>;
    /// Support: forgets the card's count and pause; true when it was paused.
    async fn clear_card_guard(&mut self, record_id: i64) -> StoreResult<bool>;
}
