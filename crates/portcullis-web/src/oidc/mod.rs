//! The OpenID Connect provider's HTTP surface (issue 15): discovery, JWKS, PAR, the
//! authorization endpoint (whose login is the sign-in page itself), token, userinfo,
//! revocation and introspection. Parsing and answers only: the rules are in
//! `portcullis_core::oidc` and the use cases in `portcullis_core::service::oidc`.

mod endpoints;
mod parse;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use portcullis_core::oidc::OidcError;

use crate::AppState;

pub(crate) use endpoints::resume_with;
pub use endpoints::{login_redirect, RETURN_COOKIE};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(endpoints::discovery),
        )
        .route("/oidc/jwks", get(endpoints::jwks))
        .route("/oidc/par", post(endpoints::par))
        .route("/oidc/authorize", get(endpoints::authorize))
        .route("/oidc/resume", get(endpoints::resume))
        .route("/oidc/token", post(endpoints::token))
        .route(
            "/oidc/userinfo",
            get(endpoints::userinfo).post(endpoints::userinfo),
        )
        .route("/oidc/revoke", post(endpoints::revoke))
        .route("/oidc/introspect", post(endpoints::introspect))
        .route(
            "/oidc/logout",
            get(endpoints::end_session).post(endpoints::end_session),
        )
        .route(
            "/oidc/logout/confirm",
            post(crate::pages::oidc::logout_confirm),
        )
        .route("/oidc/consent", post(crate::pages::oidc::consent_submit))
}

/// A protocol error as JSON (RFC 6749 §5.2), never cached; 401s say how to authenticate.
pub(crate) struct ErrorAnswer(pub OidcError);

impl IntoResponse for ErrorAnswer {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::json!({"error": e.code, "error_description": e.description});
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if e.code == "invalid_client" {
                "Basic realm=\"portcullis\"".to_owned()
            } else {
                format!("DPoP algs=\"ES256\", error=\"{}\"", e.code)
            };
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}

/// A JSON answer that must not be cached (tokens, introspection, userinfo).
pub(crate) fn no_store(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
