//! DPoP proofs (RFC 9449 §4.3): `typ`, ES256 with the public key in the header, `htm`,
//! `htu`, `iat` within a window, `jti` seen once across every node (the database), and
//! `ath` when an access token goes with it.

use portcullis_crypto::{ct_eq, jws, sha256};
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
        if normalise_htu(htu).is_none() || normalise_htu(htu) != normalise_htu(&proof.url) {
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
        if self.policies.oidc_dpop_nonce
            && !text("nonce").is_some_and(|n| self.dpop_nonce_current(n, now))
        {
            return Err(OidcError::new(
                "use_dpop_nonce",
                "the proof must carry the nonce of the DPoP-Nonce header",
                400,
            ));
        }
        match (access_token, text("ath")) {
            (Some(token), Some(ath)) if ct_eq(ath.as_bytes(), jws::s256(token).as_bytes()) => {}
            // RFC 9449 §7.1: the proof does not go with this access token.
            (Some(_), _) => {
                return Err(OidcError::invalid_token(
                    "ath does not match the access token",
                ))
            }
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

impl Portcullis {
    /// The server nonce of a time window: a keyed MAC of the window's number, so every node
    /// hands out and accepts the same nonces without sharing state.
    fn dpop_nonce_of(&self, window: i64) -> String {
        let h = self
            .keys
            .hash("portcullis/dpop-nonce/v1", &[&window.to_be_bytes()]);
        h.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// The nonce to give clients now (`DPoP-Nonce`), when `oidc.dpop_nonce` is on.
    pub fn oidc_dpop_nonce(&self) -> Option<String> {
        self.policies
            .oidc_dpop_nonce
            .then(|| self.dpop_nonce_of(self.oidc_now().0.div_euclid(DPOP_NONCE_WINDOW_SECS)))
    }

    /// Whether `nonce` is the current window's or the previous one's.
    fn dpop_nonce_current(&self, nonce: &str, now: UnixTime) -> bool {
        let window = now.0.div_euclid(DPOP_NONCE_WINDOW_SECS);
        [window, window - 1]
            .iter()
            .any(|w| ct_eq(self.dpop_nonce_of(*w).as_bytes(), nonce.as_bytes()))
    }
}

/// How long a server nonce is handed out (RFC 9449 §8); the previous window's stays
/// accepted, so a nonce lives between one and two windows.
pub const DPOP_NONCE_WINDOW_SECS: i64 = 300;

/// An `htu` (or the request's URL) compared as RFC 9449 §4.3 asks (RFC 3986 §6.2.2–6.2.3
/// normalisation): scheme and host case-insensitive, the scheme's default port the same as
/// none. The path is compared exactly. `None` for what is not an http(s) URL.
fn normalise_htu(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    let path = if path.is_empty() { "/" } else { path };
    Some(format!("{scheme}://{authority}{path}"))
}

#[cfg(test)]
mod tests {
    use super::normalise_htu;

    #[test]
    fn htu_scheme_host_case_and_default_port() {
        let n = |u: &str| normalise_htu(u);
        let want = n("https://op.example/oidc/token");
        assert!(want.is_some());
        assert_eq!(n("HTTPS://OP.Example/oidc/token"), want);
        assert_eq!(n("https://op.example:443/oidc/token"), want);
        assert_ne!(n("https://op.example:8443/oidc/token"), want);
        assert_ne!(
            n("https://op.example/OIDC/token"),
            want,
            "the path is exact"
        );
        assert_ne!(n("http://op.example/oidc/token"), want);
        assert_eq!(n("http://op.example:80/x"), n("http://op.example/x"));
        assert_eq!(n("ftp://op.example/x"), None);
        assert_eq!(n("https://user@op.example/x"), None);
    }
}
