//! Service status: the status API and page, incidents from the command line and the admin
//! API, maintenance mode (on one node and across two sharing a database), `/metrics` in the
//! Prometheus text format, and the prober noticing a database outage.

use std::time::Duration;

use portcullis_testkit::{
    both, is_problem, spawn_app, spawn_app_on, spawn_app_with, Backend, TestApp, ANN, PASSWORD,
};
use serde_json::{json, Value};

const PARTS: [&str; 6] = [
    "sign-in",
    "registration",
    "recovery",
    "email",
    "text messages",
    "database",
];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the real binary against the app's database and secrets.
async fn cli(app: &TestApp, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--database-url")
        .arg(&app.db.url)
        .args(args)
        .env("PORTCULLIS_SECRETS_DIR", &app.config.secrets_dir)
        .env("PORTCULLIS_NOTIFY_OUTBOX_FILE", &app.outbox)
        .env("USER", "operator.one")
        .env_remove("SUDO_USER")
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("PORTCULLIS_DATABASE_URL")
        .current_dir(app.dir.path())
        .output()
        .await
        .expect("running the portcullis binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn admin_token(app: &TestApp, scope: &str) -> String {
    let run = cli(
        app,
        &[
            "admin", "token", "create", "--name", "ops", "--scope", scope,
        ],
    )
    .await;
    assert_eq!(run.code, 0, "token create: {}", run.stderr);
    run.stdout.trim().to_owned()
}

pub(crate) async fn status_json(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.url("/api/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn state_of(status: &Value, part: &str) -> String {
    status["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == part)
        .map(|c| c["state"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no part {part} in {status}"))
}

/// Polls the status API until `check` holds (up to 10 s).
async fn wait_for_status(app: &TestApp, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = status_json(app).await;
        if check(&s) || std::time::Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fast_probe_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| c.status.probe_secs = 0.1).await
}

async fn status_api_and_page_show_every_part(backend: Backend) {
    let app = fast_probe_app(backend).await;
    let status = wait_for_status(&app, |s| !s["probed_at"].is_null()).await;
    let keys: Vec<&str> = status
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in ["overall", "components", "incidents", "history"] {
        assert!(keys.contains(&key), "{key} missing from {status}");
    }
    for part in PARTS {
        assert_eq!(state_of(&status, part), "operational", "{status}");
    }
    assert_eq!(status["overall"], "operational");
    // The first probe is recorded: today shows in the history.
    let history = wait_for_status(&app, |s| !s["history"].as_array().unwrap().is_empty()).await;
    let days = history["history"].as_array().unwrap();
    assert_eq!(days.last().unwrap()["worst"], "operational");
    assert_eq!(days.last().unwrap()["date"].as_str().unwrap().len(), 10);

    let res = app.client.get(app.url("/status")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("No problems today"), "{html}");
    for part in PARTS {
        assert!(
            html.contains(&format!("data-component=\"{part}\"")),
            "{part}"
        );
    }
    let rest = html
        .replace(r#"<script src="/static/passkeys.js" defer></script>"#, "")
        .replace(r#"<script src="/static/password.js" defer></script>"#, "");
    assert!(
        !rest.contains("<script"),
        "no inline script on the status page"
    );
}
both!(
    status_api_and_page_show_every_part,
    status_api_and_page_show_every_part
);

async fn incidents_from_cli_and_admin_api_show_on_both(backend: Backend) {
    let app = spawn_app(backend).await;
    let run = cli(
        &app,
        &[
            "status",
            "incident",
            "create",
            "--title",
            "Slow text messages",
            "--message",
            "Codes by text may take a few minutes.",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    let run = cli(
        &app,
        &[
            "status",
            "incident",
            "create",
            "--kind",
            "maintenance",
            "--title",
            "Database upgrade",
            "--message",
            "Sign-in will pause briefly.",
            "--starts",
            "2030-01-01T02:00:00Z",
            "--ends",
            "2030-01-01T03:00:00Z",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    let token = admin_token(&app, "status:write").await;
    let res = app
        .client
        .post(app.url("/api/v1/admin/status/incidents"))
        .bearer_auth(&token)
        .json(&json!({"title": "Email delays", "message": "Looking into it."}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let posted: Value = res.json().await.unwrap();
    assert_eq!(posted["state"], "investigating");
    let id = posted["id"].as_i64().unwrap();

    // A token without the scope is refused.
    let other = cli(
        &app,
        &[
            "admin",
            "token",
            "create",
            "--name",
            "reader",
            "--scope",
            "audit:read",
        ],
    )
    .await;
    let res = app
        .client
        .post(app.url("/api/v1/admin/status/incidents"))
        .bearer_auth(other.stdout.trim())
        .json(&json!({"title": "x", "message": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/status/incidents/{id}")))
        .bearer_auth(&token)
        .json(&json!({"state": "identified", "message": "A provider is slow."}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/admin/status/incidents/{id}")))
        .bearer_auth(&token)
        .json(&json!({"state": "scheduled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "a maintenance state for an incident");
    assert!(is_problem(res.headers()));

    let run = cli(
        &app,
        &["status", "incident", "update", "1", "--state", "resolved"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = cli(&app, &["status", "incident", "list"]).await;
    assert!(run.stdout.contains("Email delays") && run.stdout.contains("Database upgrade"));

    let status = status_json(&app).await;
    let incidents = status["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 3, "{status}");
    let by_title = |t: &str| incidents.iter().find(|i| i["title"] == t).unwrap().clone();
    assert_eq!(by_title("Slow text messages")["state"], "resolved");
    assert_eq!(by_title("Email delays")["state"], "identified");
    assert_eq!(by_title("Email delays")["message"], "A provider is slow.");
    assert_eq!(by_title("Database upgrade")["kind"], "maintenance");
    assert_eq!(by_title("Database upgrade")["state"], "scheduled");
    assert_eq!(
        by_title("Database upgrade")["starts_at"],
        "2030-01-01T02:00:00Z"
    );

    let html = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for text in [
        "Slow text messages",
        "Email delays",
        "A provider is slow.",
        "Planned maintenance: Database upgrade",
    ] {
        assert!(html.contains(text), "{text} not on the page");
    }
}
both!(
    incidents_from_cli_and_admin_api_show_on_both,
    incidents_from_cli_and_admin_api_show_on_both
);

fn until_in(app: &TestApp, secs: i64) -> String {
    app.built.app.clock().now().plus_secs(secs).to_rfc3339()
}

/// Checks that `app` is in maintenance: pages and API 503 with Retry-After, the rest open.
async fn assert_in_maintenance(app: &TestApp, token: &str) {
    let res = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let retry: i64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry), "{retry}");
    let html = res.text().await.unwrap();
    assert!(html.contains("Down for maintenance") && html.contains("Upgrading the database."));

    let res = app.sign_in("annsmith", PASSWORD, "personal").await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert!(is_problem(res.headers()));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "maintenance");

    app.metrics_text().await;
    for path in [
        "/healthz",
        "/readyz",
        "/status",
        "/api/v1/status",
        "/static/style.css",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let res = app
        .client
        .post(app.url("/api/v1/admin/status/incidents"))
        .bearer_auth(token)
        .json(&json!({"title": "Maintenance", "message": "Under way."}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        201,
        "the admin API answers during maintenance"
    );
    let status = status_json(app).await;
    assert!(
        status["maintenance"]["message"] == "Upgrading the database.",
        "{status}"
    );
}

/// Each node follows the maintenance row within `REFRESH_SECS` of its own clock: the answer
/// may lag until then, and must have changed after.
async fn wait_until_maintenance(app: &TestApp, on: bool) {
    app.clock.advance(portcullis_web::maintenance::REFRESH_SECS);
    let code = app
        .client
        .get(app.url("/register"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        code == 503,
        on,
        "maintenance {} within {} s",
        if on { "on" } else { "off" },
        portcullis_web::maintenance::REFRESH_SECS
    );
}

async fn maintenance_mode_answers_503_but_not_health_status_or_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "annsmith", PASSWORD).await;
    let token = admin_token(&app, "status:write").await;
    let until = until_in(&app, 600);
    let run = cli(
        &app,
        &[
            "status",
            "maintenance",
            "on",
            "--until",
            &until,
            "--message",
            "Upgrading the database.",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    wait_until_maintenance(&app, true).await;
    assert_in_maintenance(&app, &token).await;

    let run = cli(&app, &["status", "maintenance", "off"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    wait_until_maintenance(&app, false).await;
    let res = app.sign_in("annsmith", PASSWORD, "personal").await;
    assert_eq!(res.status(), 201);

    // An end in the past is refused.
    let run = cli(
        &app,
        &[
            "status",
            "maintenance",
            "on",
            "--until",
            "2000-01-01T00:00:00Z",
        ],
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("until"), "{}", run.stderr);
}
both!(
    maintenance_mode_answers_503_but_not_health_status_or_admin,
    maintenance_mode_answers_503_but_not_health_status_or_admin
);

async fn two_nodes_sharing_a_database_both_honour_maintenance(backend: Backend) {
    let first = spawn_app(backend).await;
    let second = spawn_app_on(&first, |_| {}).await;
    first.register(&ANN, "annsmith", PASSWORD).await;
    let token = admin_token(&first, "status:write").await;
    // Both nodes read the row before it is set (their caches hold "off").
    for node in [&first, &second] {
        assert_eq!(
            node.client
                .get(node.url("/register"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let until = until_in(&first, 600);
    let run = cli(
        &first,
        &[
            "status",
            "maintenance",
            "on",
            "--until",
            &until,
            "--message",
            "Upgrading the database.",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for node in [&first, &second] {
        wait_until_maintenance(node, true).await;
        assert_in_maintenance(node, &token).await;
    }
    cli(&first, &["status", "maintenance", "off"]).await;
    for node in [&first, &second] {
        wait_until_maintenance(node, false).await;
        assert_eq!(
            node.sign_in("annsmith", PASSWORD, "personal")
                .await
                .status(),
            201
        );
    }
}
both!(
    two_nodes_sharing_a_database_both_honour_maintenance,
    two_nodes_sharing_a_database_both_honour_maintenance
);

/// A strict check of one exposition line: a comment (`# HELP name text`, `# TYPE name
/// kind`) or a sample `name{label="value",…} number`.
/// A sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn check_line(line: &str) -> Option<Sample> {
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    if let Some(rest) = line.strip_prefix("# ") {
        let mut parts = rest.splitn(3, ' ');
        let kw = parts.next().unwrap();
        let name = parts.next().unwrap();
        let tail = parts.next().unwrap_or("");
        assert!(is_name(name), "bad name in {line:?}");
        match kw {
            "HELP" => {}
            "TYPE" => assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail),
                "bad type in {line:?}"
            ),
            _ => panic!("bad comment {line:?}"),
        }
        return None;
    }
    let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => {
            let body = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels {line:?}"));
            let mut labels = Vec::new();
            let mut s = body;
            while !s.is_empty() {
                let (k, after) = s
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("bad label {line:?}"));
                assert!(is_name(k), "bad label name in {line:?}");
                let mut end = None;
                let mut escaped = false;
                for (i, c) in after.char_indices() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.unwrap_or_else(|| panic!("unterminated label value {line:?}"));
                labels.push((k.to_owned(), after[..end].to_owned()));
                s = &after[end + 1..];
                s = s.strip_prefix(',').unwrap_or(s);
            }
            (name, labels)
        }
    };
    assert!(is_name(name), "bad metric name in {line:?}");
    Some((name.to_owned(), labels, value))
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    let res = app
        .client
        .get(app.management_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    res.text()
        .await
        .unwrap()
        .lines()
        .filter_map(check_line)
        .collect()
}

fn value(samples: &[Sample], name: &str, label: Option<(&str, &str)>) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name && label.is_none_or(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|(_, _, v)| *v)
        .unwrap_or_else(|| panic!("{name} {label:?} missing"))
}

async fn metrics_are_prometheus_text_and_count_sign_ins(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "annsmith", PASSWORD).await;
    let before = scrape(&app).await;
    for name in [
        "portcullis_sign_ins_total",
        "portcullis_sign_in_locks_total",
        "portcullis_messages_sent_total",
        "portcullis_outbox_pending",
        "portcullis_outbox_oldest_pending_age_seconds",
        "portcullis_delivery_failures_total",
        "portcullis_hash_queue_depth",
        "portcullis_hash_workers_busy",
        "portcullis_http_request_duration_seconds_bucket",
        "portcullis_http_request_duration_seconds_count",
    ] {
        assert!(before.iter().any(|(n, _, _)| n == name), "{name} missing");
    }
    let ok = ("outcome", "success");
    let failed = ("outcome", "failed");
    assert_eq!(
        app.sign_in("annsmith", PASSWORD, "personal").await.status(),
        201
    );
    assert_eq!(
        app.sign_in("annsmith", "Wrong-Horse-42", "personal")
            .await
            .status(),
        401
    );
    let after = scrape(&app).await;
    let s = "portcullis_sign_ins_total";
    assert_eq!(
        value(&after, s, Some(ok)),
        value(&before, s, Some(ok)) + 1.0
    );
    assert_eq!(
        value(&after, s, Some(failed)),
        value(&before, s, Some(failed)) + 1.0
    );
    // Routes are templates, never raw paths.
    assert!(after.iter().any(
        |(n, l, _)| n == "portcullis_http_request_duration_seconds_count"
            && l.iter()
                .any(|(k, v)| k == "route" && v == "/api/v1/sessions")
    ));
    assert!(!after
        .iter()
        .any(|(_, l, _)| l.iter().any(|(_, v)| v.contains("annsmith"))));
    assert!(
        value(
            &after,
            "portcullis_messages_sent_total",
            Some(("channel", "email"))
        ) >= 0.0
    );
}
both!(
    metrics_are_prometheus_text_and_count_sign_ins,
    metrics_are_prometheus_text_and_count_sign_ins
);

async fn the_prober_marks_an_unreachable_database(backend: Backend) {
    let app = fast_probe_app(backend).await;
    let up = wait_for_status(&app, |s| !s["probed_at"].is_null()).await;
    assert_eq!(state_of(&up, "database"), "operational");
    // The database goes away (the pool is closed): within a probe or two the status says so,
    // from memory, while the page itself still answers.
    app.built.store.close().await;
    let down = wait_for_status(&app, |s| state_of(s, "database") == "outage").await;
    assert_eq!(state_of(&down, "database"), "outage", "{down}");
    assert_eq!(state_of(&down, "sign-in"), "outage");
    assert_eq!(down["overall"], "outage");
    let html = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("There is a problem today"), "{html}");
}
both!(
    the_prober_marks_an_unreachable_database,
    the_prober_marks_an_unreachable_database
);
