//! Flow 9: changing the email address or mobile number while signed in.
//!
//! 1. The current password, checked against the same failure counter as signing in (a
//!    stolen session cannot guess it freely); then a one-time code goes to the *new*
//!    address, proving the person receives messages there.
//! 2. The code (6 digits, 10 minutes, 5 tries, stored as a keyed hash, used once): the
//!    change is applied and the *old* address is told, the notice committed in the same
//!    unit of work as the change.

use portcullis_crypto::{sha256, Token};
use secrecy::{ExposeSecret, SecretString};

use super::sessions::SessionContext;
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::contact::{mask, Email, Phone};
use crate::otp::{self, CodePolicy, Resend};
use crate::ports::{AccountRow, ContactField, Message, NewCode, Outgoing, StepRow};
use crate::steps::{CodePurpose, StepKind};
use crate::{FieldError, ServiceError};

/// The step outlives its code so that a resend stays possible.
const STEP_SECS: i64 = 20 * 60;

/// The code went out to the new address.
pub struct ContactChangeStarted {
    pub token: SecretString,
    pub field: ContactField,
    /// The new address, masked.
    pub destination: String,
}

/// A live contact-change step of this session's account: the field and the new value.
fn change_of(step: &StepRow) -> Option<(ContactField, String)> {
    step.data
        .split_once(':')
        .and_then(|(f, v)| Some((ContactField::parse(f)?, v.to_owned())))
}

impl Portcullis {
    /// Step 1: the current password and the new address; a code goes to the new address.
    pub async fn start_contact_change(
        &self,
        ctx: &SessionContext,
        current_password: &str,
        field: &str,
        value: &str,
        client: &ClientInfo,
    ) -> Result<ContactChangeStarted, ServiceError> {
        let now = self.clock.now();
        let account = self.writable_account(ctx).await?;
        let mut errors = Vec::new();
        let field = ContactField::parse(field);
        let new_value = match field {
            Some(ContactField::Email) => Email::parse(value)
                .map(|e| e.as_str().to_owned())
                .map_err(|m| errors.push(FieldError::new("email", m)))
                .ok(),
            Some(ContactField::Phone) => Phone::parse(value)
                .map(|p| p.as_str().to_owned())
                .map_err(|m| errors.push(FieldError::new("phone", m)))
                .ok(),
            None => {
                errors.push(FieldError::new(
                    "field",
                    "Choose what to change: email or phone.",
                ));
                None
            }
        };
        let current = match field {
            Some(ContactField::Email) => account.email.as_deref(),
            Some(ContactField::Phone) => account.phone.as_deref(),
            None => None,
        };
        if let (Some(f), Some(v)) = (field, &new_value) {
            if current == Some(v.as_str()) {
                errors.push(FieldError::new(
                    f.as_str(),
                    match f {
                        ContactField::Email => "That is already your email address.",
                        ContactField::Phone => "That is already your mobile number.",
                    },
                ));
            }
        }
        if current_password.is_empty() {
            errors.push(FieldError::new(
                "current_password",
                "Enter your current password.",
            ));
        }
        let (Some(field), Some(new_value), true) = (field, new_value, errors.is_empty()) else {
            return Err(ServiceError::Invalid(errors));
        };
        self.check_current_password(&account, current_password, "a contact change", client, now)
            .await?;

        let step = Token::generate();
        let channel = field.channel();
        let destination = mask(channel, &new_value);
        let code = otp::generate();
        let policy = CodePolicy::default();
        let purpose = match field {
            ContactField::Email => CodePurpose::ContactEmail,
            ContactField::Phone => CodePurpose::ContactPhone,
        };
        let mut work = self.begin(now);
        work.create_step(
            &step.hash,
            StepKind::ContactChange,
            account.id,
            &format!("{}:{new_value}", field.as_str()),
            now.plus_secs(STEP_SECS),
        )
        .await?;
        work.create_code(NewCode {
            step_hash: step.hash,
            account_id: account.id,
            purpose,
            code_hash: self.code_hash(&step.hash, code.expose_secret()),
            channel,
            expires_at: now.plus_secs(policy.ttl_secs),
        })
        .await?;
        // A code to the new address only: no fall-back to the old one, which would prove
        // nothing about the new.
        self.queue_code(
            &mut work,
            Outgoing::from(self.code_message(channel, new_value, &code)),
        );
        work.audit(
            AuditEvent::new(AuditKind::ContactChangeStarted, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!("{} → {destination}", field.as_str())),
        );
        work.commit().await?;
        Ok(ContactChangeStarted {
            token: step.secret,
            field,
            destination,
        })
    }

