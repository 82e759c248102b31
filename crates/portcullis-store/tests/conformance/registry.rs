//! The registry: an import is all or nothing and upserts by the number's keyed hash; a
//! record is found by that hash or its id, under its registry key id.

use portcullis_core::ports::{RegistryImports, RegistryReads, Transactions};
use portcullis_testkit::{both, Backend};

use portcullis_core::clock::UnixTime;
use portcullis_core::registry::{HashedRecord, RawRecord, RegistryRecord};
use portcullis_crypto::KeyRing;
use zeroize::Zeroizing;

use crate::support::{commit, keys, parsed, record, seed_record, store, T};

async fn import_is_all_or_nothing_and_upserts(backend: Backend) {
    let (s, _db) = store(backend).await;
    let mut import = s.begin_import(UnixTime(1_700_000_000)).await.unwrap();
    import
        .upsert(&[
            record("378282246310005", "A"),
            record("371449635398431", "B"),
        ])
        .await
        .unwrap();
    drop(import); // never committed
    assert_eq!(s.count_records().await.unwrap(), 0);
    let mut import = s.begin_import(UnixTime(1_700_000_000)).await.unwrap();
    import
        .upsert(&[
            record("378282246310005", "A"),
            record("371449635398431", "B"),
        ])
        .await
        .unwrap();
    import.commit(&keys().into()).await.unwrap();
    let mut import = s.begin_import(UnixTime(1_700_000_000)).await.unwrap();
    import
        .upsert(&[record("378282246310005", "A2")])
        .await
        .unwrap();
    import.commit(&keys().into()).await.unwrap();
    assert_eq!(s.count_records().await.unwrap(), 2);
    let r = s
        .find_record(1, &record("378282246310005", "x").number_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.product, "A2");
    assert_eq!(r.last4, "0005");
    assert_eq!(r.account_id, None);
    assert_eq!(r.holder_name, "Test Holder");
    assert_eq!(r.email.as_deref(), Some("holder@example.com"));
    let by_id = s.record_by_id(r.id).await.unwrap().unwrap();
    assert_eq!(by_id.verification_hash, r.verification_hash);
    assert!(s.record_by_id(r.id + 99).await.unwrap().is_none());
    assert!(s.linked_records(1).await.unwrap().is_empty());
    // A batch larger than one statement's rows.
    let many: Vec<_> = (0..1_500u64)
        .map(|i| {
            let body = format!("4{:014}", i);
            record(&portcullis_core::card::with_luhn_check_digit(&body), "Bulk")
        })
        .collect();
    let mut import = s.begin_import(UnixTime(1_700_000_000)).await.unwrap();
    import.upsert(&many).await.unwrap();
    import.commit(&keys().into()).await.unwrap();
    assert_eq!(s.count_records().await.unwrap(), 1_502);
}
both!(
    import_is_all_or_nothing_and_upserts_conformance,
    import_is_all_or_nothing_and_upserts
);

