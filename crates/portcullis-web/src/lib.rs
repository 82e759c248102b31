//! HTTP for Portcullis: the JSON API under `/api/v1`, the server-rendered pages, and the
//! middleware around both (request ids and tracing, security headers).
//!
//! Handlers are thin: they parse the request, call one use case on
//! [`portcullis_core::service::Portcullis`], and map the answer. Every error reaches HTTP
//! through one mapping, in [`error`].

pub mod api;
pub mod client;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod format;
pub mod middleware;
pub mod pages;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use portcullis_core::service::Portcullis;
use portcullis_crypto::KeyedHasher;

/// The demo outbox, as the web layer sees it (the notify crate implements it).
pub trait DemoOutbox: Send + Sync {
    fn messages(&self) -> Pin<Box<dyn Future<Output = Vec<serde_json::Value>> + Send + '_>>;
}

/// Settings the web layer needs beyond the domain's policies.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// `Secure` and `__Host-` cookies (on by default; see the configuration reference).
    pub secure_cookies: bool,
    /// Demo mode: shows the outbox page and the demo banner.
    pub demo: bool,
    /// Client addresses whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            secure_cookies: true,
            demo: false,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub app: Portcullis,
    pub web: Arc<WebConfig>,
    /// Keys the CSRF tokens.
    pub csrf: KeyedHasher,
    pub outbox: Option<Arc<dyn DemoOutbox>>,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api::router();
    let openapi = Arc::new(openapi);
    Router::new()
        .nest("/api/v1", api)
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = openapi.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .merge(pages::router())
        .merge(api::health::router())
        .with_state(state)
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(axum::middleware::from_fn(middleware::request_span))
}
