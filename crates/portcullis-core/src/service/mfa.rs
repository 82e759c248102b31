//! Flows 2, 6 and 7: the second step of sign-in (authenticator apps, codes by email or
//! text, recovery codes), step-up on a device the account has not seen, trusted devices,
//! re-authentication for factor changes, and the "This was not me" link.
//!
//! A sign-in whose password is right but which still needs a second step leaves a
//! *challenge* (a step held by the hash of a random token). Every try on a challenge is
//! counted (at most five), and every wrong second-step answer also counts as a failed
//! sign-in on the same counter the password used, so the lockout rule bounds guessing of
//! second-factor codes as it bounds guessing of passwords.

use portcullis_crypto::{sha256, totp, Token};
use secrecy::{ExposeSecret, SecretString};

use super::recovery::{code_destination, mask};
use super::signin::{contact_message, SessionContext, SignedIn};
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::contact::CodeChannel;
use crate::lockout::Claim;
use crate::otp::{self, CodePolicy, Resend};
use crate::password::Password;
use crate::ports::{AccountRow, Counter, DeviceRow, FactorKind, FactorRow, NewCode, NewFactor};
use crate::throttle::ThrottleAction;
use crate::ServiceError;

const MFA_STEP: &str = "signin.mfa";
const NOT_ME_STEP: &str = "signin.not_me";
const MFA_PURPOSE: &str = "signin.mfa";
/// How long a person has for the second step.
const MFA_STEP_SECS: i64 = 10 * 60;
/// Recovery codes per set.
pub const RECOVERY_CODES: usize = 10;
/// Recovery code characters: digits and lower-case letters without 0/o, 1/l/i.
const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// Characters per recovery code (31^10: about 49.5 bits).
const RECOVERY_LEN: usize = 10;
const RECOVERY_HINT_DOMAIN: &str = "portcullis/recovery-code-hint/v1";

/// What a sign-in with the right password leads to.
pub enum SignInOutcome {
    /// Signed in.
    SignedIn(SignedIn),
    /// A second step is needed first.
    MfaRequired(MfaChallenge),
}

/// A way to pass the second step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MfaMethod {
    /// A passkey on this or another device.
    Passkey,
    Totp,
    /// A code by email to the (masked) address.
    Email {
        destination: String,
    },
    /// A code by text message to the (masked) number.
    Sms {
        destination: String,
    },
    RecoveryCode,
}

impl MfaMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::Totp => "totp",
            Self::Email { .. } => "email",
            Self::Sms { .. } => "sms",
            Self::RecoveryCode => "recovery_code",
        }
    }
}

/// The second step a sign-in must pass.
pub struct MfaChallenge {
    pub token: SecretString,
    pub methods: Vec<MfaMethod>,
    /// Asked because the device is new to the account (step-up), not for a set-up factor.
    pub step_up: bool,
    pub expires_at: UnixTime,
}

/// An authenticator app being set up: shown once, active after its first code.
pub struct TotpEnrolment {
    /// Base32, for typing into the app.
    pub secret: SecretString,
    /// `otpauth://…`, for the QR code.
    pub otpauth_uri: SecretString,
}

