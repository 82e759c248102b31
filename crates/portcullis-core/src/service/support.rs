//! Support actions: unlocking, looking at an account and its audit events, verifying the
//! audit chain, and the admin tokens support agents act through.
//!
//! Every action takes a [`SupportAuthority`] (see [`crate::support`]: authority is a type)
//! and checks the [`SupportScope`] it needs. Managing admin tokens needs the operator: a
//! token can never mint or revoke tokens.
//!
//! Admin tokens are 256-bit random values shown once and stored only as their SHA-256, so a
//! lookup by hash compares nothing secret in variable time and a copy of the database holds
//! nothing that can be replayed.

use std::fmt;

use portcullis_crypto::{sha256, Token};
use secrecy::SecretString;

use super::{ClientInfo, Portcullis};
use crate::audit::{verify_head, verify_run, AuditEntry, AuditKind, ChainBreak, ChainWalk};
use crate::clock::UnixTime;
use crate::ids::UserId;
use crate::ports::{AdminTokenRef, AdminTokenRow, CreateAdminTokenError, NewAdminToken};
use crate::session::SessionState;
use crate::support::{SupportAuthority, SupportScope};
use crate::ServiceError;

/// The shortest reason a support action accepts.
pub const REASON_MIN_CHARS: usize = 3;
/// The longest reason a support action accepts.
pub const REASON_MAX_CHARS: usize = 500;
/// The most audit entries one read returns.
pub const AUDIT_READ_MAX: i64 = 500;
/// The longest admin token name.
pub const TOKEN_NAME_MAX_CHARS: usize = 64;

/// What support sees of an account (no secrets, no hashes).
#[derive(Clone, Debug)]
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
    /// When the account was deactivated after inactivity, if it is.
    pub deactivated_at: Option<String>,
    /// When the inactivity warning went out, if one is pending.
    pub inactivity_warned_at: Option<String>,
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
        writeln!(
            f,
            "Status:         {}",
            match (&self.deactivated_at, &self.inactivity_warned_at) {
                (Some(at), _) => format!("DEACTIVATED {at} (inactivity)"),
                (None, Some(at)) => format!("active, inactivity warning sent {at}"),
                (None, None) => "active".to_owned(),
            }
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

/// What a support unlock did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnlockOutcome {
    Unlocked,
    /// The account was not locked and had no failures to clear; nothing changed.
    NotLocked,
    NoSuchAccount,
}

/// What a support reactivation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReactivateOutcome {
    Reactivated,
    /// The account was not deactivated; nothing changed.
    NotDeactivated,
    NoSuchAccount,
}

/// The result of walking the audit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditCheck {
    /// Entries that verified before the walk stopped (all of them when intact).
    pub entries: i64,
    /// The first bad entry, if any.
    pub first_bad: Option<ChainBreak>,
}

