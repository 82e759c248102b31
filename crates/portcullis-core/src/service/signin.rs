//! Flow 2 and 3: sign in with a password, with the lockout rule.
//!
//! Every failure — unknown User ID, wrong password, wrong account type, a refused attempt —
//! ends in the same [`ServiceError::SignInFailed`] after the same work: one argon2id
//! evaluation (against a dummy for unknown users), so neither the answer nor its timing
//! tells them apart.

use portcullis_crypto::hashing::Slot;
use portcullis_crypto::Verification;

use super::mfa::SignInOutcome;
use super::sessions::{device_token_hash, SessionStart, SignedIn};
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::ids::{AccountType, UserId};
use crate::lockout::Claim;
use crate::password::{Password, PASSWORD_MAX};
use crate::ports::{AccountRow, Counter};
use crate::throttle::ThrottleAction;
use crate::ServiceError;

/// What a sign-in presents.
pub struct SignInRequest<'a> {
    pub user_id: &'a str,
    pub password: &'a str,
    pub account_type: &'a str,
    /// The device token this browser or app was given at an earlier successful sign-in.
    pub device_token: Option<&'a str>,
}

impl Portcullis {
    pub async fn sign_in(
        &self,
        req: SignInRequest<'_>,
        client: &ClientInfo,
    ) -> Result<SignInOutcome, ServiceError> {
        // A place in the hashing pool first: when it is full the answer (503) costs nothing
        // else — no throttle claim, no lookup, no attempt claimed and given back.
        let slot = self.hasher.reserve()?;
        let now = self.clock.now();
        let throttle = self
            .throttle_claim(ThrottleAction::SignIn, client, now)
            .await?;
        let result = self.sign_in_inner(req, client, slot, now).await;
        if result.is_ok() {
            self.throttle_release(throttle).await;
        }
        result
    }

