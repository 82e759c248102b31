//! A `private_key_jwt` client whose keys are published at a `jwks_uri` (OpenID Connect
//! Dynamic Client Registration §2; RFC 7591): which URIs may be registered, how long a
//! fetched key set is trusted, and which of its keys can verify a client assertion.

use std::net::IpAddr;

use serde_json::Value;

use super::MAX_PARAM;

/// The largest JWKS document read from a `jwks_uri`; a longer answer is refused.
pub const JWKS_MAX_BYTES: usize = 64 * 1024;

/// How key sets fetched from `jwks_uri`s are fetched and cached (the `oidc.jwks_*` keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JwksPolicy {
    /// A cached set is used without a refetch until it is this old.
    pub ttl_secs: i64,
    /// At most one refetch per client in this many seconds, across every node, whatever
    /// asks for it (an expired set, or an assertion naming a `kid` not in the set).
    pub refetch_interval_secs: i64,
    /// When a refetch fails, the cached set is still used until it is this old.
    pub max_age_secs: i64,
    /// The longest one fetch may take, in milliseconds.
    pub timeout_ms: u64,
    /// `http://` to a loopback IP address may be registered (tests, a local relying party).
    pub allow_http_loopback: bool,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        Self {
            ttl_secs: 300,
            refetch_interval_secs: 60,
            max_age_secs: 24 * 3600,
            timeout_ms: 3000,
            allow_http_loopback: false,
        }
    }
}

/// Checks a `jwks_uri` at registration and before every fetch: an absolute `https` URL
/// with a host, no user information and no fragment, whose host is a name or a public
/// address ([`crate::webhooks::public_ip`]: the node must not be made to fetch from its own
/// network). `http`, or any loopback host, only on a loopback IP literal (`127.0.0.1`,
/// `[::1]`; never the name `localhost`) and only with `allow_http_loopback`.
pub fn check_jwks_uri(raw: &str, allow_http_loopback: bool) -> Result<(), &'static str> {
    const LOOPBACK: &str = "jwks_uri must be https (http only to a loopback IP address, with \
        oidc.jwks_allow_http_loopback)";
    if raw.is_empty() || raw.len() > MAX_PARAM || raw.chars().any(|c| c.is_whitespace()) {
        return Err("jwks_uri is empty, too long or has spaces");
    }
    let url = url::Url::parse(raw).map_err(|_| "jwks_uri must be an absolute https URL")?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err("jwks_uri must carry no user information and no fragment");
    }
    let ip = match url.host() {
        None => return Err("jwks_uri must have a host"),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                return Err(LOOPBACK);
            }
            None
        }
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
    };
    let loopback = ip.is_some_and(|ip| ip.is_loopback());
    if loopback {
        return if allow_http_loopback && matches!(url.scheme(), "http" | "https") {
            Ok(())
        } else {
            Err(LOOPBACK)
        };
    }
    if url.scheme() != "https" {
        return Err(LOOPBACK);
    }
    match ip {
        Some(ip) if !crate::webhooks::public_ip(ip, false) => {
            Err("jwks_uri must not name a private, link-local or reserved address")
        }
        _ => Ok(()),
    }
}

/// The keys of a JWKS document that can verify a client assertion: public EC P-256 keys
/// (the only client-assertion algorithm offered, ES256) not marked for encryption nor for
/// another algorithm. Anything else in the set is ignored.
pub fn usable_keys(jwks: &Value) -> Vec<Value> {
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    keys.iter()
        .filter(|k| {
            k.get("use")
                .and_then(Value::as_str)
                .is_none_or(|u| u == "sig")
        })
        .filter(|k| {
            k.get("alg")
                .and_then(Value::as_str)
                .is_none_or(|a| a == "ES256")
        })
        .filter(|k| portcullis_crypto::jws::verifying_key(k).is_ok())
        .cloned()
        .collect()
}

/// The `kid` of a key, if it has one.
pub fn kid_of(key: &Value) -> Option<&str> {
    key.get("kid").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn https_to_a_name_or_public_address() {
        assert!(check_jwks_uri("https://rp.example/jwks.json", false).is_ok());
        assert!(check_jwks_uri("https://203.0.113.7/jwks", false).is_ok());
    }

    #[test]
    fn http_only_on_loopback_ip_literals_when_allowed() {
        for uri in ["http://rp.example/jwks", "http://203.0.113.7/jwks"] {
            assert!(check_jwks_uri(uri, true).is_err(), "{uri}");
        }
        for uri in ["http://127.0.0.1:8080/jwks", "http://[::1]/jwks"] {
            assert!(check_jwks_uri(uri, false).is_err(), "{uri}");
            assert!(check_jwks_uri(uri, true).is_ok(), "{uri}");
        }
        assert!(check_jwks_uri("http://localhost:8080/jwks", true).is_err());
        assert!(check_jwks_uri("https://localhost/jwks", true).is_err());
    }

    #[test]
    fn private_addresses_user_info_fragments_and_other_schemes_refused() {
        for uri in [
            "https://10.0.0.1/jwks",
            "https://169.254.169.254/latest",
            "https://[fd00::1]/jwks",
            "https://user:pw@rp.example/jwks",
            "https://rp.example/jwks#x",
            "file:///etc/passwd",
            "ftp://rp.example/jwks",
            "/jwks",
            "",
        ] {
            assert!(check_jwks_uri(uri, true).is_err(), "{uri}");
        }
    }

    #[test]
    fn only_public_p256_signing_keys_are_usable() {
        let ec = json!({"kty": "EC", "crv": "P-256", "kid": "a",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let mut enc = ec.clone();
        enc["use"] = json!("enc");
        let mut rs = ec.clone();
        rs["alg"] = json!("RS256");
        let mut private = ec.clone();
        private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
        let rsa = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"});
        let set = json!({"keys": [ec, enc, rs, private, rsa]});
        let usable = usable_keys(&set);
        assert_eq!(usable.len(), 1);
        assert_eq!(usable.first().and_then(kid_of), Some("a"));
        assert!(usable_keys(&json!({"keys": "no"})).is_empty());
    }
}
