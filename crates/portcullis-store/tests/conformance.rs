//! The conformance suite both storage backends must pass: each port's contract, including
//! the atomicity the domain relies on, run against SQLite and (when
//! `PORTCULLIS_TEST_POSTGRES` is set) PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use portcullis_core::audit::{AuditEvent, AuditKind, GENESIS_HASH};
use portcullis_core::clock::UnixTime;
use portcullis_core::contact::CodeChannel;
use portcullis_core::ids::AccountType;
use portcullis_core::lockout::Claim;
use portcullis_core::ports::{
    AccountStore, AuditStore, Counter, CreateAccountError, DeviceStore, LockoutStore, NewAccount,
    NewSession, RegistryStore, SessionStore, StepStore, Store, ThrottleStore,
};
use portcullis_core::registry::{HashedRecord, RawRecord, RegistryRecord};
use portcullis_crypto::KeyedHasher;
use portcullis_store::{SqlStore, StoreOptions};
use portcullis_testkit::{both, Backend, TestDb};
use zeroize::Zeroizing;

const T: UnixTime = UnixTime(1_800_000_000);

async fn store(backend: Backend) -> Option<(SqlStore, TestDb)> {
    let db = TestDb::new(backend).await?;
    let s = SqlStore::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    Some((s, db))
}

fn keys() -> KeyedHasher {
    KeyedHasher::new(Zeroizing::new([7; 32]))
}

fn record(number: &str, product: &str) -> HashedRecord {
    RegistryRecord::parse(&RawRecord {
        account_type: "personal".into(),
        number: number.into(),
        verification: "1234".into(),
        expiry: "2030-01".into(),
        holder_name: "Test Holder".into(),
        email: "holder@example.com".into(),
        product: product.into(),
        balance: "10.00".into(),
        ..Default::default()
    })
    .unwrap()
    .hashed(&keys())
}

async fn seed_record(s: &SqlStore, number: &str) -> i64 {
    let r = record(number, "Gold");
    let mut import = s.begin_import().await.unwrap();
    import.upsert(std::slice::from_ref(&r)).await.unwrap();
    import.commit().await.unwrap();
    s.find_record(&r.number_hash).await.unwrap().unwrap().id
}

fn new_account(user: &str, record_id: i64, step: [u8; 32]) -> NewAccount {
    NewAccount {
        user_id: user.into(),
        user_id_canonical: user.to_lowercase(),
        account_type: AccountType::Personal,
        password_hash:
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                .into(),
        security_answers: vec![(1, "h1".into()), (2, "h2".into()), (3, "h3".into())],
        code_channel: CodeChannel::Email,
        email: Some("holder@example.com".into()),
        phone: None,
        registry_record_id: record_id,
        step_token_hash: step,
        now: T,
        messages: Vec::new(),
    }
}

async fn account(s: &SqlStore, user: &str, number: &str) -> i64 {
    let rid = seed_record(s, number).await;
    let step = portcullis_crypto::sha256(user.as_bytes());
    s.create_step(&step, "registration", rid, "", T.plus_secs(600))
        .await
        .unwrap();
    s.create_account(new_account(user, rid, step))
        .await
        .unwrap()
}

async fn import_is_all_or_nothing_and_upserts(backend: Backend) {
    let Some((s, _db)) = store(backend).await else {
        return;
    };
    let mut import = s.begin_import().await.unwrap();
    import
        .upsert(&[
            record("378282246310005", "A"),
            record("371449635398431", "B"),
        ])
        .await
        .unwrap();
    drop(import); // never committed
    assert_eq!(s.count_records().await.unwrap(), 0);
    let mut import = s.begin_import().await.unwrap();
    import
        .upsert(&[
            record("378282246310005", "A"),
            record("371449635398431", "B"),
        ])
        .await
        .unwrap();
    import.commit().await.unwrap();
    let mut import = s.begin_import().await.unwrap();
    import
        .upsert(&[record("378282246310005", "A2")])
        .await
        .unwrap();
    import.commit().await.unwrap();
    assert_eq!(s.count_records().await.unwrap(), 2);
    let r = s
        .find_record(&record("378282246310005", "x").number_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.product, "A2");
    assert_eq!(r.last4, "0005");
    assert_eq!(r.account_id, None);
}
both!(
    import_is_all_or_nothing_and_upserts_conformance,
    import_is_all_or_nothing_and_upserts
);

