//! Maintenance mode across nodes: every page and API call answers 503 with `Retry-After`
//! while the database's maintenance row is on — except health, metrics, the status page and
//! its JSON, static files and the admin API (so operators can still see and act).
//!
//! Each node reads the row at most every [`REFRESH_SECS`] (by the application's clock) and
//! keeps it in memory, so a busy node adds one small query every two seconds, not one per
//! request, and every node follows an operator's switch within [`REFRESH_SECS`]. When the row cannot be read the node keeps serving
//! (the last known answer, or off): a database outage is the status page's business.

use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::MaintenanceRow;

use crate::error::ApiError;
use crate::pages::{render, Chrome};
use crate::AppState;

/// How long (seconds) a node trusts its copy of the maintenance row.
pub const REFRESH_SECS: i64 = 2;

/// Paths that answer during maintenance (prefix matches end at a `/`).
const EXEMPT: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/status",
    "/api/v1/status",
];
const EXEMPT_PREFIXES: [&str; 2] = ["/static/", "/api/v1/admin/"];

/// This node's copy of the maintenance row.
#[derive(Clone, Debug, Default)]
pub struct MaintenanceCache(Arc<Mutex<Option<Cached>>>);

/// When the row was read, and what it held.
type Cached = (UnixTime, Option<MaintenanceRow>);

impl MaintenanceCache {
    /// Forgets the copy (the next request reads the row again).
    pub fn invalidate(&self) {
        if let Ok(mut g) = self.0.lock() {
            *g = None;
        }
    }

    async fn current(&self, state: &AppState) -> Option<MaintenanceRow> {
        let cached = match self.0.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let now = state.app.clock().now();
        if let Some((at, row)) = &cached {
            if now.0 - at.0 < REFRESH_SECS {
                return row.clone();
            }
        }
        let row = match state.app.maintenance_now().await {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, "maintenance row not readable; keeping the last answer");
                cached.and_then(|(_, r)| r)
            }
        };
        if let Ok(mut g) = self.0.lock() {
            *g = Some((now, row.clone()));
        }
        row
    }
}

fn exempt(path: &str) -> bool {
    EXEMPT.contains(&path) || EXEMPT_PREFIXES.iter().any(|p| path.starts_with(p))
}

#[derive(Template)]
#[template(path = "maintenance.html")]
struct MaintenancePage {
    chrome: Chrome,
    message: String,
    until: String,
}

/// The middleware, layered in [`crate::router`].
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let Some(row) = state.maintenance.current(&state).await else {
        return next.run(request).await;
    };
    let now = state.app.clock().now();
    if row.until <= now {
        return next.run(request).await;
    }
    let retry_after = (row.until.0 - now.0).max(1);
    let until = row.until.to_rfc3339();
    if request.uri().path().starts_with("/api/") {
        // The API answers through its one error type, like every other refusal.
        let retry = u64::try_from(retry_after).unwrap_or(1);
        return ApiError::maintenance(&row.message, &until, retry).into_response();
    }
    let page = MaintenancePage {
        chrome: crate::pages::chrome_without_form(&state),
        message: row.message,
        until,
    };
    let mut response = render(StatusCode::SERVICE_UNAVAILABLE, &page);
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::exempt;

    #[test]
    fn health_status_static_and_admin_stay_open() {
        for p in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/status",
            "/api/v1/status",
            "/static/style.css",
            "/api/v1/admin/status/incidents",
        ] {
            assert!(exempt(p), "{p}");
        }
        for p in [
            "/",
            "/register",
            "/api/v1/sessions",
            "/statusx",
            "/api/v1/adminx",
            "/account",
        ] {
            assert!(!exempt(p), "{p}");
        }
    }
}
