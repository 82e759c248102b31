//! The other limits: throttle buckets (and the pure `Bucket` machine they are), tries on a
//! step, and the leases of scheduled jobs. Each is one claim statement; parallel claims
//! never get past the limit.

use std::sync::Arc;

use portcullis_core::ports::{Claims, RegistryImports, StepReads, Transactions};
use portcullis_core::steps::StepKind;
use portcullis_core::throttle::Bucket;
use portcullis_store::SqlStore;
use portcullis_testkit::{both, Backend};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::support::{step, store, T};

async fn throttle_buckets(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = Arc::new(s);
    let mut handles = Vec::new();
    for _ in 0..30 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.throttle_claim("signin:198.51.100.7", T, 600, 10)
                .await
                .unwrap()
        }));
    }
    let mut granted = 0;
    for h in handles {
        if h.await.unwrap().is_none() {
            granted += 1;
        }
    }
    assert_eq!(granted, 10, "no parallel claim slips past the limit");
    assert_eq!(
        s.throttle_claim("signin:198.51.100.7", T.plus_secs(10), 600, 10)
            .await
            .unwrap(),
        Some(T.0)
    );
    // Another address has its own bucket.
    assert_eq!(
        s.throttle_claim("signin:198.51.100.8", T, 600, 10)
            .await
            .unwrap(),
        None
    );
    // A success gives its place back.
    s.throttle_release("signin:198.51.100.7").await.unwrap();
    assert_eq!(
        s.throttle_claim("signin:198.51.100.7", T.plus_secs(10), 600, 10)
            .await
            .unwrap(),
        None
    );
    // When the window closes the bucket starts again.
    assert_eq!(
        s.throttle_claim("signin:198.51.100.7", T.plus_secs(600), 600, 10)
            .await
            .unwrap(),
        None
    );
}
both!(throttle_buckets_conformance, throttle_buckets);

#[derive(Clone, Debug)]
enum BucketOp {
    Claim,
    Release,
    Advance(i64),
}

fn bucket_op() -> impl Strategy<Value = BucketOp> {
    prop_oneof![
        5 => Just(BucketOp::Claim),
        2 => Just(BucketOp::Release),
        2 => (0i64..40).prop_map(BucketOp::Advance),
    ]
}

async fn run_bucket(s: &SqlStore, case: u64, ops: &[BucketOp]) -> Result<(), TestCaseError> {
    const WINDOW: i64 = 60;
    const LIMIT: u32 = 3;
    let bucket = format!("model:{case}");
    let mut model = Bucket::default();
    let mut now = T.0;
    for op in ops {
        match op {
            BucketOp::Claim => {
                let expected = model.claim(now, WINDOW, LIMIT);
                let got = s
                    .throttle_claim(
                        &bucket,
                        portcullis_core::clock::UnixTime(now),
                        WINDOW,
                        LIMIT,
                    )
                    .await
                    .unwrap();
                prop_assert_eq!(got, expected, "claim at {}", now);
            }
            BucketOp::Release => {
                model.release();
                s.throttle_release(&bucket).await.unwrap();
            }
            BucketOp::Advance(secs) => now += secs,
        }
    }
    Ok(())
}

/// The pure `Bucket` of `portcullis_core::throttle` and the upsert of
/// `store/src/throttle.rs` give the same answer to every claim, for random sequences of
/// claims, releases and time, on both databases.
async fn throttle_machine_is_the_sql(backend: Backend) {
    let (s, _db) = store(backend).await;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0u64);
    let result = tokio::task::block_in_place(|| {
        runner.run(&proptest::collection::vec(bucket_op(), 1..30), |ops| {
            case.set(case.get() + 1);
            handle.block_on(run_bucket(&s, case.get(), &ops))
        })
    });
    if let Err(e) = result {
        panic!("the SQL and the throttle machine disagree: {e}");
    }
}
both!(
    throttle_machine_is_the_sql_conformance,
    throttle_machine_is_the_sql
);

async fn step_tries_are_bounded(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = Arc::new(s);
    step(&s, [4; 32], StepKind::RecoveryPassword, 1, "").await;
    let mut handles = Vec::new();
    for _ in 0..15 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.step_attempt(&[4; 32], StepKind::RecoveryPassword, 5)
                .await
                .unwrap()
        }));
    }
    let mut counts: Vec<u32> = Vec::new();
    for h in handles {
        counts.extend(h.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        [1, 2, 3, 4, 5],
        "five tries, whatever the parallelism"
    );
    // Only under its own kind, and not for a step that is not there.
    assert_eq!(
        s.step_attempt(&[4; 32], StepKind::RecoveryCode, 5)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.step_attempt(&[5; 32], StepKind::RecoveryPassword, 5)
            .await
            .unwrap(),
        None
    );
}
both!(step_tries_are_bounded_conformance, step_tries_are_bounded);

async fn job_leases_have_one_winner(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.claim_job("inactivity", &format!("node-{i}"), T, T.plus_secs(3600))
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "one node claims the lease");
    assert!(!s
        .claim_job("inactivity", "late", T.plus_secs(3599), T.plus_secs(7200))
        .await
        .unwrap());
    assert!(s
        .claim_job("inactivity", "late", T.plus_secs(3600), T.plus_secs(7200))
        .await
        .unwrap());
    assert!(!s
        .claim_job("no-such-job", "x", T, T.plus_secs(1))
        .await
        .unwrap());
}
both!(
    job_leases_have_one_winner_conformance,
    job_leases_have_one_winner
);

