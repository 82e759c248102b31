//! The lockout counters' state changes (the claims themselves are in [`super::Claims`]).

use async_trait::async_trait;

use super::StoreResult;
use crate::clock::UnixTime;

/// Whose failure counter an attempt uses: the account's (passwords, current passwords,
/// second-step codes), a known device's own allowance, or the account's security answers
/// (counted across every recovery step, not per step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Account(i64),
    Device(i64),
    Answers(i64),
}

/// The lockout transitions that are state changes, inside a unit of work (each one
/// conditional statement; see [`crate::lockout`] for the machine).
#[async_trait]
pub trait LockWrites: Send {
    /// Sets the lock until `until` if it is not set; true when this call set it (only then
    /// does the caller add the owner's notice and the audit event).
    async fn lock(&mut self, counter: Counter, until: UnixTime) -> StoreResult<bool>;
    /// A success: the count starts again from zero (a lock already set stays).
    async fn reset_failures(&mut self, counter: Counter) -> StoreResult<()>;
}
