//! Security questions chosen while signed in. An account imported from an earlier login
//! system has none (the earlier system's hashes of them cannot be checked): its sign-in says
//! `security_questions_required`, and the person chooses three here. An account that has
//! answers may replace them the same way. The current password first, counted like a
//! sign-in, so a stolen session cannot set answers and then recover the account with them.

use super::sessions::SessionContext;
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::ServiceError;

impl Portcullis {
    pub async fn set_security_answers(
        &self,
        ctx: &SessionContext,
        current_password: &str,
        answers: &[(i64, String)],
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        if !self.policies.security_questions_enabled {
            return Err(ServiceError::field(
                "security_answers",
                "Security questions are not offered.",
            ));
        }
        let now = self.clock.now();
        let account = self.session_account(ctx).await?;
        let mut errors = Vec::new();
        let checked = super::registration::check_answers(answers, &mut errors);
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        self.check_current_password(&account, current_password, "security answers", client, now)
            .await?;
        let secrets: Vec<&[u8]> = checked.iter().map(|(_, a)| a.as_bytes()).collect();
        let hashes = self.hasher.hash_many(&secrets).await?;
        let stored: Vec<(i64, String)> = checked.iter().map(|(q, _)| *q).zip(hashes).collect();
        let mut work = self.begin(now);
        work.replace_security_answers(account.id, &stored).await?;
        work.audit(
            AuditEvent::new(AuditKind::SecurityAnswersChanged, Some(account.id))
                .ip(client.ip.as_deref()),
        );
        work.commit().await?;
        Ok(())
    }
}
