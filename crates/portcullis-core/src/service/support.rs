//! Support actions: unlocking, looking at an account, verifying the audit chain.
//!
//! Authority is a type: every support action takes a [`SupportAuthority`], and the only ways
//! to get one are the constructors here, which record who is acting.

use std::fmt;

use super::Portcullis;
use crate::audit::{verify_run, AuditEvent, AuditKind, ChainBreak, GENESIS_HASH};
use crate::ids::UserId;
use crate::ServiceError;

/// Proof that the caller may act as support, and who they are.
pub struct SupportAuthority {
    actor: String,
}

impl SupportAuthority {
    /// An operator on the command line: whoever can run the binary against the database
    /// already holds its credentials and the secrets directory.
    pub fn operator(actor: &str) -> Self {
        Self {
            actor: actor.to_owned(),
        }
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }
}

/// What support sees of an account (no secrets, no hashes).
pub struct SupportView {
    pub user_id: String,
    pub account_type: String,
    pub code_channel: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub failed_count: u32,
    pub locked_until: Option<String>,
    pub created_at: String,
    pub last_sign_in_at: Option<String>,
    pub cards: Vec<String>,
    pub sessions: usize,
    pub recent: Vec<String>,
}

impl fmt::Display for SupportView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "User ID:        {}", self.user_id)?;
        writeln!(f, "Account type:   {}", self.account_type)?;
        writeln!(f, "Code channel:   {}", self.code_channel)?;
        writeln!(
            f,
            "Email:          {}",
            self.email.as_deref().unwrap_or("-")
        )?;
        writeln!(
            f,
            "Phone:          {}",
            self.phone.as_deref().unwrap_or("-")
        )?;
        writeln!(
            f,
            "Lock:           {}",
            self.locked_until
                .as_ref()
                .map_or_else(|| "not locked".to_owned(), |u| format!("LOCKED until {u}"))
        )?;
        writeln!(f, "Failed attempts in a row: {}", self.failed_count)?;
        writeln!(f, "Created:        {}", self.created_at)?;
        writeln!(
            f,
            "Last sign-in:   {}",
            self.last_sign_in_at.as_deref().unwrap_or("never")
        )?;
        writeln!(f, "Cards:          {}", self.cards.join(", "))?;
        writeln!(f, "Active sessions: {}", self.sessions)?;
        writeln!(f, "Recent audit events:")?;
        for line in &self.recent {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl Portcullis {
    /// Unlocks `user_id`; false when it was not locked.
    pub async fn support_unlock(
        &self,
        authority: &SupportAuthority,
        user_id: &str,
        reason: &str,
    ) -> Result<bool, ServiceError> {
        let reason = reason.trim();
        if reason.len() < 3 {
            return Err(ServiceError::field(
                "reason",
                "Give a reason of at least 3 characters.",
            ));
        }
        let id = UserId::parse(user_id).map_err(|m| ServiceError::field("user_id", m))?;
        let account = self
            .store
            .find_account(id.canonical())
            .await?
            .ok_or_else(|| ServiceError::field("user_id", "No online account has this User ID."))?;
        let unlocked = self.store.unlock_account(account.id).await?;
        self.audit(
            AuditEvent::new(AuditKind::SupportAction, Some(account.id))
                .actor(authority.actor())
                .detail(format!(
                    "unlock ({}): {reason}",
                    if unlocked {
                        "was locked"
                    } else {
                        "was not locked"
                    }
                )),
        )
        .await;
        if unlocked {
            self.audit(
                AuditEvent::new(AuditKind::AccountUnlocked, Some(account.id))
                    .actor(authority.actor()),
            )
            .await;
        }
        Ok(unlocked)
    }

    pub async fn support_view(
        &self,
        _authority: &SupportAuthority,
        user_id: &str,
    ) -> Result<Option<SupportView>, ServiceError> {
        let id = UserId::parse(user_id).map_err(|m| ServiceError::field("user_id", m))?;
        let Some(a) = self.store.find_account(id.canonical()).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        let cards = self.store.cards_for_account(a.id).await?;
        let sessions = self.store.list_sessions(a.id).await?;
        let recent = self.store.account_audit(a.id, 15).await?;
        Ok(Some(SupportView {
            user_id: a.user_id,
            account_type: a.account_type.as_str().to_owned(),
            code_channel: a.code_channel.as_str().to_owned(),
            email: a.email,
            phone: a.phone,
            failed_count: a.failed_count,
            locked_until: a.locked_until.filter(|t| *t > now).map(|t| t.to_rfc3339()),
            created_at: a.created_at.to_rfc3339(),
            last_sign_in_at: a.last_sign_in_at.map(|t| t.to_rfc3339()),
            cards: cards
                .iter()
                .map(|c| format!("{} ••••{}", c.product, c.last4))
                .collect(),
            sessions: sessions
                .iter()
                .filter(|s| {
                    self.policies
                        .session
                        .state(s.created_at, s.last_seen_at, now)
                        == crate::session::SessionState::Active
                })
                .count(),
            recent: recent
                .iter()
                .map(|e| {
                    format!(
                        "#{} {} {} by {}{}{}",
                        e.seq,
                        e.at.to_rfc3339(),
                        e.kind,
                        e.actor,
                        e.client_ip
                            .as_ref()
                            .map(|ip| format!(" from {ip}"))
                            .unwrap_or_default(),
                        if e.detail.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", e.detail)
                        }
                    )
                })
                .collect(),
        }))
    }

    /// Walks the whole audit chain: `Ok(Ok(n))` when intact with `n` entries, `Ok(Err(…))`
    /// naming the first bad entry.
    pub async fn verify_audit(&self) -> Result<Result<i64, ChainBreak>, ServiceError> {
        let mut prev = GENESIS_HASH.to_vec();
        let mut prev_seq = 0i64;
        loop {
            let batch = self.store.audit_entries(prev_seq, 1000).await?;
            if batch.is_empty() {
                return Ok(Ok(prev_seq));
            }
            if let Err(bad) = verify_run(&batch, &mut prev, &mut prev_seq) {
                return Ok(Err(bad));
            }
        }
    }
}
