//! `/metrics` read by a real Prometheus text parser (the `prometheus-parse` crate): the
//! document parses, and locks and one-time codes are counted when they happen.

use portcullis_testkit::{both, spawn_app, Backend, TestApp, ANN, PASSWORD};
use prometheus_parse::{Scrape, Value as Metric};
use serde_json::{json, Value};

async fn scrape(app: &TestApp) -> Scrape {
    let res = app
        .client
        .get(app.management_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
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
    // Every family the document declares parsed (histograms included).
    for family in [
        "portcullis_sign_ins_total",
        "portcullis_outbox_pending",
        "portcullis_http_request_duration_seconds",
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
