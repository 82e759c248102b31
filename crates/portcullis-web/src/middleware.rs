//! Middleware: a tracing span per request with a request id, and the security headers every
//! response carries.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::AppState;

/// The Content-Security-Policy: no inline script or style, nothing from elsewhere.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'";

pub async fn security_headers(request: Request, next: Next) -> Response {
    let is_static = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // HSTS (ASVS 3.4.1): browsers ignore it over plain HTTP, so it is sent always; behind
    // the TLS-terminating proxy it pins the site to HTTPS for a year.
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if is_static {
                "public, max-age=3600"
            } else {
                "no-store"
            }),
        );
    }
    response
}

/// The path as logged: the one path that carries a token (the "This was not me" link from a
/// message) has it replaced, so no log holds a working link.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/not-me/") {
        "/not-me/{token}"
    } else {
        path
    }
}

/// What an answer may need from the configuration that an error cannot carry (the support
/// number a lock's detail names): set around the request, see [`crate::error::SUPPORT_PHONE`].
pub async fn request_context(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let phone: std::sync::Arc<str> = state.app.policies().support_phone.as_str().into();
    crate::error::SUPPORT_PHONE
        .scope(phone, next.run(request))
        .await
}

pub async fn request_span(request: Request, next: Next) -> Response {
    let id = hex_id();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %loggable_path(request.uri().path()),
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, elapsed_ms, "request finished"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

fn hex_id() -> String {
    let bytes = portcullis_crypto::token::random_bytes::<8>();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod log_tests {
    #[test]
    fn the_not_me_token_is_not_logged() {
        assert_eq!(super::loggable_path("/not-me/abcDEF123"), "/not-me/{token}");
        assert_eq!(super::loggable_path("/security"), "/security");
    }
}
