//! The OpenID Connect provider's use cases (issue 15): client registration, discovery and
//! JWKS, pushed and plain authorization requests, the code and refresh grants, userinfo,
//! revocation and introspection. The rules are in [`crate::oidc`], the state behind
//! [`crate::ports::OidcStore`]; HTTP is the web crate's.

mod authorize;
mod client_auth;
mod clients;
mod consent;
mod dpop;
mod jwks_uri;
mod logout;
mod token;

use std::sync::Arc;

use portcullis_crypto::jws::{Ed25519Key, Es256Key};
use portcullis_crypto::Token;
use portcullis_crypto::{ct_eq, sha256};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::clock::UnixTime;
use crate::oidc::{check_redirect_registration, ClientAuth, IdTokenAlg, OidcClient, OidcError};
use crate::ports::{NewOidcClient, StoreError};
use crate::service::Portcullis;

pub use authorize::{AuthorizeStep, ConsentNeeded, LoginNeeded};
pub use client_auth::ClientCredentials;
pub use dpop::DpopProof;
pub use logout::{LogoutRequest, LogoutStep};
pub use token::{TokenForm, TokenResponse};

/// The keyring in the secrets folder whose keys sign ID tokens (each a P-256 key derived
/// from the ring's 256-bit key; see `portcullis_crypto::jws`).
pub const SIGNING_RING: &str = "oidc-signing.key";

impl From<StoreError> for OidcError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "oidc: store error");
        OidcError::new("temporarily_unavailable", "try again later", 503)
    }
}

impl From<crate::ServiceError> for OidcError {
    fn from(e: crate::ServiceError) -> Self {
        tracing::error!(error = %e, "oidc: a unit of work failed");
        OidcError::new("temporarily_unavailable", "try again later", 503)
    }
}

/// What `oidc client add` registers.
pub struct ClientRegistration {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_uris: Vec<String>,
    pub auth: ClientAuth,
    pub jwks: Option<Value>,
    /// Where the client publishes its JWKS (`private_key_jwt`, instead of `jwks`).
    pub jwks_uri: Option<String>,
    pub first_party: bool,
    pub fapi2: bool,
    /// How its ID tokens are signed (`id_token_signed_response_alg`).
    pub id_token_alg: IdTokenAlg,
}

/// A registered client: its id and, for `client_secret_basic`, the secret (shown once).
pub struct RegisteredClient {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

/// The keys derived from the signing ring's current key, kept while it stays current:
/// deriving the P-256 key costs a scalar multiplication, as much as a signature, and every
/// code exchange signs an ID token.
#[derive(Default)]
pub(crate) struct SignerCache(std::sync::Mutex<Option<Arc<Signers>>>);

/// Both keys of one ring key.
pub(crate) struct Signers {
    id: u32,
    /// SHA-256 of the ring key the keys came from (a key file replaced whole may reuse
    /// an id).
    fingerprint: [u8; 32],
    es256: Es256Key,
    eddsa: Ed25519Key,
}

impl SignerCache {
    /// The keys of ring key `id` whose value is `seed`, derived at its first use.
    fn current(&self, id: u32, seed: &[u8; 32]) -> Option<Arc<Signers>> {
        let fingerprint = sha256(seed);
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = slot.as_ref() {
            if s.id == id && ct_eq(&s.fingerprint, &fingerprint) {
                return Some(s.clone());
            }
        }
        let fresh = Arc::new(Signers {
            id,
            fingerprint,
            es256: Es256Key::from_seed(id.to_string(), seed)?,
            eddsa: Ed25519Key::from_seed(ed25519_kid(id), seed)?,
        });
        *slot = Some(fresh.clone());
        Some(fresh)
    }
}

/// The key id of the Ed25519 key derived from the ring's key `id` (its P-256 key's id is
/// `id` itself).
fn ed25519_kid(id: impl std::fmt::Display) -> String {
    format!("{id}-ed25519")
}

fn random_id() -> String {
    let t = Token::generate();
    t.expose().chars().take(22).collect()
}

impl Portcullis {
    /// The issuer identifier: the public URL without a trailing slash.
    pub fn oidc_issuer(&self) -> String {
        self.policies.public_url.trim_end_matches('/').to_owned()
    }

