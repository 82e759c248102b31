//! Changing the password while signed in: the current password is required, the new one
//! must meet the policy (and, under `pci-dss-4`, differ from the last four), every other
//! session ends, and the owner is told.

use super::signin::contact_message;
use super::{ClientInfo, Portcullis, SessionContext};
use crate::audit::{AuditEvent, AuditKind};
use crate::ids::UserId;
use crate::lockout::Claim;
use crate::password::{Password, PasswordRule};
use crate::ports::Counter;
use crate::{FieldError, ServiceError};

impl Portcullis {
    pub async fn change_password(
        &self,
        ctx: &SessionContext,
        current: &str,
        new: &str,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let account = self
            .store
            .account_by_id(ctx.account_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let user_id = UserId::parse(&account.user_id).ok();
        let new_password = Password::new(new);
        let mut errors: Vec<FieldError> = self
            .policies
            .password
            .check(&new_password, user_id.as_ref(), false)
            .into_iter()
            .map(|r| FieldError::new("new_password", r.message()))
            .collect();
        if current.is_empty() {
            errors.push(FieldError::new(
                "current_password",
                "Enter your current password.",
            ));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        // Guessing the current password from a stolen session is bounded by the same
        // counter as signing in.
        let now = self.clock.now();
        let counter = Counter::Account(account.id);
        let limit = self.policies.lockout.lock_after_failures;
        if !matches!(
            self.store.claim_attempt(counter, now, limit).await?,
            Claim::Granted(_)
        ) {
            return Err(ServiceError::field(
                "current_password",
                "Too many wrong attempts. Your account is locked for your protection.",
            ));
        }
        let current = Password::new(current);
        let verified = self
            .hasher
            .verify(current.expose().as_bytes(), Some(&account.password_hash))
            .await;
        match verified {
            Ok(v) if v.is_match() => self.store.reset_failures(counter).await?,
            Ok(_) => {
                self.audit(
                    AuditEvent::new(AuditKind::SignInFailed, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail("wrong current password on password change"),
                )
                .await;
                return Err(ServiceError::field(
                    "current_password",
                    "That is not your current password.",
                ));
            }
            Err(e) => {
                self.store.release_attempt(counter).await?;
                return Err(e.into());
            }
        }
        // Not the same password again, nor (for profiles with a history) a recent one.
        // "The last N" counts the current password, so N - 1 older ones are kept.
        let last_n = self.policies.password.profile.history();
        let older = last_n.saturating_sub(1);
        let mut earlier = vec![account.password_hash.clone()];
        earlier.extend(self.store.password_history(account.id, older).await?);
        for hash in &earlier {
            if self
                .hasher
                .verify(new_password.expose().as_bytes(), Some(hash))
                .await?
                .is_match()
            {
                let rule = PasswordRule::RecentlyUsed {
                    count: last_n.max(1),
                };
                return Err(ServiceError::field("new_password", rule.message()));
            }
        }
        let hash = self.hasher.hash(new_password.expose().as_bytes()).await?;
        let issuer = &self.policies.issuer_name;
        let notice: Vec<_> = contact_message(
            &account,
            format!("Your {issuer} password was changed"),
            format!(
                "The password for your online account {} was just changed, and every other \
                 session was signed out. If this was not you, call {} at once.",
                account.user_id, self.policies.support_phone
            ),
        )
        .map(|m| Self::outgoing(&account, m))
        .into_iter()
        .collect();
        // The new password and the owner's notice commit together.
        self.store
            .change_password(account.id, &hash, now, older, &notice)
            .await?;
        self.notifier.wake();
        let ended = self
            .store
            .delete_account_sessions(account.id, Some(ctx.session_id))
            .await?;
        self.audit(
            AuditEvent::new(AuditKind::PasswordChanged, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!("{ended} other sessions ended")),
        )
        .await;
        Ok(())
    }
}
