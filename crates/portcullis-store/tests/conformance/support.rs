//! What every module of the suite shares: a fresh store per test, keys, seeded registry
//! records and accounts, and units of work committed in one line.

use portcullis_core::clock::UnixTime;
use portcullis_core::contact::CodeChannel;
use portcullis_core::ids::AccountType;
use portcullis_core::ports::{
    AuditReads, Committed, NewAccount, OutboxReads, RegistryImports, RegistryReads, Transactions,
    UnitOfWork,
};
use portcullis_core::registry::{HashedRecord, RawRecord, RegistryRecord};
use portcullis_core::steps::StepKind;
use portcullis_crypto::KeyedHasher;
use portcullis_store::{SqlStore, StoreOptions};
use portcullis_testkit::{Backend, TestDb};
use zeroize::Zeroizing;

pub const T: UnixTime = UnixTime(1_800_000_000);

pub const HASH: &str =
    "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

/// A migrated store on a fresh database.
pub async fn store(backend: Backend) -> (SqlStore, TestDb) {
    let db = TestDb::new(backend).await;
    let s = SqlStore::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    (s, db)
}

pub fn keys() -> KeyedHasher {
    KeyedHasher::new(Zeroizing::new([7; 32]))
}

/// Commits `w`, which must succeed.
pub async fn commit(w: Box<dyn UnitOfWork>) -> Committed {
    w.commit(&keys().into()).await.unwrap()
}

pub fn record(number: &str, product: &str) -> HashedRecord {
    parsed(number, product).hashed(&keys())
}

/// The registry record for `number`, not hashed yet.
pub fn parsed(number: &str, product: &str) -> RegistryRecord {
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
}

/// A registry record for `number` (a Luhn-valid card number); its id.
pub async fn seed_record(s: &SqlStore, number: &str) -> i64 {
    let r = record(number, "Gold");
    let mut import = s.begin_import(UnixTime(1_700_000_000)).await.unwrap();
    import.upsert(std::slice::from_ref(&r)).await.unwrap();
    import.commit(&keys().into()).await.unwrap();
    s.find_record(r.key_id, &r.number_hash)
        .await
        .unwrap()
        .unwrap()
        .id
}

pub fn new_account(user: &str, record_id: i64, step: [u8; 32]) -> NewAccount {
    NewAccount {
        user_id: user.into(),
        user_id_canonical: user.to_lowercase(),
        account_type: AccountType::Personal,
        password_hash: HASH.into(),
        security_answers: vec![(1, "h1".into()), (2, "h2".into()), (3, "h3".into())],
        code_channel: CodeChannel::Email,
        email: Some("holder@example.com".into()),
        phone: None,
        registry_record_id: record_id,
        step_token_hash: step,
    }
}

/// A step, committed.
pub async fn step(s: &SqlStore, hash: [u8; 32], kind: StepKind, subject: i64, data: &str) {
    let mut w = s.begin(T);
    w.create_step(&hash, kind, subject, data, T.plus_secs(600))
        .await
        .unwrap();
    commit(w).await;
}

/// An account `user` on a new record for `number`; its id.
pub async fn account(s: &SqlStore, user: &str, number: &str) -> i64 {
    let rid = seed_record(s, number).await;
    let hash = portcullis_crypto::sha256(user.as_bytes());
    step(s, hash, StepKind::Registration, rid, "").await;
    let mut w = s.begin(T);
    let id = w
        .create_account(new_account(user, rid, hash))
        .await
        .unwrap();
    commit(w).await;
    id
}

/// Messages waiting in the outbox.
pub async fn pending(s: &SqlStore) -> i64 {
    s.outbox_stats(T).await.unwrap().pending
}

/// Entries in the audit chain.
pub async fn audited(s: &SqlStore) -> i64 {
    s.audit_head().await.unwrap().0
}