async fn account_creation_rules(backend: Backend) {
    let Some((s, _db)) = store(backend).await else {
        return;
    };
    let rid = seed_record(&s, "378282246310005").await;
    let step = [1u8; 32];
    // No step, no account.
    assert!(matches!(
        s.create_account(new_account("alice1", rid, step)).await,
        Err(CreateAccountError::StepGone)
    ));
    s.create_step(&step, "registration", rid, "", T.plus_secs(600))
        .await
        .unwrap();
    let id = s
        .create_account(new_account("Alice1", rid, step))
        .await
        .unwrap();
    assert_eq!(s.find_account("alice1").await.unwrap().unwrap().id, id);
    assert_eq!(s.cards_for_account(id).await.unwrap()[0].last4, "0005");
    // The account home reads the same account and cards in one statement.
    let (home, cards) = s.account_home(id).await.unwrap().unwrap();
    assert_eq!(home.id, id);
    assert_eq!(home.user_id, "Alice1");
    assert_eq!(
        cards.iter().map(|c| c.last4.as_str()).collect::<Vec<_>>(),
        ["0005"]
    );
    assert!(s.account_home(id + 1000).await.unwrap().is_none());
    // A rehash replaces only the hash it was computed over: after a reset it changes nothing.
    let old = home.password_hash.clone();
    assert!(!s
        .rehash_password(id, "$argon2id$other", "$argon2id$new")
        .await
        .unwrap());
    assert_eq!(
        s.account_by_id(id).await.unwrap().unwrap().password_hash,
        old
    );
    assert!(s.rehash_password(id, &old, "$argon2id$new").await.unwrap());
    assert_eq!(
        s.account_by_id(id).await.unwrap().unwrap().password_hash,
        "$argon2id$new"
    );
    // The step was consumed with the creation.
    assert!(s
        .find_step(&step, "registration", T)
        .await
        .unwrap()
        .is_none());
    // A second account on the same record is refused, as is a taken User ID.
    let step2 = [2u8; 32];
    s.create_step(&step2, "registration", rid, "", T.plus_secs(600))
        .await
        .unwrap();
    assert!(matches!(
        s.create_account(new_account("bob123", rid, step2)).await,
        Err(CreateAccountError::CardAlreadyRegistered)
    ));
    let rid2 = seed_record(&s, "371449635398431").await;
    let step3 = [3u8; 32];
    s.create_step(&step3, "registration", rid2, "", T.plus_secs(600))
        .await
        .unwrap();
    assert!(matches!(
        s.create_account(new_account("ALICE1", rid2, step3)).await,
        Err(CreateAccountError::UserIdTaken)
    ));
    // Nothing half-written by the refused attempts.
    assert!(s.find_account("bob123").await.unwrap().is_none());
}
both!(account_creation_rules_conformance, account_creation_rules);

async fn racing_creations(backend: Backend) {
    let Some((s, _db)) = store(backend).await else {
        return;
    };
    let s = Arc::new(s);
    let rid = seed_record(&s, "378282246310005").await;
    let mut handles = Vec::new();
    for i in 0..20u8 {
        let step = [i + 10; 32];
        s.create_step(&step, "registration", rid, "", T.plus_secs(600))
            .await
            .unwrap();
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.create_account(new_account(&format!("user{i:03}"), rid, step))
                .await
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

async fn claims_are_atomic(backend: Backend) {
    let Some((s, _db)) = store(backend).await else {
        return;
    };
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
    // The sixth failure locks; only one locker wins.
    assert!(s
        .lock(Counter::Account(id), T, T.plus_secs(100), &[])
        .await
        .unwrap());
    assert!(!s
        .lock(Counter::Account(id), T, T.plus_secs(200), &[])
        .await
        .unwrap());
    assert_eq!(
        s.claim_attempt(Counter::Account(id), T.plus_secs(1), 6)
            .await
            .unwrap(),
        Claim::Locked(T.plus_secs(100))
    );
    // When the lock runs out the count starts afresh.
    assert_eq!(
        s.claim_attempt(Counter::Account(id), T.plus_secs(100), 6)
            .await
            .unwrap(),
        Claim::Granted(1)
    );
    s.release_attempt(Counter::Account(id)).await.unwrap();
    assert_eq!(s.account_by_id(id).await.unwrap().unwrap().failed_count, 0);
    s.claim_attempt(Counter::Account(id), T, 6).await.unwrap();
    s.reset_failures(Counter::Account(id)).await.unwrap();
    assert_eq!(s.account_by_id(id).await.unwrap().unwrap().failed_count, 0);
    // A sign-in restarts the count by itself (the service relies on it).
    s.claim_attempt(Counter::Account(id), T, 6).await.unwrap();
    s.claim_attempt(Counter::Account(id), T, 6).await.unwrap();
    s.record_sign_in(id, T).await.unwrap();
    let a = s.account_by_id(id).await.unwrap().unwrap();
    assert_eq!(a.failed_count, 0);
    assert_eq!(a.last_sign_in_at, Some(T));
    s.lock(Counter::Account(id), T, T.plus_secs(100), &[])
        .await
        .unwrap();
    assert!(s.unlock_account(id).await.unwrap());
    assert!(!s.unlock_account(id).await.unwrap());
}
both!(claims_are_atomic_conformance, claims_are_atomic);

async fn steps_are_single_use(backend: Backend) {
    let Some((s, _db)) = store(backend).await else {
        return;
    };
    let s = Arc::new(s);
    let h = [9u8; 32];
    s.create_step(&h, "recovery", 42, "data", T.plus_secs(60))
        .await
        .unwrap();
    assert!(
        s.find_step(&h, "registration", T).await.unwrap().is_none(),
        "kind matters"
    );
    assert_eq!(
        s.find_step(&h, "recovery", T)
            .await
            .unwrap()
            .unwrap()
            .subject_id,
        42
    );
    assert!(
        s.find_step(&h, "recovery", T.plus_secs(60))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    let mut handles = Vec::new();
    for _ in 0..10 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.consume_step(&h, "recovery").await.unwrap()
        }));
    }
    let mut winners = 0;
    for handle in handles {
        if handle.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}
