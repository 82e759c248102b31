//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is alive.
async fn healthz() -> &'static str {
    "ok\n"
}

/// How long the database gets to answer a readiness check.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready: not shutting down, the database answers (within 2 s), and the last status probe's
/// write went through (a full disk answers pings but takes no writes).
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state
        .load
        .draining
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    match tokio::time::timeout(READY_TIMEOUT, state.app.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness probe failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n");
        }
        Err(_) => {
            tracing::warn!("readiness probe: the database did not answer in time");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n");
        }
    }
    if state.status.snapshot().writes_failing {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "database takes no writes\n",
        );
    }
    (StatusCode::OK, "ready\n")
}
