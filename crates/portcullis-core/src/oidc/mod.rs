//! OpenID Connect, the rules (issue 15): registered clients, the authorization request and
//! its checks (exact redirect URIs, PKCE S256 only, scopes), and the protocol errors. Pure:
//! no HTTP, no SQL, no clock. The use cases are in `service::oidc`; the stored state (PAR
//! requests, codes, tokens, one-time JWT ids) behind `ports::OidcStore`.

pub mod amr;
mod consent;
mod jwks_uri;
mod request;

pub use consent::{scope_union, scopes_within};
pub use jwks_uri::{check_jwks_uri, kid_of, usable_keys, JwksPolicy, JWKS_MAX_BYTES};
pub use request::{AuthRequest, RawAuthRequest, Refused, MAX_PARAM};

/// How long a pushed authorization request (RFC 9126) may wait to be used.
pub const PAR_TTL_SECS: i64 = 60;
/// How long an authorization request may wait for the person to sign in.
pub const LOGIN_TTL_SECS: i64 = 600;
/// How long an authorization code lives (FAPI 2.0: at most 60 s).
pub const CODE_TTL_SECS: i64 = 60;
/// How long an access token lives.
pub const ACCESS_TTL_SECS: i64 = 300;
/// How long a refresh token lives without being used.
pub const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;
/// How long an ID token is valid.
pub const ID_TOKEN_TTL_SECS: i64 = 300;
/// How far a DPoP proof's or client assertion's `iat` may be from now.
pub const JWT_IAT_WINDOW_SECS: i64 = 60;
/// The longest a client assertion may be valid for (its `exp` beyond now).
pub const ASSERTION_MAX_LIFE_SECS: i64 = 300;
/// The `request_uri` prefix of pushed requests.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// How a client authenticates at the token, revocation and introspection endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with a 256-bit secret, stored as a keyed hash.
    SecretBasic,
    /// A client assertion (RFC 7523) signed with a key of the client's registered JWKS.
    PrivateKeyJwt,
    /// A public client (the mobile app): no secret; PKCE and DPoP carry the binding.
    None,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::SecretBasic => "client_secret_basic",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
            ClientAuth::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(ClientAuth::SecretBasic),
            "private_key_jwt" => Some(ClientAuth::PrivateKeyJwt),
            "none" => Some(ClientAuth::None),
            _ => None,
        }
    }
}

/// How a client's ID tokens are signed (`id_token_signed_response_alg`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdTokenAlg {
    /// ECDSA P-256 (the default; FAPI 2.0 allows PS256, ES256 and EdDSA).
    #[default]
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl IdTokenAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenAlg::Es256 => "ES256",
            IdTokenAlg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(IdTokenAlg::Es256),
            "EdDSA" => Some(IdTokenAlg::EdDsa),
            _ => None,
        }
    }
}

/// A registered relying party.
#[derive(Clone, Debug)]
pub struct OidcClient {
    pub client_id: String,
    pub name: String,
    pub auth: ClientAuth,
    /// The keyed hash of the secret (`SecretBasic` only).
    pub secret_hash: Option<Vec<u8>>,
    /// The registered JWKS document (`PrivateKeyJwt` with a file; `None` with a URI).
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its JWKS (`PrivateKeyJwt` without a file): fetched and
    /// cached in the database (`service::oidc::jwks_uri`).
    pub jwks_uri: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_uris: Vec<String>,
    pub first_party: bool,
    /// Held to the FAPI 2.0 Security Profile: PAR, DPoP and `private_key_jwt` required.
    pub fapi2: bool,
    /// How its ID tokens are signed.
    pub id_token_alg: IdTokenAlg,
    pub revoked: bool,
}

