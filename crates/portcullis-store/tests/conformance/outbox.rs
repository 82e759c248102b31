//! The durable outbox: leases, exactly-once settlement, sealed code bodies, and the SMS
//! quota counters.

use std::collections::HashSet;

use portcullis_core::clock::UnixTime;
use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{Message, OutboxReads, OutboxStore, Outgoing, QuotaClaim};
use portcullis_testkit::{both, Backend};
use sqlx::Row;

use crate::support::{store, T};

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
    let (s, _db) = store(backend).await;
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

/// Issue 20: a code by email whose relay fails goes by text to the account's phone, once,
/// and only by the node that holds it.
async fn email_code_falls_back_to_text(backend: Backend) {
    let (s, _db) = store(backend).await;
    let mut code = msg(7, CodeChannel::Email, true);
    code.fallback_phone = Some("+15555550199".into());
    let plain = msg(8, CodeChannel::Email, false);
    let ids = s.enqueue(&[code, plain], T).await.unwrap();
    let rows = s
        .claim_channel("a", T, 60, 10, Some(CodeChannel::Email))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].id, ids[0]);
    assert_eq!(rows[0].fallback(), Some("+15555550199"));
    assert_eq!(rows[1].fallback(), None);
    // Not the holder, or no phone: nothing moves.
    assert!(!s.fall_back_to_sms(ids[0], "b", "relay").await.unwrap());
    assert!(!s.fall_back_to_sms(ids[1], "a", "relay").await.unwrap());
    assert!(s.fall_back_to_sms(ids[0], "a", "relay down").await.unwrap());
    assert_eq!(column(&s, ids[0], "channel").await.as_deref(), Some("sms"));
    assert_eq!(
        column(&s, ids[0], "recipient").await.as_deref(),
        Some("+15555550199")
    );
    assert_eq!(column(&s, ids[0], "fallback_phone").await, None);
    assert_eq!(column(&s, ids[0], "fallback_email").await, None);
    assert_eq!(
        column(&s, ids[0], "last_error").await.as_deref(),
        Some("relay down")
    );
    // Once: it is a text message now, with nowhere else to go.
    assert!(!s.fall_back_to_sms(ids[0], "a", "again").await.unwrap());
    assert!(!s.fall_back_to_email(ids[0], "a", "again").await.unwrap());
    assert!(s.mark_sent(ids[0], "a", T).await.unwrap());
}

both!(
    outbox_email_code_falls_back_to_text_conformance,
    email_code_falls_back_to_text
);

/// Issue 20: a row queued under a wall clock that had jumped forward is still due (it was
/// never attempted), the database tells its own time on PostgreSQL, and a committed write
/// probe is possible.
async fn time_and_probe(backend: Backend) {
    let (s, _db) = store(backend).await;
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
    portcullis_core::ports::Store::probe_write(&s, "node-b", T)
        .await
        .unwrap();
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
    let (s, _db) = store(backend).await;
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
    let (s, _db) = store(backend).await;
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
    let (s, db) = store(backend).await;
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
    assert!(stored.starts_with("sealed:v2:1:"), "{stored}");
    assert!(!stored.contains("493817"));
    assert_eq!(column(&s, ids[1], "body").await.as_deref(), Some("body 1"));
    let rows = s.claim("a", T, 60, 10).await.unwrap();
    assert_eq!(rows[0].body, "Your code is 493817.");
    assert_eq!(s.release_claims("a").await.unwrap(), 2);
    // A node with another key cannot open it: it never sends the blob, and never gives the
    // message up for its own fault; the claim is released for a later attempt.
    let other = portcullis_store::SqlStore::connect(&db.url, Default::default())
        .await
        .unwrap()
        .with_outbox_key(&[8; 32]);
    let rows = other.claim("b", T, 60, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[1]]);
    assert_eq!(
        column(&s, ids[0], "state").await.as_deref(),
        Some("pending")
    );
    assert_eq!(column(&s, ids[0], "body").await, Some(stored));
    assert!(other.mark_sent(ids[1], "b", T).await.unwrap());
    // Not before the lease would have ended; then a node with the right key sends it.
    assert!(s
        .claim("a", T.plus_secs(30), 60, 10)
        .await
        .unwrap()
        .is_empty());
    let rows = s.claim("a", T.plus_secs(61), 60, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].body, "Your code is 493817.");
}
both!(outbox_code_bodies_are_sealed_conformance, sealed_bodies);
