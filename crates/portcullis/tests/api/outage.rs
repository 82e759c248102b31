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
    all_sign_in, bin, finish_load, import_registry, node_env, start_load, Accounts,
};

/// A private PostgreSQL (the crash test's: `initdb` and `pg_ctl` as the `postgres` user in
/// a temporary folder, on a free loopback port) with the cards imported, and the
/// environment of nodes on it (keyring in `_dir`).
pub struct Site {
    pub db: PrivatePg,
    pub env: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

/// Sets up a [`Site`]; `None`, after a SKIPPED banner naming `test`, where PostgreSQL's
/// server binaries cannot be had.
pub fn private_site(test: &str) -> Option<Site> {
    let db = match PrivatePg::start() {
        Ok(pg) => pg,
        Err(reason) => {
            eprintln!(
                "\n{0}\n# SKIPPED: {test}\n# Reason: {reason}\n{0}\n",
                "#".repeat(80)
            );
            return None;
        }
    };
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets").display().to_string();
    import_registry(dir.path(), &url, &secrets);
    Some(Site {
        env: node_env(&url, &secrets),
        db,
        _dir: dir,
    })
}

const OUTAGE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "starts and stops a private PostgreSQL: run scripts/outage"]
async fn database_outage_under_load_answers_only_success_or_503_and_loses_nothing() {
    let Some(Site { db, env, _dir }) =
        private_site("the database outage test (tests/api/outage.rs)")
    else {
        return;
    };
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
    let back = load
        .registration_after(resumed, "the database's return")
        .await;
    // A little more load on the database back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        unavailable_during > 0,
        "no 503 while the database was down: the load did not reach it"
    );
    let mut accounts = Accounts::default();
    let what = format!(
        "database down {:?}; registrations again {:?} after its return",
        resumed - halted,
        back - resumed
    );
    finish_load(&load, workers, &what, &mut accounts).await;
    // The same processes, never restarted, serve again and lost nothing acknowledged.
    for n in &mut nodes {
        assert!(
            n.child.try_wait().unwrap().is_none(),
            "a node exited during the outage"
        );
    }
    all_sign_in(&bases, &accounts).await;
}
