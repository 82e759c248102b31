//! Flow 1: create an online account by proving you hold the card (or merchant account).

use portcullis_crypto::{ct_eq, Token};
use secrecy::SecretString;

use super::card_guard::CardCheck;
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::card::Credential;
use crate::card_guard::Verdict;
use crate::contact::{self, CodeChannel};
use crate::ids::{AccountType, UserId};
use crate::password::Password;
use crate::ports::{Message, NewAccount, Outgoing, RegistryRow, Reregistration};
use crate::security_questions::{check_answer, question, REQUIRED_ANSWERS};
use crate::steps::StepKind;
use crate::throttle::ThrottleAction;
use crate::{FieldError, ServiceError};

/// Tries of step 2 per registration token (past the form's own checks) before it is dead.
const COMPLETE_TRIES: u32 = 5;

/// Step 1 passed: the token to carry into step 2, and what the form can show.
pub struct CardVerified {
    pub token: SecretString,
    pub account_type: AccountType,
    pub has_email: bool,
    pub has_phone: bool,
    /// The card backs an online account that was deactivated after inactivity: step 2
    /// brings that account back with the new details (flow 10).
    pub reactivation: bool,
}

/// Step 2's input.
pub struct Registration<'a> {
    pub token: &'a str,
    pub user_id: &'a str,
    pub password: &'a str,
    pub security_answers: &'a [(i64, String)],
    pub code_channel: &'a str,
}

impl Portcullis {
    /// Step 1: card number + card ID (or merchant number + code) against the registry.
    pub async fn verify_card(
        &self,
        account_type: &str,
        number: &str,
        verification: &str,
        client: &ClientInfo,
    ) -> Result<CardVerified, ServiceError> {
        let now = self.clock.now();
        let account_type = AccountType::parse(account_type).ok_or_else(|| {
            ServiceError::field("account_type", "Choose personal, merchant or corporate.")
        })?;
        let credential =
            Credential::parse(account_type, number, verification).map_err(ServiceError::Invalid)?;
        // Failed card checks are throttled like failed sign-ins (per address); wrong card
        // IDs are also limited per card, across every address and flow (`card_guard`).
        let throttle = self
            .throttle_claim(ThrottleAction::CardCheck, client, now)
            .await?;
        let found = self.find_card(&credential).await?;
        let verification_hash = found.verification_hash;
        // A card that is not active at the issuer, or that a reissue replaced, takes the
        // unknown card's path: the same reads, no card-ID check, the same answer.
        let Some(record) = found.record.as_ref().filter(|r| r.usable()).cloned() else {
            self.audit_alone(
                now,
                AuditEvent::new(AuditKind::CardVerificationFailed, None)
                    .ip(client.ip.as_deref())
                    .detail(unusable_detail("registration", found.record.as_ref())),
            )
            .await;
            return Err(ServiceError::CardNotRecognised);
        };
        // Whether a right card ID could be used, decided from the record alone (the same
        // reads whatever the card ID): one that cannot is answered as a wrong one (no
        // card-ID oracle) and its holder is told.
        let unusable = if record.account_type != account_type {
            Some("to register it as another account type")
        } else {
            match record.account_id {
                Some(id) if !self.deactivated(id).await? => {
                    Some("to register it, but it already has an online account")
                }
                _ => None,
            }
        };
        let reactivation = record.account_id.is_some();
        let claim = self.card_claim(record.id, now).await?;
        let right = ct_eq(&record.verification_hash, &verification_hash);
        let check = CardCheck {
            flow: "registration",
            account_id: None,
            ip: client.ip.as_deref(),
        };
        if self
            .card_checked(&record, claim, right, unusable, check, now)
            .await?
            != Verdict::Accepted
        {
            return Err(ServiceError::CardNotRecognised);
        }
        self.throttle_release(throttle).await;
        let token = Token::generate();
        let mut work = self.begin(now);
        work.create_step(
            &token.hash,
            StepKind::Registration,
            record.id,
            "",
            now.plus_secs(self.policies.registration_step_secs),
        )
        .await?;
        // A card under an old registry key moves to the current one (its number is here).
        self.move_card(&mut work, &record, &found).await?;
        work.commit().await?;
        Ok(CardVerified {
            token: token.secret,
            account_type,
            has_email: record.email.is_some(),
            has_phone: record.phone.is_some(),
            reactivation,
        })
    }

    /// Step 2: choose a User ID, a password, security answers and the code channel. The
    /// account, its card, its answers, the consumed step, the holder's message and the audit
    /// event commit in one unit of work.
    pub async fn complete_registration(
        &self,
        input: Registration<'_>,
        client: &ClientInfo,
    ) -> Result<UserId, ServiceError> {
        self.claim_registration_complete(client).await?;
        self.register_account(input, client, None).await
    }