both!(steps_are_single_use_conformance, steps_are_single_use);

async fn sessions(backend: Backend) {
    let Some((s, _db)) = store(backend).await else {
        return;
    };
    let id = account(&s, "alice1", "378282246310005").await;
    let new = |h: u8| NewSession {
        token_hash: [h; 32],
        account_id: id,
        now: T,
        user_agent: Some("Test".into()),
        client_ip: Some("127.0.0.1".into()),
    };
    let a = s.create_session(new(1)).await.unwrap();
    let b = s.create_session(new(2)).await.unwrap();
    assert_eq!(s.session_by_token(&[1; 32]).await.unwrap().unwrap().id, a);
    s.touch_session(a, T.plus_secs(50)).await.unwrap();
    s.touch_session(a, T.plus_secs(10)).await.unwrap(); // never goes backwards
    assert_eq!(
        s.session_by_token(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        T.plus_secs(50)
    );
    assert_eq!(s.list_sessions(id).await.unwrap().len(), 2);
    assert_eq!(s.delete_account_sessions(id, Some(a)).await.unwrap(), 1);
    assert!(s.session_by_token(&[2; 32]).await.unwrap().is_none());
    assert!(s.delete_session(a).await.unwrap());
    assert!(!s.delete_session(b).await.unwrap());
}
both!(sessions_conformance, sessions);

async fn audit_chain(backend: Backend) {
    let Some((s, _db)) = store(backend).await else {
        return;
    };
    let s = Arc::new(s);
    let mut handles = Vec::new();
    for i in 0..30 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.append_audit(
                &AuditEvent::new(AuditKind::SignIn, Some(i)).ip(Some("127.0.0.1")),
                T,
                &keys(),
            )
            .await
            .unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let entries = s.audit_entries(0, 100).await.unwrap();
    assert_eq!(entries.len(), 30);
    let mut prev = GENESIS_HASH.to_vec();
    let mut seq = 0;
    portcullis_core::audit::verify_run(&keys(), &entries, &mut prev, &mut seq).unwrap();
    assert_eq!(s.account_audit(3, 10).await.unwrap().len(), 1);
    // The table refuses edits and deletions.
    assert!(
        sqlx::query("UPDATE audit_log SET detail = 'x' WHERE seq = 1")
            .execute(s.pool())
            .await
            .is_err()
    );
    assert!(sqlx::query("DELETE FROM audit_log WHERE seq = 1")
        .execute(s.pool())
        .await
        .is_err());
    assert_eq!(
        s.backend(),
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
    s.ping().await.unwrap();
}
both!(audit_chain_conformance, audit_chain);

async fn device_counters_are_separate(backend: Backend) {
    let Some((s, _db)) = store(backend).await else {
        return;
    };
    let account_id = account(&s, "alice1", "378282246310005").await;
    let device = s
        .create_device(account_id, &[5; 32], T, Some("Phone"))
        .await
        .unwrap();
    let found = s.device_by_token(&[5; 32]).await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.account_id, found.failed_count),
        (device, account_id, 0)
    );
    // Locking the account leaves the device's own allowance untouched, and back.
    for _ in 0..6 {
        s.claim_attempt(Counter::Account(account_id), T, 6)
            .await
            .unwrap();
    }
    s.lock(Counter::Account(account_id), T, T.plus_secs(60), &[])
        .await
        .unwrap();
    assert_eq!(
        s.claim_attempt(Counter::Device(device), T, 4)
            .await
            .unwrap(),
        Claim::Granted(1)
    );
    for n in 2..=4 {
        assert_eq!(
            s.claim_attempt(Counter::Device(device), T, 4)
                .await
                .unwrap(),
            Claim::Granted(n)
        );
    }
    assert!(s
        .lock(Counter::Device(device), T, T.plus_secs(30), &[])
        .await
        .unwrap());
    assert_eq!(
        s.claim_attempt(Counter::Device(device), T, 4)
            .await
            .unwrap(),
        Claim::Locked(T.plus_secs(30))
    );
    s.touch_device(device, T.plus_secs(5)).await.unwrap();
    assert_eq!(
        s.list_devices(account_id).await.unwrap()[0].last_seen_at,
        T.plus_secs(5)
    );
}
both!(
    device_counters_are_separate_conformance,
    device_counters_are_separate
);

