//! Passkeys (flow 6): register one or more, name and remove them, use one as the second step
//! of sign-in, or sign in with one alone (a passkey checks possession and the person's PIN or
//! biometric, so it is a multi-factor sign-in by itself).
//!
//! Each ceremony's state is a step held by the hash of a random token for 5 minutes and used
//! once (used up before the browser's answer is checked, right or wrong); the credential is
//! stored sealed, found again by its credential ID.

use portcullis_crypto::passkey::PasskeyRp;
use portcullis_crypto::{ct_eq, sha256, Token};
use secrecy::SecretString;

use super::mfa::challenge::Answer;
use super::sessions::{SessionContext, SessionStart, SignedIn};
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::ports::{FactorKind, FactorRow, NewFactor};
use crate::steps::StepKind;
use crate::throttle::ThrottleAction;
use crate::ServiceError;

const CEREMONY_SECS: i64 = 5 * 60;
/// Browsers' answers are a few kilobytes; anything far larger is refused unread.
const MAX_RESPONSE: usize = 64 * 1024;
const NAME_MAX: usize = 60;

/// Options for the browser, and the token that names the ceremony's stored state.
pub struct PasskeyOptions {
    pub token: SecretString,
    /// `{"publicKey": …}` for `navigator.credentials.create` / `.get`.
    pub options_json: String,
}

fn unavailable() -> ServiceError {
    ServiceError::field(
        "passkey",
        "Passkeys cannot be used at this address. Use another way to sign in.",
    )
}

/// The step under which a sign-in challenge keeps its passkey assertion state.
fn mfa_state_hash(challenge_token: &str) -> [u8; 32] {
    sha256(format!("passkey:{challenge_token}").as_bytes())
}

impl Portcullis {
    fn rp(&self) -> Result<&PasskeyRp, ServiceError> {
        self.passkeys.as_deref().ok_or_else(unavailable)
    }

    /// The opaque user handle a passkey carries for an account (no personal data).
    fn user_handle(&self, account_id: i64) -> [u8; 16] {
        let h = self
            .keys
            .hash("portcullis/webauthn-user/v1", &[&account_id.to_be_bytes()]);
        let mut out = [0u8; 16];
        out.copy_from_slice(h.get(..16).unwrap_or(&[0u8; 16]));
        out
    }

    async fn passkey_factors(&self, account_id: i64) -> Result<Vec<FactorRow>, ServiceError> {
        Ok(self
            .confirmed_factors(account_id)
            .await?
            .into_iter()
            .filter(|f| f.kind == FactorKind::Passkey)
            .collect())
    }

    fn open_passkey(&self, factor: &FactorRow) -> Result<String, ServiceError> {
        factor
            .secret
            .as_deref()
            .and_then(|s| self.factor_seal.open(s))
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .ok_or_else(|| {
                ServiceError::Internal("a passkey cannot be opened: factor.key differs".into())
            })
    }

    /// A passkey's updated credential, sealed for storage (its signature counter moved).
    fn seal_updated(&self, json: Option<String>) -> Option<String> {
        json.and_then(|json| self.factor_seal.seal(json.as_bytes()))
    }

    /// Starts adding a passkey (needs the password within the last few minutes).
    pub async fn begin_passkey(
        &self,
        ctx: &SessionContext,
    ) -> Result<PasskeyOptions, ServiceError> {
        let now = self.clock.now();
        self.require_recent_auth(ctx, now)?;
        let account = self.writable_account(ctx).await?;
        let existing = self
            .passkey_factors(account.id)
            .await?
            .iter()
            .map(|f| self.open_passkey(f))
            .collect::<Result<Vec<_>, _>>()?;
        let started = self
            .rp()?
            .start_registration(self.user_handle(account.id), &account.user_id, &existing)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let token = Token::generate();
        let mut work = self.begin(now);
        work.create_step(
            &token.hash,
            StepKind::PasskeyRegister,
            account.id,
            &started.state_json,
            now.plus_secs(CEREMONY_SECS),
        )
        .await?;
        work.commit().await?;
        Ok(PasskeyOptions {
            token: token.secret,
            options_json: started.options_json,
        })
    }

