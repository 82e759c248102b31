//! Flows 3 (self-service unlock) and 4 (forgot password); flow 5 (forgot User ID) is
//! `recovery_user_id.rs`, with the same rules.
//!
//! Forgot password: User ID → card ID *or* the three security answers → a one-time code to
//! the registered channel → a new password. Security answers are never enough on their own:
//! the code is always required. Card ID + code also unlocks a locked account.
//!
//! Nothing here tells a stranger whether a User ID or an email address exists: the first
//! step answers the same (an unknown User ID gets decoy questions that stay the same for that
//! User ID), later steps fail the same way after the same work, and wrong answers count on
//! the step whether or not there is an account behind it.

use portcullis_crypto::{ct_eq, sha256, Token};
use secrecy::{ExposeSecret, SecretString};

use super::card_guard::CardCheck;
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::card::{CardId, VERIFICATION_DOMAIN};
use crate::card_guard::GuardClaim;
use crate::clock::UnixTime;
use crate::contact::CodeChannel;
use crate::ids::UserId;
use crate::lockout::{Claim, ANSWER_FAILURES};
use crate::otp::{self, CodePolicy, Resend};
use crate::password::{Password, PasswordRule};
use crate::ports::{AccountRow, Counter, StepRow};
use crate::security_questions::{
    check_answer, question, SecurityQuestion, QUESTIONS, REQUIRED_ANSWERS,
};
use crate::steps::{CodePurpose, StepKind};
use crate::throttle::ThrottleAction;
use crate::{FieldError, ServiceError};

use super::codes::{CodeSent, STEP_SECS};

/// Wrong card IDs or answers allowed on one recovery step.
const MAX_PROOF_TRIES: u32 = 5;
const RESET_SECS: i64 = 15 * 60;
/// New passwords tried on one reset token (past the policy's own checks) before it is dead.
const RESET_TRIES: u32 = 5;

/// The answer to the first step of forgot-password.
pub struct RecoveryStart {
    pub token: SecretString,
    pub methods: Vec<&'static str>,
    pub questions: Vec<SecurityQuestion>,
}

