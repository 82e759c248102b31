//! Flow 9: changing the email address or mobile number while signed in.
//!
//! 1. The current password, checked against the same failure counter as signing in (a
//!    stolen session cannot guess it freely); then a one-time code goes to the *new*
//!    address, proving the person receives messages there.
//! 2. The code (6 digits, 10 minutes, 5 tries, stored as a keyed hash, used once): the
//!    change is applied and the *old* address is told, the notice committed in the same
//!    transaction as the change.

use portcullis_crypto::{sha256, Token};
use secrecy::{ExposeSecret, SecretString};

use super::recovery::mask;
use super::signin::contact_message;
use super::{ClientInfo, Portcullis, SessionContext};
use crate::audit::{AuditEvent, AuditKind};
use crate::contact::{CodeChannel, Email, Phone};
use crate::lockout::Claim;
use crate::otp::{self, CodePolicy, Resend};
use crate::password::Password;
use crate::ports::{AccountRow, ContactField, Counter, Message, NewCode, Outgoing};
use crate::{FieldError, ServiceError};

const CONTACT_STEP: &str = "contact.change";
/// The step outlives its code so that a resend stays possible.
const STEP_SECS: i64 = 20 * 60;

/// The code went out to the new address.
pub struct ContactChangeStarted {
    pub token: SecretString,
    pub field: ContactField,
    /// The new address, masked.
    pub destination: String,
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
        let account = self
            .store
            .account_by_id(ctx.account_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
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
        self.check_current_password(&account, current_password, client)
            .await?;

        let now = self.clock.now();
        let step = Token::generate();
        let data = format!("{}:{new_value}", field.as_str());
        self.store
            .create_step(
                &step.hash,
                CONTACT_STEP,
                account.id,
                &data,
                now.plus_secs(STEP_SECS),
            )
            .await?;
        let channel = match field {
            ContactField::Email => CodeChannel::Email,
            ContactField::Phone => CodeChannel::Sms,
        };
        let destination = mask(channel, &new_value);
        let code = otp::generate();
        let policy = CodePolicy::default();
        // A code to the new address only: no fall-back to the old one, which would prove
        // nothing about the new.
        let message = Outgoing::from(self.code_message(channel, new_value, &code));
        self.store
            .create_code(NewCode {
                step_hash: step.hash,
                account_id: account.id,
                purpose: format!("contact.{}", field.as_str()),
                code_hash: otp::code_hash(&self.keys, &step.hash, code.expose_secret()),
                channel,
                now,
                expires_at: now.plus_secs(policy.ttl_secs),
                messages: vec![message],
            })
            .await?;
        self.notifier.wake();
        self.counters.code_sent(channel);
        self.audit(
            AuditEvent::new(AuditKind::ContactChangeStarted, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!("{} → {destination}", field.as_str())),
        )
        .await;
        Ok(ContactChangeStarted {
            token: step.secret,
            field,
            destination,
        })
    }

    /// Step 2: the code from the new address. The change is applied and the old address is
    /// told, in one transaction. Returns the field that changed.
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
            .store
            .find_step(&step_hash, CONTACT_STEP, now)
            .await?
            .filter(|s| s.subject_id == ctx.account_id)
            .ok_or(ServiceError::StepExpired)?;
        let (field, new_value) = step
            .data
            .split_once(':')
            .and_then(|(f, v)| Some((ContactField::parse(f)?, v.to_owned())))
            .ok_or(ServiceError::StepExpired)?;
        let (account_id, _) = self
            .check_code(&step_hash, &step, CONTACT_STEP, code, client)
            .await?;
        if account_id != ctx.account_id
            || !self.store.consume_step(&step_hash, CONTACT_STEP).await?
        {
            return Err(ServiceError::StepExpired);
        }
        let account = self
            .store
            .account_by_id(account_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let notice = self.contact_changed_notice(&account, field);
        if !self
            .store
            .change_contact(account.id, field, &new_value, now, &notice)
            .await?
        {
            return Err(ServiceError::Unauthenticated);
        }
        self.notifier.wake();
        let channel = match field {
            ContactField::Email => CodeChannel::Email,
            ContactField::Phone => CodeChannel::Sms,
        };
        self.audit(
            AuditEvent::new(AuditKind::ContactChanged, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!(
                    "{} → {}",
                    field.as_str(),
                    mask(channel, &new_value)
                )),
        )
        .await;
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
            .store
            .find_step(&step_hash, CONTACT_STEP, now)
            .await?
            .filter(|s| s.subject_id == ctx.account_id)
            .ok_or(ServiceError::StepExpired)?;
        let (field, new_value) = step
            .data
            .split_once(':')
            .and_then(|(f, v)| Some((ContactField::parse(f)?, v.to_owned())))
            .ok_or(ServiceError::StepExpired)?;
        let channel = match field {
            ContactField::Email => CodeChannel::Email,
            ContactField::Phone => CodeChannel::Sms,
        };
        let policy = CodePolicy::default();
        let code = otp::generate();
        let hash = otp::code_hash(&self.keys, &step_hash, code.expose_secret());
        let messages = [Outgoing::from(self.code_message(channel, new_value, &code))];
        match self
            .store
            .resend_code(
                &step_hash,
                &hash,
                now,
                policy.ttl_secs,
                policy.resend_after_secs,
                policy.max_sends,
                &messages,
            )
            .await?
        {
            Resend::Sent => {
                self.notifier.wake();
                self.counters.code_sent(channel);
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
    fn contact_changed_notice(&self, account: &AccountRow, field: ContactField) -> Vec<Outgoing> {
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
            ContactField::Email => account.email.clone().map(|to| Message {
                channel: CodeChannel::Email,
                to,
                subject: subject.clone(),
                body: body.clone(),
                sensitive: false,
            }),
            ContactField::Phone => account.phone.clone().map(|to| Message {
                channel: CodeChannel::Sms,
                to,
                subject: subject.clone(),
                body: body.clone(),
                sensitive: false,
            }),
        };
        old.or_else(|| contact_message(account, subject, body))
            .map(|m| Self::outgoing(account, m))
            .into_iter()
            .collect()
    }

    /// The current password, for a change made while signed in: counted on the account's
    /// failure counter like a sign-in, so a stolen session cannot guess it freely.
    pub(super) async fn check_current_password(
        &self,
        account: &AccountRow,
        current: &str,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
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
        match self
            .hasher
            .verify(current.expose().as_bytes(), Some(&account.password_hash))
            .await
        {
            Ok(v) if v.is_match() => {
                self.store.reset_failures(counter).await?;
                Ok(())
            }
            Ok(_) => {
                self.audit(
                    AuditEvent::new(AuditKind::SignInFailed, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail("wrong current password on a contact change"),
                )
                .await;
                Err(ServiceError::field(
                    "current_password",
                    "That is not your current password.",
                ))
            }
            Err(e) => {
                self.store.release_attempt(counter).await?;
                Err(e.into())
            }
        }
    }
}