    /// Finishes adding a passkey with the browser's answer.
    pub async fn finish_passkey(
        &self,
        ctx: &SessionContext,
        token: &str,
        response_json: &str,
        name: &str,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        self.require_recent_auth(ctx, now)?;
        let account = self.writable_account(ctx).await?;
        let name = passkey_name(name)?;
        let hash = sha256(token.as_bytes());
        let step = self
            .ports
            .steps
            .find_step(&hash, StepKind::PasskeyRegister, now)
            .await?
            .filter(|s| s.subject_id == account.id)
            .ok_or(ServiceError::StepExpired)?;
        if !self
            .consume_alone(now, &hash, StepKind::PasskeyRegister)
            .await?
        {
            return Err(ServiceError::StepExpired);
        }
        if response_json.len() > MAX_RESPONSE {
            return Err(rejected());
        }
        let registered = self
            .rp()?
            .finish_registration(response_json, &step.data)
            .map_err(|e| {
                tracing::info!(error = %e, "passkey registration refused");
                rejected()
            })?;
        if self
            .ports
            .factors
            .factor_by_credential(&registered.credential_id)
            .await?
            .is_some()
        {
            return Err(ServiceError::field(
                "passkey",
                "This passkey is already registered.",
            ));
        }
        let sealed = self
            .factor_seal
            .seal(registered.passkey_json.as_bytes())
            .ok_or_else(|| ServiceError::Internal("sealing failed".into()))?;
        let mut work = self.begin(now);
        work.create_factor(NewFactor {
            account_id: account.id,
            kind: FactorKind::Passkey,
            name,
            secret: Some(sealed),
            credential_id: Some(registered.credential_id),
            confirmed: true,
        })
        .await?;
        self.factor_changed(&mut work, &account, "A passkey was added", client);
        work.commit().await?;
        Ok(())
    }

    /// Names a factor (passkeys mostly: "Work laptop").
    pub async fn rename_factor(
        &self,
        ctx: &SessionContext,
        factor_id: i64,
        name: &str,
    ) -> Result<(), ServiceError> {
        let name = passkey_name(name)?;
        let mut work = self.begin(self.clock.now());
        if !work.rename_factor(factor_id, ctx.account_id, &name).await? {
            return Err(ServiceError::NotFound);
        }
        work.commit().await?;
        Ok(())
    }

    /// Options for a passkey as the second step of a sign-in challenge.
    pub async fn mfa_passkey_options(&self, challenge_token: &str) -> Result<String, ServiceError> {
        let now = self.clock.now();
        let (account_id, methods) = self.live_challenge(challenge_token, now).await?;
        if !methods.iter().any(|m| m == "passkey") {
            return Err(unavailable());
        }
        let passkeys = self
            .passkey_factors(account_id)
            .await?
            .iter()
            .map(|f| self.open_passkey(f))
            .collect::<Result<Vec<_>, _>>()?;
        let started = self
            .rp()?
            .start_authentication(&passkeys)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let hash = mfa_state_hash(challenge_token);
        let mut work = self.begin(now);
        // A new request replaces the last one's state.
        work.consume_step(&hash, StepKind::PasskeyMfa).await?;
        work.create_step(
            &hash,
            StepKind::PasskeyMfa,
            account_id,
            &started.state_json,
            now.plus_secs(CEREMONY_SECS),
        )
        .await?;
        work.commit().await?;
        Ok(started.options_json)
    }

    /// Checks a passkey answer for a sign-in challenge: the answer to take when it
    /// verifies. Its state is used up first, whatever the answer.
    pub(crate) async fn check_passkey(
        &self,
        account_id: i64,
        challenge_token: &str,
        response_json: &str,
        now: UnixTime,
    ) -> Result<Option<Answer>, ServiceError> {
        let Ok(rp) = self.rp() else {
            return Ok(None);
        };
        let hash = mfa_state_hash(challenge_token);
        let Some(step) = self
            .ports
            .steps
            .find_step(&hash, StepKind::PasskeyMfa, now)
            .await?
            .filter(|s| s.subject_id == account_id)
        else {
            return Ok(None);
        };
        if !self.consume_alone(now, &hash, StepKind::PasskeyMfa).await?
            || response_json.len() > MAX_RESPONSE
        {
            return Ok(None);
        }
        let Some(credential_id) = serde_json_id(response_json) else {
            return Ok(None);
        };
        let Some(factor) = self
            .ports
            .factors
            .factor_by_credential(&credential_id)
            .await?
            .filter(|f| f.account_id == account_id && f.confirmed)
        else {
            return Ok(None);
        };
        let passkey = self.open_passkey(&factor)?;
        match rp.finish_authentication(response_json, &step.data, &passkey) {
            Ok(verified) => Ok(Some(Answer::Passkey {
                factor: factor.id,
                updated_secret: self.seal_updated(verified.updated_passkey_json),
            })),
            Err(e) => {
                tracing::info!(error = %e, "passkey assertion refused");
                Ok(None)
            }
        }
    }

    /// Starts a sign-in with a passkey alone.
    /// Every call writes a step, so every call counts on the client's bucket.
    pub async fn passkey_sign_in_options(
        &self,
        client: &ClientInfo,
    ) -> Result<PasskeyOptions, ServiceError> {
        let now = self.clock.now();
        let _ = self
            .throttle_claim(crate::throttle::ThrottleAction::PasskeyOptions, client, now)
            .await?;
        let started = self
            .rp()?
            .start_discoverable()
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let token = Token::generate();
        let mut work = self.begin(now);
        work.create_step(
            &token.hash,
            StepKind::PasskeySignIn,
            0,
            &started.state_json,
            now.plus_secs(CEREMONY_SECS),
        )
        .await?;
        work.commit().await?;
        Ok(PasskeyOptions {
            token: token.secret,
            options_json: started.options_json,
        })
    }

