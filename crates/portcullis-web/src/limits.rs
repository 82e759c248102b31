//! What one request may cost this node: how many run at once, how large and how slow a body
//! may be, and how long an answer may take. The serve loop in the binary bounds connections;
//! this middleware bounds requests, so the same rules hold on the pages and the API, and a
//! refusal has the page's or the API's own form.
//!
//! ```text
//!   request ─► in flight < cap? ──no──► 503 + Retry-After
//!                 │ yes
//!                 ▼
//!   Content-Length > limit? ──yes──► 413
//!                 │ no
//!                 ▼
//!   body read at ≥ min rate (after a grace) ──too slow──► 408, connection closed
//!                 │       └──────────── larger than limit ──► 413
//!                 ▼
//!   handler within the deadline ──late──► 503 + Retry-After (the work is dropped)
//! ```
//!
//! The body is read before the handler runs, so the deadline measures the service's work
//! and never a client's upload, and a slow upload never holds a database connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::AppState;

/// The request limits (`server.*` in the configuration).
#[derive(Clone, Debug)]
pub struct RequestLimits {
    /// The largest request body, pages and API alike.
    pub body_limit: usize,
    /// How long a body may take before the minimum rate applies.
    pub body_grace: Duration,
    /// The slowest a body may arrive after the grace, in bytes per second.
    pub body_min_bytes_per_sec: u64,
    /// The longest a handler may take.
    pub deadline: Duration,
    /// Requests handled at once by this node (health checks are not counted).
    pub max_in_flight: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            body_grace: Duration::from_secs(10),
            body_min_bytes_per_sec: 1024,
            deadline: Duration::from_secs(10),
            max_in_flight: 256,
        }
    }
}

/// This node's load: requests in flight and what the limits refused, plus the connection
/// counts the serve loop keeps. Shared by `/metrics`, the status prober and the serve loop.
#[derive(Debug)]
pub struct Load {
    slots: Semaphore,
    max_in_flight: usize,
    in_flight: AtomicUsize,
    /// Open connections on the public listener (kept by the serve loop).
    pub open_connections: AtomicUsize,
    /// The connection cap in force (kept by the serve loop; 0 until it starts).
    pub connection_cap: AtomicUsize,
    /// Connections answered 503 because the cap was reached.
    pub refused_connections: AtomicU64,
    /// Connections closed for a slow or missing header, or for being idle.
    pub timed_out_connections: AtomicU64,
    /// Set when shutdown begins: `/readyz` answers 503 so balancers stop sending.
    pub draining: std::sync::atomic::AtomicBool,
    refused_requests: AtomicU64,
    deadline_exceeded: AtomicU64,
    slow_bodies: AtomicU64,
    too_large: AtomicU64,
}

/// A reading of [`Load`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadSnapshot {
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub open_connections: usize,
    pub connection_cap: usize,
    pub refused_connections: u64,
    pub timed_out_connections: u64,
    pub refused_requests: u64,
    pub deadline_exceeded: u64,
    pub slow_bodies: u64,
    pub too_large: u64,
}

impl Load {
    pub fn new(max_in_flight: usize) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Self {
            slots: Semaphore::new(max_in_flight),
            max_in_flight,
            in_flight: AtomicUsize::new(0),
            open_connections: AtomicUsize::new(0),
            connection_cap: AtomicUsize::new(0),
            refused_connections: AtomicU64::new(0),
            timed_out_connections: AtomicU64::new(0),
            draining: std::sync::atomic::AtomicBool::new(false),
            refused_requests: AtomicU64::new(0),
            deadline_exceeded: AtomicU64::new(0),
            slow_bodies: AtomicU64::new(0),
            too_large: AtomicU64::new(0),
        }
    }

    pub fn snapshot(&self) -> LoadSnapshot {
        LoadSnapshot {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight,
            open_connections: self.open_connections.load(Ordering::Relaxed),
            connection_cap: self.connection_cap.load(Ordering::Relaxed),
            refused_connections: self.refused_connections.load(Ordering::Relaxed),
            timed_out_connections: self.timed_out_connections.load(Ordering::Relaxed),
            refused_requests: self.refused_requests.load(Ordering::Relaxed),
            deadline_exceeded: self.deadline_exceeded.load(Ordering::Relaxed),
            slow_bodies: self.slow_bodies.load(Ordering::Relaxed),
            too_large: self.too_large.load(Ordering::Relaxed),
        }
    }
}

