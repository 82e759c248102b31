//! Accounts imported from an earlier login system: created with their card linked, the old
//! hash kept as it is, "must change password" kept until a new password; a taken User ID or
//! card refused; the sample of hashes not yet replaced.

use portcullis_core::clock::UnixTime;
use portcullis_core::contact::CodeChannel;
use portcullis_core::ids::AccountType;
use portcullis_core::ports::{
    AccountImportReads, AccountReads, CreateAccountError, ImportedAccount, RegistryReads,
    Transactions,
};
use portcullis_testkit::{both, Backend};

use crate::support::{commit, seed_record, store, HASH, T};

const BCRYPT: &str = "$2b$04$F9RP/7EwMVz/Pdspc4VFAeFvp1KLB2bZvihYovlB9FSDAQjhq0RRC";

fn imported(user_id: &str, record: i64, must_change: bool) -> ImportedAccount {
    ImportedAccount {
        user_id: user_id.into(),
        user_id_canonical: user_id.to_ascii_lowercase(),
        account_type: AccountType::Personal,
        password_hash: BCRYPT.into(),
        code_channel: CodeChannel::Email,
        email: Some(format!("{}@example.com", user_id.to_ascii_lowercase())),
        phone: None,
        registry_record_id: record,
        created_at: UnixTime(1_500_000_000),
        must_change_password: must_change,
    }
}

async fn import_rules(backend: Backend) {
    let (s, _db) = store(backend).await;
    let first = seed_record(&s, "378282246310005").await;
    let second = seed_record(&s, "371449635398431").await;
    let third = seed_record(&s, "5555555555554444").await;
    let mut w = s.begin(T);
    let id = w
        .import_account(&imported("Old.User", first, true))
        .await
        .unwrap();
    let other = w
        .import_account(&imported("plain.user", second, false))
        .await
        .unwrap();
    commit(w).await;

    let found = s.find_account("old.user").await.unwrap().unwrap();
    assert_eq!((found.id, found.user_id.as_str()), (id, "Old.User"));
    assert_eq!(found.password_hash, BCRYPT, "kept as it is");
    assert_eq!(
        found.created_at,
        UnixTime(1_500_000_000),
        "the old system's creation"
    );
    assert_eq!(found.last_active_at, T, "inactivity counts from the import");
    assert_eq!(found.must_change_password_at, Some(T));
    assert_eq!(s.cards_for_account(id).await.unwrap()[0].last4, "0005");
    assert_eq!(
        s.record_by_id(first).await.unwrap().unwrap().account_id,
        Some(id)
    );
    assert_eq!(
        s.account_by_id(other)
            .await
            .unwrap()
            .unwrap()
            .must_change_password_at,
        None
    );

    // A taken User ID (any spelling) or card is refused, and the unit of work is dropped.
    let mut w = s.begin(T);
    assert!(matches!(
        w.import_account(&imported("OLD.USER", third, false)).await,
        Err(CreateAccountError::UserIdTaken)
    ));
    drop(w);
    let mut w = s.begin(T);
    assert!(matches!(
        w.import_account(&imported("new.user", first, false)).await,
        Err(CreateAccountError::CardAlreadyRegistered)
    ));
    drop(w);
    assert!(s.find_account("new.user").await.unwrap().is_none());

    // Both still carry their old hash; a rehash takes one out of the sample.
    let current = "$argon2id$v=19$m=64,t=1,p=1$%";
    let mut sample = s.imported_hash_sample(current, 10).await.unwrap();
    sample.sort();
    assert_eq!(sample, [BCRYPT, BCRYPT]);
    assert_eq!(s.imported_hash_sample(current, 1).await.unwrap().len(), 1);
    let mut w = s.begin(T);
    assert!(w.rehash_password(id, BCRYPT, HASH).await.unwrap());
    commit(w).await;
    assert_eq!(s.imported_hash_sample(current, 10).await.unwrap(), [BCRYPT]);

    // Imported without answers: questions required until chosen.
    assert_eq!(found.security_questions_required_at, Some(T));
    assert!(s.security_answers(id).await.unwrap().is_empty());
    let mut w = s.begin(T);
    w.replace_security_answers(id, &[(1, "a1".into()), (4, "a4".into()), (6, "a6".into())])
        .await
        .unwrap();
    commit(w).await;
    let found = s.account_by_id(id).await.unwrap().unwrap();
    assert_eq!(found.security_questions_required_at, None);
    let mut w = s.begin(T);
    w.replace_security_answers(id, &[(2, "b2".into()), (3, "b3".into()), (5, "b5".into())])
        .await
        .unwrap();
    commit(w).await;
    assert_eq!(
        s.security_answers(id).await.unwrap(),
        vec![(2, "b2".into()), (3, "b3".into()), (5, "b5".into())],
        "replaced, not added"
    );

    // A new password clears "must change password".
    let mut w = s.begin(T);
    w.change_password(id, HASH, 5).await.unwrap();
    commit(w).await;
    let found = s.account_by_id(id).await.unwrap().unwrap();
    assert_eq!(found.must_change_password_at, None);
}
both!(
    imported_accounts_are_created_linked_and_sampled,
    import_rules
);
