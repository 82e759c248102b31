//! Flow 10, the job: warns inactive accounts and deactivates those warned long enough ago
//! (the rule is [`crate::inactivity`]). Safe on several nodes: a scheduled run first claims
//! the job's lease row, and every warning and deactivation is a conditional update that
//! exactly one caller wins, in a unit of work of its own with its message and audit event.

use super::Portcullis;
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
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
            .ports
            .claims
            .claim_job(INACTIVITY_JOB, node, now, now.plus_secs(lease_secs))
            .await?
        {
            return Ok(None);
        }
        self.inactivity_run(false, &format!("job:{node}"), now)
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
        self.inactivity_run(dry_run, actor, self.clock.now()).await
    }

    async fn inactivity_run(
        &self,
        dry_run: bool,
        actor: &str,
        now: UnixTime,
    ) -> Result<InactivityRun, ServiceError> {
        let policy = self.policies.inactivity;
        let warn_cutoff = policy.warn_cutoff(now);
        let deactivate_cutoff = policy.deactivate_cutoff(now);
        let accounts = &self.ports.accounts;
        let mut run = InactivityRun {
            dry_run,
            ..InactivityRun::default()
        };
        if dry_run {
            run.deactivated = accounts
                .accounts_to_deactivate(deactivate_cutoff, DRY_RUN_MAX)
                .await?
                .into_iter()
                .map(|a| a.user_id)
                .collect();
            run.warned = accounts
                .accounts_to_warn(warn_cutoff, DRY_RUN_MAX)
                .await?
                .into_iter()
                .map(|a| a.user_id)
                .collect();
            run.deactivated.extend(
                self.ports
                    .registry
                    .accounts_with_cards_closed(policy.closed_cutoff(now), DRY_RUN_MAX)
                    .await?
                    .into_iter()
                    .map(|a| a.user_id),
            );
            return Ok(run);
        }
        // Deactivations first: an account warned in this run is not due for 30 days.
        loop {
            let due = accounts
                .accounts_to_deactivate(deactivate_cutoff, BATCH)
                .await?;
            let mut progressed = false;
            for account in &due {
                let mut work = self.begin(now);
                if !work
                    .deactivate_account(account.id, deactivate_cutoff)
                    .await?
                {
                    continue;
                }
                if let Some(notice) = self.deactivation_notice(account) {
                    work.send(notice);
                }
                work.audit(
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
                );
                work.commit().await?;
                progressed = true;
                run.deactivated.push(account.user_id.clone());
            }
            // Another node took the rest of this batch: what is left is its to do.
            if (due.len() as i64) < BATCH || !progressed {
                break;
            }
        }
        loop {
            let due = accounts.accounts_to_warn(warn_cutoff, BATCH).await?;
            let mut progressed = false;
            for account in &due {
                let mut work = self.begin(now);
                if !work.mark_inactivity_warned(account.id, warn_cutoff).await? {
                    continue;
                }
                if let Some(notice) = self.inactivity_warning(account) {
                    work.send(notice);
                }
                work.audit(
                    AuditEvent::new(AuditKind::InactivityWarned, Some(account.id))
                        .actor(actor)
                        .detail(format!(
                            "no sign-in since {}",
                            account.last_active_at.to_rfc3339()
                        )),
                );
                work.commit().await?;
                progressed = true;
                run.warned.push(account.user_id.clone());
            }
            if (due.len() as i64) < BATCH || !progressed {
                break;
            }
        }
        self.deactivate_closed(actor, now, &mut run).await?;
        Ok(run)
    }

    /// Issue 17: accounts whose every card has been closed for the read-only time are
    /// deactivated with notice, each in a unit of work of its own.
    async fn deactivate_closed(
        &self,
        actor: &str,
        now: UnixTime,
        run: &mut InactivityRun,
    ) -> Result<(), ServiceError> {
        let cutoff = self.policies.inactivity.closed_cutoff(now);
        loop {
            let due = self
                .ports
                .registry
                .accounts_with_cards_closed(cutoff, BATCH)
                .await?;
            let mut progressed = false;
            for account in &due {
                let mut work = self.begin(now);
                if !work.deactivate_closed_account(account.id, cutoff).await? {
                    continue;
                }
                let issuer = &self.policies.issuer_name;
                if let Some(notice) = account.notice(
                    format!("Your {issuer} online account was closed"),
                    format!(
                        "Every card of your {issuer} online account {} is closed, and the \
                         time to read your statements online has ended, so the online \
                         account was deactivated. If you have a new card, create an online \
                         account with it, or call {}.",
                        account.user_id, self.policies.support_phone
                    ),
                ) {
                    work.send(notice);
                }
                work.audit(
                    AuditEvent::new(AuditKind::AccountDeactivatedCardsClosed, Some(account.id))
                        .actor(actor)
                        .detail(format!(
                            "every card closed since {} or earlier",
                            cutoff.to_rfc3339()
                        )),
                );
                work.commit().await?;
                progressed = true;
                run.deactivated.push(account.user_id.clone());
            }
            if (due.len() as i64) < BATCH || !progressed {
                break;
            }
        }
        Ok(())
    }

    fn inactivity_warning(&self, account: &AccountRow) -> Option<Outgoing> {
        let issuer = &self.policies.issuer_name;
        let days = self.policies.inactivity.deactivate_after_secs / 86_400;
        account.notice(
            format!("Your {issuer} online account is inactive"),
            format!(
                "Nobody has signed in to your {issuer} online account {} for a long time. To \
                 keep it, sign in within {days} days; otherwise it will be deactivated for \
                 your protection. You can bring a deactivated account back with your card \
                 (\"Create an online account\") or by calling {}.",
                account.user_id, self.policies.support_phone
            ),
        )
    }

    fn deactivation_notice(&self, account: &AccountRow) -> Option<Outgoing> {
        let issuer = &self.policies.issuer_name;
        account.notice(
            format!("Your {issuer} online account was deactivated"),
            format!(
                "Your {issuer} online account {} was deactivated because nobody signed in to \
                 it for a long time. To use it again, go to \"Create an online account\" with \
                 your card number and card ID, or call {}.",
                account.user_id, self.policies.support_phone
            ),
        )
    }
}