impl AuditCheck {
    pub fn intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// A freshly created admin token. `secret` is shown once and kept nowhere.
pub struct IssuedAdminToken {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<SupportScope>,
    pub secret: SecretString,
}

/// A reason for a support action: trimmed, whitespace runs (newlines too) made one space.
pub(super) fn reason(input: &str) -> Result<String, ServiceError> {
    let reason = input.split_whitespace().collect::<Vec<_>>().join(" ");
    let len = reason.chars().count();
    if len < REASON_MIN_CHARS {
        return Err(ServiceError::field(
            "reason",
            "Give a reason of at least 3 characters: it is kept in the audit log.",
        ));
    }
    if len > REASON_MAX_CHARS {
        return Err(ServiceError::field(
            "reason",
            "Keep the reason to at most 500 characters.",
        ));
    }
    Ok(reason)
}

/// An admin token's name: the support agent it belongs to. Never all digits, so that
/// `revoke NAME_OR_ID` is never ambiguous.
fn token_name(input: &str) -> Result<&str, ServiceError> {
    let name = input.trim();
    let len = name.chars().count();
    if len == 0 || len > TOKEN_NAME_MAX_CHARS {
        return Err(ServiceError::field(
            "name",
            "Give the token a name of 1 to 64 characters (the support agent it belongs to).",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(ServiceError::field(
            "name",
            "A token name may use only letters, digits, and . _ - @",
        ));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(ServiceError::field(
            "name",
            "A token name needs at least one letter or symbol: digits alone would read as a token id.",
        ));
    }
    Ok(name)
}

fn user_id(input: &str) -> Result<UserId, ServiceError> {
    UserId::parse(input).map_err(|m| ServiceError::field("user_id", m))
}

impl Portcullis {
    /// Checks an admin token (from `Authorization: Bearer …`) and that it carries
    /// `required`. Unknown and revoked tokens are [`ServiceError::Unauthenticated`]; a token
    /// without the scope is [`ServiceError::Forbidden`]. Every valid use updates the token's
    /// `last_used_at`.
    pub async fn support_authority_from_token(
        &self,
        token: &str,
        required: SupportScope,
    ) -> Result<SupportAuthority, ServiceError> {
        self.support_authority_from_token_for(token, required, &ClientInfo::default())
            .await
    }

    /// [`Self::support_authority_from_token`] for a request from `client`, whose address the
    /// audit log keeps with every action and refusal.
    pub async fn support_authority_from_token_for(
        &self,
        token: &str,
        required: SupportScope,
        client: &ClientInfo,
    ) -> Result<SupportAuthority, ServiceError> {
        if token.is_empty() || token.len() > 128 {
            return Err(ServiceError::Unauthenticated);
        }
        let now = self.clock.now();
        // Looking up by hash: nothing secret is compared in variable time.
        let Some(row) = self
            .ports
            .admin_tokens
            .admin_token_by_hash(&sha256(token.as_bytes()))
            .await?
        else {
            return Err(ServiceError::Unauthenticated);
        };
        let authority =
            SupportAuthority::from_token(row.id, &row.name, row.scopes, client.ip.clone());
        if row.revoked_at.is_some() {
            self.audit_alone(
                now,
                authority
                    .event(AuditKind::SupportDenied, None)
                    .detail(format!("revoked admin token #{} presented", row.id)),
            )
            .await;
            return Err(ServiceError::Unauthenticated);
        }
        let mut work = self.begin(now);
        work.touch_admin_token(row.id).await?;
        work.commit().await?;
        self.require(&authority, required, now).await?;
        Ok(authority)
    }

    /// Refuses (and audits the refusal) unless `authority` carries `scope`.
    pub(super) async fn require(
        &self,
        authority: &SupportAuthority,
        scope: SupportScope,
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        if authority.allows(scope) {
            return Ok(());
        }
        self.audit_alone(
            now,
            authority
                .event(AuditKind::SupportDenied, None)
                .detail(format!("needs scope {scope}")),
        )
        .await;
        Err(ServiceError::Forbidden)
    }

    /// Refuses unless `authority` is the operator: tokens cannot manage tokens.
    fn require_operator(authority: &SupportAuthority) -> Result<(), ServiceError> {
        if authority.is_operator() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden)
        }
    }

    /// Unlocks `user_id` (scope `accounts:unlock`), clearing its failure count and any
    /// pause of its cards' card IDs, and tells the person on their channel. `reason` is required and kept in the audit log. The
    /// unlock, the notice and both audit events commit together.
    pub async fn support_unlock(
        &self,
        authority: &SupportAuthority,
        user_id_input: &str,
        reason_input: &str,
    ) -> Result<UnlockOutcome, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::AccountsUnlock, now)
            .await?;
        let reason = reason(reason_input)?;
        let id = user_id(user_id_input)?;
        let Some(account) = self.ports.accounts.find_account(id.canonical()).await? else {
            return Ok(UnlockOutcome::NoSuchAccount);
        };
        // Support unlock also sets the account's paused cards to accept card IDs again.
        let cards = self.ports.registry.linked_records(account.id).await?;
        let mut work = self.begin(now);
        let mut cards_cleared = false;
        for card in &cards {
            if work.clear_card_guard(card.id).await? {
                cards_cleared = true;
                self.card_cleared(&mut work, card, true, authority, &reason);
            }
        }
        let unlocked = work.unlock_account(account.id).await? || cards_cleared;
        work.audit(
            authority
                .event(AuditKind::SupportAction, Some(account.id))
                .detail(format!(
                    "unlock ({}): {reason}",
                    if unlocked {
                        "was locked"
                    } else {
                        "was not locked"
                    }
                )),
        );
        if unlocked {
            work.audit(
                authority
                    .event(AuditKind::AccountUnlocked, Some(account.id))
                    .detail(format!("by {}", authority.actor())),
            );
            let issuer = &self.policies.issuer_name;
            let body = if account.password_compromised_at.is_some() {
                // "This was not me": the unlock does not bring the old password back.
                format!(
                    "Your {issuer} online account was unlocked by our customer support team. \
                     Because you told us a sign-in was not you, your old password no longer \
                     works: choose a new one with \"Forgot your password?\" and your card. \
                     If you did not ask for this, call {} at once.",
                    self.policies.support_phone
                )
            } else {
                format!(
                    "Your {issuer} online account was unlocked by our customer support team, \
                     and you can sign in again. If you did not ask for this, call {} at once.",
                    self.policies.support_phone
                )
            };
            if let Some(notice) = account.notice(format!("Your {issuer} account is unlocked"), body)
            {
                work.send(notice);
            }
        }
        work.commit().await?;
        Ok(if unlocked {
            UnlockOutcome::Unlocked
        } else {
            UnlockOutcome::NotLocked
        })
    }

    /// Reactivates `user_id` after it was deactivated for inactivity (scope
    /// `accounts:unlock`: like an unlock, it lets a person back in), and tells the person.
    /// `reason` is required and kept in the audit log.
    pub async fn support_reactivate(
        &self,
        authority: &SupportAuthority,
        user_id_input: &str,
        reason_input: &str,
    ) -> Result<ReactivateOutcome, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::AccountsUnlock, now)
            .await?;
        let reason = reason(reason_input)?;
        let id = user_id(user_id_input)?;
        let Some(account) = self.ports.accounts.find_account(id.canonical()).await? else {
            return Ok(ReactivateOutcome::NoSuchAccount);
        };
        let mut work = self.begin(now);
        let reactivated = work.reactivate_account(account.id).await?;
        work.audit(
            authority
                .event(AuditKind::SupportAction, Some(account.id))
                .detail(format!(
                    "reactivate ({}): {reason}",
                    if reactivated {
                        "was deactivated"
                    } else {
                        "was not deactivated"
                    }
                )),
        );
        if reactivated {
            let issuer = &self.policies.issuer_name;
            if let Some(notice) = account.notice(
                format!("Your {issuer} online account is active again"),
                format!(
                    "Our customer support team brought your online account {} back, and you \
                     can sign in again. If you did not ask for this, call {} at once.",
                    account.user_id, self.policies.support_phone
                ),
            ) {
                work.send(notice);
            }
            work.audit(
                authority
                    .event(AuditKind::AccountReactivated, Some(account.id))
                    .detail(format!("by {}", authority.actor())),
            );
        }
        work.commit().await?;
        Ok(if reactivated {
            ReactivateOutcome::Reactivated
        } else {
            ReactivateOutcome::NotDeactivated
        })
    }

    /// What support sees of `user_id` (scope `accounts:read`); `None` when there is no such
    /// account. The look is audited: support sees contact details.
    pub async fn support_view(
        &self,
        authority: &SupportAuthority,
        user_id_input: &str,
    ) -> Result<Option<SupportView>, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::AccountsRead, now)
            .await?;
        let id = user_id(user_id_input)?;
        let Some(a) = self.ports.accounts.find_account(id.canonical()).await? else {
            return Ok(None);
        };
        let cards = self.ports.accounts.cards_for_account(a.id).await?;
        let sessions = self.ports.sessions.list_sessions(a.id).await?;
        let recent = self.ports.audit.account_audit(a.id, 15).await?;
        self.audit_alone(
            now,
            authority
                .event(AuditKind::SupportAction, Some(a.id))
                .detail("viewed the account"),
        )
        .await;
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
            deactivated_at: a.deactivated_at.map(|t| t.to_rfc3339()),
            inactivity_warned_at: a.inactivity_warned_at.map(|t| t.to_rfc3339()),
            cards: cards
                .iter()
                .map(|c| match c.status.as_str() {
                    "active" => format!("{} ••••{}", c.product, c.last4),
                    status => format!("{} ••••{} ({status})", c.product, c.last4),
                })
                .collect(),
            sessions: sessions
                .iter()
                .filter(|s| {
                    self.policies
                        .session
                        .state(s.created_at, s.last_seen_at, now)
                        == SessionState::Active
                })
                .count(),
            recent: recent.iter().map(describe_entry).collect(),
        }))
    }

    /// The newest `limit` audit entries of `user_id`, newest first (scope `accounts:read`);
    /// `None` when there is no such account. Audited like [`Self::support_view`].
    pub async fn support_account_audit(
        &self,
        authority: &SupportAuthority,
        user_id_input: &str,
        limit: i64,
    ) -> Result<Option<Vec<AuditEntry>>, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::AccountsRead, now)
            .await?;
        let limit = audit_limit(limit)?;
        let id = user_id(user_id_input)?;
        let Some(a) = self.ports.accounts.find_account(id.canonical()).await? else {
            return Ok(None);
        };
        let entries = self.ports.audit.account_audit(a.id, limit).await?;
        self.audit_alone(
            now,
            authority
                .event(AuditKind::SupportAction, Some(a.id))
                .detail("read the account's audit events"),
        )
        .await;
        Ok(Some(entries))
    }

    /// Audit entries with `seq > after`, oldest first, at most `limit` (scope `audit:read`).
    /// Not itself audited: monitoring reads the log often, and a read that wrote to the log
    /// would never see its end.
    pub async fn support_audit_entries(
        &self,
        authority: &SupportAuthority,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        self.require(authority, SupportScope::AuditRead, self.clock.now())
            .await?;
        let limit = audit_limit(limit)?;
        Ok(self.ports.audit.audit_entries(after.max(0), limit).await?)
    }

    /// Walks the whole audit chain up to its head (scope `audit:read`), naming the first bad
    /// entry. Entries appended while the walk runs lie beyond the head it read and are left
    /// for the next walk. Not audited, for the reason given at
    /// [`Self::support_audit_entries`].
    pub async fn verify_audit(
        &self,
        authority: &SupportAuthority,
    ) -> Result<AuditCheck, ServiceError> {
        self.require(authority, SupportScope::AuditRead, self.clock.now())
            .await?;
        let (head_seq, head_hash) = self.ports.audit.audit_head().await?;
        // Read after the head: every key an entry up to the head is under is in the file.
        let keys = self.audit_keys.all();
        let mut walk = ChainWalk::default();
        while walk.seq < head_seq {
            let mut batch = self.ports.audit.audit_entries(walk.seq, 1000).await?;
            batch.retain(|e| e.seq <= head_seq);
            if batch.is_empty() {
                break;
            }
            if let Err(bad) = verify_run(&keys, &batch, &mut walk) {
                return Ok(AuditCheck {
                    entries: walk.seq,
                    first_bad: Some(bad),
                });
            }
        }
        Ok(AuditCheck {
            entries: walk.seq,
            first_bad: verify_head(walk.seq, &walk.prev, head_seq, &head_hash).err(),
        })
    }

    /// Creates an admin token for the support agent `name` with `scopes` (operator only).
    /// Only its hash is stored; the secret is returned once.
    pub async fn create_admin_token(
        &self,
        authority: &SupportAuthority,
        name_input: &str,
        scopes: &[SupportScope],
    ) -> Result<IssuedAdminToken, ServiceError> {
        Self::require_operator(authority)?;
        let name = token_name(name_input)?;
        let mut scopes = scopes.to_vec();
        scopes.sort_unstable();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(ServiceError::field(
                "scope",
                "Give the token at least one scope: accounts:read, accounts:unlock or audit:read.",
            ));
        }
        let token = Token::generate();
        let mut work = self.begin(self.clock.now());
        let id = work
            .create_admin_token(NewAdminToken {
                name: name.to_owned(),
                token_hash: token.hash,
                scopes: scopes.clone(),
            })
            .await
            .map_err(|e| match e {
                CreateAdminTokenError::NameTaken => ServiceError::field(
                    "name",
                    "An active token already has this name: revoke it first, or choose another.",
                ),
                CreateAdminTokenError::Store(e) => e.into(),
            })?;
        work.audit(
            authority
                .event(AuditKind::AdminTokenCreated, None)
                .detail(format!(
                    "admin token #{id} for {name}, scopes {}",
                    scopes_text(&scopes)
                )),
        );
        work.commit().await?;
        Ok(IssuedAdminToken {
            id,
            name: name.to_owned(),
            scopes,
            secret: token.secret,
        })
    }

    /// Every admin token, revoked ones included (operator only). Never the tokens.
    pub async fn list_admin_tokens(
        &self,
        authority: &SupportAuthority,
    ) -> Result<Vec<AdminTokenRow>, ServiceError> {
        Self::require_operator(authority)?;
        Ok(self.ports.admin_tokens.list_admin_tokens().await?)
    }

    /// Revokes the active token with this id, or the active token with this name (operator
    /// only); `None` when no active token matches.
    pub async fn revoke_admin_token(
        &self,
        authority: &SupportAuthority,
        name_or_id: &str,
    ) -> Result<Option<AdminTokenRow>, ServiceError> {
        Self::require_operator(authority)?;
        let which = match name_or_id.trim().parse::<i64>() {
            Ok(id) => AdminTokenRef::Id(id),
            Err(_) => AdminTokenRef::Name(token_name(name_or_id)?.to_owned()),
        };
        let mut work = self.begin(self.clock.now());
        let revoked = work.revoke_admin_token(&which).await?;
        if let Some(row) = &revoked {
            work.audit(
                authority
                    .event(AuditKind::AdminTokenRevoked, None)
                    .detail(format!(
                        "admin token #{} for {}, scopes {}",
                        row.id,
                        row.name,
                        scopes_text(&row.scopes)
                    )),
            );
            work.commit().await?;
        }
        Ok(revoked)
    }
}

