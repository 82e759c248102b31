//! Flow 9 and 8: the account home and the sessions list.

use super::sessions::{session_token_hash, SessionContext};
use super::Portcullis;
use crate::audit::{AuditEntry, AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::ids::AccountType;
use crate::ports::{AccountRow, CardSummary};
use crate::session::SessionState;
use crate::ServiceError;

pub struct AccountHome {
    pub user_id: String,
    /// The holder's name from the registry (the first linked card's; every linked card
    /// has the same holder), for the greeting; `None` when no card is linked.
    pub holder_name: Option<String>,
    pub account_type: AccountType,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub cards: Vec<CardSummary>,
    /// Imported without security answers: the security page asks for them.
    pub security_questions_required: bool,
}

pub struct SessionInfo {
    pub id: i64,
    pub created_at: UnixTime,
    pub last_seen_at: UnixTime,
    pub user_agent: Option<String>,
    pub client_ip: Option<String>,
    pub current: bool,
}

impl Portcullis {
    pub async fn account_home(&self, ctx: &SessionContext) -> Result<AccountHome, ServiceError> {
        let (account, cards) = self
            .ports
            .accounts
            .account_home(ctx.account_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        Ok(self.home_of(account, cards))
    }

    /// The session a bearer token names (as [`Portcullis::authenticate`] admits it) and its
    /// account home, read together in one statement: `GET /api/v1/me`, the mobile app's
    /// most frequent request, pays one round trip to the database instead of two.
    pub async fn authenticated_home(
        &self,
        token: &str,
    ) -> Result<(SessionContext, AccountHome), ServiceError> {
        let token_hash = session_token_hash(token)?;
        let (session, account, cards) = self
            .ports
            .sessions
            .session_home_by_token(&token_hash)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let ctx = self.admit(session, token_hash).await?;
        Ok((ctx, self.home_of(account, cards)))
    }

    fn home_of(&self, account: AccountRow, cards: Vec<CardSummary>) -> AccountHome {
        AccountHome {
            user_id: account.user_id,
            holder_name: cards.first().map(|c| c.holder_name.clone()),
            account_type: account.account_type,
            email: account.email,
            phone: account.phone,
            cards,
            security_questions_required: account.security_questions_required_at.is_some()
                && self.policies.security_questions_enabled,
        }
    }

    pub async fn sessions(&self, ctx: &SessionContext) -> Result<Vec<SessionInfo>, ServiceError> {
        let now = self.clock.now();
        let policy = self.policies.session;
        Ok(self
            .ports
            .sessions
            .list_sessions(ctx.account_id)
            .await?
            .into_iter()
            .filter(|s| policy.state(s.created_at, s.last_seen_at, now) == SessionState::Active)
            .map(|s| SessionInfo {
                current: s.id == ctx.session_id,
                id: s.id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                user_agent: s.user_agent,
                client_ip: s.client_ip,
            })
            .collect())
    }

    /// Ends one of the account's own sessions; false when no such session.
    pub async fn end_session(&self, ctx: &SessionContext, id: i64) -> Result<bool, ServiceError> {
        let now = self.clock.now();
        let mine = self
            .ports
            .sessions
            .list_sessions(ctx.account_id)
            .await?
            .iter()
            .any(|s| s.id == id);
        if !mine {
            return Ok(false);
        }
        let mut work = self.begin(now);
        if !work.delete_session(id).await? {
            return Ok(false);
        }
        work.audit(
            AuditEvent::new(AuditKind::SessionEnded, Some(ctx.account_id))
                .detail(format!("session {id}")),
        );
        work.commit().await?;
        Ok(true)
    }

    /// "Sign out everywhere else": ends every session of the account but this one; how many.
    pub async fn end_other_sessions(&self, ctx: &SessionContext) -> Result<u64, ServiceError> {
        let mut work = self.begin(self.clock.now());
        let ended = work
            .delete_account_sessions(ctx.account_id, Some(ctx.session_id))
            .await?;
        work.audit(
            AuditEvent::new(AuditKind::SessionEnded, Some(ctx.account_id))
                .detail(format!("signed out everywhere else: {ended} sessions")),
        );
        work.commit().await?;
        Ok(ended)
    }

    /// The person's own recent security events.
    pub async fn recent_activity(
        &self,
        ctx: &SessionContext,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        Ok(self
            .ports
            .audit
            .account_audit(ctx.account_id, limit)
            .await?)
    }
}