    /// Signs `claims` with the signing ring's current key, as `alg` asks.
    pub(crate) fn oidc_sign(
        &self,
        alg: IdTokenAlg,
        typ: &str,
        claims: &Value,
    ) -> Result<String, OidcError> {
        let ring = self
            .oidc_keys
            .as_ref()
            .ok_or(OidcError::new("server_error", "no signing key", 500))?
            .snapshot();
        let (id, seed) = (ring.current_id(), ring.current());
        let signers = self.oidc_signers.current(id, seed).ok_or(OidcError::new(
            "server_error",
            "unusable signing key",
            500,
        ))?;
        Ok(match alg {
            IdTokenAlg::Es256 => signers.es256.sign(typ, claims),
            IdTokenAlg::EdDsa => signers.eddsa.sign(typ, claims),
        })
    }

    /// The published keys: the current one, the one before it (so ID tokens signed just
    /// before a rotation still verify until they expire) and a prepared next one (so
    /// relying parties have it before it signs), each as a P-256 and an Ed25519 key.
    pub fn oidc_jwks(&self) -> Value {
        let Some(live) = &self.oidc_keys else {
            return json!({"keys": []});
        };
        let ring = live.snapshot();
        let mut ids = ring.ids();
        ids.sort_unstable();
        let current = ring.current_id();
        let previous = ids.iter().copied().filter(|id| *id < current).max();
        // A key prepared for the next rotation is published before it signs anything.
        let next = ring.next_id();
        let mut keys = Vec::new();
        for id in [Some(current), previous, next].into_iter().flatten() {
            let Some(seed) = ring.get(id) else { continue };
            if let Some(k) = Es256Key::from_seed(id.to_string(), seed) {
                keys.push(k.public_jwk());
            }
            if let Some(k) = Ed25519Key::from_seed(ed25519_kid(id), seed) {
                keys.push(k.public_jwk());
            }
        }
        json!({ "keys": keys })
    }