    /// Takes the client's place on the per-address bucket of registration completions:
    /// four argon2 hashes a call, so every call counts (never given back). Taken first, before
    /// anything is looked up — an `Idempotency-Key`'s kept answer included (a replay is
    /// answered only within the limit, so the replay is no unthrottled way to test guesses
    /// of a registration's password against its kept request hash).
    pub(crate) async fn claim_registration_complete(
        &self,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let _ = self
            .throttle_claim(
                ThrottleAction::RegistrationComplete,
                client,
                self.clock.now(),
            )
            .await?;
        Ok(())
    }

    /// [`Self::complete_registration`] once the client's place is claimed
    /// ([`Self::claim_registration_complete`]), keeping `keep`'s `Idempotency-Key` with the
    /// answer in the account's own unit of work when given.
    pub(crate) async fn register_account(
        &self,
        input: Registration<'_>,
        client: &ClientInfo,
        keep: Option<crate::ports::IdempotencyKeep<'_>>,
    ) -> Result<UserId, ServiceError> {
        let token_hash = portcullis_crypto::sha256(input.token.as_bytes());
        let now = self.clock.now();
        let step = self
            .ports
            .steps
            .find_step(&token_hash, StepKind::Registration, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let record = self
            .ports
            .registry
            .record_by_id(step.subject_id)
            .await?
            .filter(RegistryRow::usable)
            .ok_or(ServiceError::StepExpired)?;
        // Cheap check before the slow hashing; the database enforces it again on insert.
        let reactivate = match record.account_id {
            None => None,
            Some(id) if self.deactivated(id).await? => Some(id),
            Some(_) => {
                // The card has an online account now (a parallel registration won): this
                // token can never be used, so it dies rather than answer again and again.
                let mut work = self.begin(now);
                work.consume_step(&token_hash, StepKind::Registration)
                    .await?;
                work.commit().await?;
                return Err(ServiceError::CardAlreadyRegistered);
            }
        };

        let mut errors = Vec::new();
        let user_id = UserId::parse(input.user_id)
            .map_err(|m| errors.push(FieldError::new("user_id", m)))
            .ok();
        let password = Password::new(input.password);
        for rule in self
            .policies
            .password
            .check(&password, user_id.as_ref(), false)
        {
            errors.push(FieldError::new("password", rule.message()));
        }
        let answers = if self.policies.security_questions_enabled {
            check_answers(input.security_answers, &mut errors)
        } else {
            Vec::new()
        };
        let channel = match CodeChannel::parse(input.code_channel) {
            Some(CodeChannel::Sms) if record.phone.is_none() => {
                errors.push(FieldError::new(
                    "code_channel",
                    "We have no mobile number for this card; choose email.",
                ));
                None
            }
            Some(CodeChannel::Email) if record.email.is_none() => {
                errors.push(FieldError::new(
                    "code_channel",
                    "We have no email address for this card; choose text message.",
                ));
                None
            }
            Some(c) => Some(c),
            None => {
                errors.push(FieldError::new(
                    "code_channel",
                    "Choose email or text message for your one-time codes.",
                ));
                None
            }
        };
        let (Some(user_id), Some(channel), true) = (user_id, channel, errors.is_empty()) else {
            return Err(ServiceError::Invalid(errors));
        };
        // Every call that gets past the form's own checks counts on the token: after
        // `COMPLETE_TRIES` the token is dead, so it cannot be replayed without end.
        if self
            .ports
            .claims
            .step_attempt(&token_hash, StepKind::Registration, COMPLETE_TRIES)
            .await?
            .is_none()
        {
            let mut work = self.begin(now);
            work.consume_step(&token_hash, StepKind::Registration)
                .await?;
            work.commit().await?;
            return Err(ServiceError::StepExpired);
        }
        // A User ID already taken answers before any hashing (the database enforces it again
        // on insert, for a race).
        if self
            .ports
            .accounts
            .find_account(user_id.canonical())
            .await?
            .is_some_and(|a| Some(a.id) != reactivate)
        {
            return Err(ServiceError::UserIdTaken);
        }

        let mut secrets: Vec<&[u8]> = vec![password.expose().as_bytes()];
        secrets.extend(answers.iter().map(|(_, a)| a.as_bytes()));
        let mut hashes = self.hasher.hash_many(&secrets).await?.into_iter();
        let password_hash = hashes
            .next()
            .ok_or_else(|| ServiceError::Internal("no password hash".into()))?;
        let answer_hashes: Vec<(i64, String)> =
            answers.iter().map(|(q, _)| *q).zip(hashes).collect();
        let mut work = self.begin(now);
        let event = match reactivate {
            Some(account_id) => {
                work.reregister_account(Reregistration {
                    account_id,
                    user_id: user_id.as_str().to_owned(),
                    user_id_canonical: user_id.canonical().to_owned(),
                    password_hash,
                    security_answers: answer_hashes,
                    code_channel: channel,
                    step_token_hash: token_hash,
                })
                .await?;
                AuditEvent::new(AuditKind::AccountReactivated, Some(account_id))
                    .detail("by card verification and new sign-in details")
            }
            None => {
                let account_id = work
                    .create_account(NewAccount {
                        user_id: user_id.as_str().to_owned(),
                        user_id_canonical: user_id.canonical().to_owned(),
                        account_type: record.account_type,
                        password_hash,
                        security_answers: answer_hashes,
                        code_channel: channel,
                        email: record.email.clone(),
                        phone: record.phone.clone(),
                        registry_record_id: record.id,
                        step_token_hash: token_hash,
                    })
                    .await?;
                AuditEvent::new(AuditKind::AccountCreated, Some(account_id)).detail(format!(
                    "type={} card=••••{}",
                    record.account_type.as_str(),
                    record.last4
                ))
            }
        };
        // The message goes to the holder's email or phone from the registry, committed with
        // the account itself.
        if let Some(message) =
            self.registration_message(&record, channel, &user_id, reactivate.is_some())
        {
            work.send(message);
        }
        work.audit(event.ip(client.ip.as_deref()));
        if let Some(keep) = keep {
            work.keep_idempotency_key(keep.scope, keep.key, keep.request_hash, user_id.as_str())
                .await?;
        }
        work.commit().await?;
        Ok(user_id)
    }

    async fn deactivated(&self, account_id: i64) -> Result<bool, ServiceError> {
        Ok(self
            .ports
            .accounts
            .account_by_id(account_id)
            .await?
            .is_some_and(|a| a.is_deactivated()))
    }

    /// "Your online account is ready" (or, for an account that came back, "active again"),
    /// to the channel chosen, from the registry record's addresses.
    fn registration_message(
        &self,
        record: &RegistryRow,
        channel: CodeChannel,
        user_id: &UserId,
        reactivated: bool,
    ) -> Option<Outgoing> {
        let issuer = &self.policies.issuer_name;
        let (channel, to) =
            contact::destination(channel, record.email.as_deref(), record.phone.as_deref())?;
        let (subject, body) = if reactivated {
            (
                format!("Your {issuer} online account is active again"),
                format!(
                    "Your deactivated online account was brought back with your card and new \
                     sign-in details. If this was not you, call {} at once.",
                    self.policies.support_phone
                ),
            )
        } else {
            (
                format!("Your {issuer} online account is ready"),
                format!(
                    "You created an online account for the card ending {} with the User ID {}. \
                     If this was not you, call {} at once.",
                    record.last4,
                    user_id.as_str(),
                    self.policies.support_phone
                ),
            )
        };
        Some(Outgoing {
            fallback_email: match channel {
                CodeChannel::Sms => record.email.clone(),
                CodeChannel::Email => None,
            },
            fallback_phone: None,
            message: Message {
                channel,
                to,
                subject,
                body,
                sensitive: false,
            },
        })
    }
}

pub(crate) fn check_answers(
    answers: &[(i64, String)],
    errors: &mut Vec<FieldError>,
) -> Vec<(i64, zeroize::Zeroizing<String>)> {
    let mut out = Vec::new();
    if answers.len() != REQUIRED_ANSWERS {
        errors.push(FieldError::new(
            "security_answers",
            "Choose three different security questions and answer each.",
        ));
        return out;
    }
    let mut seen = Vec::new();
    for (i, (qid, answer)) in answers.iter().enumerate() {
        let field = format!("security_answers[{i}]");
        if question(*qid).is_none() {
            errors.push(FieldError::new(&field, "Choose a question from the list."));
            continue;
        }
        if seen.contains(qid) {
            errors.push(FieldError::new(&field, "Choose three different questions."));
            continue;
        }
        seen.push(*qid);
        match check_answer(answer) {
            Ok(a) => out.push((*qid, a)),
            Err(m) => errors.push(FieldError::new(&field, m)),
        }
    }
    out
}

/// The audit detail of a card check that found no usable card: no such card, or why the
/// card it found proves nothing (the caller is answered alike either way).
pub(crate) fn unusable_detail(flow: &str, found: Option<&RegistryRow>) -> String {
    match found {
        None => format!("{flow}: no such card"),
        Some(r) if r.replaced => format!("{flow}: card ••••{} was replaced by a new card", r.last4),
        Some(r) => format!(
            "{flow}: card ••••{} is {} at the issuer",
            r.last4,
            r.status.as_str()
        ),
    }
}
