//! The card lifecycle (issue 17): a load records status and `replaces`; settling it
//! reports the status changes of linked cards and moves a replaced card's online account to
//! its replacement; push keys apply a push once; accounts whose every card is closed are
//! found and deactivated after the read-only time.

use portcullis_core::audit::{AuditEvent, AuditKind};
use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{
    AccountReads, Message, Outgoing, PushKey, RegistryImport, RegistryImports, RegistryReads,
    Transactions,
};
use portcullis_core::registry::{CardStatus, HashedRecord, RawRecord, RegistryRecord};
use portcullis_testkit::{both, Backend};

use crate::support::{account, audited, commit, keys, pending, store, T};

const OLD: &str = "378282246310005";
const NEW: &str = "371449635398431";
const NEWER: &str = "4111111111111111";

fn card(number: &str, status: &str, replaces: &str) -> HashedRecord {
    RegistryRecord::parse(&RawRecord {
        account_type: "personal".into(),
        number: number.into(),
        verification: "1234".into(),
        expiry: "2030-01".into(),
        holder_name: "Test Holder".into(),
        email: "holder@example.com".into(),
        product: "Gold".into(),
        status: status.into(),
        replaces: replaces.into(),
        ..Default::default()
    })
    .unwrap()
    .hashed(&keys())
}

async fn load(
    s: &portcullis_store::SqlStore,
    at: i64,
    records: &[HashedRecord],
) -> Box<dyn RegistryImport> {
    let mut import = s.begin_import(T.plus_secs(at)).await.unwrap();
    assert_eq!(import.now(), T.plus_secs(at));
    import.upsert(records).await.unwrap();
    import
}

