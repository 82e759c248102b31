//! The use cases, one file each, over the ports.

mod account;
mod cards;
mod contact_change;
mod inactivity;
mod mfa;
mod passkeys;
mod password_change;
mod recovery;
mod registration;
mod signin;
pub mod status;
mod support;

use std::sync::Arc;

use portcullis_crypto::{HashPool, KeyedHasher, Sealer};

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::config::Policies;
use crate::ports::{Message, Notifier, Outgoing, Store};

pub use account::{AccountHome, SessionInfo};
pub use contact_change::ContactChangeStarted;
pub use inactivity::InactivityRun;
pub use mfa::{
    FactorInfo, MfaChallenge, MfaMethod, SecuritySettings, SignInOutcome, TotpEnrolment,
    TrustedDevice,
};
pub use passkeys::PasskeyOptions;
pub use recovery::{CodeAccepted, CodeSent, Proof, RecoveryStart};
pub use registration::{CardVerified, Registration};
pub use signin::{describe_device, SessionContext, SignInRequest, SignedIn};
pub use support::{
    AuditCheck, IssuedAdminToken, ReactivateOutcome, SupportAuthority, SupportScope, SupportView,
    UnlockOutcome,
};

/// Who is asking: used for audit, throttling and the sessions list. Never trusted for
/// authorisation.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The application: the use cases over their ports. Cheap to clone.
#[derive(Clone)]
pub struct Portcullis {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) hasher: HashPool,
    pub(crate) keys: KeyedHasher,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) policies: Arc<Policies>,
    pub(crate) audit_key: KeyedHasher,
    /// Seals authenticator-app secrets at rest.
    pub(crate) factor_seal: Sealer,
    /// The WebAuthn relying party; `None` when the public URL cannot be one (an IP address).
    pub(crate) passkeys: Option<Arc<portcullis_crypto::passkey::PasskeyRp>>,
    pub(crate) counters: Arc<crate::counters::EventCounters>,
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
    pub fn new(
        store: Arc<dyn Store>,
        hasher: HashPool,
        keys: KeyedHasher,
        clock: Arc<dyn Clock>,
        notifier: Arc<dyn Notifier>,
        policies: Policies,
    ) -> Self {
        Self {
            store,
            hasher,
            audit_key: crate::audit::audit_key(&keys),
            // Until `with_factor_key` is called, a key derived from the registry key.
            factor_seal: Sealer::new(&keys.hash("portcullis/factor-key/v1", &[]), FACTOR_SEAL_AAD),
            keys,
            clock,
            notifier,
            passkeys: passkey_rp(&policies),
            policies: Arc::new(policies),
            counters: Arc::default(),
        }
    }

    /// Seals authenticator-app secrets under `key` (`factor.key` in the secrets folder;
    /// every node must share it).
    pub fn with_factor_key(mut self, key: &[u8; 32]) -> Self {
        self.factor_seal = Sealer::new(key, FACTOR_SEAL_AAD);
        self
    }

    /// This node's counts of locks and codes, for `/metrics`.
    pub fn counters(&self) -> crate::counters::CountersSnapshot {
        self.counters.snapshot()
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
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

    /// Writes an audit event. A failure to audit is logged loudly but does not undo the
    /// action it records (the action has already been committed).
    pub(crate) async fn audit(&self, event: AuditEvent) {
        if let Err(e) = self
            .store
            .append_audit(&event, self.clock.now(), &self.audit_key)
            .await
        {
            tracing::error!(kind = event.kind.as_str(), error = %e, "audit append failed");
        }
    }

    /// A message to an account, with its email as the fall-back for a text message the
    /// SMS quotas refuse.
    pub(crate) fn outgoing(account: &crate::ports::AccountRow, message: Message) -> Outgoing {
        let fallback_email = match message.channel {
            crate::contact::CodeChannel::Sms => account.email.clone(),
            crate::contact::CodeChannel::Email => None,
        };
        Outgoing {
            message,
            fallback_email,
        }
    }

    /// Sends a message; a failure is logged, not returned, because the state change that
    /// caused it has been committed.
    pub(crate) async fn notify(&self, message: Message) {
        if let Err(e) = self.notifier.send(message).await {
            tracing::error!(error = %e, "notification failed");
        }
    }
}
