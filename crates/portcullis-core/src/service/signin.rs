//! Flow 2 and 3: sign in, with the lockout rule, and the session that follows.
//!
//! Every failure — unknown User ID, wrong password, wrong account type, a refused attempt —
//! ends in the same [`ServiceError::SignInFailed`] after the same work: one argon2id
//! evaluation (against a dummy for unknown users), so neither the answer nor its timing
//! tells them apart.

use portcullis_crypto::hashing::Slot;
use portcullis_crypto::{sha256, Token, Verification};
use secrecy::SecretString;

use super::mfa::SignInOutcome;
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::ids::{AccountType, UserId};
use crate::lockout::Claim;
use crate::password::{Password, PASSWORD_MAX};
use crate::ports::{AccountRow, Counter, Message, NewSession, Outgoing};
use crate::session::SessionState;
use crate::throttle::{self, ThrottleAction};
use crate::ServiceError;

/// A started session: the token is shown to the client once.
pub struct SignedIn {
    pub token: SecretString,
    /// A new device token, when this device was not yet known to the account.
    pub device_token: Option<SecretString>,
    pub expires_at: UnixTime,
    pub account_id: i64,
    pub user_id: String,
    /// The device this session is on.
    pub device_id: i64,
}

/// An authenticated request's session.
#[derive(Clone, Debug)]
pub struct SessionContext {
    pub session_id: i64,
    pub account_id: i64,
    pub token_hash: [u8; 32],
    pub expires_at: UnixTime,
    /// When the password was last presented in this session (sign-in or re-entry).
    pub auth_at: UnixTime,
}

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
        let throttle = self.throttle_claim(ThrottleAction::SignIn, client).await?;
        let result = self.sign_in_inner(req, client, slot).await;
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
    ) -> Result<SignInOutcome, ServiceError> {
        let password = Password::new(req.password);
        // Bound the work an attacker can make us do before hashing.
        let usable = !password.is_empty() && password.char_count() <= PASSWORD_MAX * 4;
        let account = match UserId::parse(req.user_id) {
            Ok(id) => self.store.find_account(id.canonical()).await?,
            Err(_) => None,
        };
        let account_type = AccountType::parse(req.account_type);
        let Some(account) = account.filter(|_| usable) else {
            slot.verify(password.expose().as_bytes(), None).await?;
            self.audit(
                AuditEvent::new(AuditKind::SignInFailed, None)
                    .ip(client.ip.as_deref())
                    .detail("unknown user id"),
            )
            .await;
            return Err(ServiceError::SignInFailed);
        };
        let now = self.clock.now();
        let policy = self.policies.lockout;

        // A device that has signed in to this account before uses its own allowance, so a
        // stranger's failures (which lock the account) do not lock its owner out here.
        let device = match req.device_token.filter(|t| !t.is_empty() && t.len() <= 128) {
            Some(token) => self
                .store
                .device_by_token(&sha256(token.as_bytes()))
                .await?
                .filter(|d| d.account_id == account.id),
            None => None,
        };
        let (counter, limit) = match &device {
            Some(d) => (Counter::Device(d.id), policy.device_allowance),
            None => (Counter::Account(account.id), policy.lock_after_failures),
        };

        let claimed = match self.store.claim_attempt(counter, now, limit).await? {
            Claim::Granted(n) => n,
            Claim::Locked(until) => {
                return self
                    .locked_attempt(&account, &password, until, client, slot)
                    .await
                    .map(SignInOutcome::SignedIn)
            }
            Claim::Exhausted => {
                slot.verify(password.expose().as_bytes(), None).await?;
                self.audit(
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
                self.store.release_attempt(counter).await?;
                return Err(e.into());
            }
        };
        match verification {
            Verification::Match { needs_rehash }
                if Some(account.account_type) == account_type && !account.is_deactivated() =>
            {
                let mut rehashed = None;
                if needs_rehash {
                    if let Ok(hash) = self.hasher.hash(password.expose().as_bytes()).await {
                        // Only over the hash just verified: if a reset landed meanwhile it
                        // stands, and `start_session` below sees the change and refuses.
                        if self
                            .store
                            .rehash_password(account.id, &account.password_hash, &hash)
                            .await?
                        {
                            rehashed = Some(hash);
                        }
                    }
                }
                let current_hash = rehashed.as_deref().unwrap_or(&account.password_hash);
                if let Some(challenge) = self
                    .second_step(&account, device.as_ref(), current_hash)
                    .await?
                {
                    // The password was right, so its slot goes back; earlier failures stand
                    // until the second step is passed (its wrong answers count too).
                    self.store.release_attempt(counter).await?;
                    self.audit(
                        AuditEvent::new(AuditKind::MfaChallenged, Some(account.id))
                            .ip(client.ip.as_deref())
                            .detail(if challenge.step_up {
                                "new device"
                            } else {
                                "second factor"
                            }),
                    )
                    .await;
                    return Ok(SignInOutcome::MfaRequired(challenge));
                }
                if let Counter::Device(_) = counter {
                    self.store.reset_failures(counter).await?;
                }
                // Also restarts the account's own count, on a known device too (a lock
                // already set stays until it runs out or is unlocked): one statement for
                // both, as `record_sign_in` zeroes `failed_count`.
                self.store.record_sign_in(account.id, now).await?;
                let verified_hash = match &rehashed {
                    Some(h) => h.clone(),
                    None => account.password_hash.clone(),
                };
                self.start_session(
                    &account,
                    device.as_ref().map(|d| d.id),
                    client,
                    &verified_hash,
                )
                .await
                .map(SignInOutcome::SignedIn)
            }
            Verification::Match { .. } => {
                // The right password with the wrong account type: not a password failure,
                // so the slot goes back, but the answer is the same as any failure.
                self.store.release_attempt(counter).await?;
                // A deactivated account (flow 10) is refused like any failure, so the
                // answer tells a stranger nothing; its owner was told how to come back.
                self.audit(
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
                self.audit(
                    AuditEvent::new(AuditKind::SignInFailed, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail(format!("wrong password ({claimed} of {limit}, {scope})")),
                )
                .await;
                if claimed >= limit {
                    self.lock_counter(&account, counter, client).await?;
                }
                Err(ServiceError::SignInFailed)
            }
        }
    }

    /// Locks `counter` (the account, or one device's allowance) at its threshold, with the
    /// owner's notice committed with the lock.
    pub(crate) async fn lock_counter(
        &self,
        account: &AccountRow,
        counter: Counter,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let until = now.plus_secs(self.policies.lockout.lock_for_secs);
        let notice = match counter {
            Counter::Account(_) => self.lock_notice(account),
            Counter::Device(_) => Vec::new(),
        };
        if self.store.lock(counter, now, until, &notice).await? {
            self.notifier.wake();
            match counter {
                Counter::Account(_) => self.counters.account_locked(),
                Counter::Device(_) => self.counters.device_locked(),
            }
            match counter {
                Counter::Account(_) => self.on_locked(account, until, client).await,
                Counter::Device(id) => {
                    self.audit(
                        AuditEvent::new(AuditKind::AccountLocked, Some(account.id))
                            .ip(client.ip.as_deref())
                            .detail(format!(
                                "device {id} locked out until {}",
                                until.to_rfc3339()
                            )),
                    )
                    .await;
                }
            }
        }
        Ok(())
    }

    /// Claims a place in this client's bucket for `action`; the bucket to release on
    /// success, or 429 when it is full.
    pub(crate) async fn throttle_claim(
        &self,
        action: ThrottleAction,
        client: &ClientInfo,
    ) -> Result<Option<String>, ServiceError> {
        let policy = self.policies.throttle;
        let Some(ip) = client.ip.as_deref().filter(|_| policy.enabled) else {
            return Ok(None);
        };
        let bucket = throttle::bucket(action, ip);
        let now = self.clock.now();
        match self
            .store
            .throttle_claim(&bucket, now, policy.window_secs, policy.failures_per_window)
            .await?
        {
            None => Ok(Some(bucket)),
            Some(window_start) => Err(ServiceError::TooManyRequests {
                retry_after: throttle::retry_after(window_start, policy.window_secs, now.0),
            }),
        }
    }

    pub(crate) async fn throttle_release(&self, bucket: Option<String>) {
        if let Some(bucket) = bucket {
            if let Err(e) = self.store.throttle_release(&bucket).await {
                tracing::warn!(error = %e, "throttle release failed");
            }
        }
    }

    /// A sign-in attempt on a locked account: only the correct password learns of the lock.
    async fn locked_attempt(
        &self,
        account: &AccountRow,
        password: &Password,
        until: UnixTime,
        client: &ClientInfo,
        slot: Slot,
    ) -> Result<SignedIn, ServiceError> {
        let v = slot
            .verify(password.expose().as_bytes(), Some(&account.password_hash))
            .await?;
        self.audit(
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

    async fn on_locked(&self, account: &AccountRow, until: UnixTime, client: &ClientInfo) {
        self.audit(
            AuditEvent::new(AuditKind::AccountLocked, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!("locked until {}", until.to_rfc3339())),
        )
        .await;
    }

    async fn new_device_notice(&self, account: &AccountRow, client: &ClientInfo) {
        let issuer = &self.policies.issuer_name;
        let device = client
            .user_agent
            .as_deref()
            .map(describe_device)
            .unwrap_or_else(|| "an unknown device".into());
        let not_me = match self.not_me_link(account).await {
            Some(link) => format!(
                " If it was not you, open this link to sign out every device and lock your \
                 account at once: {link} . Then reset your password with \"Forgot your \
                 password?\", or call {}.",
                self.policies.support_phone
            ),
            None => format!(
                " If it was not you, reset your password with \"Forgot your password?\" at \
                 once, or call {}.",
                self.policies.support_phone
            ),
        };
        let body = format!(
            "Your {issuer} online account {} was just signed in to from {device}{}. If this \
             was you, there is nothing to do.{not_me}",
            account.user_id,
            client
                .ip
                .as_deref()
                .map(|ip| format!(" (address {ip})"))
                .unwrap_or_default(),
        );
        if let Some(m) = contact_message(
            account,
            format!("New sign-in to your {issuer} account"),
            body,
        ) {
            self.notify(m).await;
        }
    }

    /// The owner's notice of a lock, committed with the lock itself.
    fn lock_notice(&self, account: &AccountRow) -> Vec<Outgoing> {
        let issuer = &self.policies.issuer_name;
        let body = format!(
            "Your {issuer} online account was locked after {} failed sign-in attempts. \
             To unlock it, use \"Forgot your password?\" on the sign-in page with your card \
             and a one-time code, or call {}. If these attempts were not you, your account \
             is safe: nobody can sign in while it is locked.",
            self.policies.lockout.lock_after_failures, self.policies.support_phone
        );
        contact_message(account, format!("Your {issuer} account is locked"), body)
            .map(|m| Self::outgoing(account, m))
            .into_iter()
            .collect()
    }

    /// Starts a session for a password that matched `verified_hash`. A reset or change
    /// that lands while the password is being checked must not leave this session behind:
    /// the reset commits the new hash and then ends every session, so the hash is read again
    /// after the session exists. Either the reset's sweep comes later and ends this session,
    /// or this check sees the new hash and ends it here (races.rs,
    /// `races_password_reset_and_sign_in_leave_no_old_session`).
    pub(crate) async fn start_session(
        &self,
        account: &AccountRow,
        known_device: Option<i64>,
        client: &ClientInfo,
        verified_hash: &str,
    ) -> Result<SignedIn, ServiceError> {
        let now = self.clock.now();
        // A device seen for the first time gets its token now; a known one is refreshed.
        let (device_id, device_token) = match known_device {
            Some(id) => {
                self.store.touch_device(id, now).await?;
                (id, None)
            }
            None => {
                let device = Token::generate();
                let known_before = self.store.list_devices(account.id).await?.len();
                let id = self
                    .store
                    .create_device(account.id, &device.hash, now, client.user_agent.as_deref())
                    .await?;
                // Tell the owner of a sign-in from a device the account has not seen (not for
                // the very first device, right after registration).
                if known_before > 0 {
                    self.new_device_notice(account, client).await;
                }
                (id, Some(device.secret))
            }
        };
        let token = Token::generate();
        let session_id = self
            .store
            .create_session(NewSession {
                token_hash: token.hash,
                account_id: account.id,
                now,
                user_agent: client.user_agent.clone(),
                client_ip: client.ip.clone(),
            })
            .await?;
        let unchanged = self
            .store
            .account_by_id(account.id)
            .await?
            .is_some_and(|current| current.password_hash == verified_hash);
        if !unchanged {
            self.store.delete_session(session_id).await?;
            self.audit(
                AuditEvent::new(AuditKind::SignInFailed, Some(account.id))
                    .ip(client.ip.as_deref())
                    .detail("password changed while signing in"),
            )
            .await;
            return Err(ServiceError::SignInFailed);
        }
        self.audit(AuditEvent::new(AuditKind::SignIn, Some(account.id)).ip(client.ip.as_deref()))
            .await;
        Ok(SignedIn {
            token: token.secret,
            device_token,
            expires_at: self.policies.session.expires_at(now, now),
            account_id: account.id,
            user_id: account.user_id.clone(),
            device_id,
        })
    }

    /// The session a bearer token or cookie names, if it is still active.
    pub async fn authenticate(&self, token: &str) -> Result<SessionContext, ServiceError> {
        if token.is_empty() || token.len() > 128 {
            return Err(ServiceError::Unauthenticated);
        }
        let token_hash = sha256(token.as_bytes());
        let session = self
            .store
            .session_by_token(&token_hash)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let now = self.clock.now();
        let policy = self.policies.session;
        match policy.state(session.created_at, session.last_seen_at, now) {
            SessionState::Active => {}
            SessionState::IdleExpired | SessionState::Expired => {
                self.store.delete_session(session.id).await?;
                return Err(ServiceError::Unauthenticated);
            }
        }
        let last_seen = if policy.needs_touch(session.last_seen_at, now) {
            self.store.touch_session(session.id, now).await?;
            now
        } else {
            session.last_seen_at
        };
        Ok(SessionContext {
            session_id: session.id,
            account_id: session.account_id,
            token_hash,
            expires_at: policy.expires_at(session.created_at, last_seen),
            auth_at: session
                .reauth_at
                .map_or(session.created_at, |r| r.max(session.created_at)),
        })
    }

    pub async fn sign_out(
        &self,
        ctx: &SessionContext,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        self.store.delete_session(ctx.session_id).await?;
        self.audit(
            AuditEvent::new(AuditKind::SignOut, Some(ctx.account_id)).ip(client.ip.as_deref()),
        )
        .await;
        Ok(())
    }
}

/// A message to the account's preferred channel, falling back to whichever it has.
pub(crate) fn contact_message(
    account: &AccountRow,
    subject: String,
    body: String,
) -> Option<Message> {
    use crate::contact::CodeChannel;
    let (channel, to) = match (account.code_channel, &account.email, &account.phone) {
        (CodeChannel::Sms, _, Some(p)) => (CodeChannel::Sms, p.clone()),
        (_, Some(e), _) => (CodeChannel::Email, e.clone()),
        (_, None, Some(p)) => (CodeChannel::Sms, p.clone()),
        (_, None, None) => return None,
    };
    Some(Message {
        channel,
        to,
        subject,
        body,
        sensitive: false,
    })
}

/// A short device name from a user agent: "Chrome on Android".
pub fn describe_device(ua: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    let os = [
        ("iPhone", "iPhone"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("Mac OS", "Mac"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(o)) => o.to_owned(),
        (None, None) => ua.chars().take(60).collect(),
    }
}
