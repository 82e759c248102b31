//! Relying parties managed by an admin token with `clients:write` (`/api/v1/admin/oidc/
//! clients`) or by the operator (`portcullis oidc client list | revoke`): registered with
//! the same checks as `oidc client add`, listed (never a secret), revoked. A revoked client
//! loses every token issued to it in the same transaction, so introspection, userinfo and
//! refresh refuse them at once; its new authorization requests are refused too.

use super::{ClientRegistration, RegisteredClient};
use crate::audit::AuditKind;
use crate::ports::OidcClientRow;
use crate::service::Portcullis;
use crate::support::{SupportAuthority, SupportScope};
use crate::ServiceError;

impl Portcullis {
    /// Every registered client, revoked ones included, oldest first.
    pub async fn oidc_clients_list(
        &self,
        authority: &SupportAuthority,
    ) -> Result<Vec<OidcClientRow>, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::ClientsWrite, now)
            .await?;
        Ok(self.ports.oidc.oidc_clients().await?)
    }

    /// One client, revoked or not; `None` when no client has this id.
    pub async fn oidc_client_show(
        &self,
        authority: &SupportAuthority,
        client_id: &str,
    ) -> Result<Option<OidcClientRow>, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::ClientsWrite, now)
            .await?;
        Ok(self.ports.oidc.oidc_client_row(client_id).await?)
    }

    /// Registers a client (the checks of `oidc client add`), audited in the same unit of
    /// work. The secret, for `client_secret_basic`, is in the answer only.
    pub async fn oidc_client_register(
        &self,
        authority: &SupportAuthority,
        r: ClientRegistration,
    ) -> Result<RegisteredClient, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::ClientsWrite, now)
            .await?;
        let (client, secret) = self
            .oidc_client_from(r)
            .map_err(|why| ServiceError::field("client", why))?;
        let mut work = self.begin(now);
        if !work.insert_oidc_client(&client).await? {
            return Err(ServiceError::field(
                "client",
                "client id collision; try again",
            ));
        }
        work.audit(
            authority
                .event(AuditKind::OidcClientAdded, None)
                .detail(format!(
                    "client {} ({}, {})",
                    client.client_id,
                    client.name,
                    client.auth.as_str()
                )),
        );
        work.commit().await?;
        Ok(RegisteredClient {
            client_id: client.client_id,
            client_secret: secret.map(|s| s.secret),
        })
    }

    /// Revokes a client and every token issued to it, audited in the same unit of work.
    /// `Ok(false)` when no client has this id; revoking a revoked client changes nothing
    /// and answers `Ok(true)`.
    pub async fn oidc_client_revoke(
        &self,
        authority: &SupportAuthority,
        client_id: &str,
    ) -> Result<bool, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::ClientsWrite, now)
            .await?;
        let Some(row) = self.ports.oidc.oidc_client_row(client_id).await? else {
            return Ok(false);
        };
        let mut work = self.begin(now);
        let Some(tokens) = work.revoke_oidc_client(client_id).await? else {
            // Revoked already (perhaps by a concurrent call): nothing to audit.
            return Ok(true);
        };
        work.audit(
            authority
                .event(AuditKind::OidcClientRevoked, None)
                .detail(format!(
                    "client {client_id} ({}): {tokens} tokens revoked",
                    row.client.name
                )),
        );
        work.commit().await?;
        tracing::info!(client = %client_id, tokens, "oidc: client revoked");
        Ok(true)
    }
}
