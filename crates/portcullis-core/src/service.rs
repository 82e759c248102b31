//! The use cases, one file per flow, over the ports.
//!
//! Every use case has the same shape:
//!
//! 1. `now` is taken once from the clock;
//! 2. limits are **claimed** first ([`crate::ports::Claims`], `limits.rs`): each claim is
//!    one short atomic statement, committed at once, so parallel attempts never evaluate
//!    more than the limit;
//! 3. what the decision needs is **read** through the narrow read traits of [`Ports`];
//! 4. the slow work (argon2, WebAuthn) runs with no transaction open;
//! 5. the state change goes through one **unit of work** ([`Portcullis::begin`]): its
//!    writes, the messages they cause and the audit events, committed together; the commit
//!    wakes the delivery worker. Nothing is sent after a commit, and nothing is written
//!    outside one.

mod account;
mod account_import;
mod card_guard;
mod card_lookup;
mod card_unpause;
mod cards;
mod code_keys;
mod codes;
mod contact_change;
mod destinations;
mod idempotency;
mod inactivity;
mod limits;
mod mfa;
pub mod oidc;
mod passkeys;
mod password_change;
mod recovery;
mod recovery_user_id;
mod registration;
pub mod registry_load;
mod security_answers;
mod sessions;
mod signin;
pub mod status;
mod support;
mod sweep;
mod webhooks;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use portcullis_crypto::{HashPool, KeyedHasher, Sealer};

use crate::audit::AuditEvent;
use crate::clock::{Clock, UnixTime};
use crate::config::Policies;
use crate::counters::CountedEvent;
use crate::ports::{
    AccountReads, AdminTokenReads, AuditReads, Claims, Committed, DeviceReads, FactorReads,
    GrantUse, NewOidcToken, Notifier, OidcJwksCache, OidcStore, OutboxReads, OutboxStats,
    RegistryImports, RegistryReads, SessionReads, StatusReads, StepReads, Store, Transactions,
    UnitOfWork, WebhookStore,
};
use crate::steps::StepKind;
use crate::ServiceError;

pub use crate::device::describe_device;
pub use crate::support::{SupportAuthority, SupportScope};
pub use account::{AccountHome, SessionInfo};
pub use account_import::{
    AccountImportError, AccountImportLine, AccountImportReport, ImportLineError, MAX_IMPORT_ERRORS,
};
pub use card_guard::ClearCardOutcome;
pub use codes::CodeSent;
pub use contact_change::ContactChangeStarted;
pub use idempotency::{Keyed, IDEMPOTENCY_KEY_MAX_LEN};
pub use inactivity::{InactivityRun, INACTIVITY_JOB};
pub use mfa::{
    FactorInfo, MfaChallenge, MfaMethod, SecuritySettings, SignInOutcome, TotpEnrolment,
    TrustedDevice,
};
pub use passkeys::PasskeyOptions;
pub use recovery::{CodeAccepted, Proof, RecoveryStart};
pub use registration::{CardVerified, Registration};
pub use registry_load::{LoadReport, PushOutcome, RecordError, MAX_PUSH_RECORDS};
pub use sessions::{SessionContext, SignedIn};
pub use signin::SignInRequest;
pub use support::{AuditCheck, IssuedAdminToken, ReactivateOutcome, SupportView, UnlockOutcome};
pub use webhooks::NewWebhook;

/// Who is asking: used for audit, throttling and the sessions list. Never trusted for
/// authorisation.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    /// The client's address (IPv4-mapped addresses as IPv4), as audited.
    pub ip: Option<String>,
    /// What its per-address limits count on: the IPv4 address, or the IPv6 network (a /64
    /// by default). `None` falls back to `ip`.
    pub limit_key: Option<String>,
    pub user_agent: Option<String>,
}