async fn throttle_buckets(backend: Backend) {
    let Some((s, _db)) = store(backend).await else {
        return;
    };
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

async fn password_history(backend: Backend) {
    let Some((s, _db)) = store(backend).await else {
        return;
    };
    let id = account(&s, "alice1", "378282246310005").await;
    let first = s.account_by_id(id).await.unwrap().unwrap().password_hash;
    for i in 0..6 {
        s.change_password(id, &format!("hash-{i}"), T, 4, &[])
            .await
            .unwrap();
    }
    assert_eq!(
        s.account_by_id(id).await.unwrap().unwrap().password_hash,
        "hash-5"
    );
    let history = s.password_history(id, 10).await.unwrap();
    assert_eq!(history, ["hash-4", "hash-3", "hash-2", "hash-1"]);
    assert!(!history.contains(&first));
    s.change_password(id, "hash-6", T, 0, &[]).await.unwrap();
    assert!(s.password_history(id, 10).await.unwrap().is_empty());
}
both!(password_history_conformance, password_history);

async fn admin_tokens(backend: Backend) {
    use portcullis_core::ports::{
        AdminTokenRef, AdminTokenRow, AdminTokenStore, CreateAdminTokenError, NewAdminToken,
    };
    use portcullis_core::service::SupportScope::{AccountsRead, AccountsUnlock, AuditRead};

    let Some((s, _db)) = store(backend).await else {
        return;
    };
    let s = Arc::new(s);
    let new =
        |name: &str, hash: u8, scopes: Vec<portcullis_core::service::SupportScope>| NewAdminToken {
            name: name.into(),
            token_hash: [hash; 32],
            scopes,
            now: T,
        };
    let alice = s
        .create_admin_token(new("alice", 1, vec![AccountsRead, AuditRead]))
        .await
        .unwrap();
    assert_eq!(
        s.admin_token_by_hash(&[1; 32]).await.unwrap(),
        Some(AdminTokenRow {
            id: alice,
            name: "alice".into(),
            scopes: vec![AccountsRead, AuditRead],
            created_at: T,
            revoked_at: None,
            last_used_at: None,
        })
    );
    assert!(s.admin_token_by_hash(&[2; 32]).await.unwrap().is_none());
    // One active token per name, even when creations race.
    assert!(matches!(
        s.create_admin_token(new("alice", 2, vec![AccountsUnlock]))
            .await,
        Err(CreateAdminTokenError::NameTaken)
    ));
    let mut handles = Vec::new();
    for i in 0..10u8 {
        let s = s.clone();
        let token = new("bob", 100 + i, vec![AccountsUnlock]);
        handles.push(tokio::spawn(
            async move { s.create_admin_token(token).await },
        ));
    }
    let mut created = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => created += 1,
            Err(CreateAdminTokenError::NameTaken) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(created, 1);
    // Uses are recorded; the time never goes backwards.
    s.touch_admin_token(alice, T.plus_secs(50)).await.unwrap();
    s.touch_admin_token(alice, T.plus_secs(10)).await.unwrap();
    let row = s.admin_token_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(row.last_used_at, Some(T.plus_secs(50)));
    // Revoking by name: the token stays findable, marked revoked, and the name is free.
    let revoked = s
        .revoke_admin_token(&AdminTokenRef::Name("alice".into()), T.plus_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.id, alice);
    assert_eq!(revoked.revoked_at, Some(T.plus_secs(60)));
    assert_eq!(
        s.admin_token_by_hash(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(T.plus_secs(60))
    );
    assert!(s
        .revoke_admin_token(&AdminTokenRef::Name("alice".into()), T.plus_secs(61))
        .await
        .unwrap()
        .is_none());
    let alice2 = s
        .create_admin_token(new("alice", 3, vec![AccountsUnlock]))
        .await
        .unwrap();
    // Revoking by id.
    assert_eq!(
        s.revoke_admin_token(&AdminTokenRef::Id(alice2), T.plus_secs(70))
            .await
            .unwrap()
            .map(|r| r.name),
        Some("alice".into())
    );
    assert!(s
        .revoke_admin_token(&AdminTokenRef::Id(alice2), T.plus_secs(71))
        .await
        .unwrap()
        .is_none());
    assert!(s
        .revoke_admin_token(&AdminTokenRef::Id(9_999), T)
        .await
        .unwrap()
        .is_none());
    // The list holds every token, oldest first, revoked ones too.
    let list = s.list_admin_tokens().await.unwrap();
    assert_eq!(
        list.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["alice", "bob", "alice"]
    );
    assert_eq!(
        list.iter().filter(|t| t.revoked_at.is_none()).count(),
        1,
        "only bob's is active"
    );
    assert_eq!(list[1].scopes, vec![AccountsUnlock]);
}
both!(admin_tokens_conformance, admin_tokens);

async fn audit_head(backend: Backend) {
    let Some((s, _db)) = store(backend).await else {
        return;
    };
    assert_eq!(s.audit_head().await.unwrap(), (0, GENESIS_HASH.to_vec()));
    for i in 0..3 {
        s.append_audit(&AuditEvent::new(AuditKind::SignIn, Some(i)), T, &keys())
            .await
            .unwrap();
    }
    let entries = s.audit_entries(0, 10).await.unwrap();
    assert_eq!(
        s.audit_head().await.unwrap(),
        (3, entries.last().unwrap().hash.clone())
    );
}
both!(audit_head_is_the_last_entry_conformance, audit_head);

/// The durable outbox: leases, exactly-once settlement, and the SMS quota counters.
mod outbox {
    use std::collections::HashSet;

    use portcullis_core::clock::UnixTime;
    use portcullis_core::contact::CodeChannel;
    use portcullis_core::ports::{Message, OutboxStore, Outgoing, QuotaClaim};
    use portcullis_testkit::{both, Backend};
    use sqlx::Row;

    use super::{store, T};

    fn msg(i: usize, channel: CodeChannel, sensitive: bool) -> Outgoing {
        Outgoing::from(Message {
            channel,
            to: match channel {
                CodeChannel::Email => format!("user{i}@example.com"),
                CodeChannel::Sms => format!("+1555555{i:04}"),
            },
            subject: format!("subject {i}"),
            body: format!("body {i}"),
            sensitive,
        })
    }

    async fn column(s: &portcullis_store::SqlStore, id: i64, col: &str) -> Option<String> {
        let row = sqlx::query(&format!(
            "SELECT CAST({col} AS TEXT) AS v FROM outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(s.pool())
        .await
        .unwrap();
        row.try_get::<Option<String>, _>("v").unwrap()
    }

    async fn lifecycle(backend: Backend) {
        let Some((s, _db)) = store(backend).await else {
            return;
        };
        let mut sms = msg(2, CodeChannel::Sms, false);
        sms.fallback_email = Some("fallback@example.com".into());
        let ids = s
            .enqueue(
                &[
                    msg(0, CodeChannel::Email, false),
                    msg(1, CodeChannel::Email, true),
                    sms,
                ],
                T,
            )
            .await
            .unwrap();
        assert_eq!(ids.len(), 3);
        let stats = s.outbox_stats(UnixTime(T.0 + 30)).await.unwrap();
        assert_eq!((stats.pending, stats.oldest_pending_age_secs), (3, 30));

        // Each channel's worker sees its own rows only; one that found none leaves the rest.
        let sms_only = s
            .claim_channel("x", T, 60, 10, Some(CodeChannel::Sms))
            .await
            .unwrap();
        assert_eq!(sms_only.len(), 1);
        assert_eq!(sms_only[0].channel, CodeChannel::Sms);
        assert_eq!(s.release_claims("x").await.unwrap(), 1);
        // Node a leases all three, the code first; node b gets nothing while the lease is
        // live.
        let rows = s.claim("a", T, 60, 10).await.unwrap();
        assert_eq!(
            rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![ids[1], ids[0], ids[2]]
        );
        assert!(rows.iter().all(|r| r.attempts == 1));
        assert_eq!(rows[0].claimed_until, UnixTime(T.0 + 60));
        assert!(rows[0].sensitive && !rows[1].sensitive);
        let rows = [rows[1].clone(), rows[0].clone(), rows[2].clone()];
        assert_eq!(rows[2].channel, CodeChannel::Sms);
        assert_eq!(
            rows[2].fallback_email.as_deref(),
            Some("fallback@example.com")
        );
        assert!(s
            .claim("b", UnixTime(T.0 + 59), 60, 10)
            .await
            .unwrap()
            .is_empty());
        assert!(s
            .claim("b", UnixTime(T.0 + 60), 60, 10)
            .await
            .unwrap()
            .is_empty());

        // Only the holder settles a row; a sent row is sent for good, its code blanked.
        assert!(!s.mark_sent(ids[1], "b", T).await.unwrap());
        assert!(s.mark_sent(ids[1], "a", UnixTime(T.0 + 1)).await.unwrap());
        assert!(!s.mark_sent(ids[1], "a", UnixTime(T.0 + 1)).await.unwrap());
        assert_eq!(column(&s, ids[1], "state").await.as_deref(), Some("sent"));
        assert_eq!(column(&s, ids[1], "body").await.as_deref(), Some(""));
        assert_eq!(
            column(&s, ids[1], "sent_at").await,
            Some((T.0 + 1).to_string())
        );
        assert_eq!(column(&s, ids[1], "claimed_by").await, None);

        // The SMS falls back to email, still leased to a.
        assert!(!s.fall_back_to_email(ids[2], "b", "quota").await.unwrap());
        assert!(s.fall_back_to_email(ids[2], "a", "quota").await.unwrap());
        assert_eq!(
            column(&s, ids[2], "channel").await.as_deref(),
            Some("email")
        );
        assert_eq!(
            column(&s, ids[2], "recipient").await.as_deref(),
            Some("fallback@example.com")
        );
        assert!(!s.fall_back_to_email(ids[2], "a", "again").await.unwrap());
        assert!(s.mark_failed(ids[2], "a", "rejected").await.unwrap());
        assert_eq!(column(&s, ids[2], "state").await.as_deref(), Some("failed"));
        assert_eq!(
            column(&s, ids[2], "last_error").await.as_deref(),
            Some("rejected")
        );
        // Not sensitive: the body stays for the operator.
        assert_eq!(column(&s, ids[2], "body").await.as_deref(), Some("body 2"));

        // A retry waits for its time, then anyone may claim it.
        assert!(s
            .mark_retry(ids[0], "a", "connection refused", UnixTime(T.0 + 5))
            .await
            .unwrap());
        assert!(s
            .claim("b", UnixTime(T.0 + 4), 60, 10)
            .await
            .unwrap()
            .is_empty());
        let again = s.claim("b", UnixTime(T.0 + 5), 60, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 2);
        assert_eq!(again[0].last_error.as_deref(), Some("connection refused"));
        // A crashed holder: its lease runs out and another node takes the row; the old
        // holder can no longer settle it.
        let taken = s.claim("c", UnixTime(T.0 + 66), 60, 10).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].attempts, 3);
        assert!(!s.mark_sent(ids[0], "b", UnixTime(T.0 + 67)).await.unwrap());
        // A graceful stop gives the row back without counting the attempt.
        assert_eq!(s.release_claims("c").await.unwrap(), 1);
        let back = s.claim("d", UnixTime(T.0 + 67), 60, 10).await.unwrap();
        assert_eq!(back[0].attempts, 3);
        assert!(s.mark_sent(ids[0], "d", UnixTime(T.0 + 68)).await.unwrap());
        let stats = s.outbox_stats(UnixTime(T.0 + 70)).await.unwrap();
        assert_eq!((stats.pending, stats.oldest_pending_age_secs), (0, 0));
    }
    both!(outbox_lifecycle_conformance, lifecycle);

    /// Issue 20: a row queued under a wall clock that had jumped forward is still due (it
    /// was never attempted), the database tells its own time on PostgreSQL, and a committed
    /// write probe is possible.
    async fn time_and_probe(backend: Backend) {
        let Some((s, _db)) = store(backend).await else {
            return;
        };
        let ahead = UnixTime(T.0 + 25 * 3600);
        s.enqueue(&[msg(0, CodeChannel::Email, true)], ahead)
            .await
            .unwrap();
        let rows = s.claim("a", T, 60, 10).await.unwrap();
        assert_eq!(rows.len(), 1, "a never-attempted row is due");
        assert!(s
            .mark_retry(rows[0].id, "a", "refused", UnixTime(ahead.0 + 5))
            .await
            .unwrap());
        // Once attempted, its retry time holds.
        assert!(s.claim("b", T, 60, 10).await.unwrap().is_empty());
        match backend {
            Backend::Sqlite => assert_eq!(s.database_time().await.unwrap(), None),
            Backend::Postgres => {
                let t = s.database_time().await.unwrap().unwrap();
                use portcullis_core::clock::Clock;
                let here = portcullis_core::clock::SystemClock.now();
                assert!((t.0 - here.0).abs() < 60, "{t:?} vs {here:?}");
            }
        }
        s.write_probe("node-a", T).await.unwrap();
        s.write_probe("node-a", UnixTime(T.0 + 1)).await.unwrap();
        s.write_probe("node-b", T).await.unwrap();
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM write_probe")
            .fetch_one(s.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(n, 2);
    }
    both!(outbox_time_and_write_probe_conformance, time_and_probe);

    async fn concurrent_claims(backend: Backend) {
        let Some((s, _db)) = store(backend).await else {
            return;
        };
        let messages: Vec<Outgoing> = (0..60).map(|i| msg(i, CodeChannel::Email, false)).collect();
        let ids = s.enqueue(&messages, T).await.unwrap();
        let s = std::sync::Arc::new(s);
        let mut tasks = Vec::new();
        for n in 0..6 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let node = format!("node-{n}");
                let mut mine = Vec::new();
                loop {
                    let rows = s.claim(&node, T, 60, 4).await.unwrap();
                    if rows.is_empty() {
                        return mine;
                    }
                    for r in rows {
                        assert!(s.mark_sent(r.id, &node, T).await.unwrap());
                        mine.push(r.id);
                    }
                }
            }));
        }
        let mut seen = HashSet::new();
        let mut total = 0;
        for t in tasks {
            for id in t.await.unwrap() {
                total += 1;
                assert!(seen.insert(id), "row {id} was claimed twice");
            }
        }
        assert_eq!(total, ids.len());
        assert_eq!(seen, ids.into_iter().collect());
    }
    both!(outbox_claims_never_overlap_conformance, concurrent_claims);

    async fn sms_quota(backend: Backend) {
        let Some((s, _db)) = store(backend).await else {
            return;
        };
        let day = T.0 / 86_400;
        let claims = |n: u32, svc: u32| {
            vec![
                QuotaClaim {
                    key: "number:+15555550100".into(),
                    limit: n,
                },
                QuotaClaim {
                    key: "service".into(),
                    limit: svc,
                },
            ]
        };
        assert_eq!(s.claim_sms_quota(&claims(2, 10), day).await.unwrap(), None);
        assert_eq!(s.claim_sms_quota(&claims(2, 10), day).await.unwrap(), None);
        assert_eq!(
            s.claim_sms_quota(&claims(2, 10), day).await.unwrap(),
            Some(0)
        );
        // All or nothing: the service counter is full, so the number's place is not taken.
        assert_eq!(
            s.claim_sms_quota(&claims(5, 2), day).await.unwrap(),
            Some(1)
        );
        let count = |key: &'static str| {
            let s = &s;
            async move {
                sqlx::query("SELECT count FROM sms_quota WHERE counter = $1")
                    .bind(key)
                    .fetch_one(s.pool())
                    .await
                    .unwrap()
                    .get::<i64, _>("count")
            }
        };
        assert_eq!(count("number:+15555550100").await, 2);
        assert_eq!(count("service").await, 2);
        // Given back, a place is free again.
        s.release_sms_quota(&["number:+15555550100".into(), "service".into()], day)
            .await
            .unwrap();
        assert_eq!(count("service").await, 1);
        assert_eq!(s.claim_sms_quota(&claims(2, 10), day).await.unwrap(), None);
        // A new day starts from zero.
        assert_eq!(
            s.claim_sms_quota(&claims(2, 10), day + 1).await.unwrap(),
            None
        );
        assert_eq!(count("number:+15555550100").await, 1);

        // Racing claims: exactly the limit is granted.
        let s = std::sync::Arc::new(s);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.claim_sms_quota(
                    &[QuotaClaim {
                        key: "prefix:+44".into(),
                        limit: 7,
                    }],
                    day,
                )
                .await
                .unwrap()
            }));
        }
        let mut granted = 0;
        for t in tasks {
            if t.await.unwrap().is_none() {
                granted += 1;
            }
        }
        assert_eq!(granted, 7);
    }
    both!(sms_quota_conformance, sms_quota);

    async fn sealed_bodies(backend: Backend) {
        let Some((s, db)) = store(backend).await else {
            return;
        };
        let s = s.with_outbox_key(&[9; 32]);
        let code = Outgoing::from(Message {
            channel: CodeChannel::Email,
            to: "ann@example.com".into(),
            subject: "Your code".into(),
            body: "Your code is 493817.".into(),
            sensitive: true,
        });
        let ids = s
            .enqueue(&[code, msg(1, CodeChannel::Email, false)], T)
            .await
            .unwrap();
        let stored = column(&s, ids[0], "body").await.unwrap();
        assert!(stored.starts_with("sealed:v1:"), "{stored}");
        assert!(!stored.contains("493817"));
        assert_eq!(column(&s, ids[1], "body").await.as_deref(), Some("body 1"));
        let rows = s.claim("a", T, 60, 10).await.unwrap();
        assert_eq!(rows[0].body, "Your code is 493817.");
        assert_eq!(s.release_claims("a").await.unwrap(), 2);
        // A node with another key cannot open it: the row fails instead of sending a blob.
        let other = portcullis_store::SqlStore::connect(&db.url, Default::default())
            .await
            .unwrap()
            .with_outbox_key(&[8; 32]);
        let rows = other.claim("b", T, 60, 10).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[1]]);
        assert_eq!(column(&s, ids[0], "state").await.as_deref(), Some("failed"));
        assert_eq!(column(&s, ids[0], "body").await.as_deref(), Some(""));
    }
    both!(outbox_code_bodies_are_sealed_conformance, sealed_bodies);
}

