//! Flow 10, the job: warns inactive accounts and deactivates those warned long enough ago
//! (the rule is [`crate::inactivity`]). Safe on several nodes: a scheduled run first claims
//! the job's lease row, and every warning and deactivation is a conditional update that
//! exactly one caller wins, with its message queued in the same transaction.

use super::signin::contact_message;
use super::Portcullis;
use crate::audit::{AuditEvent, AuditKind};
use crate::ports::{AccountRow, Outgoing};
use crate::ServiceError;

/// The job's name in the lease table.
pub const INACTIVITY_JOB: &str = "inactivity";
/// Accounts handled per query.
const BATCH: i64 = 500;
/// The most a dry run lists.
const DRY_RUN_MAX: i64 = 10_000;

/// What a run did (or, dry, would do): User IDs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InactivityRun {
    pub dry_run: bool,
    pub warned: Vec<String>,
    pub deactivated: Vec<String>,
}

impl Portcullis {
    /// A scheduled run on node `node`: runs only when this node claims the job's lease
    /// (held for `lease_secs`, so one node runs it per interval). `None` when another node
    /// holds it.
    pub async fn run_scheduled_inactivity(
        &self,
        node: &str,
        lease_secs: i64,
    ) -> Result<Option<InactivityRun>, ServiceError> {
        let now = self.clock.now();
        if !self
            .store
            .claim_job(INACTIVITY_JOB, node, now, now.plus_secs(lease_secs))
            .await?
        {
            return Ok(None);
        }
        self.run_inactivity(false, &format!("job:{node}"))
            .await
            .map(Some)
    }

    /// Warns and deactivates what is due now; with `dry_run`, only lists it. `actor` names
    /// who ran it in the audit log (`job:<node>` or `cli:<user>`).
    pub async fn run_inactivity(
        &self,
        dry_run: bool,
        actor: &str,
    ) -> Result<InactivityRun, ServiceError> {
        let now = self.clock.now();
        let policy = self.policies.inactivity;
        let warn_cutoff = policy.warn_cutoff(now);
        let deactivate_cutoff = policy.deactivate_cutoff(now);
        let mut run = InactivityRun {
            dry_run,
            ..InactivityRun::default()
        };
        if dry_run {
            run.deactivated = self
                .store
                .accounts_to_deactivate(deactivate_cutoff, DRY_RUN_MAX)
                .await?
                .into_iter()
                .map(|a| a.user_id)
                .collect();
            run.warned = self
                .store
                .accounts_to_warn(warn_cutoff, DRY_RUN_MAX)
                .await?
                .into_iter()
                .map(|a| a.user_id)
                .collect();
            return Ok(run);
        }
        // Deactivations first: an account warned in this run is not due for 30 days.
        loop {
            let due = self
                .store
                .accounts_to_deactivate(deactivate_cutoff, BATCH)
                .await?;
            let mut progressed = false;
            for account in &due {
                let notice = self.deactivation_notice(account);
                if self
                    .store
                    .deactivate_account(account.id, deactivate_cutoff, now, &notice)
                    .await?
                {
                    progressed = true;
                    run.deactivated.push(account.user_id.clone());
                    self.audit(
                        AuditEvent::new(AuditKind::AccountDeactivated, Some(account.id))
                            .actor(actor)
                            .detail(format!(
                                "no sign-in since {}, warned {}",
                                account.last_active_at.to_rfc3339(),
                                account
                                    .inactivity_warned_at
                                    .map(|t| t.to_rfc3339())
                                    .unwrap_or_default()
                            )),
                    )
                    .await;
                }
            }
            // Another node took the rest of this batch: what is left is its to do.
            if (due.len() as i64) < BATCH || !progressed {
                break;
            }
        }
        loop {
            let due = self.store.accounts_to_warn(warn_cutoff, BATCH).await?;
            let mut progressed = false;
            for account in &due {
                let notice = self.inactivity_warning(account);
                if self
                    .store
                    .mark_inactivity_warned(account.id, warn_cutoff, now, &notice)
                    .await?
                {
                    progressed = true;
                    run.warned.push(account.user_id.clone());
                    self.audit(
                        AuditEvent::new(AuditKind::InactivityWarned, Some(account.id))
                            .actor(actor)
                            .detail(format!(
                                "no sign-in since {}",
                                account.last_active_at.to_rfc3339()
                            )),
                    )
                    .await;
                }
            }
            if (due.len() as i64) < BATCH || !progressed {
                break;
            }
        }
        if !run.warned.is_empty() || !run.deactivated.is_empty() {
            self.notifier.wake();
        }
        Ok(run)
    }

    fn inactivity_warning(&self, account: &AccountRow) -> Vec<Outgoing> {
        let issuer = &self.policies.issuer_name;
        let days = self.policies.inactivity.deactivate_after_secs / 86_400;
        let body = format!(
            "Nobody has signed in to your {issuer} online account {} for a long time. To keep \
             it, sign in within {days} days; otherwise it will be deactivated for your \
             protection. You can bring a deactivated account back with your card (\"Create \
             an online account\") or by calling {}.",
            account.user_id, self.policies.support_phone
        );
        contact_message(
            account,
            format!("Your {issuer} online account is inactive"),
            body,
        )
        .map(|m| Self::outgoing(account, m))
        .into_iter()
        .collect()
    }

    fn deactivation_notice(&self, account: &AccountRow) -> Vec<Outgoing> {
        let issuer = &self.policies.issuer_name;
        let body = format!(
            "Your {issuer} online account {} was deactivated because nobody signed in to it \
             for a long time. To use it again, go to \"Create an online account\" with your \
             card number and card ID, or call {}.",
            account.user_id, self.policies.support_phone
        );
        contact_message(
            account,
            format!("Your {issuer} online account was deactivated"),
            body,
        )
        .map(|m| Self::outgoing(account, m))
        .into_iter()
        .collect()
    }
}