async fn reissue_moves_the_account_and_status_changes_are_reported(backend: Backend) {
    let (s, _db) = store(backend).await;
    let id = account(&s, "alice1", OLD).await;
    let old = s
        .find_record(1, &card(OLD, "", "").number_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (old.status, old.replaced, old.usable()),
        (CardStatus::Active, false, true)
    );

    // Lost: the status change of a linked card is reported, once.
    let mut import = load(&s, 10, &[card(OLD, "lost_stolen", "")]).await;
    let settled = import.settle().await.unwrap();
    assert_eq!(settled.status_changes.len(), 1);
    assert_eq!(settled.status_changes[0].status, CardStatus::LostStolen);
    assert_eq!(settled.status_changes[0].account.id, id);
    assert_eq!(settled.status_changes[0].last4, "0005");
    assert!(settled.reissues.is_empty());
    let (before_audit, before_out) = (audited(&s).await, pending(&s).await);
    import.audit(AuditEvent::new(AuditKind::CardStatusChanged, Some(id)));
    import.send(Outgoing::from(Message {
        channel: CodeChannel::Email,
        to: "holder@example.com".into(),
        subject: "s".into(),
        body: "b".into(),
        sensitive: false,
    }));
    let done = import.commit(&keys().into()).await.unwrap();
    assert_eq!((done.audited, done.messages), (1, 1));
    assert_eq!(audited(&s).await, before_audit + 1);
    assert_eq!(pending(&s).await, before_out + 1);
    let old = s
        .find_record(1, &card(OLD, "", "").number_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.status, CardStatus::LostStolen);
    assert!(!old.usable());
    // The same status again changes nothing.
    let mut import = load(&s, 20, &[card(OLD, "lost_stolen", "")]).await;
    assert!(import.settle().await.unwrap().status_changes.is_empty());
    drop(import);

    // The reissue, then its own replacement in the same load: the account follows the
    // chain to the newest card, one move per step.
    let mut import = load(&s, 30, &[card(NEW, "", OLD), card(NEWER, "", NEW)]).await;
    let settled = import.settle().await.unwrap();
    let moves: Vec<(String, String)> = settled
        .reissues
        .iter()
        .map(|r| (r.old_last4.clone(), r.new_last4.clone()))
        .collect();
    assert_eq!(
        moves,
        [
            ("0005".into(), "8431".into()),
            ("8431".into(), "1111".into())
        ]
    );
    assert!(settled.reissues.iter().all(|r| r.account.id == id));
    import.commit(&keys().into()).await.unwrap();
    let cards = s.cards_for_account(id).await.unwrap();
    assert_eq!(
        cards.iter().map(|c| c.last4.as_str()).collect::<Vec<_>>(),
        ["1111"]
    );
    let old = s
        .find_record(1, &card(OLD, "", "").number_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (old.account_id, old.replaced, old.usable()),
        (None, true, false)
    );
    let new = s
        .find_record(1, &card(NEW, "", "").number_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(new.replaced && !new.usable());
    let newer = s
        .find_record(1, &card(NEWER, "", "").number_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((newer.account_id, newer.usable()), (Some(id), true));
    // A later record without `replaces` does not bring the old number back.
    let mut import = load(&s, 40, &[card(NEW, "active", "")]).await;
    assert!(import.settle().await.unwrap().reissues.is_empty());
    import.commit(&keys().into()).await.unwrap();
    assert!(
        s.find_record(1, &card(NEW, "", "").number_hash)
            .await
            .unwrap()
            .unwrap()
            .replaced
    );
}
both!(
    reissue_moves_the_account_and_status_changes_are_reported,
    reissue_moves_the_account_and_status_changes_are_reported
);

async fn a_push_key_applies_once(backend: Backend) {
    let (s, _db) = store(backend).await;
    let mut import = load(&s, 0, &[card(OLD, "", "")]).await;
    assert_eq!(
        import
            .claim_push_key("k1", &[1; 32], "{\"records\":1}")
            .await
            .unwrap(),
        PushKey::Fresh
    );
    drop(import); // rolled back: the key is free again
    let mut import = s.begin_import(T).await.unwrap();
    assert_eq!(
        import
            .claim_push_key("k1", &[1; 32], "{\"records\":1}")
            .await
            .unwrap(),
        PushKey::Fresh
    );
    import.commit(&keys().into()).await.unwrap();
    let mut import = s.begin_import(T).await.unwrap();
    assert_eq!(
        import
            .claim_push_key("k1", &[1; 32], "other")
            .await
            .unwrap(),
        PushKey::Replay("{\"records\":1}".into())
    );
    assert_eq!(
        import.claim_push_key("k1", &[2; 32], "x").await.unwrap(),
        PushKey::Conflict
    );
}
both!(a_push_key_applies_once, a_push_key_applies_once);

async fn accounts_whose_every_card_is_closed(backend: Backend) {
    let (s, _db) = store(backend).await;
    let closed = account(&s, "closed1", OLD).await;
    let open = account(&s, "open1", NEW).await;
    let import = load(
        &s,
        100,
        &[card(OLD, "closed", ""), card(NEW, "blocked", "")],
    )
    .await;
    import.commit(&keys().into()).await.unwrap();
    // Closed at T+100: not due before the read-only time has passed.
    assert!(s
        .accounts_with_cards_closed(T.plus_secs(99), 10)
        .await
        .unwrap()
        .is_empty());
    let due = s
        .accounts_with_cards_closed(T.plus_secs(100), 10)
        .await
        .unwrap();
    assert_eq!(due.iter().map(|a| a.id).collect::<Vec<_>>(), [closed]);
    let mut w = s.begin(T.plus_secs(500));
    assert!(!w
        .deactivate_closed_account(open, T.plus_secs(100))
        .await
        .unwrap());
    assert!(!w
        .deactivate_closed_account(closed, T.plus_secs(99))
        .await
        .unwrap());
    assert!(w
        .deactivate_closed_account(closed, T.plus_secs(100))
        .await
        .unwrap());
    assert!(!w
        .deactivate_closed_account(closed, T.plus_secs(100))
        .await
        .unwrap());
    commit(w).await;
    let a = s.account_by_id(closed).await.unwrap().unwrap();
    assert_eq!(a.deactivated_at, Some(T.plus_secs(500)));
    assert!(s
        .accounts_with_cards_closed(T.plus_secs(1000), 10)
        .await
        .unwrap()
        .is_empty());
}
both!(
    accounts_whose_every_card_is_closed,
    accounts_whose_every_card_is_closed
);
