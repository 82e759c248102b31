//! "This was not me" (the link in a new-device notice) and trusted devices.

use portcullis_crypto::sha256;

use crate::audit::{AuditEvent, AuditKind};
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

    /// "This was not me": every session ends, every device is forgotten and the account
    /// is locked until its owner unlocks it (card ID and a code, or support), all in one
    /// unit of work with the owner's notice.
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
        let account = self
            .ports
            .accounts
            .account_by_id(step.subject_id)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let until = now.plus_secs(self.policies.lockout.lock_for_secs);
        let mut work = self.begin(now);
        // The account's row first, as every unit of work on an account takes it.
        let locked = work.lock(Counter::Account(account.id), until).await?;
        if !work.consume_step(&hash, StepKind::NotMe).await? {
            return Err(ServiceError::StepExpired);
        }
        let ended = work.delete_account_sessions(account.id, None).await?;
        // Known devices would keep their own allowance past the lock: forget them all.
        work.forget_devices(account.id).await?;
        if locked {
            let issuer = &self.policies.issuer_name;
            if let Some(notice) = account.notice(
                format!("We locked your {issuer} account as you asked"),
                format!(
                    "You told us a sign-in to your {issuer} online account was not you. We \
                     signed out every device and locked the account. To get back in, use \
                     \"Forgot your password?\" on the sign-in page with your card and a \
                     one-time code, and choose a new password; or call {}.",
                    self.policies.support_phone
                ),
            ) {
                work.send(notice);
            }
        }
        work.audit(
            AuditEvent::new(AuditKind::NotMe, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!(
                    "{ended} sessions ended; locked until {}",
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
