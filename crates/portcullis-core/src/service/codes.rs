//! The one-time codes of recovery and contact changes: sending one with its message in the
//! same unit of work, checking one (every try counted first, on the step and on the code),
//! and taking it (once, by exactly one caller).

use secrecy::{ExposeSecret, SecretString};

use super::{ClientInfo, Portcullis, Work};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::contact::{mask, CodeChannel};
use crate::counters::CountedEvent;
use crate::otp::{self, CodePolicy};
use crate::ports::{AccountRow, Message, NewCode, Outgoing, StepRow};
use crate::steps::{CodePurpose, StepKind};
use crate::throttle::{self, ThrottleAction};
use crate::ServiceError;

/// How long a recovery step lives (it outlives its code, so a resend stays possible).
pub(crate) const STEP_SECS: i64 = 20 * 60;

/// A code went out: where to, masked.
pub struct CodeSent {
    pub channel: CodeChannel,
    pub destination: String,
}

/// A code that checked out, not yet taken.
pub(crate) struct CheckedCode {
    pub account_id: i64,
    pub purpose: Option<CodePurpose>,
    /// The throttle place to give back once the code is taken.
    pub throttle: Option<String>,
}

impl Portcullis {
    /// Claims the destination limits for a code an anonymous request (a recovery) sends to
    /// `account` on `preferred`, before its unit of work begins: `Some(retry_after)` when
    /// the destination has had its share. A code for a signed-in owner never comes here.
    pub(crate) async fn claim_code_destination(
        &self,
        account: &AccountRow,
        preferred: Option<CodeChannel>,
        now: UnixTime,
    ) -> Result<Option<u64>, ServiceError> {
        match account.destination(preferred) {
            Some((channel, to)) => self.destination_claim(channel, &to, now).await,
            None => Ok(None),
        }
    }

    /// A new code for the step `step_hash` to `account` (on `preferred` when it has it),
    /// stored with its message in `work`: no code without its message. (A destination past
    /// its limit gets no code at all: a code nobody was sent could still be guessed, and
    /// would let a stranger open steps with guessable codes without end.)
    pub(crate) async fn send_code(
        &self,
        work: &mut Work<'_>,
        step_hash: &[u8; 32],
        account: &AccountRow,
        purpose: CodePurpose,
        preferred: Option<CodeChannel>,
    ) -> Result<CodeSent, ServiceError> {
        let (channel, to) = account
            .destination(preferred)
            .ok_or_else(|| ServiceError::Internal("account has no contact channel".into()))?;
        let code = otp::generate();
        let policy = CodePolicy::default();
        let destination = mask(channel, &to);
        let message = account.outgoing(self.code_message(channel, to, &code));
        let expires_at = work.now().plus_secs(policy.ttl_secs);
        work.create_code(NewCode {
            step_hash: *step_hash,
            account_id: account.id,
            purpose,
            code_hash: self.code_hash(step_hash, code.expose_secret()),
            channel,
            expires_at,
        })
        .await?;
        self.queue_code(work, message);
        Ok(CodeSent {
            channel,
            destination,
        })
    }

    /// Paces the resends of a step that an unknown address can hold too (forgot User ID):
    /// at most one send a minute and five in all, counted on the step's own buckets (one
    /// atomic claim each), so a step with a code behind it and one without answer alike.
    /// The first send (the step's start) claims too.
    pub(crate) async fn pace_resend(
        &self,
        step_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        let policy = CodePolicy::default();
        let id: String = step_hash
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let pacing = [
            (format!("resend:{id}"), policy.resend_after_secs, 1),
            (format!("sends:{id}"), STEP_SECS, policy.max_sends),
        ];
        for (bucket, window, limit) in pacing {
            if let Some(start) = self
                .ports
                .claims
                .throttle_claim(&bucket, now, window, limit)
                .await?
            {
                return Err(ServiceError::TooManyRequests {
                    retry_after: throttle::retry_after(start, window, now.0),
                });
            }
        }
        Ok(())
    }

