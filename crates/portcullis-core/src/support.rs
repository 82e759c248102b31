//! Support authority as a type (style habit 5): every support action takes a
//! [`SupportAuthority`], and the only ways to get one are [`SupportAuthority::operator`] (the
//! command line, every scope) and an admin token checked by
//! `Portcullis::support_authority_from_token` (its own scopes). Each authority records who is
//! acting, and each action checks the [`SupportScope`] it needs, so a handler cannot reach an
//! action its token was not given.

use std::fmt;
use std::str::FromStr;

use crate::audit::{AuditEvent, AuditKind};

/// What an admin token may be used for. The names are stable: they are stored, typed on the
/// command line and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SupportScope {
    /// Show an account and read its audit events.
    AccountsRead,
    /// Unlock a locked account.
    AccountsUnlock,
    /// Verify the audit chain and read its entries.
    AuditRead,
    /// Post and update incidents and planned maintenance on the status page.
    StatusWrite,
    /// Push issuer registry records (`POST /api/v1/admin/registry/records`).
    RegistryWrite,
    /// List, add and remove webhook subscriptions (`/api/v1/admin/webhooks`).
    WebhooksWrite,
    /// List, register and revoke OpenID Connect clients (`/api/v1/admin/oidc/clients`).
    ClientsWrite,
}

impl SupportScope {
    pub const ALL: [SupportScope; 7] = [
        SupportScope::AccountsRead,
        SupportScope::AccountsUnlock,
        SupportScope::AuditRead,
        SupportScope::StatusWrite,
        SupportScope::RegistryWrite,
        SupportScope::WebhooksWrite,
        SupportScope::ClientsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SupportScope::AccountsRead => "accounts:read",
            SupportScope::AccountsUnlock => "accounts:unlock",
            SupportScope::AuditRead => "audit:read",
            SupportScope::StatusWrite => "status:write",
            SupportScope::RegistryWrite => "registry:write",
            SupportScope::WebhooksWrite => "webhooks:write",
            SupportScope::ClientsWrite => "clients:write",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s.trim())
    }
}

impl fmt::Display for SupportScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SupportScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| {
            format!(
                "unknown scope {s:?}: use one of {}",
                Self::ALL.map(Self::as_str).join(", ")
            )
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// Whoever runs the binary against the database.
    Operator,
    /// An admin token, by id.
    Token(i64),
}

/// Proof that the caller may act as support: who they are and what they may do.
#[derive(Debug)]
pub struct SupportAuthority {
    actor: String,
    scopes: Vec<SupportScope>,
    origin: Origin,
    client_ip: Option<String>,
}

impl SupportAuthority {
    /// An operator on the command line, with every scope: whoever can run the binary against
    /// the database already holds its credentials and the secrets directory. `actor` is how
    /// the audit log names them (`cli:<user>`). Never called by the web layer, whose only
    /// way in is [`Portcullis::support_authority_from_token`].
    pub fn operator(actor: &str) -> Self {
        Self {
            actor: actor.to_owned(),
            scopes: SupportScope::ALL.to_vec(),
            origin: Origin::Operator,
            client_ip: None,
        }
    }

    /// How the audit log names this actor: `cli:<user>` or `support:<token name>`.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn scopes(&self) -> &[SupportScope] {
        &self.scopes
    }

    pub fn allows(&self, scope: SupportScope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The admin token behind this authority, if it came from one.
    pub fn token_id(&self) -> Option<i64> {
        match self.origin {
            Origin::Operator => None,
            Origin::Token(id) => Some(id),
        }
    }

    /// Records the address a request came from, for the audit log. Grants nothing.
    pub fn from_ip(mut self, ip: Option<String>) -> Self {
        self.client_ip = ip;
        self
    }

    /// An admin token's authority: its own scopes, audited as `support:<name>`.
    pub(crate) fn from_token(
        id: i64,
        name: &str,
        scopes: Vec<SupportScope>,
        client_ip: Option<String>,
    ) -> Self {
        Self {
            actor: format!("support:{name}"),
            scopes,
            origin: Origin::Token(id),
            client_ip,
        }
    }

    /// Whether this is the operator on the command line (tokens cannot manage tokens).
    pub fn is_operator(&self) -> bool {
        self.origin == Origin::Operator
    }

    /// An audit event by this actor, from this address.
    pub(crate) fn event(&self, kind: AuditKind, account_id: Option<i64>) -> AuditEvent {
        AuditEvent::new(kind, account_id)
            .actor(self.actor.as_str())
            .ip(self.client_ip.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_unknown_ones_are_named() {
        for scope in SupportScope::ALL {
            assert_eq!(scope.as_str().parse::<SupportScope>(), Ok(scope));
        }
        let err = "accounts:write".parse::<SupportScope>().unwrap_err();
        assert!(
            err.contains("accounts:read, accounts:unlock, audit:read"),
            "{err}"
        );
    }

    #[test]
    fn the_operator_has_every_scope_and_no_token() {
        let op = SupportAuthority::operator("cli:alice");
        assert!(SupportScope::ALL.iter().all(|s| op.allows(*s)));
        assert_eq!(op.actor(), "cli:alice");
        assert_eq!(op.token_id(), None);
        assert!(op.is_operator());
        let token = SupportAuthority::from_token(7, "bob", vec![SupportScope::AuditRead], None);
        assert_eq!(token.actor(), "support:bob");
        assert_eq!(token.token_id(), Some(7));
        assert!(!token.is_operator());
        assert!(!token.allows(SupportScope::AccountsUnlock));
    }
}
