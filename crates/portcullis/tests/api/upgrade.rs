//! A rolling upgrade (issue 16) with the previous release's real binary: the commit named in
//! `deploy/previous-release`, built by `scripts/upgrade`, which passes its path in
//! `PORTCULLIS_PREVIOUS_BIN`. (The store's conformance test `upgrade::…` fakes a newer
//! schema; this one runs the two real releases.)
//!
//! On one database (a SQLite file; a fresh database on the PostgreSQL test server) the two
//! binaries take turns: the previous release migrates it and serves; this release migrates it
//! further (its schema version rises) and serves; the previous release starts again on the
//! migrated schema and serves; this release once more. Each turn runs registrations, sign-ins
//! and password changes (a session's bearer token) under load, and starts by checking what
//! the turns before acknowledged: every registered account signs in with the password it
//! should have, and every session opened on an earlier turn, by either binary, is still
//! valid (`GET /api/v1/me`). On PostgreSQL both binaries then serve at once, the load spread
//! over them (a session opened on one node changes its password on the other).
//!
//! Ignored by default: `scripts/upgrade` (a step of `.ci/run`) runs it with `--run-ignored
//! only`, and says SKIPPED where the previous commit is not in the clone.

use std::time::Duration;

use portcullis_testkit::{Backend, RealServer, TestDb};
use sqlx::{Connection, Row};

use crate::ha_load::{
    all_sign_in, bin, finish_load, import_registry_with, node_env, sign_in, start_load, Accounts,
};

/// How long each turn's load runs.
const TURN: Duration = Duration::from_secs(2);

fn previous_bin() -> String {
    std::env::var("PORTCULLIS_PREVIOUS_BIN").unwrap_or_else(|_| {
        panic!(
            "PORTCULLIS_PREVIOUS_BIN is not set: run scripts/upgrade, which builds the previous \
             release's binary (deploy/previous-release) and names it there"
        )
    })
}

/// The highest migration version applied to the database at `url`.
async fn schema_version(url: &str, backend: Backend) -> i64 {
    let sql = "SELECT MAX(version) AS v FROM _sqlx_migrations";
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(sql)
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get("v")
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(sql)
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get("v")
        }
    }
}

/// What the turns so far acknowledged: accounts, and sessions with the turn that opened them.
#[derive(Default)]
struct Ledger {
    accounts: Accounts,
    sessions: Vec<(String, String)>,
    next_card: usize,
}

/// One turn on `bases` (nodes of the binaries `who` names): everything acknowledged before
/// holds here, then the load runs for [`TURN`] and opens a session for the next turns.
async fn turn(bases: &[String], who: &str, ledger: &mut Ledger) {
    for (opened, token) in &ledger.sessions {
        for base in bases {
            let status = reqwest::Client::new()
                .get(format!("{base}/api/v1/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(
                status, 200,
                "{who}: a session opened by {opened} is not valid"
            );
        }
    }
    all_sign_in(bases, &ledger.accounts).await;
    let checked = ledger.accounts.stable.len()
        + ledger.accounts.changed.len()
        + ledger.accounts.uncertain.len();

    let (load, workers) = start_load(bases, ledger.next_card, false);
    tokio::time::sleep(TURN).await;
    finish_load(&load, workers, who, &mut ledger.accounts).await;
    let acknowledged = load.tally.lock().unwrap().acknowledged.len();
    assert!(acknowledged > 0, "{who}: no registration acknowledged");
    ledger.next_card = load.cards_used();
    eprintln!("{who}: {checked} earlier accounts signed in, {acknowledged} registered");

    let user = ledger.accounts.stable.last().unwrap().clone();
    let res = sign_in(&bases[0], &user, portcullis_testkit::PASSWORD)
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{who}: sign-in for a session");
    let body: serde_json::Value = res.json().await.unwrap();
    let token = body["session_token"].as_str().unwrap().to_owned();
    ledger.sessions.push((who.to_owned(), token));
}

/// Starts a node of `bin`, runs [`turn`] on it and stops it (SIGTERM).
async fn turn_alone(bin: &str, env: &[(&'static str, String)], who: &str, ledger: &mut Ledger) {
    let mut node = tokio::task::block_in_place(|| RealServer::start(bin, env));
    turn(std::slice::from_ref(&node.base), who, ledger).await;
    tokio::task::block_in_place(|| node.stop());
}

async fn take_turns(backend: Backend) {
    let previous = previous_bin();
    let current = bin();
    assert_ne!(
        std::fs::read(&previous).unwrap(),
        std::fs::read(current).unwrap(),
        "the previous release's binary and this one are the same file"
    );
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets").display().to_string();
    // The previous release creates the schema (and imports the cards).
    import_registry_with(&previous, dir.path(), &db.url, &secrets);
    let before = schema_version(&db.url, backend).await;
    let env = node_env(&db.url, &secrets);
    let mut ledger = Ledger::default();

    turn_alone(&previous, &env, "the previous release", &mut ledger).await;
    assert_eq!(schema_version(&db.url, backend).await, before);

    turn_alone(current, &env, "this release (migrating)", &mut ledger).await;
    let after = schema_version(&db.url, backend).await;
    assert!(
        after > before,
        "this release did not migrate the schema further: {before} then {after}"
    );
    eprintln!("schema version: {before} by the previous release, {after} by this one");

    turn_alone(
        &previous,
        &env,
        "the previous release (migrated schema)",
        &mut ledger,
    )
    .await;
    assert_eq!(schema_version(&db.url, backend).await, after);
    turn_alone(current, &env, "this release again", &mut ledger).await;

    if backend == Backend::Postgres {
        // A rolling upgrade half done: a node of each release at once.
        let nodes = tokio::task::block_in_place(|| {
            [
                RealServer::start(&previous, &env),
                RealServer::start(current, &env),
            ]
        });
        let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
        turn(
            &bases,
            "the previous release and this one at once",
            &mut ledger,
        )
        .await;
        all_sign_in(&bases, &ledger.accounts).await;
    } else {
        let mut node = tokio::task::block_in_place(|| RealServer::start(current, &env));
        all_sign_in(std::slice::from_ref(&node.base), &ledger.accounts).await;
        tokio::task::block_in_place(|| node.stop());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the previous release's binary: run scripts/upgrade"]
async fn previous_release_and_this_one_take_turns_on_sqlite_and_lose_nothing() {
    take_turns(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the previous release's binary: run scripts/upgrade"]
async fn previous_release_and_this_one_take_turns_and_serve_at_once_on_postgres_and_lose_nothing() {
    take_turns(Backend::Postgres).await;
}