/// A state change and the message it causes commit together, or neither does.
async fn messages_commit_with_their_state_change(backend: Backend) {
    use portcullis_core::ports::{Message, OutboxStore, Outgoing};
    let Some((s, _db)) = store(backend).await else {
        return;
    };
    let msg = |to: &str| -> Outgoing {
        Message {
            channel: CodeChannel::Email,
            to: to.into(),
            subject: "s".into(),
            body: "b".into(),
            sensitive: false,
        }
        .into()
    };
    let rid = seed_record(&s, "378282246310005").await;
    let step = [42u8; 32];
    s.create_step(&step, "registration", rid, "", T.plus_secs(600))
        .await
        .unwrap();
    let mut new = new_account("alice1", rid, step);
    new.messages = vec![msg("holder@example.com")];
    let id = s.create_account(new).await.unwrap();
    assert_eq!(s.outbox_stats(T).await.unwrap().pending, 1);
    // A refused creation queues nothing.
    let step2 = [43u8; 32];
    s.create_step(&step2, "registration", rid, "", T.plus_secs(600))
        .await
        .unwrap();
    let mut again = new_account("bob123", rid, step2);
    again.messages = vec![msg("holder@example.com")];
    assert!(s.create_account(again).await.is_err());
    assert_eq!(s.outbox_stats(T).await.unwrap().pending, 1);
    // The lock's notice is queued only by the call that set the lock.
    assert!(s
        .lock(
            Counter::Account(id),
            T,
            T.plus_secs(60),
            &[msg("a@example.com")]
        )
        .await
        .unwrap());
    assert!(!s
        .lock(
            Counter::Account(id),
            T,
            T.plus_secs(60),
            &[msg("a@example.com")]
        )
        .await
        .unwrap());
    assert_eq!(s.outbox_stats(T).await.unwrap().pending, 2);
    s.change_password(id, "hash-1", T, 0, &[msg("a@example.com")])
        .await
        .unwrap();
    assert_eq!(s.outbox_stats(T).await.unwrap().pending, 3);
}
both!(
    messages_commit_with_their_state_change_conformance,
    messages_commit_with_their_state_change
);

