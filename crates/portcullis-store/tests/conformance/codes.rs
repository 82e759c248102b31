//! Flow steps and one-time codes: a step is found only under its kind and until it expires,
//! and consumed by one caller; a code counts every try in the statement that reads it, is
//! used once, and is resent only so often.

use std::sync::Arc;

use portcullis_core::contact::CodeChannel;
use portcullis_core::otp::{CodePolicy, Resend};
use portcullis_core::ports::{Claims, NewCode, StepReads, Transactions};
use portcullis_core::steps::{CodePurpose, StepKind};
use portcullis_testkit::{both, Backend};

use crate::support::{account, commit, step, store, T};

async fn steps_are_single_use(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = Arc::new(s);
    let h = [9u8; 32];
    step(&s, h, StepKind::RecoveryPassword, 42, "data").await;
    assert!(
        s.find_step(&h, StepKind::Registration, T)
            .await
            .unwrap()
            .is_none(),
        "kind matters"
    );
    let found = s
        .find_step(&h, StepKind::RecoveryPassword, T)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.kind, found.subject_id, found.data.as_str()),
        (StepKind::RecoveryPassword, 42, "data")
    );
    assert_eq!(found.expires_at, T.plus_secs(600));
    assert!(
        s.find_step(&h, StepKind::RecoveryPassword, T.plus_secs(600))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    let mut handles = Vec::new();
    for _ in 0..10 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut w = s.begin(T);
            let won = w
                .consume_step(&h, StepKind::RecoveryPassword)
                .await
                .unwrap();
            commit(w).await;
            won
        }));
    }
    let mut winners = 0;
    for handle in handles {
        winners += usize::from(handle.await.unwrap());
    }
    assert_eq!(winners, 1);
}
both!(steps_are_single_use_conformance, steps_are_single_use);

fn code(step: [u8; 32], account_id: i64, hash: u8) -> NewCode {
    NewCode {
        step_hash: step,
        account_id,
        purpose: CodePurpose::RecoveryByCard,
        code_hash: [hash; 32],
        channel: CodeChannel::Email,
        expires_at: T.plus_secs(600),
    }
}

async fn codes_count_every_try_and_are_used_once(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = Arc::new(s);
    let id = account(&s, "alice1", "378282246310005").await;
    let step_hash = [3u8; 32];
    let mut w = s.begin(T);
    w.create_code(code(step_hash, id, 1)).await.unwrap();
    commit(w).await;
    // Twenty parallel tries against a limit of five: five are counted, the rest refused.
    let mut tries = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        tries.push(tokio::spawn(async move {
            s.try_code(&step_hash, T, 5).await.unwrap()
        }));
    }
    let mut counted: Vec<u32> = Vec::new();
    for t in tries {
        if let Some(attempt) = t.await.unwrap() {
            assert_eq!(attempt.code_hash, vec![1u8; 32]);
            assert_eq!(attempt.purpose, CodePurpose::RecoveryByCard.as_str());
            assert_eq!(attempt.account_id, id);
            counted.push(attempt.attempts);
        }
    }
    counted.sort_unstable();
    assert_eq!(counted, [1, 2, 3, 4, 5]);
    assert!(s.try_code(&step_hash, T, 5).await.unwrap().is_none());
    // A new code for the step replaces the unused one; its tries already made still count.
    let mut w = s.begin(T);
    w.create_code(code(step_hash, id, 2)).await.unwrap();
    commit(w).await;
    assert!(s.try_code(&step_hash, T, 5).await.unwrap().is_none());
    let attempt = s.try_code(&step_hash, T, 6).await.unwrap().unwrap();
    assert_eq!((attempt.code_hash, attempt.attempts), (vec![2u8; 32], 6));
    // Used by exactly one of ten parallel callers.
    let mut uses = Vec::new();
    for _ in 0..10 {
        let s = s.clone();
        uses.push(tokio::spawn(async move {
            let mut w = s.begin(T);
            let won = w.use_code(&step_hash).await.unwrap();
            commit(w).await;
            won
        }));
    }
    let mut won = 0;
    for u in uses {
        won += usize::from(u.await.unwrap());
    }
    assert_eq!(won, 1, "one caller uses the code");
    assert!(
        s.try_code(&step_hash, T, 10).await.unwrap().is_none(),
        "used"
    );
    // A used code is not replaced, and an expired one is not live.
    let mut w = s.begin(T);
    w.create_code(code(step_hash, id, 3)).await.unwrap();
    commit(w).await;
    assert!(s.try_code(&step_hash, T, 10).await.unwrap().is_none());
    let other = [4u8; 32];
    let mut w = s.begin(T);
    w.create_code(code(other, id, 4)).await.unwrap();
    commit(w).await;
    assert!(s
        .try_code(&other, T.plus_secs(600), 5)
        .await
        .unwrap()
        .is_none());
    let mut w = s.begin(T.plus_secs(600));
    assert!(!w.use_code(&other).await.unwrap(), "expired");
}
both!(
    codes_count_every_try_and_are_used_once_conformance,
    codes_count_every_try_and_are_used_once
);

async fn resending_is_bounded(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let step_hash = [7u8; 32];
    let policy = CodePolicy::default();
    let resend = |at: i64, hash: u8| {
        let s = &s;
        async move {
            let mut w = s.begin(T.plus_secs(at));
            let outcome = w
                .resend_code(&step_hash, &[hash; 32], &policy)
                .await
                .unwrap();
            commit(w).await;
            outcome
        }
    };
    assert_eq!(resend(0, 9).await, Resend::NoCode, "no code yet");
    let mut w = s.begin(T);
    w.create_code(code(step_hash, id, 1)).await.unwrap();
    commit(w).await;
    s.try_code(&step_hash, T, 5).await.unwrap().unwrap();
    assert_eq!(
        resend(10, 2).await,
        Resend::TooSoon { retry_after: 50 },
        "once a minute"
    );
    assert_eq!(resend(60, 2).await, Resend::Sent);
    // The new code is live, its expiry moved, and the earlier try still counts.
    let attempt = s
        .try_code(&step_hash, T.plus_secs(61), 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((attempt.code_hash, attempt.attempts), (vec![2u8; 32], 2));
    assert!(s
        .try_code(&step_hash, T.plus_secs(60 + policy.ttl_secs - 1), 5)
        .await
        .unwrap()
        .is_some());
    // Five sends in all (the first counts).
    for (i, at) in [120, 180, 240].into_iter().enumerate() {
        assert_eq!(resend(at, 3 + i as u8).await, Resend::Sent, "send at {at}");
    }
    assert_eq!(resend(300, 9).await, Resend::TooMany);
    // A used code is not resent.
    let mut w = s.begin(T.plus_secs(300));
    assert!(w.use_code(&step_hash).await.unwrap());
    commit(w).await;
    assert_eq!(resend(400, 9).await, Resend::NoCode);
}
both!(resending_is_bounded_conformance, resending_is_bounded);
