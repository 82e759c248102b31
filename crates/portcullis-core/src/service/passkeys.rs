//! Passkeys (flow 6): register one or more, name and remove them, use one as the second step
//! of sign-in, or sign in with one alone (a passkey checks possession and the person's PIN or
//! biometric, so it is a multi-factor sign-in by itself).
//!
//! Each ceremony's state is a step held by the hash of a random token for 5 minutes and used
//! once; the credential is stored sealed, found again by its credential ID.

use portcullis_crypto::passkey::PasskeyRp;
use portcullis_crypto::{ct_eq, sha256, Token};
use secrecy::SecretString;

use super::signin::{SessionContext, SignedIn};
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::ports::{Counter, FactorKind, FactorRow, NewFactor};
use crate::throttle::ThrottleAction;
use crate::ServiceError;

const REGISTER_STEP: &str = "passkey.register";
const MFA_STEP: &str = "passkey.mfa";
const SIGN_IN_STEP: &str = "passkey.signin";
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

    pub(crate) async fn passkey_factors(
        &self,
        account_id: i64,
    ) -> Result<Vec<FactorRow>, ServiceError> {
        Ok(self
            .store
            .list_factors(account_id)
            .await?
            .into_iter()
            .filter(|f| f.kind == FactorKind::Passkey && f.confirmed)
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

    /// Starts adding a passkey (needs the password within the last few minutes).
    pub async fn begin_passkey(
        &self,
        ctx: &SessionContext,
    ) -> Result<PasskeyOptions, ServiceError> {
        self.require_recent_auth(ctx)?;
        let account = self.session_account(ctx).await?;
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
        self.store
            .create_step(
                &token.hash,
                REGISTER_STEP,
                account.id,
                &started.state_json,
                self.clock.now().plus_secs(CEREMONY_SECS),
            )
            .await?;
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
        self.require_recent_auth(ctx)?;
        let account = self.session_account(ctx).await?;
        let name = passkey_name(name)?;
        let hash = sha256(token.as_bytes());
        let step = self
            .store
            .find_step(&hash, REGISTER_STEP, self.clock.now())
            .await?
            .filter(|s| s.subject_id == account.id)
            .ok_or(ServiceError::StepExpired)?;
        if !self.store.consume_step(&hash, REGISTER_STEP).await? {
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
            .store
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
        self.store
            .create_factor(NewFactor {
                account_id: account.id,
                kind: FactorKind::Passkey,
                name,
                secret: Some(sealed),
                credential_id: Some(registered.credential_id),
                confirmed: true,
                now: self.clock.now(),
            })
            .await?;
        self.factor_changed(&account, "A passkey was added", client)
            .await;
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
        if self
            .store
            .rename_factor(factor_id, ctx.account_id, &name)
            .await?
        {
            Ok(())
        } else {
            Err(ServiceError::NotFound)
        }
    }

    /// Options for a passkey as the second step of a sign-in challenge.
    pub async fn mfa_passkey_options(&self, challenge_token: &str) -> Result<String, ServiceError> {
        let (account_id, methods) = self.live_challenge(challenge_token).await?;
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
        // A new request replaces the last one's state.
        self.store.consume_step(&hash, MFA_STEP).await?;
        self.store
            .create_step(
                &hash,
                MFA_STEP,
                account_id,
                &started.state_json,
                self.clock.now().plus_secs(CEREMONY_SECS),
            )
            .await?;
        Ok(started.options_json)
    }

    /// Checks a passkey answer for a sign-in challenge (used once).
    pub(crate) async fn take_passkey(
        &self,
        account_id: i64,
        challenge_token: &str,
        response_json: &str,
    ) -> Result<bool, ServiceError> {
        let Ok(rp) = self.rp() else {
            return Ok(false);
        };
        let hash = mfa_state_hash(challenge_token);
        let Some(step) = self
            .store
            .find_step(&hash, MFA_STEP, self.clock.now())
            .await?
            .filter(|s| s.subject_id == account_id)
        else {
            return Ok(false);
        };
        if !self.store.consume_step(&hash, MFA_STEP).await? || response_json.len() > MAX_RESPONSE {
            return Ok(false);
        }
        let Some(credential_id) = serde_json_id(response_json) else {
            return Ok(false);
        };
        let Some(factor) = self
            .store
            .factor_by_credential(&credential_id)
            .await?
            .filter(|f| f.account_id == account_id && f.confirmed)
        else {
            return Ok(false);
        };
        let passkey = self.open_passkey(&factor)?;
        match rp.finish_authentication(response_json, &step.data, &passkey) {
            Ok(verified) => {
                let updated = match verified.updated_passkey_json {
                    Some(json) => self.factor_seal.seal(json.as_bytes()),
                    None => None,
                };
                self.store
                    .touch_factor(factor.id, updated.as_deref(), self.clock.now())
                    .await?;
                Ok(true)
            }
            Err(e) => {
                tracing::info!(error = %e, "passkey assertion refused");
                Ok(false)
            }
        }
    }

    /// Starts a sign-in with a passkey alone.
    pub async fn passkey_sign_in_options(&self) -> Result<PasskeyOptions, ServiceError> {
        let started = self
            .rp()?
            .start_discoverable()
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let token = Token::generate();
        self.store
            .create_step(
                &token.hash,
                SIGN_IN_STEP,
                0,
                &started.state_json,
                self.clock.now().plus_secs(CEREMONY_SECS),
            )
            .await?;
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
        let throttle = self.throttle_claim(ThrottleAction::SignIn, client).await?;
        let rp = self.rp()?;
        let hash = sha256(token.as_bytes());
        let now = self.clock.now();
        let step = self
            .store
            .find_step(&hash, SIGN_IN_STEP, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        if !self.store.consume_step(&hash, SIGN_IN_STEP).await? {
            return Err(ServiceError::StepExpired);
        }
        let failed = |detail: &'static str, account: Option<i64>| async move {
            self.audit(
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
            .store
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
            .store
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
        let updated = match verified.updated_passkey_json {
            Some(json) => self.factor_seal.seal(json.as_bytes()),
            None => None,
        };
        self.store
            .touch_factor(factor.id, updated.as_deref(), now)
            .await?;
        let device = match device_token.filter(|t| !t.is_empty() && t.len() <= 128) {
            Some(t) => self
                .store
                .device_by_token(&sha256(t.as_bytes()))
                .await?
                .filter(|d| d.account_id == account.id),
            None => None,
        };
        self.throttle_release(throttle).await;
        self.store
            .reset_failures(Counter::Account(account.id))
            .await?;
        self.store.record_sign_in(account.id, now).await?;
        self.start_session(
            &account,
            device.map(|d| d.id),
            client,
            &account.password_hash,
        )
        .await
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
