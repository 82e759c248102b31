//! Accounts: creation and re-registration, sign-ins over the verified hash, passwords,
//! unlocking, contact details, linked cards and the inactivity job's transitions.

use std::sync::Arc;

use portcullis_core::ports::{
    AccountReads, ContactField, Counter, CreateAccountError, DeviceReads, RegistryReads,
    Reregistration, SessionReads, StepReads, Transactions, Unlink,
};
use portcullis_core::steps::StepKind;
use portcullis_testkit::{both, Backend};

use crate::support::{account, commit, new_account, seed_record, step, store, HASH, T};

async fn account_creation_rules(backend: Backend) {
    let (s, _db) = store(backend).await;
    let rid = seed_record(&s, "378282246310005").await;
    let token = [1u8; 32];
    // No step, no account.
    let mut w = s.begin(T);
    assert!(matches!(
        w.create_account(new_account("alice1", rid, token)).await,
        Err(CreateAccountError::StepGone)
    ));
    drop(w);
    step(&s, token, StepKind::Registration, rid, "").await;
    let mut w = s.begin(T);
    let id = w
        .create_account(new_account("Alice1", rid, token))
        .await
        .unwrap();
    commit(w).await;
    let found = s.find_account("alice1").await.unwrap().unwrap();
    assert_eq!((found.id, found.user_id.as_str()), (id, "Alice1"));
    assert_eq!(found.created_at, T);
    assert_eq!(found.last_active_at, T, "inactivity counts from creation");
    assert_eq!(s.cards_for_account(id).await.unwrap()[0].last4, "0005");
    // The account home reads the same account and cards in one statement.
    let (home, cards) = s.account_home(id).await.unwrap().unwrap();
    assert_eq!(home.id, id);
    assert_eq!(
        cards.iter().map(|c| c.last4.as_str()).collect::<Vec<_>>(),
        ["0005"]
    );
    assert_eq!(cards[0].balance, Some(1000));
    assert!(s.account_home(id + 1000).await.unwrap().is_none());
    assert_eq!(
        s.security_answers(id).await.unwrap(),
        vec![(1, "h1".into()), (2, "h2".into()), (3, "h3".into())]
    );
    let hashes = s.card_hashes(id).await.unwrap();
    assert_eq!(hashes.len(), 1);
    assert_eq!(hashes[0].1.len(), 32);
    assert_eq!(
        s.accounts_by_email("holder@example.com")
            .await
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect::<Vec<_>>(),
        [id]
    );
    assert_eq!(
        s.record_by_id(rid).await.unwrap().unwrap().account_id,
        Some(id)
    );
    // The step was consumed with the creation.
    assert!(s
        .find_step(&token, StepKind::Registration, T)
        .await
        .unwrap()
        .is_none());
    // A second account on the same record is refused, as is a taken User ID; nothing of a
    // refused creation is left (its unit of work is dropped).
    let token2 = [2u8; 32];
    step(&s, token2, StepKind::Registration, rid, "").await;
    let mut w = s.begin(T);
    assert!(matches!(
        w.create_account(new_account("bob123", rid, token2)).await,
        Err(CreateAccountError::CardAlreadyRegistered)
    ));
    drop(w);
    let rid2 = seed_record(&s, "371449635398431").await;
    let token3 = [3u8; 32];
    step(&s, token3, StepKind::Registration, rid2, "").await;
    let mut w = s.begin(T);
    assert!(matches!(
        w.create_account(new_account("ALICE1", rid2, token3)).await,
        Err(CreateAccountError::UserIdTaken)
    ));
    drop(w);
    assert!(s.find_account("bob123").await.unwrap().is_none());
    assert!(
        s.find_step(&token2, StepKind::Registration, T)
            .await
            .unwrap()
            .is_some(),
        "a refused creation consumed nothing"
    );
}
both!(account_creation_rules_conformance, account_creation_rules);

async fn racing_creations(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = Arc::new(s);
    let rid = seed_record(&s, "378282246310005").await;
    let mut handles = Vec::new();
    for i in 0..20u8 {
        let token = [i + 10; 32];
        step(&s, token, StepKind::Registration, rid, "").await;
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut w = s.begin(T);
            let created = w
                .create_account(new_account(&format!("user{i:03}"), rid, token))
                .await;
            if created.is_ok() {
                commit(w).await;
            }
            created
        }));
    }
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CreateAccountError::CardAlreadyRegistered) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
}
both!(
    racing_creations_make_one_account_conformance,
    racing_creations
);

