//! The second step of a sign-in: which methods a challenge offers, sending its code, and
//! checking the answer (a code from the authenticator app, by email or text, a recovery
//! code, or a passkey). Each answer is first *checked* (reads and the slow work, no
//! transaction open), then *taken* in the unit of work that also consumes the challenge and
//! starts the session, by a write exactly one caller wins: a code is never accepted twice.

use portcullis_crypto::{sha256, Token};
use secrecy::ExposeSecret;

use super::{MfaChallenge, MfaMethod};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::contact::{mask, CodeChannel};
use crate::otp::{self, CodePolicy, Resend};
use crate::ports::{AccountRow, Counter, DeviceRow, FactorKind, FactorRow, NewCode};
use crate::service::sessions::{SessionContext, SessionStart, SignedIn};
use crate::service::{ClientInfo, Portcullis, Work};
use crate::steps::{CodePurpose, StepKind};
use crate::throttle::ThrottleAction;
use crate::ServiceError;

/// How long a person has for the second step.
const MFA_STEP_SECS: i64 = 10 * 60;

/// A challenge's stored state: the device it came from (0: none), the methods offered, and
/// a fingerprint of the password hash that was checked (a reset in between voids it).
struct ChallengeData {
    device_id: Option<i64>,
    methods: Vec<String>,
    password: String,
    /// The signed-in session the second step was asked of (an OpenID Connect request for a
    /// second factor): passing it replaces that session.
    replaces: Option<i64>,
}

impl ChallengeData {
    fn encode(&self) -> String {
        let mut out = format!(
            "{}|{}|{}",
            self.device_id.unwrap_or(0),
            self.methods.join(","),
            self.password
        );
        if let Some(id) = self.replaces {
            out.push_str(&format!("|{id}"));
        }
        out
    }

    fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(4, '|');
        let device: i64 = parts.next()?.parse().ok()?;
        let methods = parts.next()?;
        let password = parts.next()?.to_owned();
        let replaces = match parts.next() {
            Some(id) => Some(id.parse().ok()?),
            None => None,
        };
        Some(Self {
            device_id: (device > 0).then_some(device),
            methods: methods.split(',').map(str::to_owned).collect(),
            password,
            replaces,
        })
    }
}

