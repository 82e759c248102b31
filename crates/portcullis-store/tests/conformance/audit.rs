//! The audit chain, appended by units of work: parallel units never share a sequence
//! number, a unit's events are consecutive, a dropped unit appends nothing, and the table
//! refuses edits.

use std::sync::Arc;

use portcullis_core::audit::{AuditEvent, AuditKind, ChainKey, ChainKeys, ChainWalk, GENESIS_HASH};
use portcullis_core::ports::{AuditReads, Store, Transactions};
use portcullis_testkit::{both, Backend};

use crate::support::{commit, keys, store, T};

async fn audit_chain(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = Arc::new(s);
    assert_eq!(s.audit_head().await.unwrap(), (0, GENESIS_HASH.to_vec()));
    let mut handles = Vec::new();
    for i in 0..30i64 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut w = s.begin(T);
            // One to three events per unit.
            for n in 0..=(i % 3) {
                w.audit(
                    AuditEvent::new(AuditKind::SignIn, Some(i))
                        .ip(Some("127.0.0.1"))
                        .detail(format!("{n}")),
                );
            }
            commit(w).await
        }));
    }
    let mut audited = 0;
    for h in handles {
        audited += h.await.unwrap().audited;
    }
    assert_eq!(audited, 60);
    let entries = s.audit_entries(0, 100).await.unwrap();
    assert_eq!(entries.len(), 60);
    let mut walk = ChainWalk::default();
    portcullis_core::audit::verify_run(&keys().into(), &entries, &mut walk).unwrap();
    assert_eq!(s.audit_head().await.unwrap(), (60, walk.prev));
    // A unit's events are consecutive in the chain.
    for account in 0..30 {
        let seqs: Vec<i64> = entries
            .iter()
            .filter(|e| e.account_id == Some(account))
            .map(|e| e.seq)
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    }
    assert_eq!(s.account_audit(3, 10).await.unwrap().len(), 1);
    let newest = s.account_audit(5, 10).await.unwrap();
    assert_eq!(newest.len(), 3);
    assert!(newest[0].seq > newest[1].seq, "newest first");
    assert_eq!(s.audit_entries(58, 10).await.unwrap().len(), 2);
    // A dropped unit appends nothing.
    let mut w = s.begin(T);
    w.audit(AuditEvent::new(AuditKind::SignOut, None));
    drop(w);
    assert_eq!(s.audit_head().await.unwrap().0, 60);
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

/// Each entry names the key it was appended under (`audit.key`'s id), the chain runs on
/// across a change of key, and the entries are counted per key id.
async fn audit_key_ids(backend: Backend) {
    let (s, _db) = store(backend).await;
    let two = portcullis_crypto::KeyedHasher::new(zeroize::Zeroizing::new([8; 32]));
    assert!(s.count_audit_by_key().await.unwrap().is_empty());
    for (n, key) in [
        (3, ChainKey::from(keys())),
        (2, ChainKey { id: 2, key: two }),
    ] {
        for _ in 0..n {
            let mut w = s.begin(T);
            w.audit(AuditEvent::new(AuditKind::SignIn, Some(1)));
            w.commit(&key).await.unwrap();
        }
    }
    assert_eq!(s.count_audit_by_key().await.unwrap(), vec![(1, 3), (2, 2)]);
    let entries = s.audit_entries(0, 10).await.unwrap();
    let ids: Vec<i64> = entries.iter().map(|e| e.key_id).collect();
    assert_eq!(ids, vec![1, 1, 1, 2, 2]);
    let ring = portcullis_crypto::KeyRing::parse(&format!(
        "current 2\nkey 1 {}\nkey 2 {}\n",
        "07".repeat(32),
        "08".repeat(32)
    ))
    .unwrap();
    let mut walk = ChainWalk::default();
    portcullis_core::audit::verify_run(&ChainKeys::of_ring(&ring), &entries, &mut walk).unwrap();
    assert_eq!(walk.seq, 5);
}
both!(audit_entries_name_their_key, audit_key_ids);

/// One unit of work with more events than one `INSERT` carries (a registry load's): the
/// events go in several statements, the chain still verifies across them, and the head
/// (kept by the `AFTER INSERT` trigger) names the last event, before and after a second
/// unit appends to it.
async fn audit_large_append(backend: Backend) {
    let (s, _db) = store(backend).await;
    let many = 2_345;
    let mut w = s.begin(T);
    for n in 0..many {
        w.audit(AuditEvent::new(AuditKind::SignIn, Some(n)).detail(format!("{n}")));
    }
    assert_eq!(commit(w).await.audited, 2_345);
    let mut w = s.begin(T);
    w.audit(AuditEvent::new(AuditKind::SignOut, Some(1)));
    commit(w).await;
    let mut entries = Vec::new();
    while entries.len() < 2_346 {
        let after = entries
            .last()
            .map_or(0, |e: &portcullis_core::audit::AuditEntry| e.seq);
        let page = s.audit_entries(after, 1_000).await.unwrap();
        assert!(!page.is_empty(), "{} entries", entries.len());
        entries.extend(page);
    }
    let details: Vec<&str> = entries.iter().take(3).map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["0", "1", "2"], "in the order appended");
    let mut walk = ChainWalk::default();
    portcullis_core::audit::verify_run(&keys().into(), &entries, &mut walk).unwrap();
    assert_eq!(walk.seq, 2_346);
    assert_eq!(s.audit_head().await.unwrap(), (2_346, walk.prev));
}
both!(audit_append_larger_than_one_statement, audit_large_append);
