//! `/metrics` in the Prometheus text format (written by hand: a few counters and one
//! histogram family do not need a registry), and the middleware that counts what the web
//! layer knows: sign-in answers by outcome, and requests by route (RED: how many, how many
//! failed, how long they took). Locks and one-time codes are counted by the use cases as
//! they happen (`portcullis_core::counters`). The alert rules and the dashboard in
//! `deploy/` are written against these names: rename one and `scripts/check-deploy` fails.
//!
//! The route label is axum's [`MatchedPath`] (the route template, e.g.
//! `/api/v1/admin/accounts/{user_id}`), never the raw path, so the label set stays small
//! and no User ID or token ever becomes a label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Sign-in outcomes, in label order.
pub const SIGN_IN_OUTCOMES: [&str; 5] = ["success", "failed", "locked", "throttled", "unavailable"];

/// Upper bounds of the latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status classes, in label order (`1xx` … `5xx`).
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
    /// Answers by status class (index 0 is 1xx).
    classes: [u64; STATUS_CLASSES.len()],
}

/// The database as the store reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatabaseReading {
    /// The pool's connections: open, idle, and the most it may open.
    pub open: u32,
    pub idle: u32,
    pub max: u32,
    /// The token endpoint's uses of codes and refresh tokens, by how they were written: one
    /// statement list (SQLite), or a unit of work.
    pub grant_uses_one_list: u64,
    pub grant_uses_unit_of_work: u64,
}

/// Where `/metrics` reads [`DatabaseReading`] from.
pub type PoolSource = Box<dyn Fn() -> DatabaseReading + Send + Sync>;

/// The served TLS certificate and its reloads, as the binary reports them (`[tls]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsReading {
    /// When the served certificate expires (Unix seconds; 0 when it could not be read).
    pub not_after_unix: i64,
    /// Changes of the files that were loaded.
    pub reloads: u64,
    /// Changes of the files that did not load (the previous pair stayed in service).
    pub reload_failures: u64,
}

/// Where `/metrics` reads [`TlsReading`] from.
pub type TlsSource = Box<dyn Fn() -> TlsReading + Send + Sync>;

