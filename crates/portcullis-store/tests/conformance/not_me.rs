//! "This was not me" and the answers' counter (issue 13): the compromise mark and its
//! clearing by a new password, the factors and recovery codes added since a time, device
//! trust ended by a reset, an account's steps of one kind dropped, and the security
//! answers' lockout counter, which is the password's machine on columns of its own.

use portcullis_core::lockout::Claim;
use portcullis_core::ports::{
    AccountReads, Claims, Counter, DeviceReads, FactorKind, FactorReads, NewFactor, StepReads,
    SweepCutoffs, Transactions,
};
use portcullis_core::steps::StepKind;
use portcullis_testkit::{both, Backend};

use crate::support::{account, commit, step, store, HASH, T};

async fn compromise_mark(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    assert_eq!(
        s.account_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .password_compromised_at,
        None
    );
    let mut w = s.begin(T.plus_secs(5));
    w.mark_password_compromised(id).await.unwrap();
    commit(w).await;
    assert_eq!(
        s.account_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .password_compromised_at,
        Some(T.plus_secs(5))
    );
    // A new password clears it.
    let mut w = s.begin(T.plus_secs(9));
    w.change_password(id, HASH, 0).await.unwrap();
    commit(w).await;
    assert_eq!(
        s.account_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .password_compromised_at,
        None
    );
}
both!(
    a_compromise_mark_is_set_and_a_new_password_clears_it_conformance,
    compromise_mark
);

fn factor(account_id: i64, kind: FactorKind, credential: Option<&str>) -> NewFactor {
    NewFactor {
        account_id,
        kind,
        name: kind.as_str().into(),
        secret: Some("sealed:v1:secret".into()),
        credential_id: credential.map(str::to_owned),
        confirmed: true,
    }
}

async fn factors_since(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let other = account(&s, "bobby1", "4111111111111111").await;
    let mut w = s.begin(T);
    w.create_factor(factor(id, FactorKind::Passkey, Some("owner-key")))
        .await
        .unwrap();
    w.create_factor(factor(other, FactorKind::Passkey, Some("bob-key")))
        .await
        .unwrap();
    commit(w).await;
    // Added later: an authenticator, a passkey, recovery codes.
    let later = T.plus_secs(100);
    let mut w = s.begin(later);
    w.create_factor(factor(id, FactorKind::Totp, None))
        .await
        .unwrap();
    w.create_factor(factor(id, FactorKind::Passkey, Some("intruder-key")))
        .await
        .unwrap();
    w.replace_recovery_codes(id, &[(1, "$argon2id$a".into()), (2, "$argon2id$b".into())])
        .await
        .unwrap();
    commit(w).await;
    let mut w = s.begin(later.plus_secs(10));
    assert_eq!(w.remove_factors_since(id, later).await.unwrap(), 4);
    commit(w).await;
    let left: Vec<String> = s
        .list_factors(id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|f| f.credential_id)
        .collect();
    assert_eq!(left, ["owner-key"]);
    assert_eq!(s.recovery_codes_left(id).await.unwrap(), 0);
    assert_eq!(
        s.list_factors(other).await.unwrap().len(),
        1,
        "other accounts untouched"
    );
}
both!(
    factors_added_since_a_time_are_removed_conformance,
    factors_since
);

async fn trust_and_steps(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let mut w = s.begin(T);
    let phone = w.create_device(id, &[5; 32], Some("Phone")).await.unwrap();
    let laptop = w.create_device(id, &[6; 32], Some("Laptop")).await.unwrap();
    assert!(w
        .set_device_trust(phone, id, Some(T.plus_secs(86_400)))
        .await
        .unwrap());
    commit(w).await;
    let mut w = s.begin(T);
    assert_eq!(w.untrust_devices(id).await.unwrap(), 1);
    commit(w).await;
    for d in s.list_devices(id).await.unwrap() {
        assert_eq!(d.trusted_until, None, "device {} ({laptop})", d.id);
    }
    // Steps of one kind, for one account.
    step(&s, [7; 32], StepKind::NotMe, id, "1").await;
    step(&s, [8; 32], StepKind::NotMe, id, "2").await;
    step(&s, [9; 32], StepKind::NotMe, id + 1000, "3").await;
    step(&s, [10; 32], StepKind::RecoveryPassword, id, "").await;
    let mut w = s.begin(T);
    assert_eq!(w.drop_account_steps(id, StepKind::NotMe).await.unwrap(), 2);
    commit(w).await;
    assert!(s
        .find_step(&[7; 32], StepKind::NotMe, T)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .find_step(&[9; 32], StepKind::NotMe, T)
        .await
        .unwrap()
        .is_some());
    assert!(s
        .find_step(&[10; 32], StepKind::RecoveryPassword, T)
        .await
        .unwrap()
        .is_some());
}
both!(
    a_reset_ends_trust_and_drops_an_accounts_steps_conformance,
    trust_and_steps
);