    /// `slot` is the hashing pool's place this attempt spends its one hash in.
    async fn sign_in_inner(
        &self,
        req: SignInRequest<'_>,
        client: &ClientInfo,
        slot: Slot,
        now: UnixTime,
    ) -> Result<SignInOutcome, ServiceError> {
        let password = Password::new(req.password);
        // Bound the work an attacker can make us do before hashing.
        let usable = !password.is_empty() && password.char_count() <= PASSWORD_MAX * 4;
        // The account and, when the device cookie names one of its devices, that device:
        // one read. A device that has signed in to this account before uses its own
        // allowance, so a stranger's failures (which lock the account) do not lock its owner
        // out here.
        let device_hash = device_token_hash(req.device_token);
        let (account, device) = match UserId::parse(req.user_id) {
            Ok(id) => self
                .ports
                .accounts
                .find_account_on_device(id.canonical(), device_hash.as_ref())
                .await?
                .map_or((None, None), |(a, d)| (Some(a), d)),
            Err(_) => (None, None),
        };
        let account_type = AccountType::parse(req.account_type);
        let Some(account) = account.filter(|_| usable) else {
            // At the cost of the most common imported hash while imported accounts keep
            // theirs, else of the current argon2id (docs/abuse.md, "Imported accounts").
            slot.verify_unknown_user(password.expose().as_bytes())
                .await?;
            self.audit_alone(
                now,
                AuditEvent::new(AuditKind::SignInFailed, None)
                    .ip(client.ip.as_deref())
                    .detail("unknown user id"),
            )
            .await;
            return Err(ServiceError::SignInFailed);
        };
        let policy = self.policies.lockout;
        let (counter, limit) = match &device {
            Some(d) => (Counter::Device(d.id), policy.device_allowance),
            None => (Counter::Account(account.id), policy.lock_after_failures),
        };

        let claimed = match self.ports.claims.claim_attempt(counter, now, limit).await? {
            Claim::Granted(n) => n,
            Claim::Locked(until) => {
                return self
                    .locked_attempt(&account, &password, until, client, slot, now)
                    .await
                    .map(SignInOutcome::SignedIn)
            }
            Claim::Exhausted => {
                slot.verify(password.expose().as_bytes(), None).await?;
                self.audit_alone(
                    now,
                    AuditEvent::new(AuditKind::SignInFailed, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail("attempt refused: too many in flight"),
                )
                .await;
                return Err(ServiceError::SignInFailed);
            }
        };

        let verification = match slot
            .verify(password.expose().as_bytes(), Some(&account.password_hash))
            .await
        {
            Ok(v) => v,
            Err(e) => {
                // Not evaluated (the pool stopped or failed): the attempt goes back.
                self.ports.claims.release_attempt(counter).await?;
                return Err(e.into());
            }
        };
        match verification {
            Verification::Match { needs_rehash }
                if Some(account.account_type) == account_type
                    && !account.is_deactivated()
                    && account.password_compromised_at.is_none() =>
            {
                // A rehash at new parameters, computed before any transaction is open.
                let rehash = if needs_rehash {
                    self.hasher.hash(password.expose().as_bytes()).await.ok()
                } else {
                    None
                };
                if let Some(challenge) = self
                    .second_step(&account, device.as_ref(), rehash.as_deref(), client, now)
                    .await?
                {
                    // The password was right, so its slot goes back; earlier failures stand
                    // until the second step is passed (its wrong answers count too).
                    self.ports.claims.release_attempt(counter).await?;
                    return Ok(SignInOutcome::MfaRequired(challenge));
                }
                let has_devices = device.is_some() || self.has_devices(account.id).await?;
                let mut work = self.begin(now);
                // Only over the hash just verified: if a reset landed meanwhile it stands,
                // and the session start below sees the change and refuses.
                let verified_hash = match &rehash {
                    Some(new)
                        if work
                            .rehash_password(account.id, &account.password_hash, new)
                            .await? =>
                    {
                        new.as_str()
                    }
                    _ => account.password_hash.as_str(),
                };
                if let Counter::Device(_) = counter {
                    work.reset_failures(counter).await?;
                }
                // The account's own count restarts too, on a known device as well (a lock
                // already set stays until it runs out or is unlocked): recording the
                // sign-in zeroes it.
                self.start_session(
                    work,
                    SessionStart {
                        account: &account,
                        device: device.as_ref().map(|d| d.id),
                        has_devices,
                        verified_hash,
                        trust_until: None,
                        amr: crate::oidc::amr::PASSWORD.into(),
                        replaces: None,
                    },
                    client,
                )
                .await
                .map(SignInOutcome::SignedIn)
            }
            Verification::Match { .. }
                if account.password_compromised_at.is_some()
                    && Some(account.account_type) == account_type
                    && !account.is_deactivated() =>
            {
                // "This was not me": this password is known to someone else. Its holder
                // learns only that the account is locked and how to get back in, which is
                // with a new password (recovery or support), never with this one.
                self.ports.claims.release_attempt(counter).await?;
                self.audit_alone(
                    now,
                    AuditEvent::new(AuditKind::SignInLocked, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail("correct password, marked compromised (\"not me\")"),
                )
                .await;
                Err(ServiceError::Locked {
                    until: compromised_until(&account, &policy, now),
                })
            }
            Verification::Match { .. } => {
                // The right password with the wrong account type: not a password failure,
                // so the slot goes back, but the answer is the same as any failure.
                self.ports.claims.release_attempt(counter).await?;
                // A deactivated account (flow 10) is refused like any failure, so the
                // answer tells a stranger nothing; its owner was told how to come back.
                self.audit_alone(
                    now,
                    AuditEvent::new(AuditKind::SignInFailed, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail(if account.is_deactivated() {
                            "account deactivated after inactivity"
                        } else {
                            "wrong account type"
                        }),
                )
                .await;
                Err(ServiceError::SignInFailed)
            }
            Verification::Mismatch => {
                let scope = if device.is_some() {
                    "known device"
                } else {
                    "account"
                };
                self.audit_alone(
                    now,
                    AuditEvent::new(AuditKind::SignInFailed, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail(format!("wrong password ({claimed} of {limit}, {scope})")),
                )
                .await;
                if claimed >= limit {
                    self.lock_counter(&account, counter, client, now).await?;
                }
                Err(ServiceError::SignInFailed)
            }
        }
    }

    /// A sign-in attempt on a locked account: only the correct password learns of the lock.
    /// A password marked compromised stays refused after the lock runs out.
    async fn locked_attempt(
        &self,
        account: &AccountRow,
        password: &Password,
        until: UnixTime,
        client: &ClientInfo,
        slot: Slot,
        now: UnixTime,
    ) -> Result<SignedIn, ServiceError> {
        let v = slot
            .verify(password.expose().as_bytes(), Some(&account.password_hash))
            .await?;
        self.audit_alone(
            now,
            AuditEvent::new(AuditKind::SignInLocked, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(if v.is_match() {
                    "correct password"
                } else {
                    "wrong password"
                }),
        )
        .await;
        if v.is_match() {
            Err(ServiceError::Locked { until })
        } else {
            Err(ServiceError::SignInFailed)
        }
    }
}

/// The end to tell the holder of a compromised password: the lock's, or, once the lock has
/// run out, a full lock period from now (the password is refused until it is replaced).
pub(crate) fn compromised_until(
    account: &AccountRow,
    policy: &crate::lockout::LockoutPolicy,
    now: UnixTime,
) -> UnixTime {
    account
        .locked_until
        .filter(|t| *t > now)
        .unwrap_or_else(|| now.plus_secs(policy.lock_for_secs))
}
