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

/// Marks a request that came over a TLS connection (the serve loop sets it).
#[derive(Clone, Copy, Debug)]
pub struct OverTls;

/// The HSTS header (ASVS 3.4.1): a year, subdomains included.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// `Strict-Transport-Security` on answers that travel over TLS only (RFC 6797 §7.2: never
/// over plain HTTP): the connection is TLS, or a trusted proxy (`limits.trusted_proxies`)
/// that terminated TLS says so with `X-Forwarded-Proto: https`.
pub async fn hsts(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let secure = request.extensions().get::<OverTls>().is_some()
        || forwarded_https(&request, &state.web.addressing.trusted_proxies);
    let mut response = next.run(request).await;
    if secure {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}

/// Whether the socket peer is a trusted proxy whose `X-Forwarded-Proto` (its own, the last
/// value) is `https`.
fn forwarded_https(request: &Request, trusted: &[ipnet::IpNet]) -> bool {
    let from_proxy = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|c| {
            let peer = crate::client::normalise(c.0.ip());
            trusted.iter().any(|net| net.contains(&peer))
        });
    from_proxy
        && request
            .headers()
            .get_all("x-forwarded-proto")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
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
