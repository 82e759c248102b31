//! Admin tokens: one active token per name even when creations race, uses recorded, and
//! revocation by name or id.

use std::sync::Arc;

use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{
    AdminTokenReads, AdminTokenRef, AdminTokenRow, CreateAdminTokenError, NewAdminToken,
    Transactions,
};
use portcullis_core::support::SupportScope::{self, AccountsRead, AccountsUnlock, AuditRead};
use portcullis_store::SqlStore;
use portcullis_testkit::{both, Backend};

use crate::support::{commit, store, T};

fn new(name: &str, hash: u8, scopes: Vec<SupportScope>) -> NewAdminToken {
    NewAdminToken {
        name: name.into(),
        token_hash: [hash; 32],
        scopes,
    }
}

async fn create(s: &SqlStore, token: NewAdminToken) -> Result<i64, CreateAdminTokenError> {
    let mut w = s.begin(T);
    let created = w.create_admin_token(token).await;
    if created.is_ok() {
        commit(w).await;
    }
    created
}

async fn revoke(s: &SqlStore, which: AdminTokenRef, at: UnixTime) -> Option<AdminTokenRow> {
    let mut w = s.begin(at);
    let revoked = w.revoke_admin_token(&which).await.unwrap();
    commit(w).await;
    revoked
}

async fn admin_tokens(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = Arc::new(s);
    let alice = create(&s, new("alice", 1, vec![AccountsRead, AuditRead]))
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
        create(&s, new("alice", 2, vec![AccountsUnlock])).await,
        Err(CreateAdminTokenError::NameTaken)
    ));
    let mut handles = Vec::new();
    for i in 0..10u8 {
        let s = s.clone();
        let token = new("bob", 100 + i, vec![AccountsUnlock]);
        handles.push(tokio::spawn(async move { create(&s, token).await }));
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
    for at in [50, 10] {
        let mut w = s.begin(T.plus_secs(at));
        w.touch_admin_token(alice).await.unwrap();
        commit(w).await;
    }
    let row = s.admin_token_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(row.last_used_at, Some(T.plus_secs(50)));
    // Revoking by name: the token stays findable, marked revoked, and the name is free.
    let revoked = revoke(&s, AdminTokenRef::Name("alice".into()), T.plus_secs(60))
        .await
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
    assert!(
        revoke(&s, AdminTokenRef::Name("alice".into()), T.plus_secs(61))
            .await
            .is_none()
    );
    let alice2 = create(&s, new("alice", 3, vec![AccountsUnlock]))
        .await
        .unwrap();
    // Revoking by id.
    assert_eq!(
        revoke(&s, AdminTokenRef::Id(alice2), T.plus_secs(70))
            .await
            .map(|r| r.name),
        Some("alice".into())
    );
    assert!(revoke(&s, AdminTokenRef::Id(alice2), T.plus_secs(71))
        .await
        .is_none());
    assert!(revoke(&s, AdminTokenRef::Id(9_999), T).await.is_none());
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
