//! The lockout counters: claims are atomic, the lock is set once, a device's allowance is
//! its own — and the SQL is the pure `LockState` machine, step for step.

use std::sync::Arc;

use portcullis_core::lockout::{Claim, LockState, LockoutPolicy};
use portcullis_core::ports::{AccountReads, Claims, Counter, DeviceReads, Transactions};
use portcullis_store::SqlStore;
use portcullis_testkit::{both, Backend};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::support::{account, commit, store, T};

async fn claims_are_atomic(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = Arc::new(s);
    let id = account(&s, "alice1", "378282246310005").await;
    let mut handles = Vec::new();
    for _ in 0..40 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.claim_attempt(Counter::Account(id), T, 6).await.unwrap()
        }));
    }
    let mut granted = Vec::new();
    for h in handles {
        if let Claim::Granted(n) = h.await.unwrap() {
            granted.push(n);
        }
    }
    granted.sort_unstable();
    assert_eq!(granted, [1, 2, 3, 4, 5, 6]);
    assert_eq!(
        s.claim_attempt(Counter::Account(id), T, 6).await.unwrap(),
        Claim::Exhausted
    );
    // The sixth failure locks; of parallel lockers only one sets it.
    let mut lockers = Vec::new();
    for i in 0..10 {
        let s = s.clone();
        lockers.push(tokio::spawn(async move {
            let mut w = s.begin(T);
            let set = w
                .lock(Counter::Account(id), T.plus_secs(100 + i))
                .await
                .unwrap();
            commit(w).await;
            set
        }));
    }
    let mut set = 0;
    for l in lockers {
        set += usize::from(l.await.unwrap());
    }
    assert_eq!(set, 1, "one locker");
    let until = s
        .account_by_id(id)
        .await
        .unwrap()
        .unwrap()
        .locked_until
        .unwrap();
    assert_eq!(
        s.claim_attempt(Counter::Account(id), T.plus_secs(1), 6)
            .await
            .unwrap(),
        Claim::Locked(until)
    );
    // When the lock runs out the count starts afresh.
    assert_eq!(
        s.claim_attempt(Counter::Account(id), until, 6)
            .await
            .unwrap(),
        Claim::Granted(1)
    );
    s.release_attempt(Counter::Account(id)).await.unwrap();
    assert_eq!(s.account_by_id(id).await.unwrap().unwrap().failed_count, 0);
    s.claim_attempt(Counter::Account(id), T, 6).await.unwrap();
    let mut w = s.begin(T);
    w.reset_failures(Counter::Account(id)).await.unwrap();
    commit(w).await;
    assert_eq!(s.account_by_id(id).await.unwrap().unwrap().failed_count, 0);
}
both!(claims_are_atomic_conformance, claims_are_atomic);

async fn device_counters_are_separate(backend: Backend) {
    let (s, _db) = store(backend).await;
    let account_id = account(&s, "alice1", "378282246310005").await;
    let mut w = s.begin(T);
    let device = w
        .create_device(account_id, &[5; 32], Some("Phone"))
        .await
        .unwrap();
    commit(w).await;
    // Locking the account leaves the device's own allowance untouched.
    for _ in 0..6 {
        s.claim_attempt(Counter::Account(account_id), T, 6)
            .await
            .unwrap();
    }
    let mut w = s.begin(T);
    w.lock(Counter::Account(account_id), T.plus_secs(60))
        .await
        .unwrap();
    commit(w).await;
    for n in 1..=4 {
        assert_eq!(
            s.claim_attempt(Counter::Device(device), T, 4)
                .await
                .unwrap(),
            Claim::Granted(n)
        );
    }
    let mut w = s.begin(T);
    assert!(w
        .lock(Counter::Device(device), T.plus_secs(30))
        .await
        .unwrap());
    commit(w).await;
    assert_eq!(
        s.claim_attempt(Counter::Device(device), T, 4)
            .await
            .unwrap(),
        Claim::Locked(T.plus_secs(30))
    );
    assert_eq!(
        s.account_by_id(account_id)
            .await
            .unwrap()
            .unwrap()
            .locked_until,
        Some(T.plus_secs(60))
    );
}
both!(
    device_counters_are_separate_conformance,
    device_counters_are_separate
);

/// One step of the model-based test.
#[derive(Clone, Debug)]
enum Op {
    /// Claim an attempt slot on the account (`false`) or the device (`true`).
    Claim(bool),
    /// The last granted attempt on that counter failed: lock at the threshold.
    Fail(bool),
    /// Give the last slot back (the right password, the wrong account type).
    Release(bool),
    /// A success: the count starts again.
    Succeed(bool),
    /// Support or self-service unlock (the account and its devices).
    Unlock,
    /// Time passes.
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<bool>().prop_map(Op::Claim),
        3 => any::<bool>().prop_map(Op::Fail),
        1 => any::<bool>().prop_map(Op::Release),
        1 => any::<bool>().prop_map(Op::Succeed),
        1 => Just(Op::Unlock),
        2 => (0i64..150).prop_map(Op::Advance),
    ]
}

