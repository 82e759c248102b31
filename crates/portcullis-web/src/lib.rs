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
pub mod limits;
pub mod maintenance;
pub mod metrics;
pub mod middleware;
pub mod oidc;
pub mod pace;
pub mod pages;
pub mod text;
pub mod theme;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use portcullis_core::service::Portcullis;

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
    /// Whose `X-Forwarded-For` is believed (CIDR ranges), and the IPv6 prefix limits
    /// count on.
    pub addressing: client::ClientAddressing,
    /// How often the status prober runs (`status.probe_secs`).
    pub status_probe: std::time::Duration,
    /// The issuer's colours, served as `/static/theme.css`.
    pub theme: theme::Theme,
    /// What one request may cost (`server.*`).
    pub requests: limits::RequestLimits,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            secure_cookies: true,
            demo: false,
            addressing: client::ClientAddressing::default(),
            status_probe: std::time::Duration::from_secs(15),
            theme: theme::Theme::default(),
            requests: limits::RequestLimits::default(),
        }
    }
}

/// What every handler and middleware shares. Cloned for each extractor and each layer of
/// every request, so it is one `Arc`: one reference count moved per clone, where a struct
/// of the parts below moved about twenty-five (the flows of figure 11 spent 2.7 % of the
/// machine in those clones and drops, shared counters bouncing between the cores).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppParts {
    pub app: Portcullis,
    pub web: Arc<WebConfig>,
    /// Keys the CSRF tokens: `csrf.key`'s ring, followed when it is rotated.
    pub csrf: portcullis_crypto::LiveRing,
    pub outbox: Option<Arc<dyn DemoOutbox>>,
    /// This node's latest view of each part, written by the background prober.
    pub status: portcullis_core::service::status::StatusBoard,
    /// This node's counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// This node's copy of the maintenance row.
    pub maintenance: maintenance::MaintenanceCache,
    /// This node's delivery counters (the delivery worker's), for `/metrics` and the prober.
    pub delivery: Option<portcullis_core::service::status::DeliverySource>,
    /// This node's load: requests in flight, connections, what the limits refused.
    pub load: limits::SharedLoad,
}

/// The public HTTP surface: pages, API, health. `/metrics` is not here: it names which
/// accounts and addresses are real, so it is served on the management listener only.
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
        .merge(oidc::router())
        .merge(pages::router())
        .merge(api::health::router())
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(pace::recovery_floor))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            maintenance::guard,
        ))
        // `limits::guard` enforces `server.body_limit_bytes` for every route; axum's own
        // default (2 MB, per extractor) must not undercut a larger setting.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::request_context,
        ))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::hsts,
        ))
        .layer(axum::middleware::from_fn(middleware::request_span))
}

/// The management surface (`management_listen`): `/metrics`, `/healthz` and `/readyz`. On its
/// own listener, so health is answered even when the public connection cap is reached, and
/// metrics never reach the public.
pub fn management_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::metrics))
        .merge(api::health::router())
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::hsts,
        ))
}
