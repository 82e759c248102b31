//! A `private_key_jwt` client's key set fetched from its `jwks_uri`: the fetch itself (an
//! outbound HTTP port, implemented outside the domain) and the cache every node shares in
//! the database, with the claim that lets at most one refetch per client and interval
//! through.

use async_trait::async_trait;
use serde_json::Value;

use super::StoreResult;
use crate::clock::UnixTime;

/// The last key set fetched from a client's `jwks_uri`.
#[derive(Clone, Debug)]
pub struct CachedJwks {
    pub jwks: Value,
    pub fetched_at: UnixTime,
}

/// A client's row of the shared cache: the last fetch claimed, and the set it stored.
#[derive(Clone, Debug)]
pub struct JwksCacheRow {
    /// When the last fetch was claimed (whether or not it succeeded): a claim before
    /// `now − interval` can win, a later one cannot, so a reader skips the write.
    pub attempted_at: UnixTime,
    /// The last set fetched; none until a fetch succeeded.
    pub set: Option<CachedJwks>,
}

#[async_trait]
pub trait OidcJwksCache: Send + Sync {
    /// A client's cache row, if a fetch was ever claimed for it.
    async fn oidc_jwks_cached(&self, client_id: &str) -> StoreResult<Option<JwksCacheRow>>;
    /// Claims the right to fetch a client's key set now: one atomic conditional write that
    /// succeeds only when no fetch was claimed after `not_since`, so across every node at
    /// most one request per interval wins. `true` for the winner.
    async fn claim_oidc_jwks_fetch(
        &self,
        client_id: &str,
        now: UnixTime,
        not_since: UnixTime,
    ) -> StoreResult<bool>;
    /// Stores a fetched key set with its fetch time.
    async fn save_oidc_jwks(
        &self,
        client_id: &str,
        jwks: &Value,
        fetched_at: UnixTime,
    ) -> StoreResult<()>;
}

/// Why a key set could not be fetched (logged; the client is answered `invalid_client`).
#[derive(Debug, thiserror::Error)]
pub enum JwksFetchError {
    #[error("the request failed: {0}")]
    Unreachable(String),
    #[error("the server answered {0}")]
    Status(u16),
    #[error("the answer is not application/json")]
    ContentType,
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the answer is not a JWKS document")]
    NotJwks,
}

/// Fetches a JWKS document over HTTP (the adapter: a short timeout, a body-size cap, no
/// redirects followed, `application/json` only).
#[async_trait]
pub trait JwksFetcher: Send + Sync {
    /// The document at `uri`, an object with a `keys` array.
    async fn fetch_jwks(&self, uri: &str) -> Result<Value, JwksFetchError>;
}
