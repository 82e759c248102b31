//! The limits every flow shares: the throttle bucket of a client address, and the lockout
//! counter of an account (or of a known device).
//!
//! Both are *claimed first*: one short atomic statement, committed at once, before the slow
//! work it admits, so however many attempts arrive in parallel no more than the limit are
//! ever evaluated ([`crate::ports::Claims`]). What follows a claim — the lock set at the
//! threshold, with the owner's notice and the audit event — is a state change, and goes
//! through a unit of work like any other.

use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::counters::CountedEvent;
use crate::lockout::Claim;
use crate::ports::{AccountRow, Counter};
use crate::throttle::{self, ThrottleAction};
use crate::ServiceError;

impl Portcullis {
    /// Claims a place in this client's bucket for `action`; the bucket to release on
    /// success, or 429 when it is full.
    pub(crate) async fn throttle_claim(
        &self,
        action: ThrottleAction,
        client: &ClientInfo,
        now: UnixTime,
    ) -> Result<Option<String>, ServiceError> {
        let policy = self.policies.throttle;
        // The IPv6 network (a /64 by default) or the IPv4 address, as the web layer keyed it.
        let Some(key) = client
            .limit_key
            .as_deref()
            .or(client.ip.as_deref())
            .filter(|_| policy.enabled)
        else {
            return Ok(None);
        };
        let bucket = throttle::bucket(action, key);
        match self
            .ports
            .claims
            .throttle_claim(&bucket, now, policy.window_secs, policy.failures_per_window)
            .await?
        {
            None => Ok(Some(bucket)),
            Some(window_start) => Err(ServiceError::TooManyRequests {
                retry_after: throttle::retry_after(window_start, policy.window_secs, now.0),
            }),
        }
    }

    /// Gives a bucket place back: the attempt succeeded.
    pub(crate) async fn throttle_release(&self, bucket: Option<String>) {
        if let Some(bucket) = bucket {
            if let Err(e) = self.ports.claims.throttle_release(&bucket).await {
                tracing::warn!(error = %e, "throttle release failed");
            }
        }
    }

    /// The failure allowance of `counter`.
    pub(crate) fn lock_limit(&self, counter: Counter) -> u32 {
        match counter {
            Counter::Account(_) => self.policies.lockout.lock_after_failures,
            Counter::Device(_) => self.policies.lockout.device_allowance,
            Counter::Answers(_) => crate::lockout::ANSWER_FAILURES,
        }
    }

    /// Counts a wrong answer (a second-step code, say) as a failed sign-in on `counter`,
    /// locking at the threshold.
    pub(crate) async fn count_failure(
        &self,
        account: &AccountRow,
        counter: Counter,
        client: &ClientInfo,
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        let limit = self.lock_limit(counter);
        if let Claim::Granted(n) = self.ports.claims.claim_attempt(counter, now, limit).await? {
            if n >= limit {
                self.lock_counter(account, counter, client, now).await?;
            }
        }
        Ok(())
    }

    /// Locks `counter` (the account, or one device's allowance) at its threshold: the lock,
    /// the owner's notice and the audit event in one unit of work, written only by the call
    /// that set the lock.
    pub(crate) async fn lock_counter(
        &self,
        account: &AccountRow,
        counter: Counter,
        client: &ClientInfo,
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        let until = now.plus_secs(self.policies.lockout.lock_for_secs);
        let mut work = self.begin(now);
        if !work.lock(counter, until).await? {
            // Another attempt set it first, with its notice.
            return Ok(());
        }
        let detail = match counter {
            Counter::Account(_) => {
                if let Some(notice) = self.lock_notice(account) {
                    work.send(notice);
                }
                format!("locked until {}", until.to_rfc3339())
            }
            Counter::Device(id) => format!("device {id} locked out until {}", until.to_rfc3339()),
            Counter::Answers(_) => {
                if let Some(notice) = self.answers_notice(account, until) {
                    work.send(notice);
                }
                format!(
                    "security answers refused until {} after {} wrong answers",
                    until.to_rfc3339(),
                    crate::lockout::ANSWER_FAILURES
                )
            }
        };
        work.audit(
            AuditEvent::new(AuditKind::AccountLocked, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(detail),
        );
        match counter {
            Counter::Account(_) => work.count(CountedEvent::AccountLocked),
            Counter::Device(_) => work.count(CountedEvent::DeviceLocked),
            Counter::Answers(_) => {}
        }
        work.commit().await?;
        Ok(())
    }

    /// The owner's notice that their security answers are being guessed.
    fn answers_notice(
        &self,
        account: &AccountRow,
        until: UnixTime,
    ) -> Option<crate::ports::Outgoing> {
        let issuer = &self.policies.issuer_name;
        account.notice(
            format!("Someone is guessing your {issuer} security answers"),
            format!(
                "There were {} wrong answers to the security questions of your {issuer} \
                 online account {} in \"Forgot your password?\". Security questions are \
                 switched off for this account until {}; your card ID and a one-time code \
                 still work. Your password is unchanged. If this was not you, call {}.",
                crate::lockout::ANSWER_FAILURES,
                account.user_id,
                until.to_rfc3339(),
                self.policies.support_phone
            ),
        )
    }

    /// The owner's notice of a lock.
    fn lock_notice(&self, account: &AccountRow) -> Option<crate::ports::Outgoing> {
        let issuer = &self.policies.issuer_name;
        account.notice(
            format!("Your {issuer} account is locked"),
            format!(
                "Your {issuer} online account was locked after {} failed sign-in attempts. \
                 To unlock it, use \"Forgot your password?\" on the sign-in page with your \
                 card and a one-time code, or call {}. If these attempts were not you, your \
                 account is safe: nobody can sign in while it is locked.",
                self.policies.lockout.lock_after_failures, self.policies.support_phone
            ),
        )
    }
}
