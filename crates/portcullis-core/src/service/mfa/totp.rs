//! Setting up an authenticator app (RFC 6238): a secret shown once, sealed at rest, active
//! after its first code; and checking its codes at the second step, one time step either
//! side of now, never a step already used.

use portcullis_crypto::totp;
use zeroize::Zeroizing;

use super::challenge::Answer;
use super::TotpEnrolment;
use crate::clock::UnixTime;
use crate::otp;
use crate::ports::{FactorKind, FactorRow, NewFactor};
use crate::service::sessions::SessionContext;
use crate::service::{ClientInfo, Portcullis};
use crate::ServiceError;

impl Portcullis {
    /// Starts setting up an authenticator app (not active until its first code).
    pub async fn begin_totp(&self, ctx: &SessionContext) -> Result<TotpEnrolment, ServiceError> {
        let now = self.clock.now();
        self.require_recent_auth(ctx, now)?;
        let account = self.writable_account(ctx).await?;
        let secret = totp::generate_secret();
        let sealed = self
            .factor_seal
            .seal(&secret)
            .ok_or_else(|| ServiceError::Internal("sealing failed".into()))?;
        let otpauth_uri = totp::otpauth_uri(&secret, &self.policies.issuer_name, &account.user_id)
            .ok_or_else(|| ServiceError::Internal("otpauth URI".into()))?;
        let mut work = self.begin(now);
        work.create_factor(NewFactor {
            account_id: account.id,
            kind: FactorKind::Totp,
            name: "Authenticator app".into(),
            secret: Some(sealed),
            credential_id: None,
            confirmed: false,
        })
        .await?;
        work.commit().await?;
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
        let now = self.clock.now();
        self.require_recent_auth(ctx, now)?;
        let account = self.writable_account(ctx).await?;
        let wrong = || {
            ServiceError::field(
                "code",
                "That code is not right. Enter the 6 digits your app shows now (check that \
                 your phone's clock is set automatically).",
            )
        };
        let code = otp::normalise(code).ok_or_else(wrong)?;
        let pending = self
            .ports
            .factors
            .list_factors(account.id)
            .await?
            .into_iter()
            .rfind(|f| f.kind == FactorKind::Totp && !f.confirmed)
            .ok_or_else(|| {
                ServiceError::field("code", "Start setting up the authenticator app again.")
            })?;
        let secret = self.open_factor_secret(&pending)?;
        let step = matching_step(&secret, now, &code).ok_or_else(wrong)?;
        let mut work = self.begin(now);
        if !work.confirm_factor(pending.id, account.id, step).await? {
            return Err(ServiceError::StepExpired);
        }
        self.factor_changed(
            &mut work,
            &account,
            "An authenticator app was added",
            client,
        );
        work.commit().await?;
        Ok(())
    }

    /// Checks a code from the account's authenticator: the answer to take, when the code is
    /// right for a time step one either side of now.
    pub(super) async fn check_totp_code(
        &self,
        account_id: i64,
        code: &str,
        now: UnixTime,
    ) -> Result<Option<Answer>, ServiceError> {
        let Some(code) = otp::normalise(code) else {
            return Ok(None);
        };
        let Some(factor) = self
            .confirmed_factors(account_id)
            .await?
            .into_iter()
            .find(|f| f.kind == FactorKind::Totp)
        else {
            return Ok(None);
        };
        let secret = self.open_factor_secret(&factor)?;
        Ok(matching_step(&secret, now, &code).map(|step| Answer::Totp {
            factor: factor.id,
            step,
        }))
    }

    fn open_factor_secret(&self, factor: &FactorRow) -> Result<Zeroizing<Vec<u8>>, ServiceError> {
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
    use secrecy::ExposeSecret;

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