/// A sign-in is recorded only over the hash that was verified, and restarts the count.
async fn sign_ins_and_rehashes(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let later = T.plus_secs(60);
    let mut w = s.begin(later);
    assert!(!w.record_sign_in(id, "$argon2id$other").await.unwrap());
    assert!(w.record_sign_in(id, HASH).await.unwrap());
    commit(w).await;
    let a = s.account_by_id(id).await.unwrap().unwrap();
    assert_eq!(a.last_sign_in_at, Some(later));
    assert_eq!(a.last_active_at, later);
    // A rehash replaces only the hash it was computed over.
    let mut w = s.begin(later);
    assert!(!w
        .rehash_password(id, "$argon2id$other", "$argon2id$new")
        .await
        .unwrap());
    assert!(w.rehash_password(id, HASH, "$argon2id$new").await.unwrap());
    // In the same unit the sign-in now needs the new hash.
    assert!(!w.record_sign_in(id, HASH).await.unwrap());
    assert!(w.record_sign_in(id, "$argon2id$new").await.unwrap());
    commit(w).await;
    assert_eq!(
        s.account_by_id(id).await.unwrap().unwrap().password_hash,
        "$argon2id$new"
    );
}
both!(sign_ins_and_rehashes_conformance, sign_ins_and_rehashes);

async fn password_history(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    for i in 0..6 {
        let mut w = s.begin(T);
        w.change_password(id, &format!("hash-{i}"), 4)
            .await
            .unwrap();
        commit(w).await;
    }
    assert_eq!(
        s.account_by_id(id).await.unwrap().unwrap().password_hash,
        "hash-5"
    );
    let history = s.password_history(id, 10).await.unwrap();
    assert_eq!(history, ["hash-4", "hash-3", "hash-2", "hash-1"]);
    assert!(!history.contains(&HASH.to_owned()));
    assert_eq!(s.password_history(id, 2).await.unwrap().len(), 2);
    let mut w = s.begin(T);
    w.change_password(id, "hash-6", 0).await.unwrap();
    commit(w).await;
    assert!(s.password_history(id, 10).await.unwrap().is_empty());
    // A change for an account that is not there is an error, not a silent success.
    let mut w = s.begin(T);
    assert!(w.change_password(id + 99, "x", 1).await.is_err());
}
both!(password_history_conformance, password_history);

async fn unlocking_clears_devices_too(backend: Backend) {
    use portcullis_core::ports::Claims;
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let mut w = s.begin(T);
    let device = w.create_device(id, &[5; 32], None).await.unwrap();
    assert!(w
        .lock(Counter::Account(id), T.plus_secs(100))
        .await
        .unwrap());
    commit(w).await;
    s.claim_attempt(Counter::Device(device), T, 4)
        .await
        .unwrap();
    let mut w = s.begin(T);
    assert!(w.unlock_account(id).await.unwrap());
    assert!(
        !w.unlock_account(id).await.unwrap(),
        "nothing left to clear"
    );
    commit(w).await;
    let a = s.account_by_id(id).await.unwrap().unwrap();
    assert_eq!((a.failed_count, a.locked_until), (0, None));
    assert_eq!(s.list_devices(id).await.unwrap()[0].failed_count, 0);
}
both!(
    unlocking_clears_devices_too_conformance,
    unlocking_clears_devices_too
);

async fn contact_details_change(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", "378282246310005").await;
    let mut w = s.begin(T);
    assert!(w
        .change_contact(id, ContactField::Email, "new@example.com")
        .await
        .unwrap());
    assert!(w
        .change_contact(id, ContactField::Phone, "+15550100100")
        .await
        .unwrap());
    assert!(!w
        .change_contact(id + 99, ContactField::Email, "x@example.com")
        .await
        .unwrap());
    commit(w).await;
    let a = s.account_by_id(id).await.unwrap().unwrap();
    assert_eq!(a.email.as_deref(), Some("new@example.com"));
    assert_eq!(a.phone.as_deref(), Some("+15550100100"));
}
both!(contact_details_change_conformance, contact_details_change);

async fn the_last_card_stays(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "two.cards", "378282246310005").await;
    let second = seed_record(&s, "5555555555554444").await;
    let mut w = s.begin(T);
    assert!(w.link_card(id, second).await.unwrap());
    assert!(
        !w.link_card(id, second).await.unwrap(),
        "one account per card"
    );
    commit(w).await;
    let cards: Vec<i64> = s
        .linked_records(id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(cards.len(), 2);
    // The account home lists both, once each, in the order they were linked.
    let (_, home_cards) = s.account_home(id).await.unwrap().unwrap();
    assert_eq!(home_cards.iter().map(|c| c.id).collect::<Vec<_>>(), cards);
    // Two parallel unlinks: the account's row decides, so one is refused as the last card.
    let s = Arc::new(s);
    let unlink = |card: i64| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut w = s.begin(T);
            let outcome = w.unlink_card(id, card).await.unwrap();
            commit(w).await;
            outcome
        })
    };
    let (a, b) = tokio::join!(unlink(cards[0]), unlink(cards[1]));
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| *o == Unlink::Unlinked);
    assert_eq!(outcomes, [Unlink::LastCard, Unlink::Unlinked]);
    assert_eq!(s.linked_records(id).await.unwrap().len(), 1);
    let mut w = s.begin(T);
    assert_eq!(w.unlink_card(id, 999_999).await.unwrap(), Unlink::NotLinked);
}
both!(the_last_card_stays_conformance, the_last_card_stays);

