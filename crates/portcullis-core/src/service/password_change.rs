//! Changing the password while signed in: the current password is required, the new one
//! must meet the policy (and, under `pci-dss-4`, differ from the last four), every other
//! session ends, and the owner is told — the change, the sweep, the notice and the audit
//! event in one unit of work.

use super::sessions::SessionContext;
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::ids::UserId;
use crate::password::{Password, PasswordRule};
use crate::{FieldError, ServiceError};

impl Portcullis {
    pub async fn change_password(
        &self,
        ctx: &SessionContext,
        current: &str,
        new: &str,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let account = self.session_account(ctx).await?;
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
        self.check_current_password(&account, current, "password change", client, now)
            .await?;
        // Not the same password again, nor (for profiles with a history) a recent one.
        // "The last N" counts the current password, so N - 1 older ones are kept.
        let last_n = self.policies.password.profile.history();
        let older = last_n.saturating_sub(1);
        let mut earlier = vec![account.password_hash.clone()];
        earlier.extend(
            self.ports
                .accounts
                .password_history(account.id, older)
                .await?,
        );
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
        let mut work = self.begin(now);
        work.change_password(account.id, &hash, older).await?;
        let ended = work
            .delete_account_sessions(account.id, Some(ctx.session_id))
            .await?;
        let issuer = &self.policies.issuer_name;
        if let Some(notice) = account.notice(
            format!("Your {issuer} password was changed"),
            format!(
                "The password for your online account {} was just changed, and every other \
                 session was signed out. If this was not you, call {} at once.",
                account.user_id, self.policies.support_phone
            ),
        ) {
            work.send(notice);
        }
        work.audit(
            AuditEvent::new(AuditKind::PasswordChanged, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!("{ended} other sessions ended")),
        );
        work.commit().await?;
        Ok(())
    }
}
