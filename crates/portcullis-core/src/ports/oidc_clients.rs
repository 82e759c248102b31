//! Registered OpenID Connect clients as the admin API and `portcullis oidc client …` manage
//! them: listed with their dates, added and revoked in a unit of work with their audit
//! events.

use async_trait::async_trait;

use super::StoreResult;
use crate::clock::UnixTime;
use crate::oidc::OidcClient;

/// A registered client with its dates (its secret hash is never shown; it is here because
/// the client is).
#[derive(Clone, Debug)]
pub struct OidcClientRow {
    pub client: OidcClient,
    pub created_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

#[async_trait]
pub trait OidcClientWrites: Send {
    /// Registers a client, stamped with the unit of work's time; `false` when its
    /// `client_id` is taken.
    async fn insert_oidc_client(&mut self, client: &OidcClient) -> StoreResult<bool>;
    /// Revokes a client that is not revoked yet, and with it every token issued to it (so
    /// introspection, userinfo and refresh refuse them at once). `None` when no active
    /// client has this id; otherwise how many tokens were revoked.
    async fn revoke_oidc_client(&mut self, client_id: &str) -> StoreResult<Option<u64>>;
}
