//! The second factors on `/security`: what is set up, turning codes by email or text on,
//! removing a factor, and telling the owner of every change.

use super::{FactorInfo, SecuritySettings, TrustedDevice};
use crate::audit::{AuditEvent, AuditKind};
use crate::contact::{mask, CodeChannel};
use crate::device::describe_or;
use crate::ports::{AccountRow, FactorKind, NewFactor};
use crate::service::sessions::SessionContext;
use crate::service::{ClientInfo, Portcullis, Work};
use crate::ServiceError;

impl Portcullis {
    /// The second-factor settings shown on `/security`.
    pub async fn security_settings(
        &self,
        ctx: &SessionContext,
    ) -> Result<SecuritySettings, ServiceError> {
        let now = self.clock.now();
        let account = self.session_account(ctx).await?;
        let factors = self
            .confirmed_factors(account.id)
            .await?
            .into_iter()
            .map(|f| FactorInfo {
                id: f.id,
                kind: f.kind,
                name: f.name,
                created_at: f.created_at,
                last_used_at: f.last_used_at,
            })
            .collect();
        let trusted_devices = self
            .ports
            .devices
            .list_devices(account.id)
            .await?
            .into_iter()
            .filter_map(|d| {
                let until = d.trusted_until.filter(|t| *t > now)?;
                Some(TrustedDevice {
                    id: d.id,
                    description: describe_or(d.user_agent.as_deref(), "Unknown device"),
                    trusted_until: until,
                    last_seen_at: d.last_seen_at,
                })
            })
            .collect();
        Ok(SecuritySettings {
            factors,
            recovery_codes_left: self.ports.factors.recovery_codes_left(account.id).await?,
            trusted_devices,
            recently_authenticated: self.require_recent_auth(ctx, now).is_ok(),
            has_email: account.email.is_some(),
            has_phone: account.phone.is_some(),
        })
    }

    /// Turns on codes by email or text as a second factor.
    pub async fn enable_code_factor(
        &self,
        ctx: &SessionContext,
        channel: &str,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        self.require_recent_auth(ctx, now)?;
        let account = self.writable_account(ctx).await?;
        let channel = CodeChannel::parse(channel)
            .ok_or_else(|| ServiceError::field("channel", "Choose email or text message."))?;
        let (_, to) = account
            .destination(Some(channel))
            .filter(|(c, _)| *c == channel)
            .ok_or_else(|| {
                ServiceError::field(
                    "channel",
                    "There is no address for this on your account. Add one first.",
                )
            })?;
        let (kind, what) = match channel {
            CodeChannel::Email => (FactorKind::Email, "Codes by email"),
            CodeChannel::Sms => (FactorKind::Sms, "Codes by text message"),
        };
        let mut work = self.begin(now);
        work.create_factor(NewFactor {
            account_id: account.id,
            kind,
            name: format!("{what} to {}", mask(channel, &to)),
            secret: None,
            credential_id: None,
            confirmed: true,
        })
        .await?;
        self.factor_changed(
            &mut work,
            &account,
            &format!("{what} were turned on"),
            client,
        );
        work.commit().await?;
        Ok(())
    }

    /// Removes a second factor.
    pub async fn remove_factor(
        &self,
        ctx: &SessionContext,
        factor_id: i64,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        self.require_recent_auth(ctx, now)?;
        let account = self.writable_account(ctx).await?;
        let mut work = self.begin(now);
        if !work.delete_factor(factor_id, account.id).await? {
            return Err(ServiceError::NotFound);
        }
        work.audit(
            AuditEvent::new(AuditKind::FactorRemoved, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!("factor {factor_id}")),
        );
        self.tell_owner(
            &mut work,
            &account,
            "A second factor was removed",
            "A way of confirming your sign-ins was removed from your online account.",
        );
        work.commit().await?;
        Ok(())
    }

    /// A factor was added in `work`: the audit event and the owner's notice.
    pub(crate) fn factor_changed(
        &self,
        work: &mut Work<'_>,
        account: &AccountRow,
        what: &str,
        client: &ClientInfo,
    ) {
        work.audit(
            AuditEvent::new(AuditKind::FactorAdded, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(what),
        );
        self.tell_owner(
            work,
            account,
            what,
            &format!("{what} on your online account."),
        );
    }

    /// The owner's notice of a change to their sign-in settings, sent with it.
    pub(super) fn tell_owner(
        &self,
        work: &mut Work<'_>,
        account: &AccountRow,
        subject: &str,
        first: &str,
    ) {
        let issuer = &self.policies.issuer_name;
        if let Some(notice) = account.notice(
            format!("{subject} ({issuer})"),
            format!(
                "{first} If this was you, there is nothing to do. If it was not, reset your \
                 password with \"Forgot your password?\" at once, or call {}.",
                self.policies.support_phone
            ),
        ) {
            work.send(notice);
        }
    }
}
