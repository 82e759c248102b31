//! A rolling upgrade runs the previous release on the schema the next one migrated
//! (docs/design/availability.md, "Rolling upgrades: expand, then contract"): a store opened
//! on a database with a newer release's expand-only migrations starts and works, one with a
//! newer contracting migration refuses to start. The newer release is made here by hand: its
//! migration rows in `_sqlx_migrations` and the schema change they made.

use portcullis_store::{SqlStore, StoreOptions};
use portcullis_testkit::{both, Backend};

use crate::support::{account, store};

/// Records `version` as applied by a newer release, as sqlx would.
async fn newer_migration(s: &SqlStore, version: i64, description: &str) {
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, TRUE, $3, 0)",
    )
    .bind(version)
    .bind(description)
    .bind(vec![0xA5_u8; 48])
    .execute(s.pool())
    .await
    .unwrap();
}

async fn expand_then_contract(backend: Backend) {
    let (s, db) = store(backend).await;
    account(&s, "before_upgrade", "4000000000000002").await;

    // The next release expands: a new table and a nullable column on a table this one writes.
    sqlx::query("CREATE TABLE future_devices (id BIGINT PRIMARY KEY, label TEXT)")
        .execute(s.pool())
        .await
        .unwrap();
    sqlx::query("ALTER TABLE online_accounts ADD COLUMN future_note TEXT")
        .execute(s.pool())
        .await
        .unwrap();
    newer_migration(&s, 9_001, "future devices").await;
    s.close().await;

    // This release starts on it, sees what it cannot vouch for, and still writes and reads.
    let old = SqlStore::connect(&db.url, StoreOptions::default())
        .await
        .expect("the previous release starts on an expand-only newer schema");
    let status = old.schema_status().await.unwrap();
    assert_eq!(status.unknown, vec![9_001]);
    assert!(status.contracting.is_empty());
    assert!(status.start_problems().is_empty());
    assert_eq!(status.problems().len(), 1, "a check still names it");
    account(&old, "during_upgrade", "4000000000000010").await;
    old.close().await;

    // A later release contracts: the previous one must not start on that.
    let newer = SqlStore::open(&db.url, StoreOptions::default())
        .await
        .unwrap();
    newer_migration(&newer, 9_002, "contract drop old column").await;
    newer.close().await;
    let refused = SqlStore::connect(&db.url, StoreOptions::default()).await;
    let Err(e) = refused else {
        panic!("the previous release started on a contracting migration");
    };
    let message = e.to_string();
    assert!(
        message.contains("contracting") && message.contains("9002"),
        "{message}"
    );
}
both!(
    a_newer_expand_only_schema_runs_the_previous_release_and_a_contracting_one_refuses_it_conformance,
    expand_then_contract
);

#[test]
fn a_contracting_migration_is_named_by_its_first_word() {
    use portcullis_store::is_contracting;
    assert!(is_contracting("contract drop old column"));
    assert!(is_contracting("Contract_tighten"));
    assert!(!is_contracting("contracts table"));
    assert!(!is_contracting("add contract column"));
    assert!(!is_contracting(""));
}