/// The store as the use cases reach it: one narrow trait per area, so a use case names
/// what it reads (`self.ports.accounts`, `self.ports.steps`, …), claims
/// (`self.ports.claims`) and changes (`self.begin(now)`, a unit of work), and never holds
/// the whole store.
#[derive(Clone)]
pub(crate) struct Ports {
    pub(crate) accounts: Arc<dyn AccountReads>,
    pub(crate) registry: Arc<dyn RegistryReads>,
    pub(crate) imports: Arc<dyn RegistryImports>,
    pub(crate) devices: Arc<dyn DeviceReads>,
    pub(crate) factors: Arc<dyn FactorReads>,
    pub(crate) steps: Arc<dyn StepReads>,
    pub(crate) sessions: Arc<dyn SessionReads>,
    pub(crate) audit: Arc<dyn AuditReads>,
    pub(crate) admin_tokens: Arc<dyn AdminTokenReads>,
    pub(crate) status: Arc<dyn StatusReads>,
    pub(crate) outbox: Arc<dyn OutboxReads>,
    pub(crate) oidc: Arc<dyn OidcStore>,
    pub(crate) jwks_cache: Arc<dyn OidcJwksCache>,
    pub(crate) claims: Arc<dyn Claims>,
    pub(crate) work: Arc<dyn Transactions>,
    pub(crate) webhooks: Arc<dyn WebhookStore>,
    /// For readiness only (`ping`).
    health: Arc<dyn Store>,
}

impl Ports {
    fn new<S: Store + 'static>(store: Arc<S>) -> Self {
        Self {
            accounts: store.clone(),
            registry: store.clone(),
            imports: store.clone(),
            devices: store.clone(),
            factors: store.clone(),
            steps: store.clone(),
            sessions: store.clone(),
            audit: store.clone(),
            admin_tokens: store.clone(),
            status: store.clone(),
            outbox: store.clone(),
            oidc: store.clone(),
            jwks_cache: store.clone(),
            claims: store.clone(),
            work: store.clone(),
            webhooks: store.clone(),
            health: store,
        }
    }
}

/// The application: the use cases over their ports. Cheap to clone.
#[derive(Clone)]
pub struct Portcullis {
    pub(crate) ports: Ports,
    pub(crate) hasher: HashPool,
    pub(crate) keys: KeyedHasher,
    /// The registry keyring for card lookups (`registry.key`, followed as it is rotated);
    /// `None`: `keys` alone, as key id 1. One-time codes and recovery-code hints are made
    /// under its current key and checked under every key, destination buckets counted under
    /// every key; decoy questions and a paused card's step stay under `keys`, the ring's
    /// first key (docs/design/keys.md).
    registry_ring: Option<portcullis_crypto::LiveRing>,
    pub(crate) clock: Arc<dyn Clock>,
    notifier: Arc<dyn Notifier>,
    pub(crate) policies: Arc<Policies>,
    /// The audit chain's keyring (`audit.key`): appended under its current key.
    pub(crate) audit_keys: crate::audit::AuditKeys,
    /// Seals authenticator-app secrets at rest.
    pub(crate) factor_seal: Sealer,
    /// The WebAuthn relying party; `None` when the public URL cannot be one (an IP address).
    pub(crate) passkeys: Option<Arc<portcullis_crypto::passkey::PasskeyRp>>,
    pub(crate) counters: Arc<crate::counters::EventCounters>,
    /// The keys that sign ID tokens (`oidc-signing.key`, followed as it is rotated).
    pub(crate) oidc_keys: Option<portcullis_crypto::LiveRing>,
    /// The keys derived from `oidc_keys`' current key.
    pub(crate) oidc_signers: Arc<oidc::SignerCache>,
    /// Fetches `private_key_jwt` clients' key sets from their `jwks_uri`; `None`: such
    /// clients cannot authenticate.
    pub(crate) jwks_fetcher: Option<Arc<dyn crate::ports::JwksFetcher>>,
}

/// The relying party for passkeys at the public URL (any port on localhost, for
/// development and tests).
fn passkey_rp(policies: &Policies) -> Option<Arc<portcullis_crypto::passkey::PasskeyRp>> {
    let local = ["http://localhost", "http://127.0.0.1", "https://localhost"]
        .iter()
        .any(|p| policies.public_url.starts_with(p));
    match portcullis_crypto::passkey::PasskeyRp::new(
        &policies.public_url,
        &policies.issuer_name,
        local,
    ) {
        Ok(rp) => Some(Arc::new(rp)),
        Err(e) => {
            tracing::warn!(error = %e, "passkeys are off: the public URL cannot be a relying party");
            None
        }
    }
}

