//! The `[oidc]` section: the OpenID Connect provider's options (docs/design/oidc.md).
//! Clients are data (`portcullis oidc client add`), not configuration.

use portcullis_core::oidc::JwksPolicy;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// DPoP proofs must carry a server nonce (RFC 9449 §8, §9): a keyed MAC of the current
    /// (or previous) time window, so every node issues and accepts the same nonces.
    pub dpop_nonce: bool,
    /// A key set fetched from a client's `jwks_uri` is used this long before a refetch.
    pub jwks_ttl_secs: i64,
    /// At most one refetch per client in this many seconds (an unknown `kid` included).
    pub jwks_refetch_interval_secs: i64,
    /// When a refetch fails, the cached set is used until it is this old.
    pub jwks_max_age_secs: i64,
    /// The longest one fetch of a `jwks_uri` may take.
    pub jwks_timeout_ms: u64,
    /// `http://` `jwks_uri`s on a loopback IP address (tests, a local relying party).
    pub jwks_allow_http_loopback: bool,
}

impl Default for OidcConfig {
    fn default() -> Self {
        let jwks = JwksPolicy::default();
        Self {
            dpop_nonce: false,
            jwks_ttl_secs: jwks.ttl_secs,
            jwks_refetch_interval_secs: jwks.refetch_interval_secs,
            jwks_max_age_secs: jwks.max_age_secs,
            jwks_timeout_ms: jwks.timeout_ms,
            jwks_allow_http_loopback: jwks.allow_http_loopback,
        }
    }
}

impl OidcConfig {
    /// The `jwks_uri` policy the domain applies (negative numbers read as 0; the timeout
    /// at least 100 ms).
    pub fn jwks_policy(&self) -> JwksPolicy {
        JwksPolicy {
            ttl_secs: self.jwks_ttl_secs.max(0),
            refetch_interval_secs: self.jwks_refetch_interval_secs.max(0),
            max_age_secs: self.jwks_max_age_secs.max(0),
            timeout_ms: self.jwks_timeout_ms.max(100),
            allow_http_loopback: self.jwks_allow_http_loopback,
        }
    }
}