/// This node's counters; held in [`AppState`], shared by clones of it.
#[derive(Default)]
pub struct Metrics {
    sign_ins: [AtomicU64; 5],
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    /// The database pool's use (set once by the binary, which owns the store).
    pool: std::sync::OnceLock<PoolSource>,
    /// The TLS certificate (set by the binary when the listeners speak HTTPS).
    tls: std::sync::OnceLock<TlsSource>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("sign_ins", &self.sign_ins)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Counts one sign-in answer; `outcome` is one of [`SIGN_IN_OUTCOMES`].
    pub fn sign_in(&self, outcome: &str) {
        if let Some(i) = SIGN_IN_OUTCOMES.iter().position(|o| *o == outcome) {
            if let Some(c) = self.sign_ins.get(i) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn sign_ins(&self, outcome: &str) -> u64 {
        SIGN_IN_OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .and_then(|i| self.sign_ins.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Where `/metrics` reads the database pool's use from (the first call wins).
    pub fn set_database_pool(&self, source: PoolSource) {
        let _ = self.pool.set(source);
    }

    /// Where `/metrics` reads the TLS certificate's state from (the first call wins).
    pub fn set_tls(&self, source: TlsSource) {
        let _ = self.tls.set(source);
    }

    fn observe(&self, method: &str, route: &str, status: StatusCode, secs: f64) {
        let mut map = match self.latency.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let h = map
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        for (slot, bound) in h.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if secs <= bound {
                *slot += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
        let class = usize::from(status.as_u16() / 100).saturating_sub(1);
        if let Some(n) = h.classes.get_mut(class) {
            *n += 1;
        }
    }
}

/// What a sign-in answer's status means, for the two sign-in routes.
fn sign_in_outcome(method: &Method, route: &str, status: StatusCode) -> Option<&'static str> {
    let api = route == "/api/v1/sessions";
    let page = route == "/";
    if method != Method::POST || !(api || page) {
        return None;
    }
    match status {
        StatusCode::CREATED if api => Some("success"),
        StatusCode::SEE_OTHER if page => Some("success"),
        StatusCode::UNAUTHORIZED => Some("failed"),
        StatusCode::LOCKED => Some("locked"),
        StatusCode::TOO_MANY_REQUESTS => Some("throttled"),
        StatusCode::SERVICE_UNAVAILABLE => Some("unavailable"),
        _ => None,
    }
}

/// Times every request by route and counts sign-in answers.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let secs = started.elapsed().as_secs_f64();
    if let Some(outcome) = sign_in_outcome(&method, &route, response.status()) {
        state.metrics.sign_in(outcome);
    }
    state
        .metrics
        .observe(method.as_str(), &route, response.status(), secs);
    response
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let m = &state.metrics;

    family(
        &mut out,
        "portcullis_sign_ins_total",
        "counter",
        "Sign-in answers by outcome.",
    );
    for outcome in SIGN_IN_OUTCOMES {
        let _ = writeln!(
            out,
            "portcullis_sign_ins_total{{outcome=\"{outcome}\"}} {}",
            m.sign_ins(outcome)
        );
    }
    // Counted by the use cases when the event happens (not inferred from HTTP answers).
    let events = state.app.counters();
    family(
        &mut out,
        "portcullis_sign_in_locks_total",
        "counter",
        "Locks set after failed sign-ins: an account, or a known device's own allowance.",
    );
    let _ = writeln!(
        out,
        "portcullis_sign_in_locks_total{{scope=\"account\"}} {}",
        events.account_locks
    );
    let _ = writeln!(
        out,
        "portcullis_sign_in_locks_total{{scope=\"device\"}} {}",
        events.device_locks
    );
    family(
        &mut out,
        "portcullis_codes_sent_total",
        "counter",
        "One-time codes issued (committed with their message to the outbox), by channel.",
    );
    let _ = writeln!(
        out,
        "portcullis_codes_sent_total{{channel=\"email\"}} {}",
        events.codes_email
    );
    let _ = writeln!(
        out,
        "portcullis_codes_sent_total{{channel=\"sms\"}} {}",
        events.codes_sms
    );

    let d = state.delivery.as_ref().map(|f| f()).unwrap_or_default();
    family(
        &mut out,
        "portcullis_messages_sent_total",
        "counter",
        "Messages (codes and notices) delivered by this node, by channel.",
    );
    let _ = writeln!(
        out,
        "portcullis_messages_sent_total{{channel=\"email\"}} {}",
        d.sent_email
    );
    let _ = writeln!(
        out,
        "portcullis_messages_sent_total{{channel=\"sms\"}} {}",
        d.sent_sms
    );
    family(
        &mut out,
        "portcullis_messages_enqueued_total",
        "counter",
        "Messages queued through this node.",
    );
    let _ = writeln!(out, "portcullis_messages_enqueued_total {}", d.enqueued);
    family(
        &mut out,
        "portcullis_delivery_retries_total",
        "counter",
        "Delivery attempts that failed and were put back.",
    );
    let _ = writeln!(out, "portcullis_delivery_retries_total {}", d.retried);
    family(
        &mut out,
        "portcullis_delivery_failures_total",
        "counter",
        "Messages given up on.",
    );
    let _ = writeln!(out, "portcullis_delivery_failures_total {}", d.failed);

    let outbox = state.app.outbox_stats().await;
    let up = i32::from(outbox.is_ok());
    let stats = outbox.unwrap_or_default();
    family(
        &mut out,
        "portcullis_outbox_pending",
        "gauge",
        "Messages waiting in the outbox (all nodes).",
    );
    let _ = writeln!(out, "portcullis_outbox_pending {}", stats.pending);
    family(
        &mut out,
        "portcullis_delivery_provider_down",
        "gauge",
        "1 while a provider's circuit breaker is open (it failed repeatedly), by channel.",
    );
    for (channel, down) in [
        ("email", d.email_provider_down),
        ("sms", d.sms_provider_down),
    ] {
        let _ = writeln!(
            out,
            "portcullis_delivery_provider_down{{channel=\"{channel}\"}} {}",
            u8::from(down)
        );
    }
    let load = state.load.snapshot();
    for (name, kind, help, value) in [
        (
            "portcullis_connections_open",
            "gauge",
            "Open connections on the public listener.",
            load.open_connections as u64,
        ),
        (
            "portcullis_connection_cap",
            "gauge",
            "The public listener's connection cap in force (server.max_connections, fitted to the open-files limit).",
            load.connection_cap as u64,
        ),
        (
            "portcullis_connections_refused_total",
            "counter",
            "Connections answered 503 because the cap was reached.",
            load.refused_connections,
        ),
        (
            "portcullis_connections_timed_out_total",
            "counter",
            "Connections closed for a missing or slow request head.",
            load.timed_out_connections,
        ),
        (
            "portcullis_requests_in_flight",
            "gauge",
            "Requests being handled now.",
            load.in_flight as u64,
        ),
    ] {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        &mut out,
        "portcullis_requests_refused_total",
        "counter",
        "Requests refused by the limits: in_flight (503), deadline (503), too_large (413), too_slow (408).",
    );
    for (reason, value) in [
        ("in_flight", load.refused_requests),
        ("deadline", load.deadline_exceeded),
        ("too_large", load.too_large),
        ("too_slow", load.slow_bodies),
    ] {
        let _ = writeln!(
            out,
            "portcullis_requests_refused_total{{reason=\"{reason}\"}} {value}"
        );
    }
    family(
        &mut out,
        "portcullis_outbox_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest waiting message.",
    );
    let _ = writeln!(
        out,
        "portcullis_outbox_oldest_pending_age_seconds {}",
        stats.oldest_pending_age_secs
    );
    let webhooks = state.app.webhook_stats().await.unwrap_or_default();
    for (name, help, value) in [
        (
            "portcullis_webhook_deliveries_pending",
            "Webhook deliveries not yet accepted by their endpoint (all nodes).",
            webhooks.pending,
        ),
        (
            "portcullis_webhook_deliveries_failed",
            "Webhook deliveries given up after webhooks.give_up_after_secs (all nodes).",
            webhooks.failed,
        ),
        (
            "portcullis_webhook_oldest_pending_age_seconds",
            "Age of the oldest webhook delivery not yet accepted.",
            webhooks.oldest_pending_age_secs,
        ),
    ] {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        &mut out,
        "portcullis_database_up",
        "gauge",
        "Whether the last read of the outbox succeeded.",
    );
    let _ = writeln!(out, "portcullis_database_up {up}");

    let pool = state.app.hasher();
    family(
        &mut out,
        "portcullis_hash_queue_depth",
        "gauge",
        "Password hashes waiting for a worker.",
    );
    let _ = writeln!(out, "portcullis_hash_queue_depth {}", pool.queue_depth());
    family(
        &mut out,
        "portcullis_hash_queue_capacity",
        "gauge",
        "Waiting places in the hashing pool.",
    );
    let _ = writeln!(
        out,
        "portcullis_hash_queue_capacity {}",
        pool.queue_capacity()
    );
    family(
        &mut out,
        "portcullis_hash_workers_busy",
        "gauge",
        "Hashing workers at work.",
    );
    let _ = writeln!(out, "portcullis_hash_workers_busy {}", pool.busy_workers());
    family(
        &mut out,
        "portcullis_hash_workers",
        "gauge",
        "Hashing workers.",
    );
    let _ = writeln!(out, "portcullis_hash_workers {}", pool.workers());
    family(
        &mut out,
        "portcullis_hash_refusals_total",
        "counter",
        "Hashing jobs refused because every place was taken (answered 503 with Retry-After).",
    );
    let _ = writeln!(out, "portcullis_hash_refusals_total {}", pool.refusals());

    if let Some(source) = m.pool.get() {
        let DatabaseReading {
            open,
            idle,
            max,
            grant_uses_one_list,
            grant_uses_unit_of_work,
        } = source();
        family(
            &mut out,
            "portcullis_db_pool_connections",
            "gauge",
            "Database connections this node holds, by state.",
        );
        let _ = writeln!(
            out,
            "portcullis_db_pool_connections{{state=\"in_use\"}} {}",
            open.saturating_sub(idle)
        );
        let _ = writeln!(
            out,
            "portcullis_db_pool_connections{{state=\"idle\"}} {idle}"
        );
        family(
            &mut out,
            "portcullis_db_pool_max_connections",
            "gauge",
            "The most database connections this node may open (database.max_connections).",
        );
        let _ = writeln!(out, "portcullis_db_pool_max_connections {max}");
        family(
            &mut out,
            "portcullis_oidc_grant_uses_total",
            "counter",
            "Codes and refresh tokens used at the token endpoint (won or lost), by how the use was \
             written: one_list (SQLite: the use, its tokens and its audit entry in one statement list) \
             or unit_of_work (PostgreSQL; SQLite while this node does not know the audit log's \
             head, as after another process appended to it).",
        );
        let _ = writeln!(
            out,
            "portcullis_oidc_grant_uses_total{{way=\"one_list\"}} {grant_uses_one_list}"
        );
        let _ = writeln!(
            out,
            "portcullis_oidc_grant_uses_total{{way=\"unit_of_work\"}} {grant_uses_unit_of_work}"
        );
    }

    // Declared always (alert rules name them); samples only with `[tls]`.
    let tls = m.tls.get().map(|source| source());
    family(
        &mut out,
        "portcullis_tls_certificate_expiry_timestamp_seconds",
        "gauge",
        "When the served TLS certificate expires (Unix time); no sample without [tls].",
    );
    family(
        &mut out,
        "portcullis_tls_reloads_total",
        "counter",
        "Changes of the TLS certificate files: loaded, or failed (the previous pair stays in service).",
    );
    if let Some(t) = tls {
        let _ = writeln!(
            out,
            "portcullis_tls_certificate_expiry_timestamp_seconds {}",
            t.not_after_unix
        );
        let _ = writeln!(
            out,
            "portcullis_tls_reloads_total{{result=\"loaded\"}} {}",
            t.reloads
        );
        let _ = writeln!(
            out,
            "portcullis_tls_reloads_total{{result=\"failed\"}} {}",
            t.reload_failures
        );
    }

    let snapshot = state.status.snapshot();
    family(
        &mut out,
        "portcullis_component_state",
        "gauge",
        "Each part's state from the last probe: 0 operational, 1 degraded, 2 outage.",
    );
    for (name, s) in &snapshot.components {
        let _ = writeln!(
            out,
            "portcullis_component_state{{component=\"{}\"}} {}",
            escape(name),
            *s as u8
        );
    }

    let hist = match m.latency.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    family(
        &mut out,
        "portcullis_http_requests_total",
        "counter",
        "Answers by route and status class (errors: status_class=\"5xx\").",
    );
    for ((method, route), h) in &hist {
        for (class, n) in STATUS_CLASSES.iter().zip(h.classes) {
            if n > 0 {
                let _ = writeln!(
                    out,
                    "portcullis_http_requests_total{{method=\"{}\",route=\"{}\",status_class=\"{class}\"}} {n}",
                    escape(method),
                    escape(route)
                );
            }
        }
    }
    family(
        &mut out,
        "portcullis_http_request_duration_seconds",
        "histogram",
        "Request latency by route.",
    );
    for ((method, route), h) in &hist {
        let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
        for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
            let _ = writeln!(
                out,
                "portcullis_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "portcullis_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "portcullis_http_request_duration_seconds_sum{{{labels}}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "portcullis_http_request_duration_seconds_count{{{labels}}} {}",
            h.count
        );
    }

    let mut response = (StatusCode::OK, out).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_outcomes_follow_the_answer() {
        let api = "/api/v1/sessions";
        assert_eq!(
            sign_in_outcome(&Method::POST, api, StatusCode::CREATED),
            Some("success")
        );
        assert_eq!(
            sign_in_outcome(&Method::POST, api, StatusCode::UNAUTHORIZED),
            Some("failed")
        );
        assert_eq!(
            sign_in_outcome(&Method::POST, "/", StatusCode::SEE_OTHER),
            Some("success")
        );
        assert_eq!(sign_in_outcome(&Method::POST, "/", StatusCode::OK), None);
        assert_eq!(
            sign_in_outcome(&Method::GET, api, StatusCode::CREATED),
            None
        );
        assert_eq!(
            sign_in_outcome(&Method::POST, api, StatusCode::LOCKED),
            Some("locked")
        );
    }

    #[test]
    fn latency_is_bucketed_cumulatively() {
        let m = Metrics::default();
        m.observe("GET", "/x", StatusCode::OK, 0.02);
        m.observe("GET", "/x", StatusCode::SERVICE_UNAVAILABLE, 0.001);
        let map = m.latency.lock().unwrap();
        let h = map.get(&("GET".into(), "/x".into())).unwrap();
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[2], 2);
        assert_eq!(h.buckets[10], 2);
        assert_eq!(h.count, 2);
        assert_eq!(h.classes, [0, 1, 0, 0, 1], "one 2xx and one 5xx");
    }
}
