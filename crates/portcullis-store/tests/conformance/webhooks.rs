//! Webhook subscriptions and deliveries: rows written by the unit of work's commit from its
//! audit events (one per matching subscription, nothing for a dropped unit), leases like the
//! outbox's, sealed secrets, and removal.

use portcullis_core::audit::{AuditEvent, AuditKind};
use portcullis_core::ports::{Claims, SweepCutoffs, Transactions, WebhookStore};
use portcullis_core::webhooks::EventFilter;
use portcullis_crypto::KeyedHasher;
use portcullis_store::SqlStore;
use portcullis_testkit::{both, Backend};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use zeroize::Zeroizing;

use crate::support::{account, commit, store, T};

/// Adds a subscription in a unit of work of its own.
async fn add(
    s: &SqlStore,
    url: &str,
    events: &EventFilter,
    secret: &SecretString,
) -> portcullis_core::ports::StoreResult<i64> {
    let mut w = s.begin(T);
    let id = w.add_subscription(url, events, secret).await?;
    commit(w).await;
    Ok(id)
}

/// The account's public id as stored.
async fn public_id_of(s: &SqlStore, account: i64) -> Option<String> {
    sqlx::query("SELECT public_id FROM online_accounts WHERE id = $1")
        .bind(account)
        .fetch_one(s.pool())
        .await
        .unwrap()
        .get("public_id")
}

/// Removes a subscription in a unit of work of its own; false when there was none.
async fn remove(s: &SqlStore, id: i64) -> bool {
    let mut w = s.begin(T);
    let removed = w.remove_subscription(id).await.unwrap();
    commit(w).await;
    removed
}

async fn deliveries(backend: Backend) {
    let (s, _db) = store(backend).await;
    let secret = SecretString::from("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0");
    // Secrets are sealed, so a store without the outbox key refuses to keep one.
    assert!(add(&s, "https://a.example/in", &EventFilter::All, &secret)
        .await
        .is_err());
    let s = s.with_outbox_key(&[9; 32]);
    let all = add(&s, "https://a.example/in", &EventFilter::All, &secret)
        .await
        .unwrap();
    let locks = add(
        &s,
        "https://b.example/in",
        &EventFilter::parse("account.locked").unwrap(),
        &SecretString::from("whsec_b3RoZXI="),
    )
    .await
    .unwrap();
    let stored: String = sqlx::query("SELECT secret FROM webhook_subscriptions WHERE id = $1")
        .bind(all)
        .fetch_one(s.pool())
        .await
        .unwrap()
        .get("secret");
    assert!(stored.starts_with("sealed:"), "{stored}");

    // A dropped unit of work writes nothing; a committed one a row per event per
    // subscription that wants it (a sign-in is no webhook event).
    let ann = account(&s, "ann.example", "371449635398431").await;
    // (Making the account committed no webhook event: none was in its unit of work.)
    assert!(s.claim_webhooks("a", T, 60, 10).await.unwrap().is_empty());
    let mut w = s.begin(T);
    w.audit(AuditEvent::new(AuditKind::AccountLocked, Some(ann)));
    drop(w);
    assert!(s.claim_webhooks("a", T, 60, 10).await.unwrap().is_empty());
    let mut w = s.begin(T);
    w.audit(AuditEvent::new(AuditKind::SignIn, Some(ann)));
    w.audit(AuditEvent::new(AuditKind::AccountCreated, Some(ann)).detail("type=personal"));
    w.audit(AuditEvent::new(AuditKind::AccountLocked, Some(ann)));
    commit(w).await;

    let claimed = s.claim_webhooks("a", T, 60, 10).await.unwrap();
    let mut seen: Vec<(i64, String)> = claimed
        .iter()
        .map(|d| (d.subscription_id, d.event_type.clone()))
        .collect();
    seen.sort();
    let mut want = vec![
        (all, "account.created".to_owned()),
        (all, "account.locked".to_owned()),
        (locks, "account.locked".to_owned()),
    ];
    want.sort();
    assert_eq!(seen, want);
    let first = claimed.first().unwrap();
    assert_eq!(first.attempts, 1);
    assert_eq!(first.url, "https://a.example/in");
    assert_eq!(first.secret.expose_secret(), secret.expose_secret());
    let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["type"], "account.created");
    assert_eq!(body["data"]["detail"], "type=personal");
    // The account's public id: random, fixed, in every event whatever the chain's key.
    let public_id = public_id_of(&s, ann).await.unwrap();
    assert!(
        public_id.starts_with("acct_") && public_id.len() == 37,
        "{public_id}"
    );
    assert_eq!(body["data"]["account"], public_id.as_str());
    assert_eq!(body["data"]["account_type"], "personal");

    // Leased: another node gets nothing, and cannot settle them.
    assert!(s.claim_webhooks("b", T, 60, 10).await.unwrap().is_empty());
    assert!(!s.webhook_sent(first.id, "b", T).await.unwrap());
    assert!(s.webhook_sent(first.id, "a", T).await.unwrap());
    let second = claimed.get(1).unwrap();
    let third = claimed.get(2).unwrap();
    assert!(s
        .webhook_retry(second.id, "a", "503", T.plus_secs(30))
        .await
        .unwrap());
    assert!(s
        .claim_webhooks("b", T.plus_secs(10), 60, 10)
        .await
        .unwrap()
        .is_empty());
    // The retry is due and the third row's lease has run out (its node died).
    let again = s
        .claim_webhooks("b", T.plus_secs(61), 60, 10)
        .await
        .unwrap();
    let mut ids: Vec<i64> = again.iter().map(|d| d.id).collect();
    ids.sort();
    let mut want = vec![second.id, third.id];
    want.sort();
    assert_eq!(ids, want);
    assert!(again.iter().all(|d| d.attempts == 2));
    assert!(!s.webhook_failed(third.id, "a", "late").await.unwrap());
    assert!(s.webhook_failed(third.id, "b", "gave up").await.unwrap());
    assert_eq!(s.release_webhook_claims("b").await.unwrap(), 1);

    let stats = s.webhook_stats(T.plus_secs(100)).await.unwrap();
    assert_eq!((stats.pending, stats.failed), (1, 1));
    assert_eq!(stats.oldest_pending_age_secs, 100);
    let list = s.list_subscriptions().await.unwrap();
    assert_eq!(list.len(), 2);
    let counts: Vec<(i64, i64, i64, i64)> = list
        .iter()
        .map(|l| (l.id, l.pending, l.sent, l.failed))
        .collect();
    let failed_sub = third.subscription_id;
    for (id, pending, sent, failed) in counts {
        assert_eq!(pending + sent + failed, if id == all { 2 } else { 1 });
        assert_eq!(failed, i64::from(id == failed_sub));
    }
    let with_error = list.iter().find(|l| l.id == failed_sub).unwrap();
    assert_eq!(with_error.last_error.as_deref(), Some("gave up"));
    assert_eq!(list.first().unwrap().events, EventFilter::All);

    // Removal takes the subscription's deliveries with it.
    assert!(remove(&s, all).await);
    assert!(!remove(&s, all).await);
    assert_eq!(s.list_subscriptions().await.unwrap().len(), 1);
    let left: i64 = sqlx::query("SELECT COUNT(*) AS n FROM webhook_deliveries")
        .fetch_one(s.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(left, 1);
}
both!(
    webhook_deliveries_are_leased_settled_and_removed,
    deliveries
);