/// A second factor, as the owner sees it.
#[derive(Clone, Debug)]
pub struct FactorInfo {
    pub id: i64,
    pub kind: FactorKind,
    pub name: String,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

/// A device trusted to skip the second step.
#[derive(Clone, Debug)]
pub struct TrustedDevice {
    pub id: i64,
    pub description: String,
    pub trusted_until: UnixTime,
    pub last_seen_at: UnixTime,
}

/// The second-factor part of `/security`.
#[derive(Clone, Debug)]
pub struct SecuritySettings {
    pub factors: Vec<FactorInfo>,
    pub recovery_codes_left: i64,
    pub trusted_devices: Vec<TrustedDevice>,
    /// Whether the password was entered recently enough to change factors now.
    pub recently_authenticated: bool,
    pub has_email: bool,
    pub has_phone: bool,
}

/// A challenge's stored state: the device it came from (0: none), the methods offered, and
/// a fingerprint of the password hash that was checked (a reset in between voids it).
struct ChallengeData {
    device_id: Option<i64>,
    methods: Vec<String>,
    password: String,
}

impl ChallengeData {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}",
            self.device_id.unwrap_or(0),
            self.methods.join(","),
            self.password
        )
    }

    fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '|');
        let device: i64 = parts.next()?.parse().ok()?;
        let methods = parts.next()?;
        let password = parts.next()?.to_owned();
        Some(Self {
            device_id: (device > 0).then_some(device),
            methods: methods.split(',').map(str::to_owned).collect(),
            password,
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

/// A recovery code as typed: lower case, without spaces or dashes.
pub fn normalise_recovery_code(input: &str) -> Option<String> {
    let s: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == RECOVERY_LEN && s.bytes().all(|b| RECOVERY_ALPHABET.contains(&b))).then_some(s)
}

impl Portcullis {
    /// After the right password: the second step this sign-in needs, if any.
    pub(crate) async fn second_step(
        &self,
        account: &AccountRow,
        device: Option<&DeviceRow>,
        verified_hash: &str,
    ) -> Result<Option<MfaChallenge>, ServiceError> {
        let now = self.clock.now();
        let factors = self.confirmed_factors(account.id).await?;
        let trusted = device
            .and_then(|d| d.trusted_until)
            .is_some_and(|t| t > now);
        let codes_left = self.store.recovery_codes_left(account.id).await?;
        let (methods, step_up) = if !factors.is_empty() {
            if trusted {
                return Ok(None);
            }
            (self.factor_methods(account, &factors, codes_left), false)
        } else if device.is_none()
            && self.policies.mfa.step_up_new_devices
            && !self.store.list_devices(account.id).await?.is_empty()
        {
            // A device the account has not seen (and not the first one after registration):
            // a code to the registered channel.
            let mut methods = Vec::new();
            if let Some((channel, to)) = code_destination(account, None) {
                methods.push(code_method(channel, &to));
            }
            if codes_left > 0 {
                methods.push(MfaMethod::RecoveryCode);
            }
            (methods, true)
        } else {
            return Ok(None);
        };
        if methods.is_empty() {
            return Ok(None);
        }
        let token = Token::generate();
        let expires_at = now.plus_secs(MFA_STEP_SECS);
        let data = ChallengeData {
            device_id: device.map(|d| d.id),
            methods: methods.iter().map(|m| m.as_str().to_owned()).collect(),
            password: password_fingerprint(verified_hash),
        };
        self.store
            .create_step(
                &token.hash,
                MFA_STEP,
                account.id,
                &data.encode(),
                expires_at,
            )
            .await?;
        Ok(Some(MfaChallenge {
            token: token.secret,
            methods,
            step_up,
            expires_at,
        }))
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
                if let Some((c, to)) = code_destination(account, Some(channel)) {
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

    async fn confirmed_factors(&self, account_id: i64) -> Result<Vec<FactorRow>, ServiceError> {
        Ok(self
            .store
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
    ) -> Result<(i64, Vec<String>), ServiceError> {
        let step = self
            .store
            .find_step(
                &sha256(challenge_token.as_bytes()),
                MFA_STEP,
                self.clock.now(),
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
            .store
            .find_step(&sha256(challenge_token.as_bytes()), MFA_STEP, now)
            .await?
        else {
            return Ok(Vec::new());
        };
        let Some(data) = ChallengeData::decode(&step.data) else {
            return Ok(Vec::new());
        };
        let Some(account) = self.store.account_by_id(step.subject_id).await? else {
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
                    let (c, to) = code_destination(&account, Some(channel))?;
                    (c == channel).then(|| code_method(c, &to))
                }
            })
            .collect())
    }

    /// Sends (or sends again, at most once a minute) a code for a challenge by email or
    /// text; the masked destination.
    pub async fn send_mfa_code(
        &self,
        challenge_token: &str,
        method: &str,
    ) -> Result<String, ServiceError> {
        let step_hash = sha256(challenge_token.as_bytes());
        let now = self.clock.now();
        let step = self
            .store
            .find_step(&step_hash, MFA_STEP, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let data = ChallengeData::decode(&step.data).ok_or(ServiceError::StepExpired)?;
        let channel = CodeChannel::parse(method)
            .filter(|c| data.methods.iter().any(|m| m == c.as_str()))
            .ok_or_else(|| {
                ServiceError::field("method", "Choose one of the ways offered for this sign-in.")
            })?;
        let account = self
            .store
            .account_by_id(step.subject_id)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let (channel, to) = code_destination(&account, Some(channel))
            .filter(|(c, _)| *c == channel)
            .ok_or(ServiceError::StepExpired)?;
        let destination = mask(channel, &to);
        let policy = CodePolicy::default();
        let code = otp::generate();
        let code_hash = otp::code_hash(&self.keys, &step_hash, code.expose_secret());
        let message = Self::outgoing(&account, self.code_message(channel, to, &code));
        match self
            .store
            .resend_code(
                &step_hash,
                &code_hash,
                now,
                policy.ttl_secs,
                policy.resend_after_secs,
                policy.max_sends,
                std::slice::from_ref(&message),
            )
            .await?
        {
            Resend::Sent => {}
            Resend::NoCode => {
                self.store
                    .create_code(NewCode {
                        step_hash,
                        account_id: account.id,
                        purpose: MFA_PURPOSE.into(),
                        code_hash,
                        channel,
                        now,
                        expires_at: now.plus_secs(policy.ttl_secs),
                        messages: vec![message],
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
        self.notifier.wake();
        Ok(destination)
    }

    /// The second step: a code from the authenticator app, by email or text, or a recovery
    /// code. `trust_device` skips the second step on this device for the configured days.
    pub async fn verify_mfa(
        &self,
        challenge_token: &str,
        method: &str,
        code: &str,
        trust_device: bool,
        client: &ClientInfo,
    ) -> Result<SignedIn, ServiceError> {
        let throttle = self.throttle_claim(ThrottleAction::SignIn, client).await?;
        let step_hash = sha256(challenge_token.as_bytes());
        let now = self.clock.now();
        let step = self
            .store
            .find_step(&step_hash, MFA_STEP, now)
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
            .store
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
            .store
            .step_attempt(&step_hash, MFA_STEP, policy.max_tries)
            .await?
        else {
            return Err(ServiceError::CodeSpent);
        };
        let accepted = match method {
            "passkey" => self.take_passkey(account.id, challenge_token, code).await?,
            "totp" => self.take_totp_code(account.id, code).await?,
            "email" | "sms" => self.take_mfa_code(&step_hash, code).await?,
            "recovery_code" => self.take_recovery_code(&account, code, client).await?,
            _ => false,
        };
        if !accepted {
            self.audit(
                AuditEvent::new(AuditKind::MfaFailed, Some(account.id))
                    .ip(client.ip.as_deref())
                    .detail(format!("method {method}")),
            )
            .await;
            self.count_failure(&account, counter, client).await?;
            let left = policy.max_tries.saturating_sub(tries);
            return Err(if left == 0 {
                ServiceError::CodeSpent
            } else {
                ServiceError::CodeRejected { tries_left: left }
            });
        }
        if !self.store.consume_step(&step_hash, MFA_STEP).await? {
            return Err(ServiceError::StepExpired);
        }
        self.throttle_release(throttle).await;
        self.store.reset_failures(counter).await?;
        self.store
            .reset_failures(Counter::Account(account.id))
            .await?;
        self.store.record_sign_in(account.id, now).await?;
        let signed = self
            .start_session(&account, data.device_id, client, &account.password_hash)
            .await?;
        if trust_device && self.policies.mfa.trust_device_secs > 0 {
            let until = now.plus_secs(self.policies.mfa.trust_device_secs);
            if self
                .store
                .set_device_trust(signed.device_id, account.id, Some(until))
                .await?
            {
                self.audit(
                    AuditEvent::new(AuditKind::DeviceTrusted, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail(format!(
                            "device {} until {}",
                            signed.device_id,
                            until.to_rfc3339()
                        )),
                )
                .await;
            }
        }
        Ok(signed)
    }

    /// Counts a wrong answer as a failed sign-in on `counter`, locking at the threshold.
    pub(crate) async fn count_failure(
        &self,
        account: &AccountRow,
        counter: Counter,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let lockout = self.policies.lockout;
        let limit = match counter {
            Counter::Account(_) => lockout.lock_after_failures,
            Counter::Device(_) => lockout.device_allowance,
        };
        if let Claim::Granted(n) = self
            .store
            .claim_attempt(counter, self.clock.now(), limit)
            .await?
        {
            if n >= limit {
                self.lock_counter(account, counter, client).await?;
            }
        }
        Ok(())
    }

    /// A TOTP code for the account's authenticator: one step either side of now, and never
    /// a step already used.
    async fn take_totp_code(&self, account_id: i64, code: &str) -> Result<bool, ServiceError> {
        let Some(code) = otp::normalise(code) else {
            return Ok(false);
        };
        let Some(factor) = self
            .confirmed_factors(account_id)
            .await?
            .into_iter()
            .find(|f| f.kind == FactorKind::Totp)
        else {
            return Ok(false);
        };
        let secret = self.open_factor_secret(&factor)?;
        let now = self.clock.now();
        let Some(step) = matching_step(&secret, now, &code) else {
            return Ok(false);
        };
        Ok(self.store.take_totp_step(factor.id, step, now).await?)
    }

    fn open_factor_secret(
        &self,
        factor: &FactorRow,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, ServiceError> {
        factor
            .secret
            .as_deref()
            .and_then(|s| self.factor_seal.open(s))
            .ok_or_else(|| {
                ServiceError::Internal(
                    "an authenticator secret cannot be opened: factor.key differs or changed"
                        .into(),
                )
            })
    }

    async fn take_mfa_code(&self, step_hash: &[u8; 32], code: &str) -> Result<bool, ServiceError> {
        let Some(code) = otp::normalise(code) else {
            return Ok(false);
        };
        let now = self.clock.now();
        let Some(attempt) = self
            .store
            .try_code(step_hash, now, CodePolicy::default().max_tries)
            .await?
        else {
            return Ok(false);
        };
        let expected = otp::code_hash(&self.keys, step_hash, &code);
        if !portcullis_crypto::ct_eq(&expected, &attempt.code_hash) {
            return Ok(false);
        }
        Ok(self.store.use_code(step_hash, now).await?)
    }

    async fn take_recovery_code(
        &self,
        account: &AccountRow,
        code: &str,
        client: &ClientInfo,
    ) -> Result<bool, ServiceError> {
        let Some(code) = normalise_recovery_code(code) else {
            return Ok(false);
        };
        let candidates = self
            .store
            .recovery_code_candidates(account.id, self.recovery_hint(&code))
            .await?;
        if candidates.is_empty() {
            // The same work as a real check.
            self.hasher.verify(code.as_bytes(), None).await?;
            return Ok(false);
        }
        let now = self.clock.now();
        for (id, hash) in candidates {
            if self
                .hasher
                .verify(code.as_bytes(), Some(&hash))
                .await?
                .is_match()
            {
                if !self.store.use_recovery_code(id, now).await? {
                    return Ok(false);
                }
                let left = self.store.recovery_codes_left(account.id).await?;
                self.audit(
                    AuditEvent::new(AuditKind::RecoveryCodeUsed, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail(format!("{left} left")),
                )
                .await;
                let issuer = &self.policies.issuer_name;
                if let Some(m) = contact_message(
                    account,
                    format!("A recovery code was used for your {issuer} account"),
                    format!(
                        "One of your recovery codes was just used to sign in to your {issuer} \
                         online account. You have {left} left; make new ones on the Security \
                         page when you run low. If this was not you, call {} at once.",
                        self.policies.support_phone
                    ),
                ) {
                    self.notify(m).await;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn recovery_hint(&self, normalised: &str) -> i64 {
        let h = self
            .keys
            .hash(RECOVERY_HINT_DOMAIN, &[normalised.as_bytes()]);
        i64::from(h.first().copied().unwrap_or(0))
    }

    /// Re-authentication: the password again, for changes to sign-in settings. Wrong
    /// passwords count towards the lock like any failed sign-in.
    pub async fn reauthenticate(
        &self,
        ctx: &SessionContext,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let account = self.session_account(ctx).await?;
        let password = Password::new(password);
        let counter = Counter::Account(account.id);
        let now = self.clock.now();
        let limit = self.policies.lockout.lock_after_failures;
        let claimed = match self.store.claim_attempt(counter, now, limit).await? {
            Claim::Granted(n) => n,
            Claim::Locked(until) => return Err(ServiceError::Locked { until }),
            Claim::Exhausted => return Err(ServiceError::TooManyRequests { retry_after: 1 }),
        };
        let verified = match self
            .hasher
            .verify(password.expose().as_bytes(), Some(&account.password_hash))
            .await
        {
            Ok(v) => v,
            Err(e) => {
                self.store.release_attempt(counter).await?;
                return Err(e.into());
            }
        };
        if verified.is_match() {
            self.store.reset_failures(counter).await?;
            self.store.mark_reauth(ctx.session_id, now).await?;
            self.audit(
                AuditEvent::new(AuditKind::Reauthenticated, Some(account.id))
                    .ip(client.ip.as_deref()),
            )
            .await;
            Ok(())
        } else {
            self.audit(
                AuditEvent::new(AuditKind::SignInFailed, Some(account.id))
                    .ip(client.ip.as_deref())
                    .detail("wrong password at re-authentication"),
            )
            .await;
            // The claim stands as the failure; lock at the threshold.
            if claimed >= limit {
                self.lock_counter(&account, counter, client).await?;
            }
            Err(ServiceError::field(
                "password",
                "That password is not right. Enter the password you sign in with.",
            ))
        }
    }

    pub(crate) fn require_recent_auth(&self, ctx: &SessionContext) -> Result<(), ServiceError> {
        if self.clock.now().0 - ctx.auth_at.0 > self.policies.mfa.reauth_secs {
            Err(ServiceError::ReauthRequired)
        } else {
            Ok(())
        }
    }

    pub(crate) async fn session_account(
        &self,
        ctx: &SessionContext,
    ) -> Result<AccountRow, ServiceError> {
        self.store
            .account_by_id(ctx.account_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)
    }

    /// The second-factor settings shown on `/security`.
    pub async fn security_settings(
        &self,
        ctx: &SessionContext,
    ) -> Result<SecuritySettings, ServiceError> {
        let account = self.session_account(ctx).await?;
        let now = self.clock.now();
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
            .store
            .list_devices(account.id)
            .await?
            .into_iter()
            .filter_map(|d| {
                let until = d.trusted_until.filter(|t| *t > now)?;
                Some(TrustedDevice {
                    id: d.id,
                    description: d
                        .user_agent
                        .as_deref()
                        .map(super::signin::describe_device)
                        .unwrap_or_else(|| "Unknown device".into()),
                    trusted_until: until,
                    last_seen_at: d.last_seen_at,
                })
            })
            .collect();
        Ok(SecuritySettings {
            factors,
            recovery_codes_left: self.store.recovery_codes_left(account.id).await?,
            trusted_devices,
            recently_authenticated: self.require_recent_auth(ctx).is_ok(),
            has_email: account.email.is_some(),
            has_phone: account.phone.is_some(),
        })
    }

    /// Starts setting up an authenticator app (not active until its first code).
    pub async fn begin_totp(&self, ctx: &SessionContext) -> Result<TotpEnrolment, ServiceError> {
        self.require_recent_auth(ctx)?;
        let account = self.session_account(ctx).await?;
        let secret = totp::generate_secret();
        let sealed = self
            .factor_seal
            .seal(&secret)
            .ok_or_else(|| ServiceError::Internal("sealing failed".into()))?;
        self.store
            .create_factor(NewFactor {
                account_id: account.id,
                kind: FactorKind::Totp,
                name: "Authenticator app".into(),
                secret: Some(sealed),
                credential_id: None,
                confirmed: false,
                now: self.clock.now(),
            })
            .await?;
        let otpauth_uri = totp::otpauth_uri(&secret, &self.policies.issuer_name, &account.user_id)
            .ok_or_else(|| ServiceError::Internal("otpauth URI".into()))?;
        Ok(TotpEnrolment {
            secret: totp::encode_secret(&secret),
            otpauth_uri,
        })
    }

    /// Activates the authenticator being set up with its first code.
    pub async fn confirm_totp(
        &self,
        ctx: &SessionContext,
        code: &str,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        self.require_recent_auth(ctx)?;
        let account = self.session_account(ctx).await?;
        let wrong = || {
            ServiceError::field(
                "code",
                "That code is not right. Enter the 6 digits your app shows now (check that \
                 your phone's clock is set automatically).",
            )
        };
        let code = otp::normalise(code).ok_or_else(wrong)?;
        let pending = self
            .store
            .list_factors(account.id)
            .await?
            .into_iter()
            .rfind(|f| f.kind == FactorKind::Totp && !f.confirmed)
            .ok_or_else(|| {
                ServiceError::field("code", "Start setting up the authenticator app again.")
            })?;
        let secret = self.open_factor_secret(&pending)?;
        let now = self.clock.now();
        let step = matching_step(&secret, now, &code).ok_or_else(wrong)?;
        if !self
            .store
            .confirm_factor(pending.id, account.id, step)
            .await?
        {
            return Err(ServiceError::StepExpired);
        }
        self.factor_changed(&account, "An authenticator app was added", client)
            .await;
        Ok(())
    }

    /// Turns on codes by email or text as a second factor.
    pub async fn enable_code_factor(
        &self,
        ctx: &SessionContext,
        channel: &str,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        self.require_recent_auth(ctx)?;
        let account = self.session_account(ctx).await?;
        let channel = CodeChannel::parse(channel)
            .ok_or_else(|| ServiceError::field("channel", "Choose email or text message."))?;
        let (_, to) = code_destination(&account, Some(channel))
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
        self.store
            .create_factor(NewFactor {
                account_id: account.id,
                kind,
                name: format!("{what} to {}", mask(channel, &to)),
                secret: None,
                credential_id: None,
                confirmed: true,
                now: self.clock.now(),
            })
            .await?;
        self.factor_changed(&account, &format!("{what} were turned on"), client)
            .await;
        Ok(())
    }

    /// Removes a second factor.
    pub async fn remove_factor(
        &self,
        ctx: &SessionContext,
        factor_id: i64,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        self.require_recent_auth(ctx)?;
        let account = self.session_account(ctx).await?;
        if !self.store.delete_factor(factor_id, account.id).await? {
            return Err(ServiceError::NotFound);
        }
        self.audit(
            AuditEvent::new(AuditKind::FactorRemoved, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!("factor {factor_id}")),
        )
        .await;
        self.tell_owner(
            &account,
            "A second factor was removed",
            "A way of confirming your sign-ins was removed from your online account.",
        )
        .await;
        Ok(())
    }

    /// Ten new recovery codes, shown once; any earlier ones stop working.
    pub async fn issue_recovery_codes(
        &self,
        ctx: &SessionContext,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>, ServiceError> {
        self.require_recent_auth(ctx)?;
        let account = self.session_account(ctx).await?;
        let codes: Vec<SecretString> = (0..RECOVERY_CODES)
            .map(|_| portcullis_crypto::token::random_from(RECOVERY_ALPHABET, RECOVERY_LEN))
            .collect();
        let plain: Vec<&[u8]> = codes.iter().map(|c| c.expose_secret().as_bytes()).collect();
        let hashes = self.hasher.hash_many(&plain).await?;
        let rows: Vec<(i64, String)> = codes
            .iter()
            .zip(hashes)
            .map(|(c, h)| (self.recovery_hint(c.expose_secret()), h))
            .collect();
        self.store
            .replace_recovery_codes(account.id, &rows, self.clock.now())
            .await?;
        self.audit(
            AuditEvent::new(AuditKind::RecoveryCodesIssued, Some(account.id))
                .ip(client.ip.as_deref()),
        )
        .await;
        self.tell_owner(
            &account,
            "New recovery codes were made",
            "New recovery codes were made for your online account; the earlier ones no longer \
             work.",
        )
        .await;
        Ok(codes
            .into_iter()
            .map(|c| {
                let s = c.expose_secret();
                SecretString::from(format!(
                    "{}-{}",
                    s.get(..5).unwrap_or_default(),
                    s.get(5..).unwrap_or_default()
                ))
            })
            .collect())
    }

    /// Stops trusting one of the account's devices.
    pub async fn untrust_device(
        &self,
        ctx: &SessionContext,
        device_id: i64,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        if !self
            .store
            .set_device_trust(device_id, ctx.account_id, None)
            .await?
        {
            return Err(ServiceError::NotFound);
        }
        self.audit(
            AuditEvent::new(AuditKind::DeviceUntrusted, Some(ctx.account_id))
                .ip(client.ip.as_deref())
                .detail(format!("device {device_id}")),
        )
        .await;
        Ok(())
    }

    /// A link for the new-device notice: it ends every session and locks the account.
    pub(crate) async fn not_me_link(&self, account: &AccountRow) -> Option<String> {
        let token = Token::generate();
        let until = self.clock.now().plus_secs(self.policies.mfa.not_me_secs);
        match self
            .store
            .create_step(&token.hash, NOT_ME_STEP, account.id, "", until)
            .await
        {
            Ok(()) => Some(format!(
                "{}/not-me/{}",
                self.policies.public_url,
                token.expose()
            )),
            Err(e) => {
                tracing::warn!(error = %e, "could not make a not-me link");
                None
            }
        }
    }

    /// "This was not me": every session ends, every device is forgotten and the account
    /// is locked until its owner unlocks it (card ID and a code, or support).
    pub async fn not_me(&self, token: &str, client: &ClientInfo) -> Result<(), ServiceError> {
        if token.is_empty() || token.len() > 128 {
            return Err(ServiceError::StepExpired);
        }
        let hash = sha256(token.as_bytes());
        let now = self.clock.now();
        let step = self
            .store
            .find_step(&hash, NOT_ME_STEP, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        if !self.store.consume_step(&hash, NOT_ME_STEP).await? {
            return Err(ServiceError::StepExpired);
        }
        let account = self
            .store
            .account_by_id(step.subject_id)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let ended = self.store.delete_account_sessions(account.id, None).await?;
        // Known devices would keep their own allowance past the lock: forget them all.
        self.store.forget_devices(account.id).await?;
        let until = now.plus_secs(self.policies.lockout.lock_for_secs);
        let issuer = &self.policies.issuer_name;
        let notice: Vec<_> = contact_message(
            &account,
            format!("We locked your {issuer} account as you asked"),
            format!(
                "You told us a sign-in to your {issuer} online account was not you. We signed \
                 out every device and locked the account. To get back in, use \"Forgot your \
                 password?\" on the sign-in page with your card and a one-time code, and \
                 choose a new password; or call {}.",
                self.policies.support_phone
            ),
        )
        .map(|m| Self::outgoing(&account, m))
        .into_iter()
        .collect();
        if self
            .store
            .lock(Counter::Account(account.id), now, until, &notice)
            .await?
        {
            self.counters.account_locked();
            self.notifier.wake();
        }
        self.audit(
            AuditEvent::new(AuditKind::NotMe, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!(
                    "{ended} sessions ended; locked until {}",
                    until.to_rfc3339()
                )),
        )
        .await;
        Ok(())
    }

    pub(crate) async fn factor_changed(
        &self,
        account: &AccountRow,
        what: &str,
        client: &ClientInfo,
    ) {
        self.audit(
            AuditEvent::new(AuditKind::FactorAdded, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(what),
        )
        .await;
        self.tell_owner(account, what, &format!("{what} on your online account."))
            .await;
    }

    async fn tell_owner(&self, account: &AccountRow, subject: &str, first: &str) {
        let issuer = &self.policies.issuer_name;
        if let Some(m) = contact_message(
            account,
            format!("{subject} ({issuer})"),
            format!(
                "{first} If this was you, there is nothing to do. If it was not, reset your \
                 password with \"Forgot your password?\" at once, or call {}.",
                self.policies.support_phone
            ),
        ) {
            self.notify(m).await;
        }
    }
}

fn code_method(channel: CodeChannel, to: &str) -> MfaMethod {
    let destination = mask(channel, to);
    match channel {
        CodeChannel::Email => MfaMethod::Email { destination },
        CodeChannel::Sms => MfaMethod::Sms { destination },
    }
}

/// The time step (one either side of now) whose code `code` is.
fn matching_step(secret: &[u8], now: UnixTime, code: &str) -> Option<i64> {
    let step_secs = i64::try_from(totp::STEP_SECS).unwrap_or(30);
    let current = now.0.div_euclid(step_secs);
    let mut found = None;
    // Every candidate is computed and compared (constant time each), whatever matches.
    for step in [current - 1, current, current + 1] {
        let Ok(s) = u64::try_from(step) else {
            continue;
        };
        if totp::matches_step(secret, s, code) && found.is_none() {
            found = Some(step);
        }
    }
    found
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
        };
        let back = ChallengeData::decode(&d.encode()).unwrap();
        assert_eq!(back.device_id, Some(12));
        assert_eq!(back.methods, ["totp", "recovery_code"]);
        assert_eq!(back.password.len(), 16);
        let none = ChallengeData::decode("0|email|00").unwrap();
        assert_eq!(none.device_id, None);
    }

    #[test]
    fn recovery_codes_normalise() {
        assert_eq!(
            normalise_recovery_code(" ABCDE-fghjk ").as_deref(),
            Some("abcdefghjk")
        );
        assert_eq!(normalise_recovery_code("abcde-fghj"), None);
        assert_eq!(normalise_recovery_code("abcde-fghj0"), None); // 0 is not in the alphabet
    }

    #[test]
    fn one_step_either_side_is_accepted() {
        let secret = b"12345678901234567890";
        let now = UnixTime(1_111_111_111);
        let step = now.0 / 30;
        for (delta, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = totp::code_at_step(secret, u64::try_from(step + delta).unwrap(), 6).unwrap();
            assert_eq!(
                matching_step(secret, now, code.expose_secret()),
                ok.then_some(step + delta),
                "delta {delta}"
            );
        }
    }
}