fn audit_limit(limit: i64) -> Result<i64, ServiceError> {
    if (1..=AUDIT_READ_MAX).contains(&limit) {
        Ok(limit)
    } else {
        Err(ServiceError::field(
            "limit",
            "Ask for 1 to 500 entries at a time.",
        ))
    }
}

/// Scopes as written on the command line: `accounts:read,audit:read`.
fn scopes_text(scopes: &[SupportScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// One audit entry on one line, for people.
fn describe_entry(e: &AuditEntry) -> String {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(
            reason("  called in,\n  verified  ").unwrap(),
            "called in, verified"
        );
        assert!(reason(" ab ").is_err());
        assert!(reason("é€😀").is_ok(), "characters, not bytes");
        assert!(reason(&"x".repeat(501)).is_err());
    }

    #[test]
    fn token_names_cannot_pass_for_ids() {
        assert_eq!(token_name(" alice.smith ").unwrap(), "alice.smith");
        assert!(token_name("42").is_err());
        assert!(token_name("").is_err());
        assert!(token_name("alice smith").is_err());
        assert!(token_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn audit_reads_are_bounded() {
        assert!(audit_limit(0).is_err());
        assert!(audit_limit(501).is_err());
        assert_eq!(audit_limit(500).unwrap(), 500);
    }
}