/// A delivery's `webhook-id` is random and fixed at enqueue: the same on every attempt, and
/// never given again, even when SQLite reuses a removed row's id.
async fn message_ids(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = s.with_outbox_key(&[9; 32]);
    let secret = SecretString::from("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0");
    let mut seen = Vec::new();
    let mut rows = Vec::new();
    for round in 0..3 {
        let sub = add(&s, "https://a.example/in", &EventFilter::All, &secret)
            .await
            .unwrap();
        let mut w = s.begin(T);
        w.audit(AuditEvent::new(AuditKind::AccountLocked, Some(42)));
        commit(w).await;
        let claimed = s.claim_webhooks("a", T, 60, 10).await.unwrap();
        let [d] = &claimed[..] else {
            panic!("one delivery in round {round}: {}", claimed.len());
        };
        let id = &d.message_id;
        assert!(
            id.len() == 36
                && id.starts_with("msg_")
                && id[4..].chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
        // A retry goes under the same id.
        assert!(s
            .webhook_retry(d.id, "a", "503", T.plus_secs(1))
            .await
            .unwrap());
        let again = s.claim_webhooks("a", T.plus_secs(2), 60, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(&again[0].message_id, id);
        seen.push(id.clone());
        rows.push(d.id);
        assert!(remove(&s, sub).await);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        seen.len(),
        "ids never repeat: {seen:?} (rows {rows:?})"
    );
}
both!(webhook_ids_are_random_and_never_reused, message_ids);

/// A node whose outbox key cannot open a subscription's secret releases its claim for a
/// later attempt: the delivery is not failed, and a node with the right key sends it.
async fn wrong_key(backend: Backend) {
    let (s, _db) = store(backend).await;
    let good = s.clone().with_outbox_key(&[9; 32]);
    let wrong = s.with_outbox_key(&[7; 32]);
    let secret = SecretString::from("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0");
    add(&good, "https://a.example/in", &EventFilter::All, &secret)
        .await
        .unwrap();
    let mut w = good.begin(T);
    w.audit(AuditEvent::new(AuditKind::AccountLocked, Some(42)));
    commit(w).await;
    assert!(wrong
        .claim_webhooks("w", T, 60, 10)
        .await
        .unwrap()
        .is_empty());
    let stats = good.webhook_stats(T).await.unwrap();
    assert_eq!(
        (stats.pending, stats.failed),
        (1, 0),
        "released, not failed"
    );
    // Not claimed again before a lease has passed (no busy loop on the wrong node) …
    assert!(good
        .claim_webhooks("g", T.plus_secs(30), 60, 10)
        .await
        .unwrap()
        .is_empty());
    // … then a node with the right key gets it, with its secret.
    let claimed = good
        .claim_webhooks("g", T.plus_secs(61), 60, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].secret.expose_secret(), secret.expose_secret());
    assert!(good
        .webhook_sent(claimed[0].id, "g", T.plus_secs(61))
        .await
        .unwrap());
}
both!(
    a_node_that_cannot_open_a_secret_releases_the_delivery,
    wrong_key
);

/// The sweep deletes sent deliveries some time after they were sent and given-up ones
/// some time after their event; a pending one is never swept.
async fn swept(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = s.with_outbox_key(&[9; 32]);
    let secret = SecretString::from("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0");
    add(&s, "https://a.example/in", &EventFilter::All, &secret)
        .await
        .unwrap();
    let mut w = s.begin(T);
    w.audit(AuditEvent::new(AuditKind::AccountLocked, Some(42)));
    w.audit(AuditEvent::new(AuditKind::AccountUnlocked, Some(42)));
    w.audit(AuditEvent::new(AuditKind::PasswordChanged, Some(42)));
    commit(w).await;
    let claimed = s.claim_webhooks("a", T, 60, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(s
        .webhook_sent(claimed[0].id, "a", T.plus_secs(10))
        .await
        .unwrap());
    assert!(s
        .webhook_failed(claimed[1].id, "a", "gave up")
        .await
        .unwrap());
    assert!(s
        .webhook_retry(claimed[2].id, "a", "503", T.plus_secs(30))
        .await
        .unwrap());
    let cutoffs = |sent: i64, failed: i64| SweepCutoffs {
        steps_before: T.plus_secs(-1_000),
        codes_before: T.plus_secs(-1_000),
        throttle_before: T.plus_secs(-1_000),
        devices_before: T.plus_secs(-1_000),
        contacts_before: T.plus_secs(-1_000),
        push_keys_before: T.plus_secs(-1_000),
        idempotency_keys_before: T.plus_secs(-1_000),
        webhooks_sent_before: T.plus_secs(sent),
        webhooks_failed_before: T.plus_secs(failed),
        oidc_before: T,
    };
    let none = s.sweep_expired(cutoffs(9, -1)).await.unwrap();
    assert_eq!((none.webhooks_sent, none.webhooks_failed), (0, 0));
    let once = s.sweep_expired(cutoffs(10, 0)).await.unwrap();
    assert_eq!((once.webhooks_sent, once.webhooks_failed), (1, 1));
    let again = s.sweep_expired(cutoffs(1_000, 1_000)).await.unwrap();
    assert_eq!((again.webhooks_sent, again.webhooks_failed), (0, 0));
    let list = s.list_subscriptions().await.unwrap();
    let counts: Vec<(i64, i64, i64)> = list.iter().map(|l| (l.pending, l.sent, l.failed)).collect();
    assert_eq!(counts, [(1, 0, 0)], "the pending delivery stays");
}
both!(settled_webhook_deliveries_are_swept, swept);

/// The account id in events is the account's public id: the same under any audit key (a
/// rotation of `audit.key` changes nothing a receiver sees), and given, once, to an account
/// a previous release created without one (expand-only upgrade).
async fn public_ids(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = s.with_outbox_key(&[9; 32]);
    let secret = SecretString::from("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0");
    add(&s, "https://a.example/in", &EventFilter::All, &secret)
        .await
        .unwrap();
    let ann = account(&s, "ann.example", "371449635398431").await;
    let bob = account(&s, "bob.example", "378282246310005").await;
    let ann_id = public_id_of(&s, ann).await.unwrap();
    assert_ne!(Some(ann_id.clone()), public_id_of(&s, bob).await);
    // Bob's account as a previous release would have left it.
    sqlx::query("UPDATE online_accounts SET public_id = NULL WHERE id = $1")
        .bind(bob)
        .execute(s.pool())
        .await
        .unwrap();
    let key_a = KeyedHasher::new(Zeroizing::new([1; 32]));
    let key_b = KeyedHasher::new(Zeroizing::new([2; 32]));
    for key in [key_a, key_b] {
        let mut w = s.begin(T);
        w.audit(AuditEvent::new(AuditKind::AccountLocked, Some(ann)));
        w.audit(AuditEvent::new(AuditKind::AccountLocked, Some(bob)));
        w.commit(&key.into()).await.unwrap();
    }
    let claimed = s.claim_webhooks("a", T, 60, 10).await.unwrap();
    assert_eq!(claimed.len(), 4);
    let bob_id = public_id_of(&s, bob)
        .await
        .expect("filled by the first event");
    assert_ne!(bob_id, ann_id);
    let mut seen: Vec<String> = claimed
        .iter()
        .map(|d| {
            let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
            body["data"]["account"].as_str().unwrap().to_owned()
        })
        .collect();
    seen.sort();
    let mut want = vec![ann_id.clone(), ann_id, bob_id.clone(), bob_id];
    want.sort();
    assert_eq!(seen, want);
}
both!(
    events_name_the_account_by_its_public_id_under_any_audit_key,
    public_ids
);
