//! The ports the use cases need, implemented by adapters (the store over SQLite and
//! PostgreSQL, the delivery worker). One file per area; each area has
//!
//! - a **reads** trait (`AccountReads`, `StepReads`, …): what a use case looks up before it
//!   decides;
//! - a **writes** trait (`AccountWrites`, …), reachable only inside a [`UnitOfWork`]: every
//!   state change of a use case goes through one unit of work, which also carries the
//!   messages ([`Outgoing`]) and audit events the change causes and commits them all in one
//!   database transaction (see [`work`]);
//!
//! and, apart from those, [`Claims`]: the short atomic statements that enforce limits
//! (throttle buckets, lockout counters, tries on a step or a code, job leases), each its own
//! statement, taken *before* the slow work so parallel attempts never evaluate more than the
//! limit. [`Store`] gathers everything one database offers; the use cases reach it through
//! the narrow traits only (see `service::Ports`).

mod account_import;
mod accounts;
mod admin;
mod audit;
mod card_guard;
mod card_lifecycle;
mod claims;
mod committed;
mod devices;
mod factors;
mod keys;
mod lockout;
mod oidc;
mod oidc_clients;
mod oidc_jwks;
mod outbox;
mod registry;
mod sessions;
mod status;
mod steps;
mod webhooks;
pub mod work;

pub use account_import::{AccountImportReads, AccountImportWrites, ImportedAccount};
pub use accounts::{
    AccountReads, AccountRow, AccountWrites, CardSummary, ContactField, CreateAccountError,
    NewAccount, Reregistration, Unlink,
};
pub use admin::{
    AdminTokenReads, AdminTokenRef, AdminTokenRow, AdminTokenWrites, CreateAdminTokenError,
    NewAdminToken,
};
pub use audit::AuditReads;
pub use card_guard::{CardGuardClaims, CardGuardWrites};
pub use card_lifecycle::RegistryWrites;
pub use claims::{Claims, CodeAttempt, SweepCutoffs, Swept};
pub use committed::Committed;
pub use devices::{DeviceReads, DeviceRow, DeviceWrites};
pub use factors::{FactorKind, FactorReads, FactorRow, FactorWrites, NewFactor};
pub use keys::{SealedColumn, SealedValue, SealedValues};
pub use lockout::{Counter, LockWrites};
pub use oidc::{
    GrantUse, NewOidcClient, NewOidcCode, NewOidcToken, OidcCodeRow, OidcGrantRow, OidcGrantWrites,
    OidcStore, OidcTokenRow, OidcWrites, StoredRequest, TokenKind,
};
pub use oidc_clients::{OidcClientRow, OidcClientWrites};
pub use oidc_jwks::{CachedJwks, JwksCacheRow, JwksFetchError, JwksFetcher, OidcJwksCache};
pub use outbox::{
    Message, Notifier, NotifyError, OutboxReads, OutboxRow, OutboxState, OutboxStats, OutboxStore,
    Outgoing, QuotaClaim,
};
pub use registry::{
    CardReissue, CardStatusChange, PushKey, RegistryImport, RegistryImports, RegistryReads,
    RegistryRow, Settled,
};
pub use sessions::{NewSession, SessionReads, SessionRow, SessionWrites};
pub use status::{
    IncidentRow, MaintenanceRow, NewIncident, StatusChange, StatusReads, StatusWrites,
};
pub use steps::{CodeWrites, IdempotencyKeep, KeptAnswer, NewCode, StepReads, StepRow, StepWrites};
pub use webhooks::{
    WebhookDelivery, WebhookStats, WebhookStore, WebhookSubscription, WebhookWrites,
};
pub use work::{Transactions, UnitOfWork};

use async_trait::async_trait;

use crate::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is saturated: worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An unreachable or saturated database is worth a retry (503); anything else is internal.
impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ServiceError::Unavailable(m),
            StoreError::Internal(m) => ServiceError::Internal(m),
        }
    }
}

/// Everything one database offers the application: the reads, the claims, units of work
/// and registry imports. `Portcullis` holds one and hands each use case the narrow traits
/// it needs. The delivery worker's [`OutboxStore`] is apart: no use case queues a message
/// except through its unit of work.
#[async_trait]
pub trait Store:
    RegistryReads
    + RegistryImports
    + AccountReads
    + DeviceReads
    + FactorReads
    + StepReads
    + SessionReads
    + AuditReads
    + AdminTokenReads
    + StatusReads
    + OutboxReads
    + WebhookStore
    + OidcStore
    + OidcJwksCache
    + Claims
    + Transactions
{
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;
    /// A real committed write (this node's row of the write probe): fails while the
    /// database takes no writes, which a `ping` does not show.
    async fn probe_write(&self, node: &str, now: crate::clock::UnixTime) -> StoreResult<()>;
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;
}
