//! The use cases, one file each, over the ports.

mod account;
mod cards;
mod contact_change;
mod inactivity;
mod password_change;
mod recovery;
mod registration;
mod signin;
pub mod status;
mod support;

use std::sync::Arc;

use portcullis_crypto::{HashPool, KeyedHasher};

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::config::Policies;
use crate::ports::{Message, Notifier, Outgoing, Store};

pub use account::{AccountHome, SessionInfo};
pub use contact_change::ContactChangeStarted;
pub use inactivity::InactivityRun;
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
    pub(crate) counters: Arc<crate::counters::EventCounters>,
}

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
            keys,
            clock,
            notifier,
            policies: Arc::new(policies),
            counters: Arc::default(),
        }
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