/// The SQL state of a counter, as the machine sees it.
async fn sql_state(s: &SqlStore, account: i64, device: Option<i64>) -> LockState {
    match device {
        None => {
            let a = s.account_by_id(account).await.unwrap().unwrap();
            LockState {
                failed_count: a.failed_count,
                locked_until: a.locked_until,
            }
        }
        Some(id) => {
            let d = s
                .list_devices(account)
                .await
                .unwrap()
                .into_iter()
                .find(|d| d.id == id)
                .unwrap();
            LockState {
                failed_count: d.failed_count,
                locked_until: d.locked_until,
            }
        }
    }
}

/// Runs `ops` on the pure machine and on the store side by side, comparing every answer
/// and the state after every step.
async fn run_model(s: &SqlStore, account: i64, ops: &[Op]) -> Result<(), TestCaseError> {
    let account_policy = LockoutPolicy {
        lock_after_failures: 3,
        lock_for_secs: 100,
        device_allowance: 2,
    };
    let device_policy = LockoutPolicy {
        lock_after_failures: account_policy.device_allowance,
        ..account_policy
    };
    // A fresh device for this case, and the account back to its first state.
    let mut w = s.begin(T);
    let device = w
        .create_device(
            account,
            &portcullis_crypto::token::random_bytes::<32>(),
            None,
        )
        .await
        .unwrap();
    w.unlock_account(account).await.unwrap();
    commit(w).await;
    let mut models = [LockState::default(), LockState::default()];
    let mut last_claim: [Option<u32>; 2] = [None, None];
    let mut now = T;
    for op in ops {
        let (on_device, counter) = match op {
            Op::Claim(d) | Op::Fail(d) | Op::Release(d) | Op::Succeed(d) => (
                *d,
                if *d {
                    Counter::Device(device)
                } else {
                    Counter::Account(account)
                },
            ),
            Op::Unlock | Op::Advance(_) => (false, Counter::Account(account)),
        };
        let i = usize::from(on_device);
        let policy = if on_device {
            &device_policy
        } else {
            &account_policy
        };
        match op {
            Op::Claim(_) => {
                let expected = models[i].claim(policy, now);
                let got = s
                    .claim_attempt(counter, now, policy.lock_after_failures)
                    .await
                    .unwrap();
                prop_assert_eq!(got, expected, "claim on {:?}", counter);
                last_claim[i] = match got {
                    Claim::Granted(n) => Some(n),
                    _ => None,
                };
            }
            Op::Fail(_) => {
                let Some(claimed) = last_claim[i].take() else {
                    continue;
                };
                let expected = models[i].fail(policy, claimed, now);
                // The service locks only at the threshold, as the machine does.
                let got = if claimed >= policy.lock_after_failures {
                    let mut w = s.begin(now);
                    let set = w
                        .lock(counter, now.plus_secs(policy.lock_for_secs))
                        .await
                        .unwrap();
                    commit(w).await;
                    set
                } else {
                    false
                };
                prop_assert_eq!(got, expected, "lock on {:?}", counter);
            }
            Op::Release(_) => {
                if last_claim[i].take().is_none() {
                    continue;
                }
                models[i].release();
                s.release_attempt(counter).await.unwrap();
            }
            Op::Succeed(_) => {
                if last_claim[i].take().is_none() {
                    continue;
                }
                models[i].succeed();
                let mut w = s.begin(now);
                w.reset_failures(counter).await.unwrap();
                commit(w).await;
            }
            Op::Unlock => {
                models[0].unlock();
                models[1].unlock();
                last_claim = [None, None];
                let mut w = s.begin(now);
                w.unlock_account(account).await.unwrap();
                commit(w).await;
            }
            Op::Advance(secs) => now = now.plus_secs(*secs),
        }
        prop_assert_eq!(
            sql_state(s, account, None).await,
            models[0],
            "account after {:?}",
            op
        );
        prop_assert_eq!(
            sql_state(s, account, Some(device)).await,
            models[1],
            "device after {:?}",
            op
        );
    }
    Ok(())
}

/// The pure machine of `portcullis_core::lockout` and the statements of
/// `store/src/lockout.rs` agree on every answer and every state, for random sequences of
/// claims, failures, releases, successes, unlocks and time, on both databases.
async fn lock_state_machine_is_the_sql(backend: Backend) {
    let (s, _db) = store(backend).await;
    let account = account(&s, "model.user", "378282246310005").await;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let result = tokio::task::block_in_place(|| {
        runner.run(&proptest::collection::vec(op(), 1..30), |ops| {
            handle.block_on(run_model(&s, account, &ops))
        })
    });
    if let Err(e) = result {
        panic!("the SQL and the lockout machine disagree: {e}");
    }
}
both!(
    lock_state_machine_is_the_sql_conformance,
    lock_state_machine_is_the_sql
);