/// How the person proves it is them.
pub enum Proof<'a> {
    CardId(&'a str),
    Answers(&'a [(i64, String)]),
}

/// The code was right.
pub struct CodeAccepted {
    pub reset_token: SecretString,
    /// The account was locked and card ID + code unlocked it.
    pub unlocked: bool,
    /// The password is marked compromised ("This was not me"): the account stays locked
    /// until a new password is set with the reset token; the old one is never accepted.
    pub new_password_required: bool,
}

impl Portcullis {
    /// Forgot password, step 1.
    pub async fn start_password_recovery(
        &self,
        user_id: &str,
        client: &ClientInfo,
    ) -> Result<RecoveryStart, ServiceError> {
        let now = self.clock.now();
        let id = UserId::parse(user_id).map_err(|m| ServiceError::field("user_id", m))?;
        // Every start writes a step, so every start counts (it is never given back).
        let _ = self
            .throttle_claim(ThrottleAction::RecoveryStart, client, now)
            .await?;
        let account = self.ports.accounts.find_account(id.canonical()).await?;
        // The same statements whether or not the User ID exists (an unknown one reads the
        // answers of no account, and is audited without one), so the timing does not tell.
        let stored = self
            .ports
            .accounts
            .security_answers(account.as_ref().map_or(0, |a| a.id))
            .await?;
        let mut questions: Vec<SecurityQuestion> = stored
            .iter()
            .filter_map(|(qid, _)| question(*qid))
            .collect();
        if account.is_none() || questions.len() != REQUIRED_ANSWERS {
            questions = decoy_questions(self, id.canonical());
        }
        let token = Token::generate();
        let data = questions
            .iter()
            .map(|q| q.id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut work = self.begin(now);
        work.create_step(
            &token.hash,
            StepKind::RecoveryPassword,
            account.as_ref().map_or(-1, |a| a.id),
            &data,
            now.plus_secs(STEP_SECS),
        )
        .await?;
        work.audit(match &account {
            Some(a) => {
                AuditEvent::new(AuditKind::RecoveryStarted, Some(a.id)).ip(client.ip.as_deref())
            }
            None => AuditEvent::new(AuditKind::RecoveryStarted, None)
                .ip(client.ip.as_deref())
                .detail("unknown User ID"),
        });
        work.commit().await?;
        let mut methods = vec!["card_id"];
        if self.policies.security_questions_enabled {
            methods.push("security_questions");
        }
        Ok(RecoveryStart {
            token: token.secret,
            methods,
            questions: if self.policies.security_questions_enabled {
                questions
            } else {
                Vec::new()
            },
        })
    }

    /// Forgot password, step 2: the card ID or the answers; on success a code goes out.
    pub async fn verify_recovery(
        &self,
        token: &str,
        proof: Proof<'_>,
        client: &ClientInfo,
    ) -> Result<CodeSent, ServiceError> {
        let step_hash = sha256(token.as_bytes());
        let now = self.clock.now();
        let step = self
            .ports
            .steps
            .find_step(&step_hash, StepKind::RecoveryPassword, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        // Shape errors first: they cost no try.
        let card_id = match proof {
            Proof::CardId(c) => {
                Some(CardId::parse(c).map_err(|m| ServiceError::field("card_id", m))?)
            }
            Proof::Answers(_) if !self.policies.security_questions_enabled => {
                return Err(ServiceError::field(
                    "security_answers",
                    "Use your card ID instead.",
                ));
            }
            Proof::Answers(a) => {
                check_answer_shapes(a, &step)?;
                None
            }
        };
        let throttle = self
            .throttle_claim(ThrottleAction::Recovery, client, now)
            .await?;
        let account = if step.subject_id > 0 {
            self.ports.accounts.account_by_id(step.subject_id).await?
        } else {
            None
        };
        // Answers count on the account's own counter, across every recovery step.
        let answers_claim = match (&proof, &account) {
            (Proof::Answers(_), Some(a)) => Some(self.claim_answers(a, now).await?),
            _ => None,
        };
        let matched = match (&proof, &card_id) {
            (Proof::CardId(_), Some(cid)) => {
                self.card_id_matches(account.as_ref(), cid, client, now)
                    .await?
            }
            (Proof::Answers(answers), _) => {
                // A refused claim: checked against nothing (the same work), never a match.
                let usable = account.as_ref().filter(|_| answers_claim != Some(None));
                let matched = self.answers_match(usable, answers).await?;
                if let (Some(a), Some(Some(n))) = (&account, answers_claim) {
                    if !matched && n >= ANSWER_FAILURES {
                        self.lock_counter(a, Counter::Answers(a.id), client, now)
                            .await?;
                    }
                }
                matched
            }
            (Proof::CardId(_), None) => false,
        };
        let Some(account) = account.filter(|_| matched) else {
            let tries = self
                .ports
                .claims
                .step_attempt(&step_hash, StepKind::RecoveryPassword, MAX_PROOF_TRIES)
                .await?;
            let mut work = self.begin(now);
            if step.subject_id > 0 {
                work.audit(
                    AuditEvent::new(AuditKind::RecoveryFailed, Some(step.subject_id))
                        .ip(client.ip.as_deref())
                        .detail(if card_id.is_some() {
                            "wrong card ID"
                        } else {
                            "wrong security answers"
                        }),
                );
            }
            let refused = match tries {
                Some(n) if n < MAX_PROOF_TRIES => ServiceError::RecoveryFailed {
                    tries_left: MAX_PROOF_TRIES - n,
                },
                _ => {
                    work.consume_step(&step_hash, StepKind::RecoveryPassword)
                        .await?;
                    ServiceError::StepExpired
                }
            };
            work.commit().await?;
            return Err(refused);
        };
        let purpose = if card_id.is_some() {
            CodePurpose::RecoveryByCard
        } else {
            CodePurpose::RecoveryByAnswers
        };
        if let Some(retry_after) = self.claim_code_destination(&account, None, now).await? {
            return Err(ServiceError::TooManyRequests { retry_after });
        }
        let mut work = self.begin(now);
        if !work
            .consume_step(&step_hash, StepKind::RecoveryPassword)
            .await?
        {
            return Err(ServiceError::StepExpired);
        }
        if answers_claim.is_some() {
            work.reset_failures(Counter::Answers(account.id)).await?;
        }
        // The same token moves on to the code step, with a fresh count of tries.
        work.create_step(
            &step_hash,
            StepKind::RecoveryCode,
            account.id,
            "",
            now.plus_secs(STEP_SECS),
        )
        .await?;
        work.audit(
            AuditEvent::new(AuditKind::RecoveryVerified, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(if card_id.is_some() {
                    "card ID"
                } else {
                    "security answers"
                }),
        );
        let sent = self
            .send_code(&mut work, &step_hash, &account, purpose, None)
            .await?;
        work.commit().await?;
        self.throttle_release(throttle).await;
        Ok(sent)
    }

    /// Forgot password, step 3: the code. Card ID + code also unlocks a locked account.
    pub async fn verify_recovery_code(
        &self,
        token: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<CodeAccepted, ServiceError> {
        let step_hash = sha256(token.as_bytes());
        let now = self.clock.now();
        let step = self
            .ports
            .steps
            .find_step(&step_hash, StepKind::RecoveryCode, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let checked = self
            .check_code(&step_hash, &step, code, client, now)
            .await?;
        let account = self
            .ports
            .accounts
            .account_by_id(checked.account_id)
            .await?;
        let new_password_required = account
            .as_ref()
            .is_some_and(|a| a.password_compromised_at.is_some());
        // Card ID + code unlocks an account locked by guessing, keeping its password; never
        // one whose password is compromised: that one the new password unlocks.
        let account = account.filter(|_| {
            checked.purpose == Some(CodePurpose::RecoveryByCard) && !new_password_required
        });
        let mut work = self.begin(now);
        self.take_code(&mut work, &step_hash).await?;
        work.consume_step(&step_hash, StepKind::RecoveryCode)
            .await?;
        let mut unlocked = false;
        if let Some(account) = account.filter(|a| a.locked_until.is_some_and(|t| t > now)) {
            if work.unlock_account(account.id).await? {
                unlocked = true;
                work.audit(
                    AuditEvent::new(AuditKind::AccountUnlocked, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail("self-service: card ID and one-time code"),
                );
                let issuer = &self.policies.issuer_name;
                if let Some(notice) = account.notice(
                    format!("Your {issuer} account is unlocked"),
                    "Your online account was unlocked with your card and a one-time code. If \
                     this was not you, call us at once."
                        .into(),
                ) {
                    work.send(notice);
                }
            }
        }
        let reset = Token::generate();
        work.create_step(
            &reset.hash,
            StepKind::RecoveryReset,
            checked.account_id,
            "",
            now.plus_secs(RESET_SECS),
        )
        .await?;
        work.commit().await?;
        self.throttle_release(checked.throttle).await;
        Ok(CodeAccepted {
            reset_token: reset.secret,
            unlocked,
            new_password_required,
        })
    }

    /// Sends a fresh code for a recovery step (at most once a minute, five times in all).
    /// A forgot-User-ID step is paced on the step itself, so a known and an unknown
    /// address answer alike (202, or 429 with the same `Retry-After`); its message is an
    /// anonymous request's, held back silently once the destination has had its share.
    pub async fn resend_recovery_code(
        &self,
        token: &str,
        for_user_id: bool,
    ) -> Result<(), ServiceError> {
        let step_hash = sha256(token.as_bytes());
        let now = self.clock.now();
        let kind = if for_user_id {
            StepKind::RecoveryUserId
        } else {
            StepKind::RecoveryCode
        };
        let step = self
            .ports
            .steps
            .find_step(&step_hash, kind, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        if for_user_id {
            self.pace_resend(&step_hash, now).await?;
        }
        let policy = CodePolicy::default();
        let code = otp::generate();
        let hash = self.code_hash(&step_hash, code.expose_secret());
        let preferred = if for_user_id {
            CodeChannel::parse(&step.data)
        } else {
            None
        };
        let account = self.ports.accounts.account_by_id(step.subject_id).await?;
        let destination = account.as_ref().and_then(|a| a.destination(preferred));
        let held = match &destination {
            Some((channel, to)) => self.destination_claim(*channel, to, now).await?,
            None => None,
        };
        if let Some(retry_after) = held {
            return if for_user_id {
                Ok(())
            } else {
                Err(ServiceError::TooManyRequests { retry_after })
            };
        }
        let message = account
            .as_ref()
            .zip(destination.clone())
            .map(|(a, (channel, to))| a.outgoing(self.code_message(channel, to, &code)));
        let mut work = self.begin(now);
        let outcome = work.resend_code(&step_hash, &hash, &policy).await?;
        if outcome == Resend::Sent {
            // The new code's message commits with the new code.
            if let Some(message) = message {
                self.queue_code(&mut work, message);
            }
            work.commit().await?;
            return Ok(());
        }
        // Nothing was sent: the destination's places go back (the unit first, so the
        // release never waits behind it).
        drop(work);
        if let Some((channel, to)) = &destination {
            self.destination_release(*channel, to).await;
        }
        match outcome {
            Resend::TooSoon { retry_after } => Err(ServiceError::TooManyRequests { retry_after }),
            Resend::TooMany => Err(ServiceError::TooManyRequests {
                retry_after: u64::try_from(step.expires_at.0 - now.0)
                    .unwrap_or(60)
                    .max(1),
            }),
            // No code behind the step (an unknown address, or not verified yet): answer as
            // if one was sent, so the answer tells nothing.
            Resend::NoCode | Resend::Sent => Ok(()),
        }
    }

    /// Forgot password, step 4: the new password. Every session ends, every device trust
    /// ends, the lock (and a "not me" compromise mark) is lifted, earlier "not me" links die,
    /// and the owner is told, all in one unit of work.
    pub async fn reset_password(
        &self,
        reset_token: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let step_hash = sha256(reset_token.as_bytes());
        let now = self.clock.now();
        let step = self
            .ports
            .steps
            .find_step(&step_hash, StepKind::RecoveryReset, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let account = self
            .ports
            .accounts
            .account_by_id(step.subject_id)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let password = Password::new(new_password);
        let user_id = UserId::parse(&account.user_id).ok();
        let broken: Vec<FieldError> = self
            .policies
            .password
            .check(&password, user_id.as_ref(), false)
            .into_iter()
            .map(|r| FieldError::new("new_password", r.message()))
            .collect();
        if !broken.is_empty() {
            return Err(ServiceError::Invalid(broken));
        }
        // Past the policy's own checks every try counts on the reset token (each costs
        // argon2 comparisons): after `RESET_TRIES` the token is dead.
        if self
            .ports
            .claims
            .step_attempt(&step_hash, StepKind::RecoveryReset, RESET_TRIES)
            .await?
            .is_none()
        {
            let mut work = self.begin(now);
            work.consume_step(&step_hash, StepKind::RecoveryReset)
                .await?;
            work.commit().await?;
            return Err(ServiceError::StepExpired);
        }
        let last_n = self.policies.password.profile.history();
        let older = last_n.saturating_sub(1);
        if account.password_compromised_at.is_some() {
            // "This was not me": the old password is known to someone else; a reset that
            // kept it would let them back in.
            if self
                .hasher
                .verify(password.expose().as_bytes(), Some(&account.password_hash))
                .await?
                .is_match()
            {
                return Err(ServiceError::field(
                    "new_password",
                    "Choose a new password: your old one may be known to someone else.",
                ));
            }
        }
        if last_n > 0 {
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
                    .verify(password.expose().as_bytes(), Some(hash))
                    .await?
                    .is_match()
                {
                    return Err(ServiceError::field(
                        "new_password",
                        PasswordRule::RecentlyUsed { count: last_n }.message(),
                    ));
                }
            }
        }
        let hash = self.hasher.hash(password.expose().as_bytes()).await?;
        let mut work = self.begin(now);
        if !work
            .consume_step(&step_hash, StepKind::RecoveryReset)
            .await?
        {
            return Err(ServiceError::StepExpired);
        }
        // The new password clears a "not me" compromise mark with the old one.
        work.change_password(account.id, &hash, older).await?;
        work.unlock_account(account.id).await?;
        let ended = work.delete_account_sessions(account.id, None).await?;
        // A reset ends "Trust this device" everywhere, and the "not me" links of earlier
        // new-device notices die with the password they were about.
        let untrusted = work.untrust_devices(account.id).await?;
        work.drop_account_steps(account.id, StepKind::NotMe).await?;
        let issuer = &self.policies.issuer_name;
        if let Some(notice) = account.notice(
            format!("Your {issuer} password was reset"),
            format!(
                "The password for your online account {} was reset with a security code, and \
                 you were signed out everywhere. If this was not you, call {} at once.",
                account.user_id, self.policies.support_phone
            ),
        ) {
            work.send(notice);
        }
        work.audit(
            AuditEvent::new(AuditKind::PasswordReset, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!(
                    "{ended} sessions ended; {untrusted} devices no longer trusted"
                )),
        );
        work.commit().await?;
        Ok(())
    }

    /// Claims an attempt on the account's answer counter: `Some(n)` for the `n`th
    /// consecutive wrong answer it may be, `None` when answers are refused (locked, or the
    /// last slots are being evaluated: the one that fails locks).
    async fn claim_answers(
        &self,
        account: &AccountRow,
        now: UnixTime,
    ) -> Result<Option<u32>, ServiceError> {
        let counter = Counter::Answers(account.id);
        Ok(
            match self
                .ports
                .claims
                .claim_attempt(counter, now, ANSWER_FAILURES)
                .await?
            {
                Claim::Granted(n) => Some(n),
                Claim::Locked(_) | Claim::Exhausted => None,
            },
        )
    }

    /// Whether `cid` is the card ID of one of the account's cards. Each card's guard is
    /// claimed first (a paused card matches nothing, exactly as a wrong card ID); a miss
    /// counts on every card, a match gives every try back.
    async fn card_id_matches(
        &self,
        account: Option<&AccountRow>,
        cid: &CardId,
        client: &ClientInfo,
        now: UnixTime,
    ) -> Result<bool, ServiceError> {
        let Some(account) = account else {
            // The same keyed hash as a real check, so the timing is alike.
            let _ = self
                .keys
                .hash(VERIFICATION_DOMAIN, &[&[0u8; 32], cid.digits().as_bytes()]);
            return Ok(false);
        };
        let records = self.ports.registry.linked_records(account.id).await?;
        let mut checks = Vec::new();
        for (record_id, number_hash, verification_hash, key_id) in
            self.ports.accounts.card_hashes(account.id).await?
        {
            // Under the key the card's row names (a key this node cannot find: no match).
            let key = self.registry_key(key_id);
            let candidate = key.as_ref().unwrap_or(&self.keys).hash(
                VERIFICATION_DOMAIN,
                &[&number_hash, cid.digits().as_bytes()],
            );
            let right = key.is_some() && ct_eq(&candidate, &verification_hash);
            // A card not active at the issuer, or replaced, proves nothing: its card ID
            // matches as no card does (and costs its guard nothing).
            let Some(record) = records.iter().find(|r| r.id == record_id && r.usable()) else {
                continue;
            };
            let claim = self.card_claim(record_id, now).await?;
            checks.push((record, claim, right));
        }
        let matched = checks
            .iter()
            .any(|(_, claim, right)| *right && matches!(claim, GuardClaim::Granted(_)));
        let check = CardCheck {
            flow: "forgot password",
            account_id: Some(account.id),
            ip: client.ip.as_deref(),
        };
        for (record, claim, _) in checks {
            self.card_checked(record, claim, matched, None, check, now)
                .await?;
        }
        Ok(matched)
    }

    async fn answers_match(
        &self,
        account: Option<&AccountRow>,
        answers: &[(i64, String)],
    ) -> Result<bool, ServiceError> {
        let stored = match account {
            Some(a) => self.ports.accounts.security_answers(a.id).await?,
            None => Vec::new(),
        };
        let mut all = true;
        for (qid, answer) in answers {
            let normalised = crate::security_questions::normalise_answer(answer);
            let hash = stored
                .iter()
                .find(|(q, _)| q == qid)
                .map(|(_, h)| h.as_str());
            // Every answer is checked (no early exit), so the work does not depend on which
            // one is wrong, or on whether there is an account at all.
            let ok = self
                .hasher
                .verify(normalised.as_bytes(), hash)
                .await?
                .is_match();
            all &= ok;
        }
        Ok(all && account.is_some())
    }
}

/// Three questions for a User ID that has no account, chosen by a keyed hash of the User ID
/// so they are the same every time someone asks.
fn decoy_questions(app: &Portcullis, canonical_user_id: &str) -> Vec<SecurityQuestion> {
    let digest = app.keys.hash(
        "portcullis/decoy-questions/v1",
        &[canonical_user_id.as_bytes()],
    );
    let mut pool: Vec<SecurityQuestion> = QUESTIONS.to_vec();
    let mut chosen = Vec::with_capacity(REQUIRED_ANSWERS);
    for byte in digest.iter().take(REQUIRED_ANSWERS) {
        if pool.is_empty() {
            break;
        }
        let i = usize::from(*byte) % pool.len();
        chosen.push(pool.remove(i));
    }
    chosen.sort_by_key(|q| q.id);
    chosen
}

fn check_answer_shapes(answers: &[(i64, String)], step: &StepRow) -> Result<(), ServiceError> {
    let asked: Vec<i64> = step
        .data
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let mut errors = Vec::new();
    if answers.len() != REQUIRED_ANSWERS {
        errors.push(FieldError::new(
            "security_answers",
            "Answer all three questions.",
        ));
    }
    for (i, (qid, answer)) in answers.iter().enumerate() {
        let field = format!("security_answers[{i}]");
        if !asked.contains(qid) {
            errors.push(FieldError::new(&field, "Answer the questions shown."));
        } else if let Err(m) = check_answer(answer) {
            errors.push(FieldError::new(&field, m));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::Invalid(errors))
    }
}
