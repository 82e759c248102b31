//! Second factors and recovery codes: which factor replaces which, one caller wins every
//! TOTP step and every recovery code, and confirming an authenticator replaces the others.

use std::sync::Arc;

use portcullis_core::ports::{FactorKind, FactorReads, NewFactor, Transactions};
use portcullis_store::SqlStore;
use portcullis_testkit::{both, Backend};

use crate::support::{account, commit, store, T};

fn factor(
    account_id: i64,
    kind: FactorKind,
    confirmed: bool,
    credential: Option<&str>,
) -> NewFactor {
    NewFactor {
        account_id,
        kind,
        name: format!("{} factor", kind.as_str()),
        secret: Some("sealed:v1:secret".into()),
        credential_id: credential.map(str::to_owned),
        confirmed,
    }
}

async fn create(s: &SqlStore, new: NewFactor) -> i64 {
    let mut w = s.begin(T);
    let id = w.create_factor(new).await.unwrap();
    commit(w).await;
    id
}

async fn kinds(s: &SqlStore, account_id: i64) -> Vec<(String, bool)> {
    s.list_factors(account_id)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.kind.as_str().to_owned(), f.confirmed))
        .collect()
}

async fn factors_replace_their_kind(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    // An unconfirmed authenticator replaces an earlier unconfirmed one.
    create(&s, factor(id, FactorKind::Totp, false, None)).await;
    let pending = create(&s, factor(id, FactorKind::Totp, false, None)).await;
    assert_eq!(kinds(&s, id).await, [("totp".into(), false)]);
    // A code channel turned on again replaces itself; passkeys add up.
    create(&s, factor(id, FactorKind::Email, true, None)).await;
    create(&s, factor(id, FactorKind::Email, true, None)).await;
    let pk1 = create(&s, factor(id, FactorKind::Passkey, true, Some("cred-1"))).await;
    create(&s, factor(id, FactorKind::Passkey, true, Some("cred-2"))).await;
    assert_eq!(
        kinds(&s, id).await,
        [
            ("totp".into(), false),
            ("email".into(), true),
            ("passkey".into(), true),
            ("passkey".into(), true)
        ]
    );
    let found = s.factor_by_credential("cred-1").await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.kind, found.account_id),
        (pk1, FactorKind::Passkey, id)
    );
    assert_eq!(found.created_at, T);
    assert!(s.factor_by_credential("cred-9").await.unwrap().is_none());
    // The authenticator is confirmed; a second one set up later leaves it in place until
    // that one is confirmed (by one caller of many), which replaces it.
    let mut w = s.begin(T);
    assert!(w.confirm_factor(pending, id, 100).await.unwrap());
    assert!(!w.confirm_factor(pending, id, 101).await.unwrap(), "once");
    commit(w).await;
    let old = pending;
    let pending = create(&s, factor(id, FactorKind::Totp, false, None)).await;
    assert_eq!(
        kinds(&s, id)
            .await
            .iter()
            .filter(|(k, _)| k == "totp")
            .count(),
        2
    );
    let s = Arc::new(s);
    let mut confirms = Vec::new();
    for step in 0..8 {
        let s = s.clone();
        confirms.push(tokio::spawn(async move {
            let mut w = s.begin(T);
            let won = w.confirm_factor(pending, id, 1000 + step).await.unwrap();
            commit(w).await;
            won
        }));
    }
    let mut won = 0;
    for c in confirms {
        won += usize::from(c.await.unwrap());
    }
    assert_eq!(won, 1, "one confirmation");
    let factors = s.list_factors(id).await.unwrap();
    let totps: Vec<_> = factors
        .iter()
        .filter(|f| f.kind == FactorKind::Totp)
        .collect();
    assert_eq!(totps.len(), 1);
    assert_eq!(totps[0].id, pending);
    assert!(totps[0].confirmed);
    assert!(factors.iter().all(|f| f.id != old));
    // Another account's factor cannot be confirmed, renamed or removed from here.
    let other = account(&s, "bob123", "371449635398431").await;
    let mut w = s.begin(T);
    assert!(!w.confirm_factor(pending, other, 5).await.unwrap());
    assert!(!w.rename_factor(pk1, other, "Mine").await.unwrap());
    assert!(!w.delete_factor(pk1, other).await.unwrap());
    assert!(w.rename_factor(pk1, id, "Work laptop").await.unwrap());
    commit(w).await;
    assert_eq!(
        s.factor_by_credential("cred-1")
            .await
            .unwrap()
            .unwrap()
            .name,
        "Work laptop"
    );
    let mut w = s.begin(T);
    assert!(w.delete_factor(pk1, id).await.unwrap());
    assert!(!w.delete_factor(pk1, id).await.unwrap());
    commit(w).await;
    assert!(s.factor_by_credential("cred-1").await.unwrap().is_none());
}
both!(
    factors_replace_their_kind_conformance,
    factors_replace_their_kind
);

