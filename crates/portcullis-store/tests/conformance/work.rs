//! The unit of work: its writes, its messages and its audit events commit together, or —
//! dropped, or refused part-way — nothing of it is left.

use portcullis_core::audit::{AuditEvent, AuditKind};
use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{
    Committed, Counter, Message, Outgoing, StepReads, Transactions, UnitOfWork,
};
use portcullis_core::steps::StepKind;
use portcullis_testkit::{both, Backend};

use crate::support::{account, audited, commit, new_account, pending, seed_record, step, store, T};

fn msg(to: &str) -> Outgoing {
    Message {
        channel: CodeChannel::Email,
        to: to.into(),
        subject: "s".into(),
        body: "b".into(),
        sensitive: false,
    }
    .into()
}

fn event() -> AuditEvent {
    AuditEvent::new(AuditKind::SupportAction, None).detail("test")
}

async fn a_dropped_unit_leaves_nothing(backend: Backend) {
    let (s, _db) = store(backend).await;
    let mut w = s.begin(T);
    w.create_step(&[1; 32], StepKind::NotMe, 1, "", T.plus_secs(60))
        .await
        .unwrap();
    w.send(msg("a@example.com"));
    w.audit(event());
    drop(w);
    assert!(s
        .find_step(&[1; 32], StepKind::NotMe, T)
        .await
        .unwrap()
        .is_none());
    assert_eq!((pending(&s).await, audited(&s).await), (0, 0));
    // The same, committed: all three.
    let mut w = s.begin(T);
    w.create_step(&[1; 32], StepKind::NotMe, 1, "", T.plus_secs(60))
        .await
        .unwrap();
    w.send(msg("a@example.com"));
    w.send(msg("b@example.com"));
    w.audit(event());
    assert_eq!(w.now(), T);
    assert_eq!(
        commit(w).await,
        Committed {
            messages: 2,
            audited: 1
        }
    );
    assert!(s
        .find_step(&[1; 32], StepKind::NotMe, T)
        .await
        .unwrap()
        .is_some());
    assert_eq!((pending(&s).await, audited(&s).await), (2, 1));
}
both!(
    a_dropped_unit_leaves_nothing_conformance,
    a_dropped_unit_leaves_nothing
);

async fn an_empty_unit_commits_nothing(backend: Backend) {
    let (s, _db) = store(backend).await;
    let w: Box<dyn UnitOfWork> = s.begin(T);
    assert_eq!(commit(w).await, Committed::default());
    // Messages alone, or an audit event alone, are committed all the same.
    let mut w = s.begin(T);
    w.audit(event());
    assert_eq!(commit(w).await.audited, 1);
    let mut w = s.begin(T);
    w.send(msg("a@example.com"));
    assert_eq!(commit(w).await.messages, 1);
}
both!(
    an_empty_unit_commits_nothing_conformance,
    an_empty_unit_commits_nothing
);

/// A state change and the message it causes commit together, or neither does.
async fn messages_commit_with_their_state_change(backend: Backend) {
    let (s, _db) = store(backend).await;
    let rid = seed_record(&s, "378282246310005").await;
    step(&s, [42; 32], StepKind::Registration, rid, "").await;
    let mut w = s.begin(T);
    let id = w
        .create_account(new_account("alice1", rid, [42; 32]))
        .await
        .unwrap();
    w.send(msg("holder@example.com"));
    commit(w).await;
    assert_eq!(pending(&s).await, 1);
    // A refused creation (its unit dropped) queues nothing.
    step(&s, [43; 32], StepKind::Registration, rid, "").await;
    let mut w = s.begin(T);
    w.send(msg("holder@example.com"));
    assert!(w
        .create_account(new_account("bob123", rid, [43; 32]))
        .await
        .is_err());
    drop(w);
    assert_eq!(pending(&s).await, 1);
    // The lock's notice goes with the unit that set the lock; the other drops its own.
    for expect_set in [true, false] {
        let mut w = s.begin(T);
        let set = w.lock(Counter::Account(id), T.plus_secs(60)).await.unwrap();
        assert_eq!(set, expect_set);
        if set {
            w.send(msg("a@example.com"));
            commit(w).await;
        }
    }
    assert_eq!(pending(&s).await, 2);
    let mut w = s.begin(T);
    w.change_password(id, "hash-1", 0).await.unwrap();
    w.send(msg("a@example.com"));
    w.audit(event());
    commit(w).await;
    assert_eq!((pending(&s).await, audited(&s).await), (3, 1));
}
both!(
    messages_commit_with_their_state_change_conformance,
    messages_commit_with_their_state_change
);