    /// Signs in with a passkey alone. Every failure is the generic sign-in failure.
    pub async fn passkey_sign_in(
        &self,
        token: &str,
        response_json: &str,
        device_token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<SignedIn, ServiceError> {
        let now = self.clock.now();
        let throttle = self
            .throttle_claim(ThrottleAction::SignIn, client, now)
            .await?;
        let rp = self.rp()?;
        let hash = sha256(token.as_bytes());
        let step = self
            .ports
            .steps
            .find_step(&hash, StepKind::PasskeySignIn, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        if !self
            .consume_alone(now, &hash, StepKind::PasskeySignIn)
            .await?
        {
            return Err(ServiceError::StepExpired);
        }
        let failed = |detail: &'static str, account: Option<i64>| async move {
            self.audit_alone(
                now,
                AuditEvent::new(AuditKind::SignInFailed, account)
                    .ip(client.ip.as_deref())
                    .detail(detail),
            )
            .await;
            ServiceError::SignInFailed
        };
        if response_json.len() > MAX_RESPONSE {
            return Err(failed("passkey: oversized answer", None).await);
        }
        let Ok((credential_id, handle)) = rp.identify(response_json) else {
            return Err(failed("passkey: unreadable answer", None).await);
        };
        let Some(factor) = self
            .ports
            .factors
            .factor_by_credential(&credential_id)
            .await?
            .filter(|f| f.confirmed && f.kind == FactorKind::Passkey)
        else {
            return Err(failed("passkey: unknown credential", None).await);
        };
        if !ct_eq(&handle, &self.user_handle(factor.account_id)) {
            return Err(failed("passkey: user handle mismatch", Some(factor.account_id)).await);
        }
        let Some(account) = self
            .ports
            .accounts
            .account_by_id(factor.account_id)
            .await?
            .filter(|a| !a.is_deactivated())
        else {
            return Err(failed(
                "passkey: no account, or deactivated",
                Some(factor.account_id),
            )
            .await);
        };
        let passkey = self.open_passkey(&factor)?;
        let verified = match rp.finish_discoverable(response_json, &step.data, &passkey) {
            Ok(v) => v,
            Err(e) => {
                tracing::info!(error = %e, "passkey sign-in refused");
                return Err(failed("passkey: assertion did not verify", Some(account.id)).await);
            }
        };
        if let Some(until) = account.locked_until.filter(|t| *t > now) {
            // The passkey proved who this is, so the lock may be told.
            return Err(ServiceError::Locked { until });
        }
        if account.password_compromised_at.is_some() {
            // "This was not me": the way back is a new password, whatever else is held.
            return Err(ServiceError::Locked {
                until: super::signin::compromised_until(&account, &self.policies.lockout, now),
            });
        }
        let device = self.known_device(account.id, device_token).await?;
        let has_devices = device.is_some() || self.has_devices(account.id).await?;
        let mut work = self.begin(now);
        work.touch_factor(
            factor.id,
            self.seal_updated(verified.updated_passkey_json).as_deref(),
        )
        .await?;
        // Recording the sign-in restarts the account's failure count.
        let signed = self
            .start_session(
                work,
                SessionStart {
                    account: &account,
                    device: device.map(|d| d.id),
                    has_devices,
                    verified_hash: &account.password_hash,
                    trust_until: None,
                    amr: crate::oidc::amr::PASSKEY.into(),
                    replaces: None,
                },
                client,
            )
            .await?;
        self.throttle_release(throttle).await;
        Ok(signed)
    }
}

fn rejected() -> ServiceError {
    ServiceError::field(
        "passkey",
        "Your device did not finish with the passkey. Try again.",
    )
}

fn passkey_name(name: &str) -> Result<String, ServiceError> {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Ok("Passkey".into());
    }
    if name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(ServiceError::field(
            "name",
            format!("Give the passkey a name of up to {NAME_MAX} characters."),
        ));
    }
    Ok(name)
}

/// The credential ID (`id`, base64url) of a browser's answer, read before it is verified
/// (to find the stored credential).
fn serde_json_id(response_json: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(response_json).ok()?;
    let id = value.get("id")?.as_str()?;
    (id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tidied_and_bounded() {
        assert_eq!(passkey_name("  Work   laptop ").unwrap(), "Work laptop");
        assert_eq!(passkey_name("").unwrap(), "Passkey");
        assert!(passkey_name(&"x".repeat(61)).is_err());
        assert!(passkey_name("a\u{7}b").is_err());
    }

    #[test]
    fn the_credential_id_is_read_without_trusting_the_rest() {
        assert_eq!(
            serde_json_id(r#"{"id": "abc-_1", "rawId": "x"}"#).as_deref(),
            Some("abc-_1")
        );
        assert_eq!(serde_json_id(r#"{"id":"a\"b"}"#), None);
        assert_eq!(serde_json_id("not json"), None);
        assert_eq!(serde_json_id("{}"), None);
    }
}