/// A node stopped mid-run gives its lease back; only the holder can, and the next node
/// claims it at once, within what would have been the lease.
async fn job_leases_are_released_by_their_holder(backend: Backend) {
    let (s, _db) = store(backend).await;
    assert!(s
        .claim_job("inactivity", "a", T, T.plus_secs(3600))
        .await
        .unwrap());
    assert!(!s.release_job("inactivity", "b").await.unwrap());
    assert!(!s
        .claim_job("inactivity", "b", T.plus_secs(10), T.plus_secs(3610))
        .await
        .unwrap());
    assert!(s.release_job("inactivity", "a").await.unwrap());
    assert!(s
        .claim_job("inactivity", "b", T.plus_secs(10), T.plus_secs(3610))
        .await
        .unwrap());
    // "a" no longer holds it: its release is a no-op and "b" keeps it.
    assert!(!s.release_job("inactivity", "a").await.unwrap());
    assert!(!s
        .claim_job("inactivity", "c", T.plus_secs(20), T.plus_secs(3620))
        .await
        .unwrap());
}
both!(
    job_leases_are_released_by_their_holder_conformance,
    job_leases_are_released_by_their_holder
);

async fn sweep(backend: Backend) {
    use portcullis_core::ports::{SweepCutoffs, Swept};
    let (s, _db) = store(backend).await;
    // Two steps (expiring at T + 600), two buckets, 2,500 more buckets to see batches.
    step(&s, [1; 32], StepKind::RecoveryUserId, -1, "email").await;
    step(&s, [2; 32], StepKind::RecoveryUserId, -1, "email").await;
    for i in 0..2_500 {
        s.throttle_claim(&format!("sweep:{i}"), T, 600, 1)
            .await
            .unwrap();
    }
    s.throttle_claim("fresh", T.plus_secs(1000), 600, 1)
        .await
        .unwrap();
    // A registry push key stored at T.
    let mut import = s.begin_import(T).await.unwrap();
    import
        .claim_push_key("old-push", &[3; 32], "{}")
        .await
        .unwrap();
    import.commit(&crate::support::keys().into()).await.unwrap();
    // An API Idempotency-Key kept at T.
    let mut w = s.begin(T);
    w.keep_idempotency_key("registration", "old-key", &[4; 32], "ann.example")
        .await
        .unwrap();
    crate::support::commit(w).await;
    let cutoffs = |at: i64| SweepCutoffs {
        steps_before: T.plus_secs(at),
        codes_before: T.plus_secs(at),
        throttle_before: T.plus_secs(at),
        devices_before: T.plus_secs(at),
        contacts_before: T.plus_secs(at),
        push_keys_before: T.plus_secs(at),
        idempotency_keys_before: T.plus_secs(at),
        webhooks_sent_before: T.plus_secs(at),
        webhooks_failed_before: T.plus_secs(at),
        oidc_before: T,
    };
    assert_eq!(
        s.sweep_expired(cutoffs(-1)).await.unwrap(),
        Swept::default(),
        "nothing before its time"
    );
    let swept = s.sweep_expired(cutoffs(600)).await.unwrap();
    assert_eq!(swept.steps, 2);
    assert_eq!(swept.throttle, 2_500, "in batches, every one");
    assert_eq!(swept.push_keys, 1);
    assert_eq!(swept.idempotency_keys, 1);
    assert!(s
        .find_idempotency_key("registration", "old-key")
        .await
        .unwrap()
        .is_none());
    // The fresh bucket stays.
    assert_eq!(
        s.throttle_claim("fresh", T.plus_secs(1001), 600, 1)
            .await
            .unwrap(),
        Some(T.0 + 1000)
    );
    assert_eq!(
        s.sweep_expired(cutoffs(600)).await.unwrap(),
        Swept::default()
    );
}
both!(the_sweep_deletes_in_batches_conformance, sweep);

/// An Idempotency-Key is kept with its request's hash and answer, found under its own
/// scope only, and a second keep of the same key (a parallel request) is refused as
/// retryable, not stored twice.
async fn idempotency_keys(backend: Backend) {
    use portcullis_core::ports::StoreError;
    let (s, _db) = store(backend).await;
    assert!(s
        .find_idempotency_key("registration", "k-1")
        .await
        .unwrap()
        .is_none());
    let mut w = s.begin(T);
    w.keep_idempotency_key("registration", "k-1", &[7; 32], "ann.example")
        .await
        .unwrap();
    crate::support::commit(w).await;
    let kept = s
        .find_idempotency_key("registration", "k-1")
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(kept.request_hash, vec![7; 32]);
    assert_eq!(kept.response, "ann.example");
    assert!(s
        .find_idempotency_key("other", "k-1")
        .await
        .unwrap()
        .is_none());
    let mut w = s.begin(T);
    let again = w
        .keep_idempotency_key("registration", "k-1", &[8; 32], "ben.example")
        .await;
    assert!(
        matches!(again, Err(StoreError::Unavailable(_))),
        "{again:?}"
    );
    drop(w);
    let kept = s
        .find_idempotency_key("registration", "k-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.response, "ann.example", "the first answer stays");
}
both!(idempotency_keys_are_kept_once_conformance, idempotency_keys);