impl OidcClient {
    /// Exact string comparison against the registered redirect URIs (no prefix, no
    /// normalisation: RFC 9700 §4.1.3).
    pub fn redirect_registered(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    pub fn post_logout_registered(&self, uri: &str) -> bool {
        self.post_logout_uris.iter().any(|r| r == uri)
    }
}

/// Checks a redirect URI given at registration: absolute, no fragment, no user
/// information; `https`, or for a public client (RFC 8252) `http` on a loopback IP literal
/// (`127.0.0.1` or `[::1]`, any port; not `localhost`) or a private-use scheme
/// (`com.example.app:/path`, with a dot in the scheme). Returns what is wrong.
pub fn check_redirect_registration(uri: &str, public: bool) -> Result<(), &'static str> {
    if uri.is_empty() || uri.len() > MAX_PARAM {
        return Err("redirect URI is empty or too long");
    }
    if uri.contains('#') {
        return Err("redirect URI must not have a fragment");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("redirect URI must not contain spaces");
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err("redirect URI must be absolute");
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "https" || scheme == "http" {
        // The authority: between "//" and the path, query or end.
        let Some(after) = rest.strip_prefix("//") else {
            return Err("redirect URI must have a host");
        };
        let authority = after.split(['/', '?']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err("redirect URI must not carry user information");
        }
        if authority.is_empty() || authority.contains(['\\', '%']) {
            return Err("redirect URI must have a host");
        }
        if scheme == "https" {
            return Ok(());
        }
        // RFC 8252 §7.3, §8.3: http only for a public (native) client, on a loopback IP
        // literal with any port; not `localhost`, which a resolver may point elsewhere.
        let port_ok = |p: &str| {
            p.is_empty()
                || p.strip_prefix(':').is_some_and(|d| {
                    !d.is_empty() && d.len() <= 5 && d.bytes().all(|b| b.is_ascii_digit())
                })
        };
        let loopback = ["127.0.0.1", "[::1]"]
            .iter()
            .any(|h| authority.strip_prefix(h).is_some_and(port_ok));
        return if public && loopback {
            Ok(())
        } else {
            Err("an http redirect URI must be a loopback IP address of a public client")
        };
    }
    let private_use = scheme.contains('.')
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
    if public && private_use {
        Ok(())
    } else {
        Err("redirect URI must be https (or, for a public client, loopback or a private-use scheme)")
    }
}

/// Scopes this provider knows; others are ignored (RFC 6749 §3.3).
pub const SCOPES: &[&str] = &["openid", "offline_access", "email", "phone"];

/// A protocol error (RFC 6749 §5.2 / §4.1.2.1, RFC 9449 §7): the `error` code, a short
/// description for the client's developer, and the HTTP status for direct answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OidcError {
    pub code: &'static str,
    pub description: &'static str,
    pub status: u16,
}

impl OidcError {
    pub const fn new(code: &'static str, description: &'static str, status: u16) -> Self {
        Self {
            code,
            description,
            status,
        }
    }
    pub const fn invalid_request(description: &'static str) -> Self {
        Self::new("invalid_request", description, 400)
    }
    pub const fn invalid_client() -> Self {
        Self::new("invalid_client", "client authentication failed", 401)
    }
    pub const fn invalid_grant(description: &'static str) -> Self {
        Self::new("invalid_grant", description, 400)
    }
    pub const fn invalid_dpop(description: &'static str) -> Self {
        Self::new("invalid_dpop_proof", description, 400)
    }
    pub const fn invalid_token(description: &'static str) -> Self {
        Self::new("invalid_token", description, 401)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_registration_rules() {
        assert!(check_redirect_registration("https://rp.example/cb", false).is_ok());
        assert!(check_redirect_registration("http://127.0.0.1:5000/cb", true).is_ok());
        assert!(check_redirect_registration("http://[::1]:8080/cb", true).is_ok());
        // Loopback http only for public clients, only as an IP literal.
        assert!(check_redirect_registration("http://127.0.0.1:5000/cb", false).is_err());
        assert!(check_redirect_registration("http://localhost/cb", true).is_err());
        assert!(check_redirect_registration("http://127.0.0.1.evil.example/cb", true).is_err());
        assert!(check_redirect_registration("http://127.0.0.1:80x/cb", true).is_err());
        // No user information (a host that is not the one it seems).
        assert!(check_redirect_registration("https://rp.example@evil.example/cb", false).is_err());
        assert!(check_redirect_registration("http://127.0.0.1@evil.example/", true).is_err());
        assert!(check_redirect_registration("https:///cb", false).is_err());
        assert!(check_redirect_registration("com.example.app:/cb", true).is_ok());
        assert!(check_redirect_registration("com.example.app:/cb", false).is_err());
        assert!(check_redirect_registration("http://evil.example/cb", false).is_err());
        assert!(check_redirect_registration("http://localhost.evil.example/", false).is_err());
        assert!(check_redirect_registration("https://rp.example/cb#x", false).is_err());
        assert!(check_redirect_registration("javascript:alert(1)", true).is_err());
        assert!(check_redirect_registration("/relative", false).is_err());
    }

    #[test]
    fn redirect_match_is_exact() {
        let c = OidcClient {
            client_id: "c".into(),
            name: "n".into(),
            auth: ClientAuth::None,
            secret_hash: None,
            jwks: None,
            jwks_uri: None,
            redirect_uris: vec!["https://rp.example/cb".into()],
            post_logout_uris: vec![],
            first_party: true,
            fapi2: false,
            id_token_alg: IdTokenAlg::Es256,
            revoked: false,
        };
        assert!(c.redirect_registered("https://rp.example/cb"));
        assert!(!c.redirect_registered("https://rp.example/cb/"));
        assert!(!c.redirect_registered("https://rp.example/cb?x=1"));
        assert!(!c.redirect_registered("https://RP.example/cb"));
    }
}