async fn warn_deactivate_and_come_back(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "old.timer", "378282246310005").await;
    let later = T.plus_secs(1000);
    // Not inactive enough: nothing.
    assert!(s
        .accounts_to_warn(T.plus_secs(-1), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.accounts_to_warn(T, 10).await.unwrap().len(), 1);
    let mut w = s.begin(later);
    assert!(w.mark_inactivity_warned(id, T).await.unwrap());
    assert!(!w.mark_inactivity_warned(id, T).await.unwrap(), "once");
    commit(w).await;
    assert!(s.accounts_to_warn(T, 10).await.unwrap().is_empty());
    // Deactivation needs the warning old enough, and ends the account's sessions.
    let mut w = s.begin(later);
    w.create_session(portcullis_core::ports::NewSession {
        token_hash: [8; 32],
        account_id: id,
        user_agent: None,
        client_ip: None,
        amr: "pwd".into(),
    })
    .await
    .unwrap();
    assert!(!w.deactivate_account(id, later.plus_secs(-1)).await.unwrap());
    commit(w).await;
    assert_eq!(s.accounts_to_deactivate(later, 10).await.unwrap().len(), 1);
    let mut w = s.begin(later);
    assert!(w.deactivate_account(id, later).await.unwrap());
    assert!(!w.deactivate_account(id, later).await.unwrap(), "once");
    commit(w).await;
    assert!(s.account_by_id(id).await.unwrap().unwrap().is_deactivated());
    assert!(s.list_sessions(id).await.unwrap().is_empty());
    // Support brings it back; inactivity counts from the reactivation.
    let back = later.plus_secs(5);
    let mut w = s.begin(back);
    assert!(w.reactivate_account(id).await.unwrap());
    assert!(!w.reactivate_account(id).await.unwrap());
    commit(w).await;
    let a = s.account_by_id(id).await.unwrap().unwrap();
    assert!(!a.is_deactivated());
    assert_eq!(a.last_active_at, back);
    assert!(a.inactivity_warned_at.is_none());
}
both!(
    warn_and_deactivate_once_conformance,
    warn_deactivate_and_come_back
);

/// A deactivated account comes back through registration: new details, same account.
async fn reregistration(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "old.name", "378282246310005").await;
    let rid = s.linked_records(id).await.unwrap()[0].id;
    let later = T.plus_secs(1000);
    let mut w = s.begin(later);
    w.mark_inactivity_warned(id, T).await.unwrap();
    w.deactivate_account(id, later).await.unwrap();
    let device = w.create_device(id, &[6; 32], None).await.unwrap();
    w.lock(Counter::Device(device), later.plus_secs(60))
        .await
        .unwrap();
    commit(w).await;
    let again = |token: [u8; 32], user: &str| Reregistration {
        account_id: id,
        user_id: user.into(),
        user_id_canonical: user.to_lowercase(),
        password_hash: "$argon2id$fresh".into(),
        security_answers: vec![(4, "a4".into()), (5, "a5".into()), (6, "a6".into())],
        code_channel: portcullis_core::contact::CodeChannel::Sms,
        step_token_hash: token,
    };
    let mut w = s.begin(later);
    assert!(matches!(
        w.reregister_account(again([21; 32], "New.Name")).await,
        Err(CreateAccountError::StepGone)
    ));
    drop(w);
    step(&s, [21; 32], StepKind::Registration, rid, "").await;
    let mut w = s.begin(later);
    w.reregister_account(again([21; 32], "New.Name"))
        .await
        .unwrap();
    commit(w).await;
    let a = s.find_account("new.name").await.unwrap().unwrap();
    assert_eq!(a.id, id);
    assert!(!a.is_deactivated());
    assert_eq!(a.password_hash, "$argon2id$fresh");
    assert_eq!(a.last_active_at, later);
    assert_eq!(
        s.security_answers(id)
            .await
            .unwrap()
            .iter()
            .map(|(q, _)| *q)
            .collect::<Vec<_>>(),
        [4, 5, 6]
    );
    assert_eq!(s.list_devices(id).await.unwrap()[0].locked_until, None);
    // An active account is not re-registered: the card backs it.
    step(&s, [22; 32], StepKind::Registration, rid, "").await;
    let mut w = s.begin(later);
    assert!(matches!(
        w.reregister_account(again([22; 32], "Third.Name")).await,
        Err(CreateAccountError::CardAlreadyRegistered)
    ));
    drop(w);
    // A taken User ID is refused.
    account(&s, "taken.name", "371449635398431").await;
    let mut w = s.begin(later);
    w.mark_inactivity_warned(id, later).await.unwrap();
    w.deactivate_account(id, later).await.unwrap();
    commit(w).await;
    step(&s, [23; 32], StepKind::Registration, rid, "").await;
    let mut w = s.begin(later);
    assert!(matches!(
        w.reregister_account(again([23; 32], "Taken.Name")).await,
        Err(CreateAccountError::UserIdTaken)
    ));
}
both!(reregistration_conformance, reregistration);
