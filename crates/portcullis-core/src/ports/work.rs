//! The unit of work: how every use case changes state.
//!
//! A use case takes `now` once from the clock, opens a unit of work with it
//! ([`Transactions::begin`]), makes its writes through it (the writes traits of each area,
//! all stamped with that `now`), adds the messages ([`UnitOfWork::send`]) and audit events
//! ([`UnitOfWork::audit`]) they cause, and commits. The commit writes the outbox rows, then
//! the audit rows (the hash chain), then COMMITs: the state change, its messages and its
//! audit trail are durable together or not at all. A crash between the commit and the
//! delivery loses nothing (the worker sends what is pending), and no message is ever sent
//! for a change that did not commit. Dropped without a commit, a unit of work leaves
//! nothing behind.
//!
//! Rules of use (docs/ARCHITECTURE.md explains why):
//!
//! - Claims ([`super::Claims`]) are not in a unit of work: they are taken first, before the
//!   slow work, each committed at once.
//! - Nothing slow (argon2, a network call) happens while a unit of work holds its
//!   transaction, and no read goes to the store's pool meanwhile: read first, then open it.
//!   The transaction itself starts at the first write, so opening one costs nothing.
//! - A write whose answer says "not this caller" (a `false`, an `Err` of a race) ends the
//!   use case: drop the unit of work rather than committing a half-done change.

use async_trait::async_trait;

use super::account_import::AccountImportWrites;
use super::accounts::AccountWrites;
use super::admin::AdminTokenWrites;
use super::card_guard::CardGuardWrites;
use super::card_lifecycle::RegistryWrites;
use super::committed::Committed;
use super::devices::DeviceWrites;
use super::factors::FactorWrites;
use super::lockout::LockWrites;
use super::oidc::OidcGrantWrites;
use super::oidc::OidcWrites;
use super::oidc_clients::OidcClientWrites;
use super::outbox::Outgoing;
use super::sessions::SessionWrites;
use super::status::StatusWrites;
use super::steps::{CodeWrites, StepWrites};
use super::webhooks::WebhookWrites;
use super::StoreResult;
use crate::audit::AuditEvent;
use crate::clock::UnixTime;

/// One use case's state change, in one database transaction.
#[async_trait]
pub trait UnitOfWork:
    AccountWrites
    + AccountImportWrites
    + LockWrites
    + DeviceWrites
    + FactorWrites
    + CodeWrites
    + StepWrites
    + SessionWrites
    + AdminTokenWrites
    + StatusWrites
    + CardGuardWrites
    + RegistryWrites
    + WebhookWrites
    + OidcGrantWrites
    + OidcWrites
    + OidcClientWrites
    + Send
{
    /// The time the unit of work was opened with; every row it writes carries it.
    fn now(&self) -> UnixTime;
    /// Queues a message, written to the outbox by the commit.
    fn send(&mut self, message: Outgoing);
    /// Queues an audit event, appended to the chain by the commit (after everything else,
    /// just before COMMIT, so the chain's head is held as briefly as possible).
    fn audit(&mut self, event: AuditEvent);
    /// Writes the messages and audit events and commits, through the store's one commit
    /// path. `audit_key` keys the chain's hashes (its id is stored with each entry).
    async fn commit(self: Box<Self>, audit_key: &crate::audit::ChainKey) -> StoreResult<Committed>;
}

/// Opens units of work.
pub trait Transactions: Send + Sync {
    /// A unit of work stamped with `now`. Cheap: no connection is taken until its first
    /// statement.
    fn begin(&self, now: UnixTime) -> Box<dyn UnitOfWork>;
}
