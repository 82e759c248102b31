//! API extractors: JSON bodies whose errors never echo values back, and the bearer session.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use portcullis_core::service::SessionContext;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// A JSON body. A syntax error, a wrong type or a missing field is a 400 whose message names
/// the problem but never repeats a value (which could be a card number or a password).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !is_json_type(content_type.as_deref()) {
            return Err(ApiError::bad_request(
                "Send the body as JSON with Content-Type: application/json.",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::bad_request("The request body could not be read."))?;
        decode_json(&bytes)
            .map(ApiJson)
            .map_err(ApiError::bad_request)
    }
}

/// Whether a `Content-Type` names JSON (`application/json` or `application/*+json`).
pub fn is_json_type(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let ct = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
    })
}

/// A JSON body decoded as `T`, or the 400's detail: it names the problem without echoing a
/// value. Pure, so the fuzz targets call it as the extractor does.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| describe(&e))
}

/// The token of an `Authorization: Bearer …` header value ("" when there is none).
pub fn bearer_token(authorization: Option<&str>) -> &str {
    authorization
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("")
}

fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            "The request body is not valid JSON.".to_owned()
        }
        Category::Data => {
            let msg = e.to_string();
            let first = msg.split(" at line ").next().unwrap_or("");
            if first.starts_with("unknown field") {
                // The key is the client's: a card number sent as a key must not come back
                // (found by the api_json fuzz target). Only word-like names are echoed.
                let name = first.split('`').nth(1).filter(|n| {
                    n.len() <= 40
                        && n.chars().filter(char::is_ascii_digit).count() <= 2
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
                match name {
                    Some(n) => format!("unknown field '{n}'."),
                    None => "An unknown field was sent: check the body against the API document."
                        .to_owned(),
                }
            } else if first.starts_with("missing field") {
                format!("{}.", first.replace('`', "'"))
            } else {
                "A field has the wrong type: check the body against the API document.".to_owned()
            }
        }
    }
}

/// The session named by `Authorization: Bearer …`.
pub struct Bearer(pub SessionContext);

/// The token of `Authorization: Bearer …` (empty when there is none), not yet looked up:
/// for a handler that reads the session together with what it answers.
pub struct BearerToken(pub secrecy::SecretString);

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(request_bearer(parts).into()))
    }
}

fn request_bearer(parts: &Parts) -> &str {
    bearer_token(
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

impl FromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state
            .app
            .authenticate(request_bearer(parts))
            .await
            .map(Bearer)
            .map_err(ApiError::from)
    }
}

/// The request's `Idempotency-Key` header, if any: 1 to 200 visible ASCII characters
/// (the registry push and registration completion take one).
pub(crate) fn idempotency_key(
    headers: &axum::http::HeaderMap,
) -> Result<Option<String>, &'static str> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default().trim();
    if key.is_empty()
        || key.len() > portcullis_core::service::IDEMPOTENCY_KEY_MAX_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err("Idempotency-Key must be 1 to 200 visible ASCII characters.");
    }
    Ok(Some(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        number: String,
    }

    #[test]
    fn errors_never_echo_values() {
        let e = serde_json::from_str::<Body>(r#"{"number": 378282246310005}"#).unwrap_err();
        let msg = describe(&e);
        assert!(!msg.contains("378282246310005"), "{msg}");
        let e = serde_json::from_str::<Body>(r#"{}"#).unwrap_err();
        assert_eq!(describe(&e), "missing field 'number'.");
        // A key is not echoed when it could be a card number (fuzz target api_json).
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Strict {
            number: String,
        }
        let e = serde_json::from_str::<Strict>(r#"{"378282246310005": 1}"#).unwrap_err();
        assert!(
            !describe(&e).contains("378282246310005"),
            "{}",
            describe(&e)
        );
        let e = serde_json::from_str::<Strict>(r#"{"nmber": 1}"#).unwrap_err();
        assert_eq!(describe(&e), "unknown field 'nmber'.");
        let e = serde_json::from_str::<Body>(r#"{"number": "1"#).unwrap_err();
        assert_eq!(describe(&e), "The request body is not valid JSON.");
    }
}
