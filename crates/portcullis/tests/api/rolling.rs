//! A rolling restart (issue 16) on the real binary: three Portcullis nodes on one private
//! PostgreSQL (the crash test's `PrivatePg`), under registration, sign-in and password-change load
//! spread over them; each node in turn sent SIGTERM, waited for (it must drain and exit by
//! itself, with status 0) and started again. No request fails except with 503 +
//! `Retry-After`, no request in flight is dropped, nothing acknowledged is lost.
//!
//! The load client stands in for the load balancer: a connection refused by a node that is
//! down (nothing was sent, so nothing happened) goes to the next node, as a balancer's
//! retry of a failed connect would; a connection that breaks after the request went out is
//! a failure, never retried. A restarted node comes back on a new port, which replaces the
//! old one in the balancer's list.
//!
//! Ignored by default: `scripts/outage` runs it with `--run-ignored only` (a step of
//! `.ci/run`). Where PostgreSQL's server binaries cannot be had the test says SKIPPED, loudly.

use std::time::{Duration, Instant};

use portcullis_testkit::RealServer;

use crate::ha_load::{all_sign_in, bin, finish_load, start_load, Accounts};
use crate::outage::private_site;

/// Sends SIGTERM and waits for the process to exit by itself; its exit status and how long
/// it took.
#[allow(clippy::disallowed_methods)] // test support: polls the child
fn terminate(node: &mut RealServer) -> (std::process::ExitStatus, Duration) {
    let sent = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            return (status, sent.elapsed());
        }
        assert!(
            sent.elapsed() < Duration::from_secs(40),
            "a node did not exit within 40 s of SIGTERM: {}",
            std::fs::read_to_string(&node.stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "starts a private PostgreSQL: run scripts/outage"]
async fn rolling_restart_under_load_fails_nothing_and_loses_nothing() {
    let Some(site) = private_site("the rolling-restart test (tests/api/rolling.rs)") else {
        return;
    };
    let env = &site.env;
    let mut nodes: Vec<RealServer> = (0..3).map(|_| RealServer::start(bin(), env)).collect();
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    let (load, workers) = start_load(&bases, 0, true);
    for (i, node) in nodes.iter_mut().enumerate() {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = Instant::now();
        let old_base = node.base.clone();
        let (status, took) = tokio::task::block_in_place(|| terminate(node));
        let log = std::fs::read_to_string(&node.stderr).unwrap_or_default()
            + &std::fs::read_to_string(&node.stdout).unwrap_or_default();
        assert!(status.success(), "node {i} exited with {status}: {log}");
        assert!(
            log.contains("draining connections") && log.contains("stopped"),
            "node {i} did not drain: {log}"
        );
        eprintln!("node {i} drained and exited {took:?} after SIGTERM");
        let restarted = tokio::task::block_in_place(|| RealServer::start(bin(), env));
        load.replace_node(&old_base, &restarted.base);
        *node = restarted;
        // The load goes on: registrations acknowledged since the stop began.
        load.registration_after(before, &format!("node {i}'s restart"))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut accounts = Accounts::default();
    finish_load(&load, workers, "rolling restart of 3 nodes", &mut accounts).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    all_sign_in(&bases, &accounts).await;
}