    /// Queues a code's message in `work` and counts it once committed.
    pub(crate) fn queue_code(&self, work: &mut Work<'_>, message: Outgoing) {
        work.count(CountedEvent::CodeSent(message.message.channel));
        work.send(message);
    }

    /// The message carrying a one-time code (sealed at rest: it is `sensitive`).
    pub(crate) fn code_message(
        &self,
        channel: CodeChannel,
        to: String,
        code: &SecretString,
    ) -> Message {
        let issuer = &self.policies.issuer_name;
        Message {
            channel,
            to,
            subject: format!("Your {issuer} security code"),
            body: format!(
                "Your {issuer} security code is {}. It expires in 10 minutes. Never share it: \
                 we will never ask you for it.",
                code.expose_secret()
            ),
            sensitive: true,
        }
    }

    /// Checks a code for a step. Every try is counted on the step first, whether or not a
    /// code stands behind it (an unknown address has none), so both answer alike; the try
    /// on the code itself is counted in the statement that reads its hash. The caller takes
    /// the code ([`Self::take_code`]) in its unit of work.
    pub(crate) async fn check_code(
        &self,
        step_hash: &[u8; 32],
        step: &StepRow,
        code: &str,
        client: &ClientInfo,
        now: UnixTime,
    ) -> Result<CheckedCode, ServiceError> {
        let code = otp::normalise(code)
            .ok_or_else(|| ServiceError::field("code", "The code is the 6 digits we sent you."))?;
        let throttle = self
            .throttle_claim(ThrottleAction::Recovery, client, now)
            .await?;
        let policy = CodePolicy::default();
        let Some(tries) = self
            .ports
            .claims
            .step_attempt(step_hash, step.kind, policy.max_tries)
            .await?
        else {
            return Err(ServiceError::CodeSpent);
        };
        let wrong = |tries: u32| {
            let left = policy.max_tries.saturating_sub(tries);
            if left == 0 {
                ServiceError::CodeSpent
            } else {
                ServiceError::CodeRejected { tries_left: left }
            }
        };
        let Some(attempt) = self
            .ports
            .claims
            .try_code(step_hash, now, policy.max_tries)
            .await?
        else {
            // No live code. Past the password step there always was one (so it expired, was
            // used, or ran out of tries). A User ID step may have none at all (an unknown
            // address): it answers like a wrong code until a real code would have expired.
            let code_would_expire = step.expires_at.0 - STEP_SECS + policy.ttl_secs;
            if step.kind == StepKind::RecoveryUserId && now.0 < code_would_expire {
                // An unknown address, or a known one whose destination had had its share
                // (no code was made): audited as a wrong code is, so every kind of step
                // does the same statements (and takes the same time).
                let known = step.subject_id > 0;
                self.audit_alone(
                    now,
                    AuditEvent::new(
                        AuditKind::RecoveryCodeFailed,
                        known.then_some(step.subject_id),
                    )
                    .ip(client.ip.as_deref())
                    .detail(if known {
                        "forgot User ID: no code (the destination had had its share)"
                    } else {
                        "forgot User ID: unknown address"
                    }),
                )
                .await;
                return Err(wrong(tries));
            }
            return Err(ServiceError::CodeSpent);
        };
        if !self.code_matches(step_hash, &code, &attempt.code_hash) {
            self.audit_alone(
                now,
                AuditEvent::new(AuditKind::RecoveryCodeFailed, Some(attempt.account_id))
                    .ip(client.ip.as_deref()),
            )
            .await;
            return Err(wrong(tries.max(attempt.attempts)));
        }
        Ok(CheckedCode {
            account_id: attempt.account_id,
            purpose: CodePurpose::parse(&attempt.purpose),
            throttle,
        })
    }

    /// Takes a checked code in `work`: used once, by exactly one caller.
    pub(crate) async fn take_code(
        &self,
        work: &mut Work<'_>,
        step_hash: &[u8; 32],
    ) -> Result<(), ServiceError> {
        if work.use_code(step_hash).await? {
            Ok(())
        } else {
            Err(ServiceError::CodeSpent)
        }
    }
}
