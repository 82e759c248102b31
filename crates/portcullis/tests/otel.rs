//! OpenTelemetry (issue 18), through the real binary. A test binary of its own, so that CI's
//! build with the `otel` feature (`.ci/run`) compiles this test and not the whole API suite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "api/binary.rs"]
mod binary;

use std::sync::{Arc, Mutex};

use binary::{base_of, clean, client, terminate, wait_for};

/// OpenTelemetry: a build with the `otel` feature sends each request's span to the OTLP
/// endpoint (here a fake collector on loopback); a build without it refuses a configuration
/// that asks for traces instead of ignoring it. CI runs this test both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_go_to_the_otlp_endpoint_only_from_a_build_with_otel() {
    type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let seen: Seen = Arc::default();
    let collector = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<Seen>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let kind = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    seen.lock().unwrap().push((kind, body.to_vec()));
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdout.log");
    let err = dir.path().join("stderr.log");
    let mut child = clean(dir.path())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_TELEMETRY_OTLP_ENDPOINT", &endpoint)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    if !cfg!(feature = "otel") {
        let status = child.wait().unwrap();
        let stderr = std::fs::read_to_string(&err).unwrap();
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("no OpenTelemetry support"), "{stderr}");
        return;
    }
    let banner = wait_for(&out, "the address", |t| t.contains("running at"), &err);
    let base = base_of(&banner);
    let res = client()
        .get(format!("{base}/api/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Stopping flushes the spans still buffered.
    assert!(terminate(&mut child).success());
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "no spans reached the collector");
    assert!(seen
        .iter()
        .all(|(kind, _)| kind == "application/x-protobuf"));
    let all: Vec<u8> = seen.iter().flat_map(|(_, b)| b.clone()).collect();
    let has = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"portcullis"), "the service name");
    assert!(has(b"request"), "the request span");
    assert!(has(b"/api/v1/status"), "the request's path");
}