impl Default for Load {
    fn default() -> Self {
        Self::new(RequestLimits::default().max_in_flight)
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a Load);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn is_health(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The middleware: in-flight cap, body size and rate, and the deadline.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if is_health(&path) {
        return next.run(request).await;
    }
    let load = &state.load;
    let limits = &state.web.requests;
    let Ok(_slot) = load.slots.try_acquire() else {
        load.refused_requests.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(path = %path, "refused: too many requests in flight");
        return busy(&state, &path);
    };
    load.in_flight.fetch_add(1, Ordering::Relaxed);
    let _counted = InFlight(load);

    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Registry pushes carry up to 10,000 records: their route reads a larger body.
    let body_limit = if path == crate::api::registry::PATH {
        limits.body_limit.max(crate::api::registry::BODY_LIMIT)
    } else {
        limits.body_limit
    };
    if declared.is_some_and(|n| n > body_limit as u64) {
        load.too_large.fetch_add(1, Ordering::Relaxed);
        return too_large(&state, &path);
    }
    let (parts, body) = request.into_parts();
    let timed = TimedBody::new(body, limits.body_grace, limits.body_min_bytes_per_sec);
    let bytes = match axum::body::to_bytes(Body::new(timed), body_limit).await {
        Ok(bytes) => bytes,
        Err(e) => {
            if find_source::<BodyTooSlow>(&e).is_some() {
                load.slow_bodies.fetch_add(1, Ordering::Relaxed);
                tracing::info!(path = %path, "request body too slow: connection closed");
                return too_slow(&state, &path);
            }
            if find_source::<http_body_util::LengthLimitError>(&e).is_some() {
                load.too_large.fetch_add(1, Ordering::Relaxed);
                return too_large(&state, &path);
            }
            // The client went away or sent a broken body: nobody is left to read an answer.
            tracing::info!(path = %path, error = %e, "request body could not be read");
            let mut response = StatusCode::BAD_REQUEST.into_response();
            close_connection(&mut response);
            return response;
        }
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    match tokio::time::timeout(limits.deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            load.deadline_exceeded.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                path = %path,
                deadline_ms = u64::try_from(limits.deadline.as_millis()).unwrap_or(u64::MAX),
                "request deadline passed: answered 503"
            );
            busy(&state, &path)
        }
    }
}

fn find_source<E: std::error::Error + 'static>(e: &axum::Error) -> Option<&E> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        source = err.source();
    }
    None
}

fn close_connection(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// 503 with `Retry-After`, in the page's or the API's form.
fn busy(state: &AppState, path: &str) -> Response {
    if is_api(path) {
        ApiError::overloaded().into_response()
    } else {
        crate::pages::unavailable_page(state)
    }
}

/// 413, in the page's or the API's form. The body is not read on, so the connection closes.
fn too_large(state: &AppState, path: &str) -> Response {
    let mut response = if is_api(path) {
        ApiError::too_large().into_response()
    } else {
        crate::pages::too_large_page(state)
    };
    close_connection(&mut response);
    response
}

/// 408, in the page's or the API's form, and the connection is closed.
fn too_slow(state: &AppState, path: &str) -> Response {
    let mut response = if is_api(path) {
        ApiError::request_timeout().into_response()
    } else {
        crate::pages::too_slow_page(state)
    };
    close_connection(&mut response);
    response
}

/// A body that arrived too slowly.
#[derive(Debug)]
pub struct BodyTooSlow;

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body arrived too slowly")
    }
}

impl std::error::Error for BodyTooSlow {}

/// A body that must keep arriving: by `started + grace + received / min_rate`, or it ends
/// with [`BodyTooSlow`]. Timed with the runtime's monotonic clock.
pub struct TimedBody {
    inner: Body,
    started: Instant,
    grace: Duration,
    min_rate: u64,
    received: u64,
    sleep: Pin<Box<Sleep>>,
}

impl TimedBody {
    pub fn new(inner: Body, grace: Duration, min_bytes_per_sec: u64) -> Self {
        let started = Instant::now();
        Self {
            inner,
            started,
            grace,
            min_rate: min_bytes_per_sec.max(1),
            received: 0,
            sleep: Box::pin(tokio::time::sleep_until(started + grace)),
        }
    }

    /// When the next piece must have arrived.
    pub fn deadline(&self) -> Instant {
        // Whole seconds plus the fraction, without floats: received / rate seconds.
        let secs = self.received / self.min_rate;
        let rest = self.received % self.min_rate;
        let nanos = rest.saturating_mul(1_000_000_000) / self.min_rate;
        self.started + self.grace + Duration::from_secs(secs) + Duration::from_nanos(nanos)
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                    let deadline = this.deadline();
                    this.sleep.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow)))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A shared [`Load`], as [`AppState`] holds it.
pub type SharedLoad = Arc<Load>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_grows_with_what_arrived() {
        let body = TimedBody::new(Body::empty(), Duration::from_secs(10), 1024);
        let start = body.started;
        assert_eq!(body.deadline(), start + Duration::from_secs(10));
        let mut body = body;
        body.received = 2048 + 512;
        assert_eq!(
            body.deadline(),
            start + Duration::from_secs(12) + Duration::from_millis(500)
        );
    }

    #[tokio::test]
    async fn a_stalled_body_ends_with_too_slow() {
        let (tx, body) = {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, axum::Error>>(4);
            let stream = futures_stream(rx);
            (tx, Body::new(stream))
        };
        tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))))
            .await
            .unwrap();
        let timed = TimedBody::new(body, Duration::from_millis(200), 1024);
        let err = axum::body::to_bytes(Body::new(timed), 1 << 20)
            .await
            .unwrap_err();
        assert!(find_source::<BodyTooSlow>(&err).is_some(), "{err}");
        drop(tx);
    }

    /// A body fed by a channel (what a slow client looks like from here).
    fn futures_stream(
        rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, axum::Error>>,
    ) -> impl HttpBody<Data = Bytes, Error = axum::Error> + Send + 'static {
        struct Chan(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, axum::Error>>);
        impl HttpBody for Chan {
            type Data = Bytes;
            type Error = axum::Error;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
                self.0.poll_recv(cx)
            }
        }
        Chan(rx)
    }
}
