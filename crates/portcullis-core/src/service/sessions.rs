//! Sessions: starting one after a successful sign-in (by password, second step or passkey),
//! recognising it on later requests, and ending it.

use portcullis_crypto::{sha256, Token};
use secrecy::SecretString;

use super::{ClientInfo, Portcullis, Work};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::device::describe_or;
use crate::ports::{AccountRow, DeviceRow, NewSession, SessionRow};
use crate::session::SessionState;
use crate::steps::StepKind;
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
    /// The account was imported with the earlier system's "must change password": the
    /// client sends the person to change it before anything else.
    pub password_change_required: bool,
    /// The account was imported without security answers: the client asks the person to
    /// choose them (`set_security_answers`).
    pub security_questions_required: bool,
    /// The new session, as a request bearing its token would find it (an OpenID Connect
    /// request that sent the person to sign in goes on with it at once).
    pub session: SessionContext,
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
    /// How the sign-in was authenticated: RFC 8176 method references, space-separated.
    pub amr: String,
}

/// What a session start needs, all read before its unit of work opens.
pub(crate) struct SessionStart<'a> {
    pub account: &'a AccountRow,
    /// The known device signing in, if it is one.
    pub device: Option<i64>,
    /// Whether the account has signed in from any device before (the first device, right
    /// after registration, gets no new-device notice).
    pub has_devices: bool,
    /// The password hash the sign-in was checked against.
    pub verified_hash: &'a str,
    /// "Trust this device" until then (a passed second step that asked for it).
    pub trust_until: Option<UnixTime>,
    /// How it was authenticated (RFC 8176 method references, see `crate::oidc::amr`).
    pub amr: String,
    /// A signed-in session this one replaces (a second step asked for by an OpenID Connect
    /// request): ended in the same unit of work.
    pub replaces: Option<i64>,
}

impl Portcullis {
    /// Whether `account` has any known device (read before a session's unit of work).
    pub(crate) async fn has_devices(&self, account_id: i64) -> Result<bool, ServiceError> {
        Ok(!self
            .ports
            .devices
            .list_devices(account_id)
            .await?
            .is_empty())
    }

    /// The device a device cookie names, if it has signed in to this account before.
    pub(crate) async fn known_device(
        &self,
        account_id: i64,
        device_token: Option<&str>,
    ) -> Result<Option<DeviceRow>, ServiceError> {
        let Some(hash) = device_token_hash(device_token) else {
            return Ok(None);
        };
        Ok(self
            .ports
            .devices
            .device_by_token(&hash)
            .await?
            .filter(|d| d.account_id == account_id))
    }

