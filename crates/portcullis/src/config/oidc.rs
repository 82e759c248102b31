//! The `[oidc]` section: the OpenID Connect provider's options (docs/design/oidc.md).
//! Clients are data (`portcullis oidc client add`), not configuration.

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// DPoP proofs must carry a server nonce (RFC 9449 §8, §9): a keyed MAC of the current
    /// (or previous) time window, so every node issues and accepts the same nonces.
    pub dpop_nonce: bool,
}
