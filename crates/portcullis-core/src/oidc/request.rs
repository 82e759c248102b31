//! The authorization request (OpenID Connect Core §3.1.2.1, RFC 9126, RFC 7636): as it
//! arrives, and as it is kept once checked.

use serde::{Deserialize, Serialize};

use super::{OidcClient, OidcError, SCOPES};

/// The longest value any one parameter may have.
pub const MAX_PARAM: usize = 2048;

/// The parameters as they arrive (query string or PAR form), unchecked.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RawAuthRequest {
    pub client_id: Option<String>,
    pub response_type: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub acr_values: Option<String>,
    pub dpop_jkt: Option<String>,
    pub response_mode: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

/// A checked authorization request, as stored with a PAR request, a pending sign-in and a
/// code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// The known scopes asked for, space-separated, `openid` first.
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// `none`, `login` or nothing.
    pub prompt: Option<String>,
    pub max_age: Option<i64>,
    /// The DPoP key the code must be redeemed with (RFC 9449 §10).
    pub dpop_jkt: Option<String>,
    /// `acr_values` asked for a second factor ([`super::amr::ACR_MFA`]).
    #[serde(default)]
    pub mfa: bool,
}

impl AuthRequest {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

fn base64url_43(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn bounded(value: &Option<String>) -> bool {
    value.as_ref().is_none_or(|v| v.len() <= MAX_PARAM)
}

/// A request refused: `redirect` says whether the error may go back to the redirect URI
/// (it is registered) or must be shown on a page (RFC 6749 §4.1.2.1).
#[derive(Debug)]
pub struct Refused {
    pub error: OidcError,
    pub redirect: bool,
}

impl RawAuthRequest {
    /// Checks the request for `client` (whose `client_id` it names).
    pub fn check(&self, client: &OidcClient) -> Result<AuthRequest, Refused> {
        let page = |description| Refused {
            error: OidcError::invalid_request(description),
            redirect: false,
        };
        let redirect_uri = self
            .redirect_uri
            .clone()
            .ok_or_else(|| page("redirect_uri is required"))?;
        if !client.redirect_registered(&redirect_uri) {
            return Err(page("redirect_uri is not registered for this client"));
        }
        let back = |code, description| Refused {
            error: OidcError::new(code, description, 400),
            redirect: true,
        };
        if self.request.is_some() {
            return Err(back(
                "request_not_supported",
                "request objects are not supported; use PAR",
            ));
        }
        if self.response_type.as_deref() != Some("code") {
            return Err(back(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        if self.response_mode.as_deref().is_some_and(|m| m != "query") {
            return Err(back(
                "invalid_request",
                "only response_mode=query is supported",
            ));
        }
        let fields = [
            &self.state,
            &self.nonce,
            &self.scope,
            &self.prompt,
            &self.acr_values,
        ];
        if !fields.iter().all(|f| bounded(f)) {
            return Err(back("invalid_request", "a parameter is too long"));
        }
        let asked: Vec<&str> = self.scope.as_deref().unwrap_or("").split(' ').collect();
        if !asked.contains(&"openid") {
            return Err(back("invalid_scope", "scope must include openid"));
        }
        let scope = SCOPES
            .iter()
            .filter(|s| asked.contains(s))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let code_challenge = match (
            self.code_challenge.as_deref(),
            self.code_challenge_method.as_deref(),
        ) {
            (Some(c), Some("S256")) if base64url_43(c) => c.to_owned(),
            (Some(_), Some("S256")) => {
                return Err(back("invalid_request", "code_challenge is malformed"))
            }
            (Some(_), _) => {
                return Err(back(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is refused)",
                ))
            }
            (None, _) => {
                return Err(back(
                    "invalid_request",
                    "PKCE is required: code_challenge with S256",
                ))
            }
        };
        let prompt = match self.prompt.as_deref() {
            None | Some("") => None,
            Some(p @ ("none" | "login" | "consent")) => Some(p.to_owned()),
            Some(_) => {
                return Err(back(
                    "invalid_request",
                    "prompt must be none, login or consent",
                ))
            }
        };
        let max_age = match self.max_age.as_deref() {
            None | Some("") => None,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Some(n),
                _ => return Err(back("invalid_request", "max_age must be a whole number")),
            },
        };
        let dpop_jkt = match self.dpop_jkt.as_deref() {
            None => None,
            Some(j) if base64url_43(j) => Some(j.to_owned()),
            Some(_) => return Err(back("invalid_request", "dpop_jkt is malformed")),
        };
        Ok(AuthRequest {
            client_id: client.client_id.clone(),
            redirect_uri,
            scope,
            state: self.state.clone().filter(|s| !s.is_empty()),
            nonce: self.nonce.clone().filter(|s| !s.is_empty()),
            code_challenge,
            prompt,
            max_age,
            dpop_jkt,
            mfa: super::amr::asks_mfa(self.acr_values.as_deref()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::ClientAuth;

    fn client() -> OidcClient {
        OidcClient {
            client_id: "c1".into(),
            name: "RP".into(),
            auth: ClientAuth::None,
            secret_hash: None,
            jwks: None,
            jwks_uri: None,
            redirect_uris: vec!["https://rp.example/cb".into()],
            post_logout_uris: vec![],
            first_party: true,
            fapi2: false,
            id_token_alg: crate::oidc::IdTokenAlg::Es256,
            revoked: false,
        }
    }

    fn good() -> RawAuthRequest {
        RawAuthRequest {
            client_id: Some("c1".into()),
            response_type: Some("code".into()),
            redirect_uri: Some("https://rp.example/cb".into()),
            scope: Some("openid email bogus".into()),
            state: Some("s".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_request_is_kept_with_known_scopes_only() {
        let r = good().check(&client()).expect("ok");
        assert_eq!(r.scope, "openid email");
        assert!(r.has_scope("email"));
    }

    #[test]
    fn refusals() {
        let c = client();
        let mut r = good();
        r.redirect_uri = Some("https://evil.example/cb".into());
        assert!(!r.check(&c).expect_err("unregistered").redirect);
        let mut r = good();
        r.code_challenge_method = Some("plain".into());
        assert!(r.check(&c).expect_err("plain").redirect);
        let mut r = good();
        r.code_challenge_method = None;
        assert!(r.check(&c).is_err());
        let mut r = good();
        r.code_challenge = None;
        assert!(r.check(&c).is_err());
        let mut r = good();
        r.response_type = Some("token".into());
        assert_eq!(
            r.check(&c).expect_err("token").error.code,
            "unsupported_response_type"
        );
        let mut r = good();
        r.scope = Some("email".into());
        assert_eq!(
            r.check(&c).expect_err("no openid").error.code,
            "invalid_scope"
        );
    }
}
