//! Recovery codes: ten single-use codes shown once, each stored as an argon2id hash with a
//! one-byte keyed hint (so a check hashes a handful of candidates, not all ten).

use portcullis_crypto::token::random_from;
use secrecy::{ExposeSecret, SecretString};

use super::challenge::Answer;
use crate::audit::{AuditEvent, AuditKind};
use crate::ports::AccountRow;
use crate::service::sessions::SessionContext;
use crate::service::{ClientInfo, Portcullis, Work};
use crate::ServiceError;

/// Recovery codes per set.
pub const RECOVERY_CODES: usize = 10;
/// Recovery code characters: digits and lower-case letters without 0/o, 1/l/i.
const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// Characters per recovery code (31^10: about 49.5 bits).
const RECOVERY_LEN: usize = 10;
const RECOVERY_HINT_DOMAIN: &str = "portcullis/recovery-code-hint/v1";

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
    /// Ten new recovery codes, shown once; any earlier ones stop working.
    pub async fn issue_recovery_codes(
        &self,
        ctx: &SessionContext,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>, ServiceError> {
        let now = self.clock.now();
        self.require_recent_auth(ctx, now)?;
        let account = self.writable_account(ctx).await?;
        let codes: Vec<SecretString> = (0..RECOVERY_CODES)
            .map(|_| random_from(RECOVERY_ALPHABET, RECOVERY_LEN))
            .collect();
        let plain: Vec<&[u8]> = codes.iter().map(|c| c.expose_secret().as_bytes()).collect();
        let hashes = self.hasher.hash_many(&plain).await?;
        let rows: Vec<(i64, String)> = codes
            .iter()
            .zip(hashes)
            .map(|(c, h)| (self.recovery_hint(c.expose_secret()), h))
            .collect();
        let mut work = self.begin(now);
        work.replace_recovery_codes(account.id, &rows).await?;
        work.audit(
            AuditEvent::new(AuditKind::RecoveryCodesIssued, Some(account.id))
                .ip(client.ip.as_deref()),
        );
        self.tell_owner(
            &mut work,
            &account,
            "New recovery codes were made",
            "New recovery codes were made for your online account; the earlier ones no longer \
             work.",
        );
        work.commit().await?;
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

    /// Checks a recovery code against the account's unused ones with the same hint (argon2,
    /// no transaction open): the answer to take when one matches. With no candidate, the
    /// same work as a real check.
    pub(super) async fn check_recovery_code(
        &self,
        account: &AccountRow,
        code: &str,
    ) -> Result<Option<Answer>, ServiceError> {
        let Some(code) = normalise_recovery_code(code) else {
            return Ok(None);
        };
        // Codes made before a rotation of the registry key carry a hint under an old key:
        // the candidates under every key's hint (one read per key, whatever the code).
        let mut candidates: Vec<(i64, String)> = Vec::new();
        for hint in self.recovery_hints(&code) {
            for found in self
                .ports
                .factors
                .recovery_code_candidates(account.id, hint)
                .await?
            {
                if !candidates.iter().any(|(id, _)| *id == found.0) {
                    candidates.push(found);
                }
            }
        }
        if candidates.is_empty() {
            self.hasher.verify(code.as_bytes(), None).await?;
            return Ok(None);
        }
        for (id, hash) in candidates {
            if self
                .hasher
                .verify(code.as_bytes(), Some(&hash))
                .await?
                .is_match()
            {
                return Ok(Some(Answer::RecoveryCode { id }));
            }
        }
        Ok(None)
    }

    /// A recovery code was taken in `work`: the audit event and the owner's notice.
    pub(super) fn recovery_code_used(
        &self,
        work: &mut Work<'_>,
        account: &AccountRow,
        left: i64,
        client: &ClientInfo,
    ) {
        work.audit(
            AuditEvent::new(AuditKind::RecoveryCodeUsed, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!("{left} left")),
        );
        let issuer = &self.policies.issuer_name;
        if let Some(notice) = account.notice(
            format!("A recovery code was used for your {issuer} account"),
            format!(
                "One of your recovery codes was just used to sign in to your {issuer} online \
                 account. You have {left} left; make new ones on the Security page when you \
                 run low. If this was not you, call {} at once.",
                self.policies.support_phone
            ),
        ) {
            work.send(notice);
        }
    }

    /// A new code's hint, under the registry ring's current key.
    fn recovery_hint(&self, normalised: &str) -> i64 {
        let h = self
            .code_key()
            .hash(RECOVERY_HINT_DOMAIN, &[normalised.as_bytes()]);
        i64::from(h.first().copied().unwrap_or(0))
    }

    /// The hints a code may have been stored with: under each key of the ring.
    fn recovery_hints(&self, normalised: &str) -> Vec<i64> {
        let mut hints: Vec<i64> = Vec::new();
        for h in self.hashes_under_every_key(RECOVERY_HINT_DOMAIN, &[normalised.as_bytes()]) {
            let hint = i64::from(h.first().copied().unwrap_or(0));
            if !hints.contains(&hint) {
                hints.push(hint);
            }
        }
        hints
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_normalise() {
        assert_eq!(
            normalise_recovery_code(" ABCDE-fghjk ").as_deref(),
            Some("abcdefghjk")
        );
        assert_eq!(normalise_recovery_code("abcde-fghj"), None);
        assert_eq!(normalise_recovery_code("abcde-fghj0"), None); // 0 is not in the alphabet
    }
}
