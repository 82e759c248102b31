//! A database outage (issue 16) on the real binary: two Portcullis nodes on a private
//! PostgreSQL (its own cluster on a free loopback port, never the machine's; the crash
//! test's `PrivatePg`), under registration, sign-in and password-change load; the database stopped
//! with `pg_ctl stop -m immediate` (every connection cut, as a crash), left down 20 s and
//! started again. Only 200/201/204 or 503 + `Retry-After` meanwhile, no hang, no dropped
//! connection; the nodes recover by themselves; nothing acknowledged is lost.
//!
//! Ignored by default: `scripts/outage` runs it with `--run-ignored only` (a step of
//! `.ci/run`, which installs Debian's `postgresql-15` when the server binaries are missing).
//! Where they cannot be had the test says SKIPPED, loudly.

use std::time::{Duration, Instant};

use portcullis_testkit::RealServer;

use crate::crash::PrivatePg;
use crate::ha_load::{
    all_sign_in, bin, import_registry, node_env, start_load, stop_load, Accounts,
};

/// A private PostgreSQL (the crash test's: `initdb` and `pg_ctl` as the `postgres` user in
/// a temporary folder, on a free loopback port); `None`, after a SKIPPED banner, where its
/// server binaries cannot be had.
pub fn private_pg(test: &str) -> Option<PrivatePg> {
    match PrivatePg::start() {
        Ok(pg) => Some(pg),
        Err(reason) => {
            eprintln!(
                "\n{0}\n# SKIPPED: {test}\n# Reason: {reason}\n{0}\n",
                "#".repeat(80)
            );
            None
        }
    }
}

const OUTAGE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "starts and stops a private PostgreSQL: run scripts/outage"]
async fn database_outage_under_load_answers_only_success_or_503_and_loses_nothing() {
    let Some(db) = private_pg("the database outage test (tests/api/outage.rs)") else {
        return;
    };
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets").display().to_string();
    import_registry(dir.path(), &url, &secrets);
    let env = node_env(&url, &secrets);
    let mut nodes = [
        RealServer::start(bin(), &env),
        RealServer::start(bin(), &env),
    ];
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    let (load, workers) = start_load(&bases, 0, false);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = load.tally.lock().unwrap().acknowledged.len();
    assert!(before > 0, "no registration acknowledged before the outage");
    db.down();
    let halted = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    let unavailable_during = load.tally.lock().unwrap().unavailable;
    db.up().unwrap();
    let resumed = Instant::now();
    let back = loop {
        if let Some(at) = load.first_registration_after(resumed) {
            break at;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(30),
            "no registration succeeded within 30 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A little more load on the database back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_load(&load, workers).await;
    let mut accounts = Accounts::default();
    {
        let t = load.tally.lock().unwrap();
        eprintln!(
            "database down {:?}; registrations again {:?} after its return; {}",
            resumed - halted,
            back - resumed,
            t.summary()
        );
        t.assert_no_bad("the database outage");
        assert!(
            unavailable_during > 0,
            "no 503 while the database was down: the load did not reach it"
        );
        accounts.absorb(&t);
    }
    // The same processes, never restarted, serve again and lost nothing acknowledged.
    for n in &mut nodes {
        assert!(
            n.child.try_wait().unwrap().is_none(),
            "a node exited during the outage"
        );
    }
    all_sign_in(&bases, &accounts).await;
}
