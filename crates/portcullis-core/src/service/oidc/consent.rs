//! The consent screen (issue 15): a client not registered first-party gets a code only
//! after the person allowed it the scopes asked. An "Allow" is kept as a grant (account,
//! client, scopes) so a later request within it skips the page; `prompt=consent` asks
//! again; "Deny" sends `access_denied` back. Both answers are audited: the use of the
//! pending request, the grant (for "Allow") and the audit event are one unit of work, and
//! the grant is widened by compare and set, so two answers at once keep both their scopes.

use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::oidc::{scope_union, scopes_within, AuthRequest, OidcClient, OidcError};
use crate::ports::OidcGrantRow;
use crate::service::{ClientInfo, Portcullis, SessionContext};
use crate::ServiceError;

use super::authorize::{pending_hash, AuthorizeStep, Pending};

/// Reads and writes of one "Allow" before it gives up on a grant other answers keep
/// changing (each miss means another answer committed).
const GRANT_ATTEMPTS: usize = 4;

impl Portcullis {
    /// Whether the request needs the consent page: `prompt=consent`, or no live grant of
    /// the session's account to this client covering every scope asked.
    pub(super) async fn needs_consent(
        &self,
        client: &OidcClient,
        req: &AuthRequest,
        session: &SessionContext,
    ) -> Result<bool, OidcError> {
        if req.prompt.as_deref() == Some("consent") {
            return Ok(true);
        }
        let grant = self
            .ports
            .oidc
            .oidc_grant(session.account_id, &client.client_id)
            .await?;
        Ok(!grant.is_some_and(|g| scopes_within(&req.scope, &g.scope)))
    }

    /// The person's answer on the consent page for the request kept under `handle`. Only
    /// the session of the account the page was shown to may answer, once.
    pub async fn consent_decision(
        &self,
        handle: &str,
        allow: bool,
        session: Option<SessionContext>,
        client_info: &ClientInfo,
    ) -> Result<AuthorizeStep, OidcError> {
        let now = self.oidc_now();
        let refused = || {
            Ok(AuthorizeStep::Refused(OidcError::invalid_request(
                "this request has expired or was answered already; start again from the site \
                 you came from",
            )))
        };
        let Some(session) = session else {
            return refused();
        };
        let Some(hash) = pending_hash(handle) else {
            return refused();
        };
        // The request is used in the same unit of work as the answer's grant and audit entry:
        // both are kept, or neither (and the request can be answered again).
        let mut work = self.begin(now);
        let Some(pending) = work
            .use_oidc_request(&hash, now)
            .await?
            .as_ref()
            .and_then(Pending::of)
        else {
            return refused();
        };
        // Another account's session: refused, and the request is left to its own account.
        if pending.consent_for != Some(session.account_id) {
            return refused();
        }
        let Some(client) = self.live_oidc_client(&pending.request.client_id).await? else {
            return refused();
        };
        let req = &pending.request;
        let detail = format!(
            "client {} ({}): {}",
            client.client_id, client.name, req.scope
        );
        let ip = client_info.ip.as_deref();
        if !allow {
            work.audit(
                AuditEvent::new(AuditKind::OidcGrantDenied, Some(session.account_id))
                    .ip(ip)
                    .detail(detail),
            );
            work.commit().await?;
            return Ok(self.error_back(req, "access_denied", "the person did not allow it"));
        }
        // Widened by compare and set: an answer for other scopes committed meanwhile (another
        // tab) makes the write miss, and the union is taken again over what it kept.
        let mut saved = false;
        for _ in 0..GRANT_ATTEMPTS {
            let granted = work
                .live_oidc_grant_scope(session.account_id, &client.client_id)
                .await?;
            let scope = scope_union(granted.as_deref().unwrap_or(""), &req.scope);
            if work
                .save_oidc_grant(
                    session.account_id,
                    &client.client_id,
                    granted.as_deref(),
                    &scope,
                )
                .await?
            {
                saved = true;
                break;
            }
        }
        if !saved {
            return Err(OidcError::from(ServiceError::Unavailable(
                "the grant kept changing under concurrent answers".into(),
            )));
        }
        work.audit(
            AuditEvent::new(AuditKind::OidcGrantGiven, Some(session.account_id))
                .ip(ip)
                .detail(detail),
        );
        work.commit().await?;
        self.continue_authorization(&client, pending, Some(session), now, true)
            .await
    }

    /// The sites and apps the person has allowed (live grants), newest first.
    pub async fn oidc_grants_of(
        &self,
        ctx: &SessionContext,
    ) -> Result<Vec<(OidcGrantRow, String)>, ServiceError> {
        let grants = self.ports.oidc.oidc_grants(ctx.account_id).await?;
        let mut out = Vec::with_capacity(grants.len());
        for g in grants {
            let name = self
                .ports
                .oidc
                .oidc_client(&g.client_id)
                .await?
                .map(|c| c.name)
                .unwrap_or_default();
            out.push((g, name));
        }
        Ok(out)
    }

    /// Withdraws the person's grant to one client: its next request asks again. (Tokens
    /// already issued live on with the sign-in session they came from.) `false` when there
    /// was no live grant.
    pub async fn revoke_oidc_grant_of(
        &self,
        ctx: &SessionContext,
        client_id: &str,
        client_info: &ClientInfo,
    ) -> Result<bool, ServiceError> {
        let now: UnixTime = self.clock.now();
        let mut work = self.begin(now);
        if !work.revoke_oidc_grant(ctx.account_id, client_id).await? {
            return Ok(false);
        }
        work.audit(
            AuditEvent::new(AuditKind::OidcGrantRevoked, Some(ctx.account_id))
                .ip(client_info.ip.as_deref())
                .detail(format!("client {client_id}")),
        );
        work.commit().await?;
        Ok(true)
    }
}