/// A code's message is sealed at rest when sent through a unit of work too.
async fn sealed_in_a_unit(backend: Backend) {
    use portcullis_core::ports::OutboxStore;
    let (s, _db) = store(backend).await;
    let s = s.with_outbox_key(&[9; 32]);
    let _ = account(&s, "alice1", "378282246310005").await;
    let mut w = s.begin(T);
    w.send(
        Message {
            channel: CodeChannel::Email,
            to: "ann@example.com".into(),
            subject: "Your code".into(),
            body: "Your code is 493817.".into(),
            sensitive: true,
        }
        .into(),
    );
    commit(w).await;
    let stored: String = sqlx::query_scalar("SELECT body FROM outbox")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert!(stored.starts_with("sealed:v2:1:") && !stored.contains("493817"));
    let rows = s.claim("a", T, 60, 10).await.unwrap();
    assert_eq!(rows[0].body, "Your code is 493817.");
}
both!(sealed_in_a_unit_conformance, sealed_in_a_unit);

/// Many units of work at once, each pausing inside its transaction: every one commits (on
/// SQLite they queue for the writer in the process instead of polling SQLite's busy
/// handler), none is lost, and the audit chain holds one entry per unit, in sequence.
async fn concurrent_units_all_commit(backend: Backend) {
    let (s, _db) = store(backend).await;
    let units = 24u8;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..units {
        let s = s.clone();
        tasks.spawn(async move {
            let mut w = s.begin(T);
            w.create_step(&[i; 32], StepKind::NotMe, 1, "", T.plus_secs(60))
                .await
                .unwrap();
            tokio::task::yield_now().await;
            w.audit(event());
            commit(w).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.unwrap().audited, 1);
    }
    for i in 0..units {
        assert!(s
            .find_step(&[i; 32], StepKind::NotMe, T)
            .await
            .unwrap()
            .is_some());
    }
    assert_eq!(audited(&s).await, i64::from(units));
}
both!(
    concurrent_units_all_commit_conformance,
    concurrent_units_all_commit
);

/// More units dropped part-way than the pool has connections, some while their statement is
/// still running: each is rolled back before its connection is used again (on SQLite, where
/// the store writes its transactions out itself, a connection left inside one would hold the
/// writer and refuse every later `BEGIN`), so the next units commit and nothing of the
/// dropped ones is left.
async fn dropped_units_free_their_connections(backend: Backend) {
    let (s, _db) = store(backend).await;
    for i in 0..20u8 {
        let mut w = s.begin(T);
        if i % 2 == 0 {
            w.create_step(&[i; 32], StepKind::NotMe, 1, "", T.plus_secs(60))
                .await
                .unwrap();
        } else {
            // Dropped mid-statement: the write is polled once, then dropped.
            let hash = [i; 32];
            let write = w.create_step(&hash, StepKind::NotMe, 1, "", T.plus_secs(60));
            let _ = tokio::time::timeout(std::time::Duration::ZERO, write).await;
        }
        w.audit(event());
        drop(w);
    }
    let mut w = s.begin(T);
    w.create_step(&[99; 32], StepKind::NotMe, 1, "", T.plus_secs(60))
        .await
        .unwrap();
    w.audit(event());
    assert_eq!(commit(w).await.audited, 1);
    for i in 0..20u8 {
        assert!(s
            .find_step(&[i; 32], StepKind::NotMe, T)
            .await
            .unwrap()
            .is_none());
    }
    assert_eq!(audited(&s).await, 1);
}
both!(
    dropped_units_free_their_connections_conformance,
    dropped_units_free_their_connections
);

/// Reads and units of work one after another use the same connection again, many at once
/// no more than the pool may open, and every connection comes back: on SQLite the store
/// keeps them itself (`db.rs`), and closing the store still ends with all of them closed.
async fn connections_come_back(backend: Backend) {
    let (s, _db) = store(backend).await;
    for i in 0..30u8 {
        let mut w = s.begin(T);
        w.create_step(&[i; 32], StepKind::NotMe, 1, "", T.plus_secs(60))
            .await
            .unwrap();
        w.audit(event());
        commit(w).await;
        assert!(s
            .find_step(&[i; 32], StepKind::NotMe, T)
            .await
            .unwrap()
            .is_some());
    }
    let used = s.pool_usage();
    // PostgreSQL's connections go back through a task of sqlx's, so a third may open while
    // one is on its way back.
    let bound = if backend == Backend::Sqlite { 2 } else { 4 };
    assert!(used.open <= bound, "one after another: {used:?}");
    let mut reads = tokio::task::JoinSet::new();
    for i in 0..40u8 {
        let s = s.clone();
        reads.spawn(async move { s.find_step(&[i % 30; 32], StepKind::NotMe, T).await });
    }
    while let Some(read) = reads.join_next().await {
        assert!(read.unwrap().unwrap().is_some());
    }
    let used = s.pool_usage();
    assert!(used.open <= used.max, "at once: {used:?}");
    if backend == Backend::Sqlite {
        assert_eq!(used.idle, used.open, "every lease ended: {used:?}");
    }
    tokio::time::timeout(std::time::Duration::from_secs(10), s.close())
        .await
        .expect("the store closes with its connections back");
}
both!(connections_come_back_conformance, connections_come_back);

/// SQLite's statements run on the caller's thread (`vendor/sqlx-sqlite`), so a writer that
/// finds the write lock held by another connection (a CLI command's, here a raw one) must
/// wait off the runtime: on a runtime of *one* worker, a ticker and a read still run while
/// the unit waits, the unit commits once the lock is let go, and a lock held past the busy
/// timeout (5 s, as before) makes the unit `Unavailable` after that long, not sooner.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_writer_waiting_for_another_connections_lock_holds_no_worker() {
    use crate::support::keys;
    use portcullis_core::ports::StoreError;
    use portcullis_store::SqlStore;
    use sqlx::Connection;
    use std::time::{Duration, Instant};

    let (s, db) = store(Backend::Sqlite).await;
    step(&s, [1; 32], StepKind::NotMe, 1, "").await;
    let path = db.sqlite_path.clone().expect("a SQLite file");
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();

    let write = |s: &SqlStore, n: u8| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut w = s.begin(T);
            let started = Instant::now();
            let made = w
                .create_step(&[n; 32], StepKind::NotMe, 1, "", T.plus_secs(60))
                .await;
            let done = match made {
                Ok(()) => {
                    w.audit(event());
                    w.commit(&keys().into()).await.map(|_| ())
                }
                Err(e) => Err(e),
            };
            (done, started.elapsed())
        })
    };

    // 1. Held for 400 ms: the runtime's one worker goes on with other tasks meanwhile.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let writer = write(&s, 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let read_started = Instant::now();
    assert!(s
        .find_step(&[1; 32], StepKind::NotMe, T)
        .await
        .unwrap()
        .is_some());
    assert!(
        read_started.elapsed() < Duration::from_millis(250),
        "a read waited {:?} behind a writer's wait",
        read_started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ticked = ticks.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        ticked >= 10,
        "the ticker ran {ticked} times in 400 ms while a writer waited"
    );
    assert!(!writer.is_finished(), "the write did not wait for the lock");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let (done, waited) = writer.await.unwrap();
    done.unwrap();
    assert!(
        waited >= Duration::from_millis(350),
        "waited only {waited:?}"
    );
    assert!(s
        .find_step(&[2; 32], StepKind::NotMe, T)
        .await
        .unwrap()
        .is_some());

    // 2. Held past the busy timeout: `Unavailable`, after it.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let (done, waited) = write(&s, 3).await.unwrap();
    assert!(matches!(done, Err(StoreError::Unavailable(_))), "{done:?}");
    assert!(
        (Duration::from_millis(4_500)..Duration::from_secs(9)).contains(&waited),
        "gave up after {waited:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    ticker.abort();
}

/// The write-ahead log is still checkpointed into the database file as it grows (the driver
/// replaces SQLite's automatic checkpoint with its own hook, which runs the same checkpoint
/// off the runtime): 1,200 commits of a 4 KiB row each reach the main file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_as_it_grows() {
    let (s, db) = store(Backend::Sqlite).await;
    let path = db.sqlite_path.clone().expect("a SQLite file");
    sqlx::query("CREATE TABLE ballast (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .execute(s.pool())
        .await
        .unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    for _ in 0..1_200 {
        sqlx::query("INSERT INTO ballast (body) VALUES (zeroblob(4096))")
            .execute(s.pool())
            .await
            .unwrap();
    }
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(
        after >= before + 3_000_000,
        "the database file grew from {before} to {after} bytes only: no checkpoint"
    );
}
