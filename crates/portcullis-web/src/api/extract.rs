//! API extractors: JSON bodies whose errors never echo values back, and the bearer session.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use portcullis_core::service::SessionContext;
use portcullis_core::ServiceError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// A JSON body. A syntax error, a wrong type or a missing field is a 400 whose message names
/// the problem but never repeats a value (which could be a card number or a password).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let ct = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                ct == "application/json"
                    || (ct.starts_with("application/") && ct.ends_with("+json"))
            });
        if !json_type {
            return Err(ApiError::bad_request(
                "Send the body as JSON with Content-Type: application/json.",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::bad_request("The request body could not be read."))?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::bad_request(describe(&e)))
    }
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
            if first.starts_with("missing field") || first.starts_with("unknown field") {
                format!("{}.", first.replace('`', "'"))
            } else {
                "A field has the wrong type: check the body against the API document.".to_owned()
            }
        }
    }
}

/// The session named by `Authorization: Bearer …`.
pub struct Bearer(pub SessionContext);

impl FromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .unwrap_or("");
        state
            .app
            .authenticate(token)
            .await
            .map(Bearer)
            .map_err(|e| ApiError::from_service(e, &state.app.policies().support_phone))
    }
}

/// Maps a service error with the configured support number.
pub fn service_error(state: &AppState, e: ServiceError) -> ApiError {
    ApiError::from_service(e, &state.app.policies().support_phone)
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
        let e = serde_json::from_str::<Body>(r#"{"number": "1"#).unwrap_err();
        assert_eq!(describe(&e), "The request body is not valid JSON.");
    }
}