    /// `/.well-known/openid-configuration`.
    pub fn oidc_discovery(&self) -> Value {
        let iss = self.oidc_issuer();
        json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/oidc/authorize"),
            "pushed_authorization_request_endpoint": format!("{iss}/oidc/par"),
            "token_endpoint": format!("{iss}/oidc/token"),
            "userinfo_endpoint": format!("{iss}/oidc/userinfo"),
            "jwks_uri": format!("{iss}/oidc/jwks"),
            "revocation_endpoint": format!("{iss}/oidc/revoke"),
            "introspection_endpoint": format!("{iss}/oidc/introspect"),
            "end_session_endpoint": format!("{iss}/oidc/logout"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256", "EdDSA"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ["private_key_jwt", "client_secret_basic", "none"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
            "revocation_endpoint_auth_methods_supported":
                ["private_key_jwt", "client_secret_basic", "none"],
            "introspection_endpoint_auth_methods_supported":
                ["private_key_jwt", "client_secret_basic"],
            "dpop_signing_alg_values_supported": ["ES256"],
            "scopes_supported": crate::oidc::SCOPES,
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce",
                "amr", "acr", "account_type", "email", "phone_number"],
            "prompt_values_supported": ["none", "login", "consent"],
            "acr_values_supported": crate::oidc::amr::ACR_VALUES,
            "authorization_response_iss_parameter_supported": true,
            "require_pushed_authorization_requests": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
        })
    }

    /// The keyed hash a client secret is stored as (secrets are 256-bit random, so one
    /// HMAC is enough: no password hash).
    pub(crate) fn oidc_secret_hash(&self, secret: &str) -> [u8; 32] {
        self.keys
            .hash("portcullis/oidc-client-secret/v1", &[secret.as_bytes()])
    }

    /// The `sub` of an account: stable and opaque (a keyed hash of its row id, never the
    /// User ID).
    pub fn oidc_subject(&self, account_id: i64) -> String {
        let h = self
            .keys
            .hash("portcullis/oidc-sub/v1", &[&account_id.to_be_bytes()]);
        h.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// Checks a registration and makes the client it registers, with its secret (for
    /// `client_secret_basic`, shown once: only its keyed hash is kept).
    pub(crate) fn oidc_client_from(
        &self,
        r: ClientRegistration,
    ) -> Result<(OidcClient, Option<Token>), String> {
        if r.name.trim().is_empty() || r.name.len() > 200 {
            return Err("--name must be 1 to 200 characters".into());
        }
        if r.redirect_uris.is_empty() {
            return Err("at least one --redirect-uri is needed".into());
        }
        let public = r.auth == ClientAuth::None;
        for uri in r.redirect_uris.iter().chain(&r.post_logout_uris) {
            check_redirect_registration(uri, public).map_err(|e| format!("{e}: {uri}"))?;
        }
        if r.fapi2 && r.auth != ClientAuth::PrivateKeyJwt {
            return Err("--profile fapi2 requires --auth private_key_jwt".into());
        }
        match (r.auth, &r.jwks, &r.jwks_uri) {
            (ClientAuth::PrivateKeyJwt, None, None) => {
                return Err("--auth private_key_jwt needs --jwks-file or --jwks-uri".into())
            }
            (ClientAuth::PrivateKeyJwt, Some(_), Some(_)) => {
                return Err("give --jwks-file or --jwks-uri, not both".into())
            }
            (ClientAuth::PrivateKeyJwt, Some(jwks), None)
                if crate::oidc::usable_keys(jwks).is_empty() =>
            {
                return Err("the JWKS file has no public EC P-256 key".into())
            }
            (ClientAuth::PrivateKeyJwt, Some(_), None) => {}
            (ClientAuth::PrivateKeyJwt, None, Some(uri)) => {
                // Checked now, fetched at the first assertion: the relying party's key
                // server need not be up when the operator registers it.
                crate::oidc::check_jwks_uri(uri, self.policies.oidc_jwks.allow_http_loopback)
                    .map_err(|e| format!("{e}: {uri}"))?;
            }
            (_, Some(_), _) => return Err("--jwks-file is only for private_key_jwt".into()),
            (_, _, Some(_)) => return Err("--jwks-uri is only for private_key_jwt".into()),
            _ => {}
        }
        let secret = (r.auth == ClientAuth::SecretBasic).then(Token::generate);
        let client = OidcClient {
            client_id: random_id(),
            name: r.name.trim().to_owned(),
            auth: r.auth,
            secret_hash: secret
                .as_ref()
                .map(|s| self.oidc_secret_hash(s.expose()).to_vec()),
            jwks: r.jwks,
            jwks_uri: r.jwks_uri,
            redirect_uris: r.redirect_uris,
            post_logout_uris: r.post_logout_uris,
            first_party: r.first_party,
            fapi2: r.fapi2,
            id_token_alg: r.id_token_alg,
            revoked: false,
        };
        Ok((client, secret))
    }

    /// Registers a relying party (`portcullis oidc client add`).
    pub async fn register_oidc_client(
        &self,
        r: ClientRegistration,
    ) -> Result<RegisteredClient, String> {
        let (client, secret) = self.oidc_client_from(r)?;
        let now = self.clock.now();
        let added = self
            .ports
            .oidc
            .add_oidc_client(NewOidcClient {
                client: &client,
                now,
            })
            .await
            .map_err(|e| e.to_string())?;
        if !added {
            return Err("client id collision; run the command again".into());
        }
        Ok(RegisteredClient {
            client_id: client.client_id,
            client_secret: secret.map(|s| s.secret),
        })
    }

    pub(crate) fn oidc_now(&self) -> UnixTime {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_cache_keeps_the_keys_of_one_ring_key_and_follows_a_change_of_id_or_value() {
        let cache = SignerCache::default();
        let first = cache.current(1, &[1u8; 32]).expect("keys");
        let again = cache.current(1, &[1u8; 32]).expect("keys");
        assert!(Arc::ptr_eq(&first, &again));
        // A rotation: the next id.
        let rotated = cache.current(2, &[2u8; 32]).expect("keys");
        assert!(!Arc::ptr_eq(&first, &rotated));
        assert_eq!(rotated.es256.kid(), "2");
        assert_eq!(rotated.eddsa.kid(), "2-ed25519");
        // A key file replaced whole: the same id with another value is not served stale.
        let replaced = cache.current(2, &[3u8; 32]).expect("keys");
        assert_ne!(
            replaced.es256.public_jwk()["x"],
            rotated.es256.public_jwk()["x"]
        );
        assert_eq!(
            replaced.es256.public_jwk(),
            Es256Key::from_seed("2", &[3u8; 32]).unwrap().public_jwk()
        );
    }
}