/// The label sealed factor secrets carry.
const FACTOR_SEAL_AAD: &[u8] = b"portcullis factor secret v1";

impl Portcullis {
    pub fn new<S: Store + 'static>(
        store: Arc<S>,
        hasher: HashPool,
        keys: KeyedHasher,
        clock: Arc<dyn Clock>,
        notifier: Arc<dyn Notifier>,
        policies: Policies,
    ) -> Self {
        Self {
            ports: Ports::new(store),
            hasher,
            // Until `with_audit_ring` is called, key 1 derived from the registry key.
            audit_keys: crate::audit::AuditKeys::derived(&keys),
            // Until `with_factor_key` is called, a key derived from the registry key.
            factor_seal: Sealer::new(&keys.hash("portcullis/factor-key/v1", &[]), FACTOR_SEAL_AAD),
            keys,
            registry_ring: None,
            clock,
            notifier,
            passkeys: passkey_rp(&policies),
            policies: Arc::new(policies),
            counters: Arc::default(),
            oidc_keys: None,
            oidc_signers: Arc::default(),
            jwks_fetcher: None,
        }
    }

    /// Seals authenticator-app secrets under `key` (`factor.key` in the secrets folder;
    /// every node must share it).
    pub fn with_factor_key(mut self, key: &[u8; 32]) -> Self {
        self.factor_seal = Sealer::new(key, FACTOR_SEAL_AAD);
        self
    }

    /// Signs ID tokens with the keys of `ring` (`oidc-signing.key` in the secrets folder).
    pub fn with_oidc_keys(mut self, ring: portcullis_crypto::LiveRing) -> Self {
        self.oidc_keys = Some(ring);
        self
    }

    /// Fetches `private_key_jwt` clients' key sets from their `jwks_uri` with `fetcher`.
    pub fn with_jwks_fetcher(mut self, fetcher: Arc<dyn crate::ports::JwksFetcher>) -> Self {
        self.jwks_fetcher = Some(fetcher);
        self
    }

    /// Looks cards up under every key of `registry.key`'s keyring, followed as it is
    /// rotated (each registry row names its key id).
    pub fn with_registry_ring(mut self, ring: portcullis_crypto::LiveRing) -> Self {
        self.registry_ring = Some(ring);
        self
    }

    /// Chains the audit log under `audit.key`'s keyring, followed as it is rotated (each
    /// entry names its key id and is verified under it).
    pub fn with_audit_ring(mut self, ring: portcullis_crypto::LiveRing) -> Self {
        self.audit_keys = crate::audit::AuditKeys::new(ring);
        self
    }

    /// The audit chain's keys.
    pub fn audit_keys(&self) -> &crate::audit::AuditKeys {
        &self.audit_keys
    }

    /// Seals authenticator-app secrets under `factor.key`'s keyring, followed as it is
    /// rotated (each secret names its key id; secrets under an old key still open).
    pub fn with_factor_ring(mut self, keys: portcullis_crypto::LiveRing) -> Self {
        self.factor_seal = Sealer::with_ring(keys, FACTOR_SEAL_AAD);
        self
    }

    /// The sealer of factor secrets (the re-seal job's).
    pub fn factor_sealer(&self) -> &Sealer {
        &self.factor_seal
    }

    /// This node's counts of locks and codes, for `/metrics`.
    pub fn counters(&self) -> crate::counters::CountersSnapshot {
        self.counters.snapshot()
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    pub fn hasher(&self) -> &HashPool {
        &self.hasher
    }

    pub fn keys(&self) -> &KeyedHasher {
        &self.keys
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// One round trip to the database, for readiness and the status prober.
    pub async fn ping(&self) -> Result<(), ServiceError> {
        Ok(self.ports.health.ping().await?)
    }

    /// A real committed write (this node's row of the write probe), for the status prober:
    /// a full disk or a held lock shows here, not in a ping.
    pub async fn probe_write(&self, node: &str) -> Result<(), ServiceError> {
        Ok(self
            .ports
            .health
            .probe_write(node, self.clock.now())
            .await?)
    }

    /// The outbox at a glance, for `/metrics` and the status prober.
    pub async fn outbox_stats(&self) -> Result<OutboxStats, ServiceError> {
        Ok(self.ports.outbox.outbox_stats(self.clock.now()).await?)
    }

    /// Opens the unit of work of a use case that took `now` from the clock (see
    /// [`crate::ports::work`]).
    pub(crate) fn begin(&self, now: UnixTime) -> Work<'_> {
        Work {
            uow: self.ports.work.begin(now),
            app: self,
            counted: Vec::new(),
        }
    }

    /// Uses up a step on its own unit of work, before the work it admits (a passkey
    /// ceremony's state is good for one answer, right or wrong): true for the one caller
    /// that did.
    pub(crate) async fn consume_alone(
        &self,
        now: UnixTime,
        token_hash: &[u8; 32],
        kind: StepKind,
    ) -> Result<bool, ServiceError> {
        let mut work = self.begin(now);
        let consumed = work.consume_step(token_hash, kind).await?;
        work.commit().await?;
        Ok(consumed)
    }

    /// After a unit of work committed: wakes the delivery worker for its messages and
    /// counts its events.
    fn committed(&self, done: Committed, counted: Vec<CountedEvent>) {
        if done.messages > 0 {
            self.notifier.queued(done.messages);
        }
        for event in counted {
            self.counters.record(event);
        }
    }

    /// Records an event that comes with no state change (a refused attempt, a failed check,
    /// a look at an account) in a unit of work of its own. The answer is already decided by
    /// then, so a failure to write it is logged loudly, not returned.
    pub(crate) async fn audit_alone(&self, now: UnixTime, event: AuditEvent) {
        let kind = event.kind.as_str();
        let mut work = self.begin(now);
        work.audit(event);
        if let Err(e) = work.commit().await {
            tracing::error!(kind, error = %e, "audit append failed");
        }
    }
}

