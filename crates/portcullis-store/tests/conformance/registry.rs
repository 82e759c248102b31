//! The registry: an import is all or nothing and upserts by the number's keyed hash; a
//! record is found by that hash or its id.

use portcullis_core::ports::{RegistryImports, RegistryReads};
use portcullis_testkit::{both, Backend};

use portcullis_core::clock::UnixTime;

use crate::support::{keys, record, store};

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
    import.commit(&keys()).await.unwrap();
    let mut import = s.begin_import(UnixTime(1_700_000_000)).await.unwrap();
    import
        .upsert(&[record("378282246310005", "A2")])
        .await
        .unwrap();
    import.commit(&keys()).await.unwrap();
    assert_eq!(s.count_records().await.unwrap(), 2);
    let r = s
        .find_record(&record("378282246310005", "x").number_hash)
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
    import.commit(&keys()).await.unwrap();
    assert_eq!(s.count_records().await.unwrap(), 1_502);
}
both!(
    import_is_all_or_nothing_and_upserts_conformance,
    import_is_all_or_nothing_and_upserts
);
