//! `/metrics` read by a real Prometheus text parser (the `prometheus-parse` crate): the
//! document parses, and locks and one-time codes are counted when they happen.

use portcullis_testkit::{both, spawn_app, Backend, TestApp, ANN, PASSWORD};
use prometheus_parse::{Scrape, Value as Metric};
use serde_json::{json, Value};

async fn scrape(app: &TestApp) -> Scrape {
    let text = app.metrics_text().await;
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid Prometheus text")
}

/// The counter `name` with `label = value`.
fn counter(scrape: &Scrape, name: &str, label: (&str, &str)) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
        .unwrap_or_else(|| panic!("{name}{{{}={:?}}} missing", label.0, label.1));
    match sample.value {
        Metric::Counter(v) => v,
        ref other => panic!("{name} is not a counter: {other:?}"),
    }
}

async fn locks_and_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let before = scrape(&app).await;
    assert!(
        before.docs.contains_key("portcullis_sign_in_locks_total"),
        "HELP lines are read"
    );
    let account = ("scope", "account");
    let email = ("channel", "email");
    let sms = ("channel", "sms");
    let locks = "portcullis_sign_in_locks_total";
    let codes = "portcullis_codes_sent_total";

    // Six wrong passwords set one lock; the refused attempts after it set none.
    for _ in 0..8 {
        app.sign_in("ann.example", "Wrong-Horse-42", "personal")
            .await;
    }
    // A code by email (forgot password, card ID)…
    let start: Value = app
        .post_json(
            "/api/v1/recovery/password/start",
            &json!({"user_id": "ann.example"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .post_json(
            "/api/v1/recovery/password/verify",
            &json!({"recovery_token": start["recovery_token"], "card_id": ANN.verification}),
        )
        .await;
    assert_eq!(res.status(), 200);
    // …and by text message (a change to a new mobile number, by a signed-in Ben).
    app.register(&portcullis_testkit::BEN, "ben.sample", PASSWORD)
        .await;
    let token = app.token("ben.sample", PASSWORD, "personal").await;
    let res = app
        .client
        .post(app.url("/api/v1/me/contact"))
        .bearer_auth(&token)
        .json(&json!({"current_password": PASSWORD, "field": "phone", "value": "+15550107777"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);

    let after = scrape(&app).await;
    assert_eq!(
        counter(&after, locks, account),
        counter(&before, locks, account) + 1.0
    );
    assert_eq!(
        counter(&after, locks, ("scope", "device")),
        counter(&before, locks, ("scope", "device"))
    );
    assert_eq!(
        counter(&after, codes, email),
        counter(&before, codes, email) + 1.0
    );
    assert_eq!(
        counter(&after, codes, sms),
        counter(&before, codes, sms) + 1.0
    );
    // RED per route: the eight refused sign-ins are 4xx answers of the sign-in route.
    let refused = after
        .samples
        .iter()
        .find(|s| {
            s.metric == "portcullis_http_requests_total"
                && s.labels.get("route") == Some("/api/v1/sessions")
                && s.labels.get("method") == Some("POST")
                && s.labels.get("status_class") == Some("4xx")
        })
        .map(|s| match s.value {
            Metric::Counter(v) => v,
            ref other => panic!("not a counter: {other:?}"),
        });
    assert!(refused.is_some_and(|n| n >= 8.0), "{refused:?}");
    // The database pool: this node holds at least the connection that answered.
    let pool = |state: &str| {
        after
            .samples
            .iter()
            .find(|s| {
                s.metric == "portcullis_db_pool_connections" && s.labels.get("state") == Some(state)
            })
            .map(|s| match s.value {
                Metric::Gauge(v) => v,
                ref other => panic!("not a gauge: {other:?}"),
            })
            .unwrap_or_else(|| panic!("portcullis_db_pool_connections{{state={state:?}}}"))
    };
    assert!(pool("in_use") + pool("idle") >= 1.0);
    // Every family the document declares parsed (histograms included).
    for family in [
        "portcullis_sign_ins_total",
        "portcullis_outbox_pending",
        "portcullis_http_request_duration_seconds",
        "portcullis_http_requests_total",
        "portcullis_hash_refusals_total",
        "portcullis_db_pool_max_connections",
        "portcullis_oidc_grant_uses_total",
    ] {
        assert!(
            after.samples.iter().any(|s| s.metric == family),
            "{family} missing"
        );
    }
}
both!(
    metrics_count_locks_and_codes_by_channel_as_they_happen,
    locks_and_codes
);

/// `/metrics` names which accounts and addresses are real: it is on the management listener
/// only, which also answers health (so health is answered when the public cap is reached).
#[tokio::test]
async fn metrics_are_served_on_the_management_listener_only() {
    let app = spawn_app(Backend::Sqlite).await;
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    for path in ["/metrics", "/healthz", "/readyz"] {
        let res = app
            .client
            .get(app.management_url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    // The contract keeps health on the public listener too.
    for path in ["/healthz", "/readyz"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    // Pages and the API are not on the management listener.
    let res = app
        .client
        .get(app.management_url("/api/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// The names `/metrics` declares (`# TYPE` lines), with a histogram's three series.
fn declared(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// Every `portcullis_…` name in a file.
fn referenced(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("portcullis_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The alert rules and the dashboard in deploy/ name only metrics the service exports, so
/// a renamed metric cannot silently blind an alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_files_name_only_metrics_the_service_exports() {
    let app = spawn_app(Backend::Sqlite).await;
    let text = app.metrics_text().await;
    let exported = declared(&text);
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let files = [
        "prometheus/portcullis-alerts.yml",
        "prometheus/portcullis-alerts.test.yml",
        "grafana/portcullis-dashboard.json",
    ];
    let mut checked = 0;
    for file in files {
        let body = std::fs::read_to_string(deploy.join(file)).unwrap();
        for name in referenced(&body) {
            // A prefix alone (e.g. in a comment) names no metric.
            if name.ends_with('_') {
                continue;
            }
            assert!(
                exported.contains(&name),
                "{file} names {name}, which /metrics does not export"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} names were checked");
}
