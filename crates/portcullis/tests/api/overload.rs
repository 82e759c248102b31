//! Overload: far more concurrent sign-ins than the hashing pool holds, at the production
//! hashing parameters, on the real binary. The excess is refused at once with 503 and
//! Retry-After, every request is answered, and memory stays bounded.

use std::time::{Duration, Instant};

use portcullis_testkit::RealServer;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_sign_ins_get_fast_503s_and_memory_stays_bounded() {
    // Default argon2id parameters (m = 19 MiB), two workers, eight waiting places.
    let server = RealServer::start(
        env!("CARGO_BIN_EXE_portcullis"),
        &[
            ("PORTCULLIS_HASHING_WORKERS", "2".into()),
            ("PORTCULLIS_HASHING_QUEUE_PER_WORKER", "4".into()),
            // 200 failures from one address would otherwise (rightly) earn 429s.
            ("PORTCULLIS_LIMITS_ENABLED", "false".into()),
        ],
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(300)
        .build()
        .unwrap();
    let res = client
        .post(server.url("/api/v1/registration/verify-card"))
        .json(&json!({"account_type": "personal", "number": "378282246310005", "verification": "1234"}))
        .send()
        .await
        .unwrap();
    let token = res.json::<Value>().await.unwrap()["registration_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = client
        .post(server.url("/api/v1/registration/complete"))
        .json(&json!({"registration_token": token, "user_id": "ann.example", "password": "Correct-Horse-42",
            "security_answers": [{"question_id": 1, "answer": "Rex"}, {"question_id": 2, "answer": "Volvo"}, {"question_id": 3, "answer": "Marie"}],
            "code_channel": "email"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let baseline_kib = server.peak_rss_kib();

    // Sign-ins for many different User IDs (unknown ones cost the same hash as known ones;
    // one account would be capped by its own lockout claims instead).
    let concurrency = 200; // 20× the 10 places (2 hashing + 8 waiting)
    let mut handles = Vec::new();
    for i in 0..concurrency {
        let client = client.clone();
        let url = server.url("/api/v1/sessions");
        handles.push(tokio::spawn(async move {
            let started = Instant::now();
            let res = client
                .post(url)
                .json(&json!({"user_id": format!("storm.user{i}"), "password": "Correct-Horse-42", "account_type": "personal"}))
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .unwrap();
            let retry_after = res.headers().get("retry-after").is_some();
            (res.status().as_u16(), retry_after, started.elapsed())
        }));
    }
    let mut ok = 0;
    let mut refused = Vec::new();
    for h in handles {
        let (status, retry_after, elapsed) = h.await.unwrap();
        match status {
            401 => ok += 1,
            503 => {
                assert!(retry_after, "503 without Retry-After");
                refused.push(elapsed);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let peak_kib = server.peak_rss_kib();
    eprintln!(
        "overload: {ok} evaluated, {} refused; baseline RSS {} MiB, peak {} MiB",
        refused.len(),
        baseline_kib / 1024,
        peak_kib / 1024
    );
    assert!(ok >= 10, "the pool kept working: {ok} evaluated");
    // After the storm the owner signs in as usual.
    let res = client
        .post(server.url("/api/v1/sessions"))
        .json(&json!({"user_id": "ann.example", "password": "Correct-Horse-42", "account_type": "personal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(
        refused.len() >= concurrency / 2,
        "most of the excess was refused: {}",
        refused.len()
    );
    refused.sort();
    let median = refused[refused.len() / 2];
    assert!(
        median < Duration::from_millis(1000),
        "refusals came back fast (median {median:?})"
    );
    // /metrics counts each refusal of the hashing pool (what the HashPoolRefusing alert
    // in deploy/ watches).
    let text = client
        .get(server.management_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_hash_refusals_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("portcullis_hash_refusals_total");
    assert_eq!(
        counted,
        refused.len() as f64,
        "every 503 was a counted refusal"
    );
    // Two workers × 19 MiB of argon2 memory plus the process itself; unbounded hashing of
    // 200 requests would need about 3.8 GiB.
    assert!(peak_kib < 160 * 1024, "peak RSS {} MiB", peak_kib / 1024);
}
