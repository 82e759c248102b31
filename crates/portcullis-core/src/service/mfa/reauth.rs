//! Re-authentication: the password again, for changes to sign-in settings (factors,
//! passkeys, recovery codes), and the current password a change made while signed in asks
//! for (password, contact details). Either way a wrong password counts on the account's
//! failure counter like a failed sign-in, so a stolen session cannot guess it freely.

use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::lockout::Claim;
use crate::password::Password;
use crate::ports::{AccountRow, Counter};
use crate::service::sessions::SessionContext;
use crate::service::{ClientInfo, Portcullis};
use crate::ServiceError;

impl Portcullis {
    /// Re-authentication: the password again. Wrong passwords count towards the lock like
    /// any failed sign-in, and lock at the threshold.
    pub async fn reauthenticate(
        &self,
        ctx: &SessionContext,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let account = self.session_account(ctx).await?;
        let password = Password::new(password);
        let counter = Counter::Account(account.id);
        let limit = self.policies.lockout.lock_after_failures;
        let claimed = match self.ports.claims.claim_attempt(counter, now, limit).await? {
            Claim::Granted(n) => n,
            Claim::Locked(until) => return Err(ServiceError::Locked { until }),
            Claim::Exhausted => return Err(ServiceError::TooManyRequests { retry_after: 1 }),
        };
        let verified = match self
            .hasher
            .verify(password.expose().as_bytes(), Some(&account.password_hash))
            .await
        {
            Ok(v) => v,
            Err(e) => {
                self.ports.claims.release_attempt(counter).await?;
                return Err(e.into());
            }
        };
        if verified.is_match() {
            let mut work = self.begin(now);
            work.reset_failures(counter).await?;
            work.mark_reauth(ctx.session_id).await?;
            work.audit(
                AuditEvent::new(AuditKind::Reauthenticated, Some(account.id))
                    .ip(client.ip.as_deref()),
            );
            work.commit().await?;
            Ok(())
        } else {
            self.audit_alone(
                now,
                AuditEvent::new(AuditKind::SignInFailed, Some(account.id))
                    .ip(client.ip.as_deref())
                    .detail("wrong password at re-authentication"),
            )
            .await;
            // The claim stands as the failure; lock at the threshold.
            if claimed >= limit {
                self.lock_counter(&account, counter, client, now).await?;
            }
            Err(ServiceError::field(
                "password",
                "That password is not right. Enter the password you sign in with.",
            ))
        }
    }

    /// The current password, for a change made while signed in (`what` names the change in
    /// the audit log): claimed on the account's failure counter like a sign-in, and under
    /// the same rule: the failure that reaches the limit locks the account (with the
    /// owner's notice), and the lock ends after `lock_for_secs`.
    pub(crate) async fn check_current_password(
        &self,
        account: &AccountRow,
        current: &str,
        what: &str,
        client: &ClientInfo,
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        let counter = Counter::Account(account.id);
        let limit = self.policies.lockout.lock_after_failures;
        let claimed = match self.ports.claims.claim_attempt(counter, now, limit).await? {
            Claim::Granted(n) => n,
            // Locked, or the last slots are being evaluated (the one that fails locks).
            Claim::Locked(_) | Claim::Exhausted => {
                return Err(ServiceError::field(
                    "current_password",
                    "Too many wrong attempts. Your account is locked for your protection.",
                ));
            }
        };
        let current = Password::new(current);
        match self
            .hasher
            .verify(current.expose().as_bytes(), Some(&account.password_hash))
            .await
        {
            Ok(v) if v.is_match() => {
                let mut work = self.begin(now);
                work.reset_failures(counter).await?;
                work.commit().await?;
                Ok(())
            }
            Ok(_) => {
                self.audit_alone(
                    now,
                    AuditEvent::new(AuditKind::SignInFailed, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail(format!(
                            "wrong current password on {what} ({claimed} of {limit}, account)"
                        )),
                )
                .await;
                // The claim stands as the failure; lock at the threshold, as a sign-in does.
                if claimed >= limit {
                    self.lock_counter(account, counter, client, now).await?;
                }
                Err(ServiceError::field(
                    "current_password",
                    "That is not your current password.",
                ))
            }
            Err(e) => {
                self.ports.claims.release_attempt(counter).await?;
                Err(e.into())
            }
        }
    }

    pub(crate) fn require_recent_auth(
        &self,
        ctx: &SessionContext,
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        if now.0 - ctx.auth_at.0 > self.policies.mfa.reauth_secs {
            Err(ServiceError::ReauthRequired)
        } else {
            Ok(())
        }
    }

    pub(crate) async fn session_account(
        &self,
        ctx: &SessionContext,
    ) -> Result<AccountRow, ServiceError> {
        self.ports
            .accounts
            .account_by_id(ctx.account_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)
    }

    /// The session's account for a change of its settings (factors, contact details,
    /// cards): refused while the account is read-only because every card of it is closed at
    /// the issuer (docs/design/cards.md). Reading, signing out and changing the password
    /// stay open.
    pub(crate) async fn writable_account(
        &self,
        ctx: &SessionContext,
    ) -> Result<AccountRow, ServiceError> {
        let account = self.session_account(ctx).await?;
        let cards = self.ports.accounts.cards_for_account(account.id).await?;
        if !cards.is_empty() && cards.iter().all(|c| c.status == "closed") {
            return Err(ServiceError::ReadOnly);
        }
        Ok(account)
    }
}