async fn answers_counter(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let answers = Counter::Answers(id);
    for n in 1..=5 {
        assert_eq!(
            s.claim_attempt(answers, T, 5).await.unwrap(),
            Claim::Granted(n)
        );
    }
    assert_eq!(
        s.claim_attempt(answers, T, 5).await.unwrap(),
        Claim::Exhausted
    );
    // The password's counter is a different one.
    assert_eq!(
        s.claim_attempt(Counter::Account(id), T, 6).await.unwrap(),
        Claim::Granted(1)
    );
    let until = T.plus_secs(60);
    let mut w = s.begin(T);
    assert!(w.lock(answers, until).await.unwrap());
    assert!(!w.lock(answers, until).await.unwrap(), "set once");
    commit(w).await;
    assert_eq!(
        s.claim_attempt(answers, T, 5).await.unwrap(),
        Claim::Locked(until)
    );
    let account = s.account_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        account.locked_until, None,
        "the account itself is not locked"
    );
    // The lock ends; the count starts afresh; a release and a reset work on it.
    assert_eq!(
        s.claim_attempt(answers, until, 5).await.unwrap(),
        Claim::Granted(1)
    );
    s.release_attempt(answers).await.unwrap();
    assert_eq!(
        s.claim_attempt(answers, until, 5).await.unwrap(),
        Claim::Granted(1)
    );
    let mut w = s.begin(until);
    w.reset_failures(answers).await.unwrap();
    commit(w).await;
    assert_eq!(
        s.claim_attempt(answers, until, 5).await.unwrap(),
        Claim::Granted(1)
    );
}
both!(
    security_answers_have_a_lockout_counter_of_their_own_conformance,
    answers_counter
);

/// "This was not me" undoes contact changes made at or after the disputed sign-in (each
/// field back to its value before the first such change), never earlier ones; a dropped
/// unit of work undoes nothing.
async fn contact_reverted(backend: Backend) {
    use portcullis_core::ports::ContactField;
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let before = s.account_by_id(id).await.unwrap().unwrap();
    // Before the disputed sign-in (T + 100): stays.
    let mut w = s.begin(T.plus_secs(10));
    assert!(w
        .change_contact(id, ContactField::Phone, "+15550100111")
        .await
        .unwrap());
    commit(w).await;
    // After it: the email twice, the phone once.
    for (at, field, value) in [
        (200, ContactField::Email, "evil@example.net"),
        (300, ContactField::Email, "evil2@example.net"),
        (300, ContactField::Phone, "+15550100999"),
    ] {
        let mut w = s.begin(T.plus_secs(at));
        assert!(w.change_contact(id, field, value).await.unwrap());
        commit(w).await;
    }
    // A dropped unit of work reverts nothing.
    let mut w = s.begin(T.plus_secs(400));
    assert!(w
        .revert_contact_since(id, T.plus_secs(100))
        .await
        .unwrap()
        .is_some());
    drop(w);
    let a = s.account_by_id(id).await.unwrap().unwrap();
    assert_eq!(a.email.as_deref(), Some("evil2@example.net"));
    let mut w = s.begin(T.plus_secs(400));
    assert_eq!(
        w.revert_contact_since(id, T.plus_secs(100)).await.unwrap(),
        Some((before.email.clone(), Some("+15550100111".to_owned())))
    );
    assert_eq!(
        w.revert_contact_since(id, T.plus_secs(100)).await.unwrap(),
        None,
        "nothing left to revert"
    );
    commit(w).await;
    let a = s.account_by_id(id).await.unwrap().unwrap();
    assert_eq!(a.email, before.email);
    assert_eq!(a.phone.as_deref(), Some("+15550100111"));
    // The one change kept (T + 10) goes once no "not me" link can reach back to it.
    let cutoffs = |at: i64| SweepCutoffs {
        steps_before: T,
        codes_before: T,
        throttle_before: T,
        devices_before: T,
        contacts_before: T.plus_secs(at),
        push_keys_before: T,
        idempotency_keys_before: T,
        webhooks_sent_before: T,
        webhooks_failed_before: T,
        oidc_before: T,
    };
    assert_eq!(s.sweep_expired(cutoffs(9)).await.unwrap().contacts, 0);
    assert_eq!(s.sweep_expired(cutoffs(10)).await.unwrap().contacts, 1);
    let mut w = s.begin(T.plus_secs(500));
    assert_eq!(w.revert_contact_since(id, T).await.unwrap(), None, "swept");
    commit(w).await;
}
both!(
    contact_changes_since_a_time_are_reverted_conformance,
    contact_reverted
);
