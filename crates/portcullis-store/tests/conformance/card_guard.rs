//! The card ID limit per card: its claim is one atomic upsert (parallel guesses never get
//! past the limit), pausing and clearing are unit-of-work writes, and the statements equal
//! the pure `CardGuard` of `portcullis_core::card_guard` step by step, on both databases.

use std::sync::Arc;

use portcullis_core::card_guard::{CardGuard, CardGuardPolicy, GuardClaim};
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{CardGuardClaims, RegistryReads, Transactions};
use portcullis_store::SqlStore;
use portcullis_testkit::{both, Backend};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::support::{commit, seed_record, store, T};

const POLICY: CardGuardPolicy = CardGuardPolicy {
    failures: 5,
    window_secs: 24 * 3600,
};

async fn parallel_guesses(backend: Backend) {
    let (s, _db) = store(backend).await;
    let card = seed_record(&s, "378282246310005").await;
    let other = seed_record(&s, "371449635398431").await;
    let s = Arc::new(s);
    let mut handles = Vec::new();
    for _ in 0..12 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.card_guard_claim(card, T, POLICY).await.unwrap()
        }));
    }
    let mut granted = Vec::new();
    for h in handles {
        if let GuardClaim::Granted(n) = h.await.unwrap() {
            granted.push(n);
        }
    }
    granted.sort_unstable();
    assert_eq!(granted, [1, 2, 3, 4, 5], "12 at once: 5 tries, no more");
    // Another card has its own count.
    assert_eq!(
        s.card_guard_claim(other, T, POLICY).await.unwrap(),
        GuardClaim::Granted(1)
    );
    // A right card ID gives its try back.
    s.card_guard_release(card).await.unwrap();
    assert_eq!(
        s.card_guard_claim(card, T.plus_secs(1), POLICY)
            .await
            .unwrap(),
        GuardClaim::Granted(5)
    );
    // Pausing happens once; a paused card takes no try, even after the window.
    let mut w = s.begin(T.plus_secs(2));
    assert!(w.pause_card(card).await.unwrap());
    assert!(!w.pause_card(card).await.unwrap());
    commit(w).await;
    let later = T.plus_secs(10 * POLICY.window_secs);
    assert_eq!(
        s.card_guard_claim(card, later, POLICY).await.unwrap(),
        GuardClaim::Refused
    );
    // The holder's way back: its own count of card IDs, on a paused card only.
    assert!(s.card_paused(card).await.unwrap());
    assert!(!s.card_paused(other).await.unwrap());
    assert_eq!(s.card_unpause_claim(other, POLICY).await.unwrap(), None);
    for n in 1..=POLICY.failures {
        assert_eq!(s.card_unpause_claim(card, POLICY).await.unwrap(), Some(n));
    }
    assert_eq!(
        s.card_unpause_claim(card, POLICY).await.unwrap(),
        None,
        "support only now"
    );
    // Support clears it: a fresh count.
    let mut w = s.begin(later);
    assert!(w.clear_card_guard(card).await.unwrap(), "it was paused");
    assert!(!w.clear_card_guard(card).await.unwrap());
    commit(w).await;
    assert_eq!(
        s.card_guard_claim(card, later, POLICY).await.unwrap(),
        GuardClaim::Granted(1)
    );
    // A dropped unit of work pauses nothing.
    let mut w = s.begin(later);
    assert!(w.pause_card(card).await.unwrap());
    drop(w);
    assert_eq!(
        s.card_guard_claim(card, later, POLICY).await.unwrap(),
        GuardClaim::Granted(2)
    );
}
both!(card_guard_parallel_guesses_conformance, parallel_guesses);

#[derive(Clone, Debug)]
enum GuardOp {
    Claim,
    Release,
    Pause,
    Clear,
    Unpause,
    Advance(i64),
}

fn guard_op() -> impl Strategy<Value = GuardOp> {
    prop_oneof![
        6 => Just(GuardOp::Claim),
        2 => Just(GuardOp::Release),
        1 => Just(GuardOp::Pause),
        1 => Just(GuardOp::Clear),
        2 => Just(GuardOp::Unpause),
        2 => (0i64..40).prop_map(GuardOp::Advance),
    ]
}

async fn run_guard(s: &SqlStore, card: i64, ops: &[GuardOp]) -> Result<(), TestCaseError> {
    let policy = CardGuardPolicy {
        failures: 3,
        window_secs: 60,
    };
    // Every case starts from a cleared card.
    let mut w = s.begin(T);
    w.clear_card_guard(card).await.unwrap();
    commit(w).await;
    let mut model = CardGuard::default();
    let mut now = T.0;
    for op in ops {
        match op {
            GuardOp::Claim => {
                let expected = model.claim(now, policy);
                let got = s
                    .card_guard_claim(card, UnixTime(now), policy)
                    .await
                    .unwrap();
                prop_assert_eq!(got, expected, "claim at {}", now);
            }
            GuardOp::Release => {
                model.release();
                s.card_guard_release(card).await.unwrap();
            }
            GuardOp::Pause => {
                // The store pauses only a card that has a row (one that was guessed at):
                // the service pauses only after a granted claim.
                if model.window_start.is_some() {
                    let expected = model.pause();
                    let mut w = s.begin(UnixTime(now));
                    let got = w.pause_card(card).await.unwrap();
                    commit(w).await;
                    prop_assert_eq!(got, expected, "pause at {}", now);
                }
            }
            GuardOp::Clear => {
                let expected = model.clear();
                let mut w = s.begin(UnixTime(now));
                let got = w.clear_card_guard(card).await.unwrap();
                commit(w).await;
                prop_assert_eq!(got, expected, "clear at {}", now);
            }
            GuardOp::Unpause => {
                let expected = model.unpause_claim(policy);
                let got = s.card_unpause_claim(card, policy).await.unwrap();
                prop_assert_eq!(got, expected, "unpause claim at {}", now);
                prop_assert_eq!(s.card_paused(card).await.unwrap(), model.paused);
            }
            GuardOp::Advance(secs) => now += secs,
        }
    }
    Ok(())
}

/// The pure `CardGuard` and the statements of `store/src/card_guard.rs` give the same answer
/// to every claim, pause and clear, for random sequences, on both databases.
async fn card_guard_machine_is_the_sql(backend: Backend) {
    let (s, _db) = store(backend).await;
    let card = seed_record(&s, "378282246310005").await;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let result = tokio::task::block_in_place(|| {
        runner.run(&proptest::collection::vec(guard_op(), 1..30), |ops| {
            handle.block_on(run_guard(&s, card, &ops))
        })
    });
    if let Err(e) = result {
        panic!("the SQL and the card guard machine disagree: {e}");
    }
}
both!(
    card_guard_machine_is_the_sql_conformance,
    card_guard_machine_is_the_sql
);