    /// Finishes a sign-in in `work` (which may already hold the caller's writes: a consumed
    /// step, a used code) and commits it: the sign-in is recorded and the failure count
    /// restarts, the device is created or refreshed, the session is created, the owner is
    /// told of a new device, and the sign-in is audited.
    ///
    /// A reset or change that lands while the password was being checked must not leave a
    /// session behind. The sign-in is recorded only while the stored hash is still the one
    /// verified, in the statement that takes the account's row; a reset takes the same row
    /// first and ends every session in its own unit of work. So either the reset comes later
    /// and its sweep ends this session, or this check sees the new hash and nothing of this
    /// sign-in is committed (races.rs,
    /// `races_password_reset_and_sign_in_leave_no_old_session`).
    pub(crate) async fn start_session(
        &self,
        mut work: Work<'_>,
        start: SessionStart<'_>,
        client: &ClientInfo,
    ) -> Result<SignedIn, ServiceError> {
        let now = work.now();
        let account = start.account;
        if !work.record_sign_in(account.id, start.verified_hash).await? {
            drop(work);
            self.audit_alone(
                now,
                AuditEvent::new(AuditKind::SignInFailed, Some(account.id))
                    .ip(client.ip.as_deref())
                    .detail("password changed while signing in"),
            )
            .await;
            return Err(ServiceError::SignInFailed);
        }
        // A device seen for the first time gets its token now; a known one is refreshed.
        let (device_id, device_token) = match start.device {
            Some(id) => {
                work.touch_device(id).await?;
                (id, None)
            }
            None => {
                let device = Token::generate();
                let id = work
                    .create_device(account.id, &device.hash, client.user_agent.as_deref())
                    .await?;
                if start.has_devices {
                    self.new_device_notice(&mut work, account, client).await?;
                    work.audit(
                        AuditEvent::new(AuditKind::DeviceNew, Some(account.id))
                            .ip(client.ip.as_deref())
                            .detail(format!("device {id}")),
                    );
                }
                (id, Some(device.secret))
            }
        };
        if let Some(old) = start.replaces {
            work.delete_session(old).await?;
        }
        let token = Token::generate();
        let session_id = work
            .create_session(NewSession {
                token_hash: token.hash,
                account_id: account.id,
                user_agent: client.user_agent.clone(),
                client_ip: client.ip.clone(),
                amr: start.amr.clone(),
            })
            .await?;
        if let Some(until) = start.trust_until {
            if work
                .set_device_trust(device_id, account.id, Some(until))
                .await?
            {
                work.audit(
                    AuditEvent::new(AuditKind::DeviceTrusted, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail(format!("device {device_id} until {}", until.to_rfc3339())),
                );
            }
        }
        work.audit(AuditEvent::new(AuditKind::SignIn, Some(account.id)).ip(client.ip.as_deref()));
        work.commit().await?;
        let expires_at = self.policies.session.expires_at(now, now);
        Ok(SignedIn {
            token: token.secret,
            device_token,
            expires_at,
            account_id: account.id,
            user_id: account.user_id.clone(),
            device_id,
            password_change_required: account.must_change_password_at.is_some(),
            security_questions_required: account.security_questions_required_at.is_some()
                && self.policies.security_questions_enabled,
            // As `admit` makes it from the row just written: created now, signed in now.
            session: SessionContext {
                session_id,
                account_id: account.id,
                token_hash: token.hash,
                expires_at,
                auth_at: now,
                amr: start.amr,
            },
        })
    }

    /// Tells the owner of a sign-in from a device the account has not seen, with a "This
    /// was not me" link (a step written in the same unit of work, held by the hash of its
    /// token; its data is the sign-in's time, from which "not me" removes what was added).
    /// The message is `sensitive`: its body, which carries the token, is sealed in the
    /// outbox and blanked once delivered, so the token is never in the database in clear.
    async fn new_device_notice(
        &self,
        work: &mut Work<'_>,
        account: &AccountRow,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let issuer = &self.policies.issuer_name;
        let device = describe_or(client.user_agent.as_deref(), "an unknown device");
        let token = Token::generate();
        let until = work.now().plus_secs(self.policies.mfa.not_me_secs);
        let signed_in_at = work.now().0.to_string();
        work.create_step(
            &token.hash,
            StepKind::NotMe,
            account.id,
            &signed_in_at,
            until,
        )
        .await?;
        let link = format!("{}/not-me/{}", self.policies.public_url, token.expose());
        let body = format!(
            "Your {issuer} online account {} was just signed in to from {device}{}. If this \
             was you, there is nothing to do. If it was not you, open this link to sign out \
             every device and lock your account at once: {link} . Then reset your password \
             with \"Forgot your password?\", or call {}.",
            account.user_id,
            client
                .ip
                .as_deref()
                .map(|ip| format!(" (address {ip})"))
                .unwrap_or_default(),
            self.policies.support_phone
        );
        if let Some(mut notice) =
            account.notice(format!("New sign-in to your {issuer} account"), body)
        {
            notice.message.sensitive = true;
            work.send(notice);
        }
        Ok(())
    }

    /// The session a bearer token or cookie names, if it is still active.
    pub async fn authenticate(&self, token: &str) -> Result<SessionContext, ServiceError> {
        let token_hash = session_token_hash(token)?;
        let session = self
            .ports
            .sessions
            .session_by_token(&token_hash)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        self.admit(session, token_hash).await
    }

    /// The context of a session read by its token's hash, if it is still active: an expired
    /// one is deleted, an active one marked seen (at most once per touch interval).
    pub(crate) async fn admit(
        &self,
        session: SessionRow,
        token_hash: [u8; 32],
    ) -> Result<SessionContext, ServiceError> {
        let now = self.clock.now();
        let policy = self.policies.session;
        match policy.state(session.created_at, session.last_seen_at, now) {
            SessionState::Active => {}
            SessionState::IdleExpired | SessionState::Expired => {
                let mut work = self.begin(now);
                work.delete_session(session.id).await?;
                work.commit().await?;
                return Err(ServiceError::Unauthenticated);
            }
        }
        let last_seen = if policy.needs_touch(session.last_seen_at, now) {
            let mut work = self.begin(now);
            work.touch_session(session.id).await?;
            work.commit().await?;
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
            amr: session.amr,
        })
    }

    pub async fn sign_out(
        &self,
        ctx: &SessionContext,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let mut work = self.begin(self.clock.now());
        work.delete_session(ctx.session_id).await?;
        work.audit(
            AuditEvent::new(AuditKind::SignOut, Some(ctx.account_id)).ip(client.ip.as_deref()),
        );
        work.commit().await?;
        Ok(())
    }
}

/// The SHA-256 a session is held by, of a token of a plausible length (any other names no
/// session, and is not hashed).
pub(crate) fn session_token_hash(token: &str) -> Result<[u8; 32], ServiceError> {
    if token.is_empty() || token.len() > 128 {
        return Err(ServiceError::Unauthenticated);
    }
    Ok(sha256(token.as_bytes()))
}

/// The hash a device cookie's token is stored under; `None` for no token, or one no device
/// could have (empty, or longer than any we issue), which then names no device.
pub(crate) fn device_token_hash(device_token: Option<&str>) -> Option<[u8; 32]> {
    device_token
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .map(|t| sha256(t.as_bytes()))
}