mod lifecycle {
    use super::*;
    use portcullis_core::ports::{LifecycleStore, Unlink};

    async fn job_leases_have_one_winner(backend: Backend) {
        let Some((s, _db)) = store(backend).await else {
            return;
        };
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

    async fn warn_and_deactivate_once(backend: Backend) {
        let Some((s, _db)) = store(backend).await else {
            return;
        };
        let id = account(&s, "old.timer", "378282246310005").await;
        let later = T.plus_secs(1000);
        // Not inactive enough: nothing.
        assert!(s
            .accounts_to_warn(T.plus_secs(-1), 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(s.accounts_to_warn(T, 10).await.unwrap().len(), 1);
        assert!(s.mark_inactivity_warned(id, T, later, &[]).await.unwrap());
        assert!(
            !s.mark_inactivity_warned(id, T, later, &[]).await.unwrap(),
            "once"
        );
        assert!(s.accounts_to_warn(T, 10).await.unwrap().is_empty());
        // Deactivation needs the warning old enough.
        assert!(!s
            .deactivate_account(id, later.plus_secs(-1), later, &[])
            .await
            .unwrap());
        assert_eq!(s.accounts_to_deactivate(later, 10).await.unwrap().len(), 1);
        assert!(s.deactivate_account(id, later, later, &[]).await.unwrap());
        assert!(
            !s.deactivate_account(id, later, later, &[]).await.unwrap(),
            "once"
        );
        let a = s.account_by_id(id).await.unwrap().unwrap();
        assert!(a.is_deactivated());
        assert!(s.reactivate_account(id, later, &[]).await.unwrap());
        assert!(!s.reactivate_account(id, later, &[]).await.unwrap());
        let a = s.account_by_id(id).await.unwrap().unwrap();
        assert!(!a.is_deactivated());
        assert_eq!(
            a.last_active_at, later,
            "inactivity counts from the reactivation"
        );
        assert!(a.inactivity_warned_at.is_none());
    }
    both!(
        warn_and_deactivate_once_conformance,
        warn_and_deactivate_once
    );

    async fn the_last_card_stays(backend: Backend) {
        let Some((s, _db)) = store(backend).await else {
            return;
        };
        let id = account(&s, "two.cards", "378282246310005").await;
        let second = seed_record(&s, "5555555555554444").await;
        assert!(s.link_card(id, second, T, &[]).await.unwrap());
        assert!(
            !s.link_card(id, second, T, &[]).await.unwrap(),
            "one account per card"
        );
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
        let s = Arc::new(s);
        let (a, b) = tokio::join!(
            s.unlink_card(id, cards[0], T, &[]),
            s.unlink_card(id, cards[1], T, &[])
        );
        let mut outcomes = [a.unwrap(), b.unwrap()];
        outcomes.sort_by_key(|o| *o == Unlink::Unlinked);
        assert_eq!(outcomes, [Unlink::LastCard, Unlink::Unlinked]);
        assert_eq!(s.linked_records(id).await.unwrap().len(), 1);
        assert_eq!(
            s.unlink_card(id, 999_999, T, &[]).await.unwrap(),
            Unlink::NotLinked
        );
    }
    both!(the_last_card_stays_conformance, the_last_card_stays);
}