/// A short fingerprint of a password hash (not secret: the hash is salted and slow).
fn password_fingerprint(hash: &str) -> String {
    sha256(hash.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A second-step answer that checked out, and what taking it writes.
pub(crate) enum Answer {
    /// An authenticator code for this time step of this factor.
    Totp { factor: i64, step: i64 },
    /// The code sent by email or text for this challenge.
    Code { step_hash: [u8; 32] },
    /// One of the account's recovery codes.
    RecoveryCode { id: i64 },
    /// A passkey assertion that verified (its state step was used up when it was checked).
    Passkey {
        factor: i64,
        updated_secret: Option<String>,
    },
}

/// A challenge about to be stored.
struct Challenge<'a> {
    account: &'a AccountRow,
    device: Option<&'a DeviceRow>,
    methods: Vec<MfaMethod>,
    step_up: bool,
    replaces: Option<i64>,
}

fn code_method(channel: CodeChannel, to: &str) -> MfaMethod {
    let destination = mask(channel, to);
    match channel {
        CodeChannel::Email => MfaMethod::Email { destination },
        CodeChannel::Sms => MfaMethod::Sms { destination },
    }
}

impl Portcullis {
    /// After the right password: the second step this sign-in needs, if any. When one is
    /// needed, its challenge is stored (with the rehash at new parameters, when there is
    /// one, so the challenge remembers the hash that will be current) and audited.
    pub(crate) async fn second_step(
        &self,
        account: &AccountRow,
        device: Option<&DeviceRow>,
        rehash: Option<&str>,
        client: &ClientInfo,
        now: UnixTime,
    ) -> Result<Option<MfaChallenge>, ServiceError> {
        let factors = self.confirmed_factors(account.id).await?;
        let trusted = device
            .and_then(|d| d.trusted_until)
            .is_some_and(|t| t > now);
        // The recovery codes are counted only where a challenge is made: a sign-in with no
        // second step (no factor, or a trusted device) does not read them.
        let (methods, step_up) = if !factors.is_empty() {
            if trusted {
                return Ok(None);
            }
            let codes_left = self.ports.factors.recovery_codes_left(account.id).await?;
            (self.factor_methods(account, &factors, codes_left), false)
        } else if device.is_none()
            && self.policies.mfa.step_up_new_devices
            && self.has_devices(account.id).await?
        {
            // A device the account has not seen (and not the first one after registration):
            // a code to the registered channel.
            let mut methods = Vec::new();
            if let Some((channel, to)) = account.destination(None) {
                methods.push(code_method(channel, &to));
            }
            if self.ports.factors.recovery_codes_left(account.id).await? > 0 {
                methods.push(MfaMethod::RecoveryCode);
            }
            (methods, true)
        } else {
            return Ok(None);
        };
        if methods.is_empty() {
            return Ok(None);
        }
        let challenge = Challenge {
            account,
            device,
            methods,
            step_up,
            replaces: None,
        };
        self.store_challenge(challenge, rehash, client, now)
            .await
            .map(Some)
    }

    /// The second step asked of a session signed in with the password alone, because an
    /// OpenID Connect request asked for a second factor (`acr_values`): the account's
    /// factors are offered even on a trusted device, and passing the step replaces the
    /// session with one whose `amr` names the factor. `None` when the account has no
    /// second factor.
    pub async fn oidc_second_step(
        &self,
        session: &SessionContext,
        device_token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<Option<MfaChallenge>, ServiceError> {
        let now = self.clock.now();
        let Some(account) = self
            .ports
            .accounts
            .account_by_id(session.account_id)
            .await?
        else {
            return Ok(None);
        };
        let factors = self.confirmed_factors(account.id).await?;
        if factors.is_empty() {
            return Ok(None);
        }
        let device = self.known_device(account.id, device_token).await?;
        let codes_left = self.ports.factors.recovery_codes_left(account.id).await?;
        let methods = self.factor_methods(&account, &factors, codes_left);
        let challenge = Challenge {
            account: &account,
            device: device.as_ref(),
            methods,
            step_up: false,
            replaces: Some(session.session_id),
        };
        self.store_challenge(challenge, None, client, now)
            .await
            .map(Some)
    }

    /// Stores a second step's challenge (with the rehash at new parameters, when there is
    /// one, so the challenge remembers the hash that will be current) and audits it.
    async fn store_challenge(
        &self,
        c: Challenge<'_>,
        rehash: Option<&str>,
        client: &ClientInfo,
        now: UnixTime,
    ) -> Result<MfaChallenge, ServiceError> {
        let Challenge {
            account,
            device,
            methods,
            step_up,
            replaces,
        } = c;
        let token = Token::generate();
        let expires_at = now.plus_secs(MFA_STEP_SECS);
        let mut work = self.begin(now);
        let current_hash = match rehash {
            Some(new)
                if work
                    .rehash_password(account.id, &account.password_hash, new)
                    .await? =>
            {
                new
            }
            _ => account.password_hash.as_str(),
        };
        let data = ChallengeData {
            device_id: device.map(|d| d.id),
            methods: methods.iter().map(|m| m.as_str().to_owned()).collect(),
            password: password_fingerprint(current_hash),
            replaces,
        };
        work.create_step(
            &token.hash,
            StepKind::SignInMfa,
            account.id,
            &data.encode(),
            expires_at,
        )
        .await?;
        work.audit(
            AuditEvent::new(AuditKind::MfaChallenged, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(if step_up {
                    "new device"
                } else {
                    "second factor"
                }),
        );
        work.commit().await?;
        Ok(MfaChallenge {
            token: token.secret,
            methods,
            step_up,
            expires_at,
        })
    }

    fn factor_methods(
        &self,
        account: &AccountRow,
        factors: &[FactorRow],
        codes_left: i64,
    ) -> Vec<MfaMethod> {
        let mut methods = Vec::new();
        if self.passkeys.is_some() && factors.iter().any(|f| f.kind == FactorKind::Passkey) {
            methods.push(MfaMethod::Passkey);
        }
        if factors.iter().any(|f| f.kind == FactorKind::Totp) {
            methods.push(MfaMethod::Totp);
        }
        for (kind, channel) in [
            (FactorKind::Email, CodeChannel::Email),
            (FactorKind::Sms, CodeChannel::Sms),
        ] {
            if factors.iter().any(|f| f.kind == kind) {
                if let Some((c, to)) = account.destination(Some(channel)) {
                    if c == channel {
                        methods.push(code_method(channel, &to));
                    }
                }
            }
        }
        if codes_left > 0 {
            methods.push(MfaMethod::RecoveryCode);
        }
        methods
    }

    pub(crate) async fn confirmed_factors(
        &self,
        account_id: i64,
    ) -> Result<Vec<FactorRow>, ServiceError> {
        Ok(self
            .ports
            .factors
            .list_factors(account_id)
            .await?
            .into_iter()
            .filter(|f| f.confirmed)
            .collect())
    }

    /// A live challenge's account and the method names it offers.
    pub(crate) async fn live_challenge(
        &self,
        challenge_token: &str,
        now: UnixTime,
    ) -> Result<(i64, Vec<String>), ServiceError> {
        let step = self
            .ports
            .steps
            .find_step(
                &sha256(challenge_token.as_bytes()),
                StepKind::SignInMfa,
                now,
            )
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let data = ChallengeData::decode(&step.data).ok_or(ServiceError::StepExpired)?;
        Ok((step.subject_id, data.methods))
    }

    /// The methods a live challenge offers (for showing its page again); empty when it has
    /// expired or was used.
    pub async fn challenge_methods(
        &self,
        challenge_token: &str,
    ) -> Result<Vec<MfaMethod>, ServiceError> {
        if challenge_token.is_empty() || challenge_token.len() > 128 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let Some(step) = self
            .ports
            .steps
            .find_step(
                &sha256(challenge_token.as_bytes()),
                StepKind::SignInMfa,
                now,
            )
            .await?
        else {
            return Ok(Vec::new());
        };
        let Some(data) = ChallengeData::decode(&step.data) else {
            return Ok(Vec::new());
        };
        let Some(account) = self.ports.accounts.account_by_id(step.subject_id).await? else {
            return Ok(Vec::new());
        };
        Ok(data
            .methods
            .iter()
            .filter_map(|m| match m.as_str() {
                "passkey" => Some(MfaMethod::Passkey),
                "totp" => Some(MfaMethod::Totp),
                "recovery_code" => Some(MfaMethod::RecoveryCode),
                other => {
                    let channel = CodeChannel::parse(other)?;
                    let (c, to) = account.destination(Some(channel))?;
                    (c == channel).then(|| code_method(c, &to))
                }
            })
            .collect())
    }

    /// Sends (or sends again, at most once a minute) a code for a challenge by email or
    /// text; the masked destination. The code and its message commit together.
    pub async fn send_mfa_code(
        &self,
        challenge_token: &str,
        method: &str,
    ) -> Result<String, ServiceError> {
        let step_hash = sha256(challenge_token.as_bytes());
        let now = self.clock.now();
        let step = self
            .ports
            .steps
            .find_step(&step_hash, StepKind::SignInMfa, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let data = ChallengeData::decode(&step.data).ok_or(ServiceError::StepExpired)?;
        let channel = CodeChannel::parse(method)
            .filter(|c| data.methods.iter().any(|m| m == c.as_str()))
            .ok_or_else(|| {
                ServiceError::field("method", "Choose one of the ways offered for this sign-in.")
            })?;
        let account = self
            .ports
            .accounts
            .account_by_id(step.subject_id)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let (channel, to) = account
            .destination(Some(channel))
            .filter(|(c, _)| *c == channel)
            .ok_or(ServiceError::StepExpired)?;
        let destination = mask(channel, &to);
        let policy = CodePolicy::default();
        let code = otp::generate();
        let code_hash = self.code_hash(&step_hash, code.expose_secret());
        let message = account.outgoing(self.code_message(channel, to, &code));
        let mut work = self.begin(now);
        match work.resend_code(&step_hash, &code_hash, &policy).await? {
            Resend::Sent => {}
            Resend::NoCode => {
                work.create_code(NewCode {
                    step_hash,
                    account_id: account.id,
                    purpose: CodePurpose::SignInMfa,
                    code_hash,
                    channel,
                    expires_at: now.plus_secs(policy.ttl_secs),
                })
                .await?;
            }
            Resend::TooSoon { retry_after } => {
                return Err(ServiceError::TooManyRequests { retry_after })
            }
            Resend::TooMany => {
                return Err(ServiceError::TooManyRequests {
                    retry_after: u64::try_from(step.expires_at.0 - now.0)
                        .unwrap_or(60)
                        .max(1),
                })
            }
        }
        work.send(message);
        work.commit().await?;
        Ok(destination)
    }

    /// The second step: a code from the authenticator app, by email or text, a recovery
    /// code or a passkey. `trust_device` skips the second step on this device for the
    /// configured days.
    pub async fn verify_mfa(
        &self,
        challenge_token: &str,
        method: &str,
        code: &str,
        trust_device: bool,
        client: &ClientInfo,
    ) -> Result<SignedIn, ServiceError> {
        let now = self.clock.now();
        let throttle = self
            .throttle_claim(ThrottleAction::SignIn, client, now)
            .await?;
        let step_hash = sha256(challenge_token.as_bytes());
        let step = self
            .ports
            .steps
            .find_step(&step_hash, StepKind::SignInMfa, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let data = ChallengeData::decode(&step.data).ok_or(ServiceError::StepExpired)?;
        if !data.methods.iter().any(|m| m == method) {
            return Err(ServiceError::field(
                "method",
                "Choose one of the ways offered for this sign-in.",
            ));
        }
        let account = self
            .ports
            .accounts
            .account_by_id(step.subject_id)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        if account.is_deactivated() {
            return Err(ServiceError::SignInFailed);
        }
        if !portcullis_crypto::ct_eq(
            data.password.as_bytes(),
            password_fingerprint(&account.password_hash).as_bytes(),
        ) {
            // The password changed (a reset) since it was checked: start again.
            return Err(ServiceError::StepExpired);
        }
        if let Some(until) = account.locked_until.filter(|t| *t > now) {
            // The password was right, so the lock may be told.
            return Err(ServiceError::Locked { until });
        }
        let counter = match data.device_id {
            Some(id) => Counter::Device(id),
            None => Counter::Account(account.id),
        };
        let policy = CodePolicy::default();
        let Some(tries) = self
            .ports
            .claims
            .step_attempt(&step_hash, StepKind::SignInMfa, policy.max_tries)
            .await?
        else {
            return Err(ServiceError::CodeSpent);
        };
        let answer = match method {
            "passkey" => {
                self.check_passkey(account.id, challenge_token, code, now)
                    .await?
            }
            "totp" => self.check_totp_code(account.id, code, now).await?,
            "email" | "sms" => self.check_mfa_code(&step_hash, code, now).await?,
            "recovery_code" => self.check_recovery_code(&account, code).await?,
            _ => None,
        };
        let has_devices = data.device_id.is_some() || self.has_devices(account.id).await?;
        let mut work = self.begin(now);
        let taken = match answer {
            Some(answer) => {
                self.take_answer(&mut work, &account, answer, client)
                    .await?
            }
            None => false,
        };
        if !taken {
            drop(work);
            self.audit_alone(
                now,
                AuditEvent::new(AuditKind::MfaFailed, Some(account.id))
                    .ip(client.ip.as_deref())
                    .detail(format!("method {method}")),
            )
            .await;
            self.count_failure(&account, counter, client, now).await?;
            let left = policy.max_tries.saturating_sub(tries);
            return Err(if left == 0 {
                ServiceError::CodeSpent
            } else {
                ServiceError::CodeRejected { tries_left: left }
            });
        }
        if !work.consume_step(&step_hash, StepKind::SignInMfa).await? {
            return Err(ServiceError::StepExpired);
        }
        // The device's own allowance starts again; the account's count restarts with the
        // recorded sign-in.
        if let Counter::Device(_) = counter {
            work.reset_failures(counter).await?;
        }
        let trust_until = (trust_device && self.policies.mfa.trust_device_secs > 0)
            .then(|| now.plus_secs(self.policies.mfa.trust_device_secs));
        let signed = self
            .start_session(
                work,
                SessionStart {
                    account: &account,
                    device: data.device_id,
                    has_devices,
                    verified_hash: &account.password_hash,
                    trust_until,
                    amr: crate::oidc::amr::with_second_step(method),
                    replaces: data.replaces,
                },
                client,
            )
            .await?;
        self.throttle_release(throttle).await;
        Ok(signed)
    }

    /// Takes a checked answer in `work`: false when another caller took it first (a code
    /// is never accepted twice).
    async fn take_answer(
        &self,
        work: &mut Work<'_>,
        account: &AccountRow,
        answer: Answer,
        client: &ClientInfo,
    ) -> Result<bool, ServiceError> {
        Ok(match answer {
            Answer::Totp { factor, step } => work.take_totp_step(factor, step).await?,
            Answer::Code { step_hash } => work.use_code(&step_hash).await?,
            Answer::Passkey {
                factor,
                updated_secret,
            } => {
                work.touch_factor(factor, updated_secret.as_deref()).await?;
                true
            }
            Answer::RecoveryCode { id } => match work.use_recovery_code(account.id, id).await? {
                Some(left) => {
                    self.recovery_code_used(work, account, left, client);
                    true
                }
                None => false,
            },
        })
    }

    /// A code sent by email or text for this challenge: each try is counted on the code in
    /// the statement that reads its hash.
    async fn check_mfa_code(
        &self,
        step_hash: &[u8; 32],
        code: &str,
        now: UnixTime,
    ) -> Result<Option<Answer>, ServiceError> {
        let Some(code) = otp::normalise(code) else {
            return Ok(None);
        };
        let Some(attempt) = self
            .ports
            .claims
            .try_code(step_hash, now, CodePolicy::default().max_tries)
            .await?
        else {
            return Ok(None);
        };
        Ok(self
            .code_matches(step_hash, &code, &attempt.code_hash)
            .then_some(Answer::Code {
                step_hash: *step_hash,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_data_round_trips() {
        let d = ChallengeData {
            device_id: Some(12),
            methods: vec!["totp".into(), "recovery_code".into()],
            password: password_fingerprint("$argon2id$x"),
            replaces: None,
        };
        let back = ChallengeData::decode(&d.encode()).unwrap();
        assert_eq!(back.device_id, Some(12));
        assert_eq!(back.methods, ["totp", "recovery_code"]);
        assert_eq!(back.password.len(), 16);
        let none = ChallengeData::decode("0|email|00").unwrap();
        assert_eq!(none.device_id, None);
        assert_eq!(none.replaces, None);
        let again = ChallengeData {
            replaces: Some(7),
            ..back
        };
        assert_eq!(
            ChallengeData::decode(&again.encode()).unwrap().replaces,
            Some(7)
        );
    }
}
