//! DPoP proofs (RFC 9449 §4.3): `typ`, ES256 with the public key in the header, `htm`,
//! `htu`, `iat` within a window, `jti` seen once across every node (the database), and
//! `ath` when an access token goes with it.

use portcullis_crypto::{jws, sha256};
use serde_json::Value;

use crate::clock::UnixTime;
use crate::oidc::{OidcError, JWT_IAT_WINDOW_SECS};
use crate::service::Portcullis;

/// A `DPoP` header as it arrived, with the method and the URL of the request (without
/// query or fragment) it must be bound to.
pub struct DpopProof {
    pub jwt: String,
    pub method: String,
    pub url: String,
}

impl Portcullis {
    /// Checks a proof; answers the JWK thumbprint of its key.
    pub(crate) async fn check_dpop(
        &self,
        proof: &DpopProof,
        access_token: Option<&str>,
    ) -> Result<String, OidcError> {
        let bad = OidcError::invalid_dpop;
        let now = self.oidc_now();
        let jwt = jws::decode(&proof.jwt).map_err(|_| bad("malformed proof"))?;
        if jwt.header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
            return Err(bad("typ must be dpop+jwt"));
        }
        let jwk = jwt.header.get("jwk").ok_or(bad("no jwk in the proof"))?;
        jwt.verify(jwk).map_err(|_| bad("proof signature"))?;
        let jkt = jws::thumbprint(jwk).map_err(|_| bad("proof key"))?;
        let text = |name: &str| jwt.claims.get(name).and_then(Value::as_str);
        if text("htm") != Some(proof.method.as_str()) {
            return Err(bad("htm does not match the request"));
        }
        let htu = text("htu").unwrap_or_default();
        let htu = htu.split(['?', '#']).next().unwrap_or_default();
        if htu != proof.url {
            return Err(bad("htu does not match the request"));
        }
        let iat = jwt
            .claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or(bad("no iat"))?;
        if (iat - now.0).abs() > JWT_IAT_WINDOW_SECS {
            return Err(bad("iat outside the accepted window"));
        }
        match (access_token, text("ath")) {
            (Some(token), Some(ath)) if ath == jws::s256(token) => {}
            (Some(_), _) => return Err(bad("ath does not match the access token")),
            (None, _) => {}
        }
        let jti = text("jti")
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or(bad("no jti"))?;
        let key = sha256(format!("dpop\0{jkt}\0{jti}").as_bytes());
        let keep_until = UnixTime(iat.max(now.0) + JWT_IAT_WINDOW_SECS + 1);
        if !self
            .ports
            .oidc
            .claim_oidc_jti(&key, keep_until, now)
            .await?
        {
            return Err(bad("proof replayed"));
        }
        Ok(jkt)
    }
}