/// A use case's unit of work: the store's [`UnitOfWork`] (its writes, `send` and `audit`
/// are reached through it), committed by [`Work::commit`], which also wakes this node's
/// delivery worker when messages were queued. Dropped without a commit, it leaves nothing.
#[must_use = "a unit of work does nothing until it is committed"]
pub(crate) struct Work<'a> {
    uow: Box<dyn UnitOfWork>,
    app: &'a Portcullis,
    /// Counted for `/metrics` once the commit succeeds.
    counted: Vec<CountedEvent>,
}

impl Work<'_> {
    /// Counts `event` for `/metrics`, if (and when) this unit of work commits.
    pub(crate) fn count(&mut self, event: CountedEvent) {
        self.counted.push(event);
    }

    /// Commits the writes, the messages and the audit events together, then tells the
    /// delivery worker about the messages and counts what happened.
    pub(crate) async fn commit(self) -> Result<Committed, ServiceError> {
        let Work { uow, app, counted } = self;
        let done = uow.commit(&app.audit_keys.current()).await?;
        app.committed(done, counted);
        Ok(done)
    }

    /// An exchange at the token endpoint, to its end ([`crate::ports::OidcWrites::use_grant_then_commit`]),
    /// then what [`Work::commit`] does after a commit: `false`, nothing committed, when the
    /// code or refresh token was used since it was read.
    pub(crate) async fn use_grant_then_commit(
        self,
        used: GrantUse<'_>,
        tokens: &[NewOidcToken<'_>],
        event: AuditEvent,
    ) -> Result<bool, ServiceError> {
        let Work { uow, app, counted } = self;
        let key = app.audit_keys.current();
        let Some(done) = uow.use_grant_then_commit(used, tokens, event, &key).await? else {
            return Ok(false);
        };
        app.committed(done, counted);
        Ok(true)
    }
}

impl Deref for Work<'_> {
    type Target = dyn UnitOfWork;

    fn deref(&self) -> &Self::Target {
        &*self.uow
    }
}

impl DerefMut for Work<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.uow
    }
}