/// A load's rows reach the staging table by COPY on PostgreSQL (its text format): text with
/// the format's special characters comes back as it went in, NULL stays NULL; a load that
/// sent rows (more than one COPY carries) and never committed leaves neither records nor
/// staged rows behind.
async fn staged_rows_round_trip_and_vanish_without_commit(backend: Backend) {
    let (s, _db) = store(backend).await;
    let mut odd = record("378282246310005", "Pro\\duct\t1");
    odd.holder_name = "O\\Brien\tTab\nLine\rCR \\N \u{e9}".into();
    odd.email = None;
    odd.phone = Some("\\N".into());
    let mut import = s.begin_import(T).await.unwrap();
    import.upsert(&[odd.clone()]).await.unwrap();
    import.commit(&keys().into()).await.unwrap();
    let r = s.find_record(1, &odd.number_hash).await.unwrap().unwrap();
    assert_eq!(r.holder_name, odd.holder_name);
    assert_eq!(r.product, "Pro\\duct\t1");
    assert_eq!(r.email, None);
    assert_eq!(r.phone.as_deref(), Some("\\N"));
    assert_eq!(r.verification_hash, odd.verification_hash.to_vec());

    let many: Vec<_> = (0..12_000u64)
        .map(|i| {
            let body = format!("5{:014}", i);
            record(&portcullis_core::card::with_luhn_check_digit(&body), "Bulk")
        })
        .collect();
    let mut import = s.begin_import(T).await.unwrap();
    import.upsert(&many).await.unwrap();
    drop(import); // never committed
    assert_eq!(s.count_records().await.unwrap(), 1);
    // The staged rows are deleted as the load drops (on PostgreSQL by a task of its own).
    let mut staged = -1i64;
    for _ in 0..100 {
        staged = sqlx::query_scalar("SELECT COUNT(*) FROM registry_staging")
            .fetch_one(s.pool())
            .await
            .unwrap();
        if staged == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(staged, 0, "a load that never committed left staged rows");
    // The same rows committed: all of them arrive.
    let mut import = s.begin_import(T).await.unwrap();
    import.upsert(&many).await.unwrap();
    import.commit(&keys().into()).await.unwrap();
    assert_eq!(s.count_records().await.unwrap(), 12_001);
}
both!(
    staged_rows_round_trip_and_vanish_without_commit_conformance,
    staged_rows_round_trip_and_vanish_without_commit
);

/// After `registry.key` is rotated, a row is found only under its own key id, and the next
/// import moves it (same row, same id) to the current key; rows per key id say so.
async fn import_moves_rows_off_an_old_registry_key(backend: Backend) {
    let (s, _db) = store(backend).await;
    // Key 1 is the suite's key (`support::keys`): the seeded row is under it.
    let id = seed_record(&s, "378282246310005").await;
    seed_record(&s, "371449635398431").await;
    assert_eq!(s.count_by_key().await.unwrap(), vec![(1, 2)]);
    let mut ring = KeyRing::single(Zeroizing::new([7; 32]));
    assert_eq!(ring.add_current(), 2);
    let moved = parsed("378282246310005", "Moved").hashed_under(&ring);
    assert_eq!(moved.key_id, 2);
    let old_hash = record("378282246310005", "x").number_hash;
    assert_eq!(moved.old_number_hashes, vec![(1, old_hash)]);
    // Under key 2 the row is not there yet; under key 1 it is.
    assert!(s
        .find_record(2, &moved.number_hash)
        .await
        .unwrap()
        .is_none());
    assert!(s.find_record(2, &old_hash).await.unwrap().is_none());
    assert_eq!(s.find_record(1, &old_hash).await.unwrap().unwrap().id, id);
    // A new record in the same load is staged and merged under the load's key too.
    let new = parsed("6011111111111117", "New").hashed_under(&ring);
    let mut import = s.begin_import(T).await.unwrap();
    import.upsert(&[moved.clone(), new.clone()]).await.unwrap();
    import.commit(&keys().into()).await.unwrap();
    assert_eq!(s.count_records().await.unwrap(), 3);
    assert_eq!(s.count_by_key().await.unwrap(), vec![(1, 1), (2, 2)]);
    let row = s.find_record(2, &new.number_hash).await.unwrap().unwrap();
    assert_eq!(row.key_id, 2);
    let row = s.find_record(2, &moved.number_hash).await.unwrap().unwrap();
    assert_eq!((row.id, row.key_id, row.product.as_str()), (id, 2, "Moved"));
    assert_eq!(row.verification_hash, moved.verification_hash.to_vec());
    assert!(s.find_record(1, &old_hash).await.unwrap().is_none());
}
both!(
    import_moves_rows_off_an_old_registry_key_conformance,
    import_moves_rows_off_an_old_registry_key
);

/// A card found under an old key at a lookup moves in the use case's unit of work; a
/// second move from the same old key finds nothing (it moved meanwhile).
async fn a_found_card_moves_to_the_current_key(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = seed_record(&s, "378282246310005").await;
    let mut ring = KeyRing::single(Zeroizing::new([7; 32]));
    ring.add_current();
    let moved = parsed("378282246310005", "Gold").hashed_under(&ring);
    let mut w = s.begin(T);
    assert!(w
        .move_record(id, 1, 2, &moved.number_hash, &moved.verification_hash)
        .await
        .unwrap());
    assert!(!w
        .move_record(id, 1, 2, &moved.number_hash, &moved.verification_hash)
        .await
        .unwrap());
    commit(w).await;
    let row = s.find_record(2, &moved.number_hash).await.unwrap().unwrap();
    assert_eq!((row.id, row.key_id), (id, 2));
    assert_eq!(row.verification_hash, moved.verification_hash.to_vec());
    assert_eq!(s.count_by_key().await.unwrap(), vec![(2, 1)]);
    // Dropped without a commit, a move leaves nothing.
    let mut w = s.begin(T);
    assert!(w.move_record(id, 2, 3, &[1; 32], &[2; 32]).await.unwrap());
    drop(w);
    assert_eq!(s.count_by_key().await.unwrap(), vec![(2, 1)]);
}
both!(
    a_found_card_moves_to_the_current_key_conformance,
    a_found_card_moves_to_the_current_key
);

/// A card record replacing `replaces` (or none), not hashed yet.
fn reissue(number: &str, replaces: &str) -> RegistryRecord {
    RegistryRecord::parse(&RawRecord {
        account_type: "personal".into(),
        number: number.into(),
        verification: "1234".into(),
        expiry: "2030-01".into(),
        holder_name: "Test Holder".into(),
        email: "holder@example.com".into(),
        product: "Gold".into(),
        replaces: replaces.into(),
        ..Default::default()
    })
    .unwrap()
}

async fn load_all(s: &portcullis_store::SqlStore, records: &[HashedRecord]) {
    let mut import = s.begin_import(T).await.unwrap();
    import.upsert(records).await.unwrap();
    import.commit(&keys().into()).await.unwrap();
}

/// Across a registry key rotation a replaced card stays replaced: a reissue loaded under
/// the new key moves the replaced card's row off the old key (so `replaces` finds it), and
/// a replaced card's row moved by a later load takes the `replaces` naming it along.
async fn replaced_cards_follow_a_registry_key_rotation(backend: Backend) {
    const OLD: &str = "378282246310005";
    const NEW: &str = "371449635398431";
    const LATER_OLD: &str = "6011111111111117";
    const LATER_NEW: &str = "4111111111111111";
    let (s, _db) = store(backend).await;
    let mut ring = KeyRing::single(Zeroizing::new([7; 32]));
    // Under key 1: OLD replaced by NEW; LATER_OLD not replaced yet.
    load_all(
        &s,
        &[
            reissue(OLD, "").hashed_under(&ring),
            reissue(NEW, OLD).hashed_under(&ring),
            reissue(LATER_OLD, "").hashed_under(&ring),
        ],
    )
    .await;
    let old1 = reissue(OLD, "").hashed_under(&ring).number_hash;
    assert!(s.find_record(1, &old1).await.unwrap().unwrap().replaced);
    ring.add_current();
    // OLD loaded again under key 2 (without NEW): it moves, and is still replaced.
    load_all(&s, &[reissue(OLD, "").hashed_under(&ring)]).await;
    let old2 = reissue(OLD, "").hashed_under(&ring).number_hash;
    let row = s.find_record(2, &old2).await.unwrap().unwrap();
    assert_eq!(row.key_id, 2);
    assert!(row.replaced && !row.usable());
    // LATER_NEW loaded under key 2 replaces LATER_OLD, still under key 1: found and moved.
    let later = reissue(LATER_NEW, LATER_OLD).hashed_under(&ring);
    assert_eq!(later.old_replaces_hashes.len(), 1);
    load_all(&s, &[later]).await;
    let later_old = reissue(LATER_OLD, "").hashed_under(&ring);
    assert!(s
        .find_record(1, &later_old.old_number_hashes[0].1)
        .await
        .unwrap()
        .is_none());
    let row = s
        .find_record(2, &later_old.number_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(row.replaced && !row.usable());
    // NEW was never in a key-2 load: still under key 1, and usable.
    let new1 = reissue(NEW, "").hashed(&keys()).number_hash;
    assert!(s.find_record(1, &new1).await.unwrap().unwrap().usable());
}
both!(
    replaced_cards_follow_a_registry_key_rotation_conformance,
    replaced_cards_follow_a_registry_key_rotation
);

/// The registry's index definitions, by name.
async fn registry_indexes(s: &portcullis_store::SqlStore, backend: Backend) -> Vec<String> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT COALESCE(sql, name) FROM sqlite_master WHERE type = 'index' \
             AND tbl_name = 'registry_records' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'registry_records' \
             ORDER BY indexname"
        }
    };
    sqlx::query_scalar(sql).fetch_all(s.pool()).await.unwrap()
}

