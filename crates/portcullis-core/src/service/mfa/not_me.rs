//! "This was not me" (the link in a new-device notice) and trusted devices.

use portcullis_crypto::sha256;

use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::counters::CountedEvent;
use crate::ports::Counter;
use crate::service::sessions::SessionContext;
use crate::service::{ClientInfo, Portcullis};
use crate::steps::StepKind;
use crate::ServiceError;

impl Portcullis {
    /// Stops trusting one of the account's devices.
    pub async fn untrust_device(
        &self,
        ctx: &SessionContext,
        device_id: i64,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let mut work = self.begin(self.clock.now());
        if !work
            .set_device_trust(device_id, ctx.account_id, None)
            .await?
        {
            return Err(ServiceError::NotFound);
        }
        work.audit(
            AuditEvent::new(AuditKind::DeviceUntrusted, Some(ctx.account_id))
                .ip(client.ip.as_deref())
                .detail(format!("device {device_id}")),
        );
        work.commit().await?;
        Ok(())
    }

    /// "This was not me" means the account is compromised (recovery, not a pause): every
    /// session ends, every device is forgotten (and with it every device trust), every
    /// second factor, passkey and recovery code added since the disputed sign-in is
    /// removed, the account is locked, and its password is marked compromised, so the only
    /// way back is a new password (card ID + code, or support) — an unlock that keeps the
    /// old password is refused. All in one unit of work with the owner's notice.
    pub async fn not_me(&self, token: &str, client: &ClientInfo) -> Result<(), ServiceError> {
        if token.is_empty() || token.len() > 128 {
            return Err(ServiceError::StepExpired);
        }
        let hash = sha256(token.as_bytes());
        let now = self.clock.now();
        let step = self
            .ports
            .steps
            .find_step(&hash, StepKind::NotMe, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let mut account = self
            .ports
            .accounts
            .account_by_id(step.subject_id)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        // The disputed sign-in's time: the step's data, or (a step written before it was
        // kept there) the step's creation, which is its expiry less its life.
        let since = step
            .data
            .parse::<i64>()
            .map(UnixTime)
            .unwrap_or_else(|_| step.expires_at.plus_secs(-self.policies.mfa.not_me_secs));
        let until = now.plus_secs(self.policies.lockout.lock_for_secs);
        let mut work = self.begin(now);
        // The account's row first, as every unit of work on an account takes it.
        let locked = work.lock(Counter::Account(account.id), until).await?;
        if !work.consume_step(&hash, StepKind::NotMe).await? {
            return Err(ServiceError::StepExpired);
        }
        let ended = work.delete_account_sessions(account.id, None).await?;
        // Whoever signed in may have allowed sites and apps in the owner's name: those
        // consents go too (the owner is asked again at the next request).
        work.revoke_oidc_grants(account.id).await?;
        // Known devices would keep their own allowance past the lock, and trusted ones would
        // skip the second step: forget them all.
        work.forget_devices(account.id).await?;
        let removed = work.remove_factors_since(account.id, since).await?;
        work.mark_password_compromised(account.id).await?;
        // An email or phone changed since then goes back to what it was: the recovery code
        // must reach the owner, not the intruder's address; the notice goes there too.
        let reverted = match work.revert_contact_since(account.id, since).await? {
            Some((email, phone)) => {
                account.email = email;
                account.phone = phone;
                true
            }
            None => false,
        };
        let issuer = &self.policies.issuer_name;
        if let Some(notice) = account.notice(
            format!("We locked your {issuer} account as you asked"),
            format!(
                "You told us a sign-in to your {issuer} online account was not you. We signed \
                 out every device, removed every sign-in method added since then,{} and \
                 locked the account. Your password is no longer accepted: to get back in, use \
                 \"Forgot your password?\" on the sign-in page with your card and a one-time \
                 code, and choose a new password; or call {}.",
                if reverted {
                    " put back the contact details changed since then,"
                } else {
                    ""
                },
                self.policies.support_phone
            ),
        ) {
            work.send(notice);
        }
        work.audit(
            AuditEvent::new(AuditKind::NotMe, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!(
                    "{ended} sessions ended; devices forgotten; {removed} factors added since \
                     {} removed;{} password marked compromised; locked until {}",
                    since.to_rfc3339(),
                    if reverted {
                        " contact changes since then reverted;"
                    } else {
                        ""
                    },
                    until.to_rfc3339()
                )),
        );
        if locked {
            work.count(CountedEvent::AccountLocked);
        }
        work.commit().await?;
        Ok(())
    }
}
