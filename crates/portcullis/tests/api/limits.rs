//! What one request may cost (issue 20): one body limit for pages and API (413 on both, at
//! once when the declared length is too large), a body that arrives too slowly is cut off, a
//! node at its cap of requests in flight answers 503 with `Retry-After`, a form the pages
//! cannot read gets the page's error and not a plain-text 422, and no page echoes an
//! oversized User ID. Connection-level limits (header, idle, connection cap, drain) are in
//! `faults.rs`, on the real binary.

use std::time::{Duration, Instant};

use portcullis_testkit::{input_value, spawn_app, spawn_app_with, Backend, Jar};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::pages::{get, post};

/// Sends `head` then `body`, and reads the answer until the server closes or 5 s pass.
async fn raw(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn limits_one_body_limit_for_pages_and_api() {
    let app = spawn_app(Backend::Sqlite).await;
    let big = "x".repeat(app.config.server.body_limit_bytes + 10);
    // The API: 413 problem+json, not 400.
    let res = app
        .client
        .post(app.url("/api/v1/sessions"))
        .header("content-type", "application/json")
        .body(format!("{{\"user_id\":\"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert!(portcullis_testkit::is_problem(res.headers()));
    // The pages: 413 as a page.
    let res = app
        .client
        .post(app.url("/"))
        .form(&[("user_id", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("That was too much to send"));
    // A declared length beyond the limit is refused at once, before any body arrives.
    let head = "POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 10000000000\r\n\r\n";
    let (answer, took) = raw(app.addr, head, b"{").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn limits_a_slow_body_is_cut_off_and_its_connection_closed() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.server.body_read_timeout_secs = 0.5;
        c.server.body_min_bytes_per_sec = 1000;
    })
    .await;
    // 100 bytes declared, 10 sent, then nothing: cut after the grace plus 10 ms of rate.
    let head = "POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n";
    let (answer, took) = raw(app.addr, head, b"{\"user_id\"").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-too-slow"), "{answer}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn limits_requests_beyond_the_in_flight_cap_get_503_with_retry_after() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.server.max_requests_in_flight = 1;
        c.server.body_read_timeout_secs = 3.0;
    })
    .await;
    // One request holds the only slot while its body trickles in.
    let mut holder = TcpStream::connect(app.addr).await.unwrap();
    holder
        .write_all(
            b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 50\r\n\r\n{",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let res = app
        .client
        .get(app.url("/api/v1/security-questions"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    // Health is not counted against the cap.
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    drop(holder);
}

#[tokio::test]
async fn limits_an_unreadable_form_gets_the_page_error_not_a_plain_422() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut jar = Jar::default();
    let (_, html) = get(&app, &mut jar, "/").await;
    let csrf = input_value(&html, "csrf").unwrap();
    let res = post(
        &app,
        &mut jar,
        "/",
        &[
            ("csrf", csrf.as_str()),
            ("user_id", "annsmith"),
            ("user_id", "bensmith"),
            ("password", "x"),
            ("account_type", "personal"),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("We could not read that form"));
}

#[tokio::test]
async fn limits_pages_never_echo_an_oversized_user_id() {
    let app = spawn_app(Backend::Sqlite).await;
    let long = "u".repeat(200_000);
    for (page, path) in [("/", "/"), ("/recover/password", "/recover/password")] {
        let mut jar = Jar::default();
        let (_, html) = get(&app, &mut jar, page).await;
        let csrf = input_value(&html, "csrf").unwrap();
        let res = post(
            &app,
            &mut jar,
            path,
            &[
                ("csrf", csrf.as_str()),
                ("user_id", long.as_str()),
                ("password", "Wrong-Horse-42"),
                ("account_type", "personal"),
            ],
        )
        .await;
        let status = res.status();
        let html = res.text().await.unwrap();
        assert!(status.is_client_error(), "{path}: {status}");
        assert!(
            !html.contains(&"u".repeat(100)),
            "{path} echoed the User ID"
        );
        assert!(html.len() < 50_000, "{path}: {} bytes", html.len());
    }
}

/// A page that says a code is on its way also says it may be late while the status board
/// has email or text messages in trouble (issue 20: the person is told).
#[tokio::test]
async fn limits_code_pages_say_the_message_may_be_late_while_a_channel_is_failing() {
    use portcullis_core::service::status::{ChannelSignals, DatabaseProbe, NodeLoad, ProbeSignals};
    let app = spawn_app(Backend::Sqlite).await;
    app.register(
        &portcullis_testkit::ANN,
        "ann.example",
        portcullis_testkit::PASSWORD,
    )
    .await;
    let html = code_page(&app).await;
    assert!(html.contains("We sent a 6-digit code to"), "{html}");
    assert!(!html.contains("may take a few minutes"));
    let ok = ChannelSignals {
        oldest_pending_age_secs: Some(0),
        recent_failures: 0,
        provider_down: false,
    };
    let signals = ProbeSignals {
        database: DatabaseProbe::Answered { millis: 1 },
        hash_queue: 0,
        hash_capacity: 16,
        email: ok,
        sms: ChannelSignals {
            provider_down: true,
            ..ok
        },
        load: NodeLoad::default(),
    };
    app.built
        .app
        .record_probe(&app.built.state.status, &signals)
        .await;
    let html = code_page(&app).await;
    assert!(html.contains("may take a few minutes"), "{html}");
}

/// Starts a password reset through the pages and proves the card: the code page's HTML.
async fn code_page(app: &portcullis_testkit::TestApp) -> String {
    let mut jar = Jar::default();
    let (_, html) = get(app, &mut jar, "/recover/password").await;
    let csrf = input_value(&html, "csrf").unwrap();
    let res = post(
        app,
        &mut jar,
        "/recover/password",
        &[("csrf", &csrf), ("user_id", "ann.example")],
    )
    .await;
    let token = input_value(&res.text().await.unwrap(), "token").unwrap();
    post(
        app,
        &mut jar,
        "/recover/password/verify",
        &[
            ("csrf", &csrf),
            ("token", &token),
            ("method", "card"),
            ("card_id", "1234"),
        ],
    )
    .await
    .text()
    .await
    .unwrap()
}