    /// Step 2: the code from the new address. The change is applied and the old address is
    /// told, in one unit of work. Returns the field that changed.
    pub async fn confirm_contact_change(
        &self,
        ctx: &SessionContext,
        token: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<ContactField, ServiceError> {
        let step_hash = sha256(token.as_bytes());
        let now = self.clock.now();
        let step = self
            .ports
            .steps
            .find_step(&step_hash, StepKind::ContactChange, now)
            .await?
            .filter(|s| s.subject_id == ctx.account_id)
            .ok_or(ServiceError::StepExpired)?;
        let (field, new_value) = change_of(&step).ok_or(ServiceError::StepExpired)?;
        let checked = self
            .check_code(&step_hash, &step, code, client, now)
            .await?;
        if checked.account_id != ctx.account_id {
            return Err(ServiceError::StepExpired);
        }
        let account = self.writable_account(ctx).await?;
        let mut work = self.begin(now);
        self.take_code(&mut work, &step_hash).await?;
        if !work
            .consume_step(&step_hash, StepKind::ContactChange)
            .await?
        {
            return Err(ServiceError::StepExpired);
        }
        if !work.change_contact(account.id, field, &new_value).await? {
            return Err(ServiceError::Unauthenticated);
        }
        if let Some(notice) = self.contact_changed_notice(&account, field) {
            work.send(notice);
        }
        work.audit(
            AuditEvent::new(AuditKind::ContactChanged, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!(
                    "{} → {}",
                    field.as_str(),
                    mask(field.channel(), &new_value)
                )),
        );
        work.commit().await?;
        self.throttle_release(checked.throttle).await;
        Ok(field)
    }

    /// A fresh code to the new address (at most once a minute, five times in all).
    pub async fn resend_contact_code(
        &self,
        ctx: &SessionContext,
        token: &str,
    ) -> Result<(), ServiceError> {
        let step_hash = sha256(token.as_bytes());
        let now = self.clock.now();
        let step = self
            .ports
            .steps
            .find_step(&step_hash, StepKind::ContactChange, now)
            .await?
            .filter(|s| s.subject_id == ctx.account_id)
            .ok_or(ServiceError::StepExpired)?;
        let (field, new_value) = change_of(&step).ok_or(ServiceError::StepExpired)?;
        let channel = field.channel();
        let policy = CodePolicy::default();
        let code = otp::generate();
        let hash = self.code_hash(&step_hash, code.expose_secret());
        let mut work = self.begin(now);
        match work.resend_code(&step_hash, &hash, &policy).await? {
            Resend::Sent => {
                self.queue_code(
                    &mut work,
                    Outgoing::from(self.code_message(channel, new_value, &code)),
                );
                work.commit().await?;
                Ok(())
            }
            Resend::TooSoon { retry_after } => Err(ServiceError::TooManyRequests { retry_after }),
            Resend::TooMany => Err(ServiceError::TooManyRequests {
                retry_after: u64::try_from(step.expires_at.0 - now.0)
                    .unwrap_or(60)
                    .max(1),
            }),
            Resend::NoCode => Err(ServiceError::StepExpired),
        }
    }

    /// The notice of a change, to the old address of that kind (else to the account's
    /// usual channel).
    fn contact_changed_notice(
        &self,
        account: &AccountRow,
        field: ContactField,
    ) -> Option<Outgoing> {
        let issuer = &self.policies.issuer_name;
        let what = match field {
            ContactField::Email => "email address",
            ContactField::Phone => "mobile number",
        };
        let subject = format!("Your {issuer} {what} was changed");
        let body = format!(
            "The {what} of your online account {} was just changed. Messages now go to the \
             new {what}. If this was not you, call {} at once.",
            account.user_id, self.policies.support_phone
        );
        let old = match field {
            ContactField::Email => account.email.clone(),
            ContactField::Phone => account.phone.clone(),
        };
        match old {
            Some(to) => Some(account.outgoing(Message {
                channel: field.channel(),
                to,
                subject,
                body,
                sensitive: false,
            })),
            None => account.notice(subject, body),
        }
    }
}