async fn totp_steps_are_taken_once(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let totp = create(&s, factor(id, FactorKind::Totp, false, None)).await;
    let mut w = s.begin(T);
    assert!(
        !w.take_totp_step(totp, 10).await.unwrap(),
        "not before it is confirmed"
    );
    assert!(w.confirm_factor(totp, id, 100).await.unwrap());
    commit(w).await;
    // The confirming code's step and every earlier one are spent.
    let s = Arc::new(s);
    let take = |step: i64, at: i64| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut w = s.begin(T.plus_secs(at));
            let won = w.take_totp_step(totp, step).await.unwrap();
            commit(w).await;
            won
        })
    };
    assert!(!take(100, 0).await.unwrap());
    assert!(!take(99, 0).await.unwrap());
    let racers: Vec<_> = (0..10).map(|_| take(101, 5)).collect();
    let mut won = 0;
    for r in racers {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 1, "one caller takes a step");
    let f = s.list_factors(id).await.unwrap().pop().unwrap();
    assert_eq!(
        (f.last_step, f.last_used_at),
        (Some(101), Some(T.plus_secs(5)))
    );
    // A passkey's use moves its time, and its secret only when a new one is given.
    let pk = create(&s, factor(id, FactorKind::Passkey, true, Some("cred"))).await;
    let mut w = s.begin(T.plus_secs(9));
    w.touch_factor(pk, None).await.unwrap();
    commit(w).await;
    let f = s.factor_by_credential("cred").await.unwrap().unwrap();
    assert_eq!(
        (f.secret.as_deref(), f.last_used_at),
        (Some("sealed:v1:secret"), Some(T.plus_secs(9)))
    );
    let mut w = s.begin(T.plus_secs(10));
    w.touch_factor(pk, Some("sealed:v1:moved")).await.unwrap();
    commit(w).await;
    let f = s.factor_by_credential("cred").await.unwrap().unwrap();
    assert_eq!(f.secret.as_deref(), Some("sealed:v1:moved"));
}
both!(
    totp_steps_are_taken_once_conformance,
    totp_steps_are_taken_once
);

async fn recovery_codes_are_used_once(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let set = |n: i64| -> Vec<(i64, String)> {
        (0..n)
            .map(|i| (i % 3, format!("$argon2id$code{i}")))
            .collect()
    };
    let mut w = s.begin(T);
    w.replace_recovery_codes(id, &set(10)).await.unwrap();
    commit(w).await;
    assert_eq!(s.recovery_codes_left(id).await.unwrap(), 10);
    let candidates = s.recovery_code_candidates(id, 1).await.unwrap();
    assert_eq!(
        candidates
            .iter()
            .map(|(_, h)| h.as_str())
            .collect::<Vec<_>>(),
        ["$argon2id$code1", "$argon2id$code4", "$argon2id$code7"],
        "only this hint's unused codes, oldest first"
    );
    let code = candidates[0].0;
    let s = Arc::new(s);
    let mut uses = Vec::new();
    for _ in 0..10 {
        let s = s.clone();
        uses.push(tokio::spawn(async move {
            let mut w = s.begin(T);
            let left = w.use_recovery_code(id, code).await.unwrap();
            commit(w).await;
            left
        }));
    }
    let mut lefts = Vec::new();
    for u in uses {
        lefts.extend(u.await.unwrap());
    }
    assert_eq!(
        lefts,
        [9],
        "one caller uses it, and learns how many are left"
    );
    assert_eq!(s.recovery_codes_left(id).await.unwrap(), 9);
    assert_eq!(s.recovery_code_candidates(id, 1).await.unwrap().len(), 2);
    // Another account cannot use it; a new set replaces every earlier code.
    let other = account(&s, "bob123", "371449635398431").await;
    let mut w = s.begin(T);
    assert_eq!(
        w.use_recovery_code(other, candidates[1].0).await.unwrap(),
        None
    );
    w.replace_recovery_codes(id, &set(2)).await.unwrap();
    commit(w).await;
    assert_eq!(s.recovery_codes_left(id).await.unwrap(), 2);
    let mut w = s.begin(T);
    assert_eq!(
        w.use_recovery_code(id, candidates[1].0).await.unwrap(),
        None
    );
}
both!(
    recovery_codes_are_used_once_conformance,
    recovery_codes_are_used_once
);
