//! Flow 5: forgot User ID. A code goes to the email address given (or the phone on file
//! for it); the code shows the User ID(s). Nothing tells a stranger whether the address is
//! known (see `service/recovery.rs` for the shared rules and `codes.rs` for the code).

use portcullis_crypto::{sha256, Token};
use secrecy::SecretString;

use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::contact::{CodeChannel, Email};
use crate::steps::{CodePurpose, StepKind};
use crate::throttle::ThrottleAction;
use crate::ServiceError;

use super::codes::STEP_SECS;

impl Portcullis {
    /// Forgot User ID, step 1: a code goes to the email or the phone on file. The answer is
    /// the same whether or not the address is known, and so is the work: the same claims
    /// (the address's bucket, the step's resend pacing, the destination's limits), the same
    /// step and an audit event; only a known address gets a code and its message, and only
    /// while its destination has places left (so the guessable codes of an account are at
    /// most its destination's share, 3 a day, each with 5 tries).
    pub async fn start_user_id_recovery(
        &self,
        email: &str,
        channel: &str,
        client: &ClientInfo,
    ) -> Result<SecretString, ServiceError> {
        let now = self.clock.now();
        let email = Email::parse(email).map_err(|m| ServiceError::field("email", m))?;
        let preferred = CodeChannel::parse(channel)
            .ok_or_else(|| ServiceError::field("channel", "Choose email or text message."))?;
        // Every start counts: it can send a message.
        let _ = self
            .throttle_claim(ThrottleAction::Recovery, client, now)
            .await?;
        let accounts = self
            .ports
            .accounts
            .accounts_by_email(email.as_str())
            .await?;
        let account = accounts.first();
        let token = Token::generate();
        // The resend pacing starts with the step, for known and unknown addresses alike.
        self.pace_resend(&token.hash, now).await?;
        // A stranger can ask for anyone's address: the code is held back (silently) once
        // the destination has had its share. An unknown address claims the address typed.
        let held = match account {
            Some(a) => self.claim_code_destination(a, Some(preferred), now).await?,
            None => {
                self.destination_claim(CodeChannel::Email, email.as_str(), now)
                    .await?
            }
        };
        let mut work = self.begin(now);
        work.create_step(
            &token.hash,
            StepKind::RecoveryUserId,
            account.map_or(-1, |a| a.id),
            preferred.as_str(),
            now.plus_secs(STEP_SECS),
        )
        .await?;
        match account {
            Some(account) => {
                work.audit(
                    AuditEvent::new(AuditKind::RecoveryStarted, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail(if held.is_none() {
                            "forgot User ID"
                        } else {
                            "forgot User ID: no code (the destination has had its share)"
                        }),
                );
                // Held back: no code at all, so strangers cannot open steps with guessable
                // codes without end; the codes of one address are at most its share.
                if held.is_none() {
                    self.send_code(
                        &mut work,
                        &token.hash,
                        account,
                        CodePurpose::RecoveryUserId,
                        Some(preferred),
                    )
                    .await?;
                }
            }
            None => work.audit(
                AuditEvent::new(AuditKind::RecoveryStarted, None)
                    .ip(client.ip.as_deref())
                    .detail("forgot User ID: unknown address"),
            ),
        }
        work.commit().await?;
        Ok(token.secret)
    }

    /// Forgot User ID, step 2: the code shows the User ID(s) registered with the address.
    pub async fn verify_user_id_code(
        &self,
        token: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>, ServiceError> {
        let step_hash = sha256(token.as_bytes());
        let now = self.clock.now();
        let step = self
            .ports
            .steps
            .find_step(&step_hash, StepKind::RecoveryUserId, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let checked = self
            .check_code(&step_hash, &step, code, client, now)
            .await?;
        let Some(account) = self
            .ports
            .accounts
            .account_by_id(checked.account_id)
            .await?
        else {
            return Err(ServiceError::StepExpired);
        };
        let user_ids: Vec<String> = match &account.email {
            Some(email) => self
                .ports
                .accounts
                .accounts_by_email(email)
                .await?
                .into_iter()
                .map(|a| a.user_id)
                .collect(),
            None => vec![account.user_id.clone()],
        };
        let mut work = self.begin(now);
        self.take_code(&mut work, &step_hash).await?;
        work.consume_step(&step_hash, StepKind::RecoveryUserId)
            .await?;
        work.audit(
            AuditEvent::new(AuditKind::UserIdRecovered, Some(account.id)).ip(client.ip.as_deref()),
        );
        work.commit().await?;
        self.throttle_release(checked.throttle).await;
        Ok(user_ids)
    }
}
