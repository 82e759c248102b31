//! A real failover (issue 16): two Portcullis nodes (the real binary) on the multi-host URL
//! of a pg_auto_failover formation (`scripts/formation`), under registration and sign-in
//! load; the primary's keeper and PostgreSQL killed with SIGKILL; then the old primary back
//! as a secondary and a second failover the other way.
//!
//! Ignored by default: `scripts/failover` starts the formation, sets
//! `PORTCULLIS_FAILOVER_URL` and runs it with `--run-ignored only` (a step of `.ci/run`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_testkit::RealServer;

use crate::ha_load::{
    all_sign_in, bin, finish_load, import_registry, node_env, start_load, Accounts, Load,
};

fn formation(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/formation");
    let out = std::process::Command::new(script)
        .args(args)
        .output()
        .expect("running scripts/formation");
    assert!(
        out.status.success(),
        "scripts/formation {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The port of the node the monitor holds primary, once there is exactly one.
fn primary_port() -> Option<u16> {
    formation(&["primary"]).parse().ok()
}

/// Kills the primary under load: which node it was, how long the promotion took after the
/// kill, and how long after the promotion registrations succeeded again.
async fn fail_over(load: &Arc<Load>) -> (String, Duration, Duration) {
    let old = primary_port().expect("a primary before the failover");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = load.tally.lock().unwrap().acknowledged.len();
    assert!(before > 0, "no registration acknowledged before the kill");
    let killed_node = formation(&["kill", "primary"])
        .trim_start_matches("killed node")
        .to_owned();
    let killed = Instant::now();
    let promoted = loop {
        if primary_port().is_some_and(|p| p != old) {
            break Instant::now();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "the secondary was not promoted within 90 s: {}",
            formation(&["status"])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let back = load.registration_after(promoted, "the promotion").await;
    // A little more load on the new primary.
    tokio::time::sleep(Duration::from_secs(2)).await;
    (killed_node, promoted - killed, back - promoted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the pg_auto_failover formation: run scripts/failover"]
async fn failover_under_load_answers_only_success_or_503_and_loses_nothing() {
    let url = std::env::var("PORTCULLIS_FAILOVER_URL")
        .expect("PORTCULLIS_FAILOVER_URL (scripts/failover sets it)");
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets").display().to_string();
    // A command on the multi-host URL: the registry import (it also migrates).
    import_registry(dir.path(), &url, &secrets);
    let env = node_env(&url, &secrets);
    let nodes = [
        RealServer::start(bin(), &env),
        RealServer::start(bin(), &env),
    ];
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    let mut accounts = Accounts::default();
    let mut next_card = 0;
    let mut killed = String::new();
    for round in 1..=2 {
        if round == 2 {
            // The old primary back, as a secondary, before the second failover.
            let old = killed.as_str();
            formation(&["revive", old]);
            let since = Instant::now();
            while formation(&["status"])
                .matches(" secondary (goal secondary)")
                .count()
                != 1
                || primary_port().is_none()
            {
                assert!(
                    since.elapsed() < Duration::from_secs(120),
                    "node {old} did not come back as a secondary: {}",
                    formation(&["status"])
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            eprintln!("node {old} back as a secondary after {:?}", since.elapsed());
        }
        let (load, workers) = start_load(&bases, next_card, false);
        let (node, promotion, writes_back) = fail_over(&load).await;
        killed = node;
        next_card = load.cards_used();
        let what = format!(
            "failover {round} (node {killed} killed): promoted {promotion:?} after the kill; \
             registrations again {writes_back:?} after the promotion"
        );
        finish_load(&load, workers, &what, &mut accounts).await;
        all_sign_in(&bases, &accounts).await;
    }
    // A command after two failovers finds today's primary.
    let out = std::process::Command::new(bin())
        .arg("validate-config")
        .env("PORTCULLIS_DATABASE_URL", &url)
        .env("PORTCULLIS_SECRETS_DIR", &secrets)
        .env("PORTCULLIS_MODE", "development")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let primary = primary_port().unwrap();
    assert!(
        text.contains(&format!("the writable one now is 127.0.0.1:{primary}")),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for n in &nodes {
        let log = std::fs::read_to_string(&n.stderr).unwrap_or_default()
            + &std::fs::read_to_string(&n.stdout).unwrap_or_default();
        assert!(
            log.contains("database pool moved to the new primary"),
            "a node never moved its pool: {log}"
        );
    }
}
