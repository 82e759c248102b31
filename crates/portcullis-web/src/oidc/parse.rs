//! Reading OAuth requests: form and query parameters (each at most once, RFC 6749 §3.1),
//! client credentials (HTTP Basic or a client assertion) and the `DPoP` header.

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_core::oidc::{OidcError, MAX_PARAM};
use portcullis_core::service::oidc::{ClientCredentials, DpopProof};
use serde::de::DeserializeOwned;

/// Parameters by name; a repeated or overlong parameter is refused.
pub(crate) struct Params(pub BTreeMap<String, String>);

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self, OidcError> {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            if v.len() > 8 * MAX_PARAM {
                return Err(OidcError::invalid_request("a parameter is too long"));
            }
            if v.is_empty() {
                continue;
            }
            if map.insert(k, v).is_some() {
                return Err(OidcError::invalid_request("a parameter is repeated"));
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The parameters as a struct of optional strings.
    pub fn to<T: DeserializeOwned>(&self) -> Result<T, OidcError> {
        let value = serde_json::to_value(&self.0)
            .map_err(|_| OidcError::invalid_request("unreadable parameters"))?;
        serde_json::from_value(value)
            .map_err(|_| OidcError::invalid_request("unreadable parameters"))
    }
}

/// Decodes one `application/x-www-form-urlencoded` name or value.
pub(crate) fn form_decode(s: &str) -> Option<String> {
    percent_decode(s)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The client's credentials: HTTP Basic, or the form's client assertion, or only its
/// `client_id`. More than one way at once is refused (RFC 6749 §2.3).
pub(crate) fn credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<ClientCredentials, OidcError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let assertion = params.get("client_assertion");
    match (basic, assertion) {
        (Some(_), Some(_)) => Err(OidcError::invalid_request(
            "use one client authentication method",
        )),
        (Some(b64), None) => {
            let decoded = STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(OidcError::invalid_client())?;
            let (id, secret) = decoded.split_once(':').ok_or(OidcError::invalid_client())?;
            let client_id = percent_decode(id).ok_or(OidcError::invalid_client())?;
            if params.get("client_id").is_some_and(|f| f != client_id) {
                return Err(OidcError::invalid_client());
            }
            Ok(ClientCredentials::Basic {
                client_id,
                secret: percent_decode(secret).ok_or(OidcError::invalid_client())?,
            })
        }
        (None, Some(assertion)) => Ok(ClientCredentials::Assertion {
            client_id: params.get("client_id").map(str::to_owned),
            assertion_type: params.get("client_assertion_type").map(str::to_owned),
            assertion: assertion.to_owned(),
        }),
        (None, None) => Ok(match params.get("client_id") {
            Some(id) => ClientCredentials::Public {
                client_id: id.to_owned(),
            },
            None => ClientCredentials::Nothing,
        }),
    }
}

/// The `DPoP` header (at most one) bound to `method` and the endpoint's URL.
pub(crate) fn dpop(
    headers: &HeaderMap,
    method: &str,
    url: String,
) -> Result<Option<DpopProof>, OidcError> {
    let mut values = headers.get_all("dpop").iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(OidcError::invalid_dpop("more than one DPoP header"));
    }
    Ok(match first {
        None => None,
        Some(v) => Some(DpopProof {
            jwt: v
                .to_str()
                .map_err(|_| OidcError::invalid_dpop("unreadable DPoP header"))?
                .to_owned(),
            method: method.to_owned(),
            url,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let pairs = vec![
            ("a".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned()),
        ];
        assert!(Params::new(pairs).is_err());
    }
}