fn numbered(count: u64, first: u64, product: &str) -> Vec<HashedRecord> {
    (first..first + count)
        .map(|i| {
            let body = format!("6{:014}", i);
            record(
                &portcullis_core::card::with_luhn_check_digit(&body),
                product,
            )
        })
        .collect()
}

/// A first large load into an empty registry (on PostgreSQL it drops the registry's full
/// indexes and builds them after its rows, `registry_bulk.rs`): every row arrives, the
/// indexes are as the migrations made them, and the next load upserts through them.
async fn a_first_large_load_leaves_the_indexes_as_they_were(backend: Backend) {
    let (s, _db) = store(backend).await;
    let before = registry_indexes(&s, backend).await;
    assert!(!before.is_empty());
    let rows = numbered(60_000, 0, "Bulk");
    let mut import = s.begin_import(T).await.unwrap();
    for chunk in rows.chunks(1_000) {
        import.upsert(chunk).await.unwrap();
    }
    import.settle().await.unwrap();
    import.commit(&keys().into()).await.unwrap();
    assert_eq!(s.count_records().await.unwrap(), 60_000);
    assert_eq!(registry_indexes(&s, backend).await, before);
    let last = s.find_record(1, &rows[59_999].number_hash).await.unwrap();
    assert_eq!(last.unwrap().product, "Bulk");
    // The next large load finds the registry full: it upserts (60,000 updates, 10 new).
    let again = numbered(60_010, 0, "Again");
    let mut import = s.begin_import(T).await.unwrap();
    for chunk in again.chunks(1_000) {
        import.upsert(chunk).await.unwrap();
    }
    import.commit(&keys().into()).await.unwrap();
    assert_eq!(s.count_records().await.unwrap(), 60_010);
    let first = s.find_record(1, &rows[0].number_hash).await.unwrap();
    assert_eq!(first.unwrap().product, "Again");
    assert_eq!(registry_indexes(&s, backend).await, before);

    if backend == Backend::Postgres {
        // A repeated number (the import and the push refuse one before the store; here it
        // reaches the store): the unique index's build fails the load, which leaves nothing,
        // the indexes included.
        let (s, _db) = store(backend).await;
        let mut rows = numbered(55_000, 0, "Bulk");
        rows.push(rows[10].clone());
        let mut import = s.begin_import(T).await.unwrap();
        for chunk in rows.chunks(1_000) {
            import.upsert(chunk).await.unwrap();
        }
        assert!(import.commit(&keys().into()).await.is_err());
        assert_eq!(s.count_records().await.unwrap(), 0);
        assert_eq!(registry_indexes(&s, backend).await, before);
    }
}
both!(
    a_first_large_load_leaves_the_indexes_as_they_were_conformance,
    a_first_large_load_leaves_the_indexes_as_they_were
);
