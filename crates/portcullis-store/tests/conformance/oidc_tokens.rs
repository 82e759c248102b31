//! The token endpoint's writes (issue 15): a code or a refresh token is used once, and the
//! tokens a use issues are stored with it, and audited, or not at all. On SQLite the whole
//! exchange is one statement list when the store knows the audit chain's head (from its
//! last audited commit), where SQLite reports the `BEGIN`'s and the `SELECT`'s counts as an
//! earlier statement's: a use that changed nothing must read as such whatever the
//! connection last wrote, so each refused use is tried more times than the pool has
//! connections.

use portcullis_core::audit::{AuditEvent, AuditKind, ChainWalk};
use portcullis_core::ports::{
    AuditReads, GrantUse, NewOidcCode, NewOidcToken, OidcStore, TokenKind, Transactions,
};
use portcullis_store::{SqlStore, StoreOptions};
use portcullis_testkit::{both, Backend};

use crate::support::{audited, commit, keys, store, T};

fn token(hash: u8, kind: TokenKind, code_id: Option<i64>) -> NewOidcToken<'static> {
    NewOidcToken {
        token_hash: [hash; 32],
        kind,
        family: "family",
        code_id,
        client_id: "rp",
        account_id: 7,
        session_id: 3,
        scope: "openid offline_access",
        dpop_jkt: None,
        auth_time: T,
        now: T,
        expires_at: T.plus_secs(600),
    }
}

async fn stored(s: &SqlStore, hash: u8) -> bool {
    s.oidc_token(&[hash; 32]).await.unwrap().is_some()
}

fn issued() -> AuditEvent {
    AuditEvent::new(AuditKind::OidcTokenIssued, Some(7)).detail("test")
}

/// One exchange in a unit of work of its own: whether it committed (its one audit entry
/// and no message).
async fn exchange(s: &SqlStore, used: GrantUse<'_>, tokens: &[NewOidcToken<'_>]) -> bool {
    let done = s
        .begin(T)
        .use_grant_then_commit(used, tokens, issued(), &keys().into())
        .await
        .unwrap();
    if let Some(done) = done {
        assert_eq!((done.messages, done.audited), (0, 1));
    }
    done.is_some()
}

/// The chain verifies from its start and ends at its head.
async fn chain_holds(s: &SqlStore) {
    let entries = s.audit_entries(0, 1_000).await.unwrap();
    let mut walk = ChainWalk::default();
    portcullis_core::audit::verify_run(&keys().into(), &entries, &mut walk).unwrap();
    assert_eq!(s.audit_head().await.unwrap(), (walk.seq, walk.prev));
}

async fn put_codes(s: &SqlStore, codes: &[u8]) {
    for &code in codes {
        s.put_oidc_code(NewOidcCode {
            code_hash: [code; 32],
            client_id: "rp",
            account_id: 7,
            session_id: 3,
            request: "{}",
            auth_time: T,
            now: T,
            expires_at: T.plus_secs(60),
        })
        .await
        .unwrap();
    }
}

/// The store's count of the uses written so far: on SQLite `one_list` of them as one
/// statement list and `unit_of_work` the usual way; on PostgreSQL all the usual way.
fn assert_ways(s: &SqlStore, backend: Backend, (one_list, unit_of_work): (u64, u64)) {
    let expected = match backend {
        Backend::Sqlite => (one_list, unit_of_work),
        Backend::Postgres => (0, one_list + unit_of_work),
    };
    let uses = s.grant_uses();
    assert_eq!((uses.one_list, uses.unit_of_work), expected);
}

async fn a_use_stores_its_tokens_once(backend: Backend) {
    let (s, _db) = store(backend).await;
    put_codes(&s, &[1, 2]).await;
    // Code 1 issues an access and a refresh token; code 2 (no `offline_access`) one. The
    // first exchange goes the usual way (no audited commit yet), the second in one list.
    let pair = [
        token(10, TokenKind::Access, Some(1)),
        token(11, TokenKind::Refresh, Some(1)),
    ];
    assert!(exchange(&s, GrantUse::Code(1), &pair).await);
    let one = [token(20, TokenKind::Access, Some(2))];
    assert!(exchange(&s, GrantUse::Code(2), &one).await);
    assert!(stored(&s, 10).await && stored(&s, 11).await && stored(&s, 20).await);
    assert_eq!(audited(&s).await, 2);
    assert_ways(&s, backend, (1, 1));
    for attempt in 0..10u8 {
        let again = [
            token(100 + attempt, TokenKind::Access, Some(1)),
            token(150 + attempt, TokenKind::Refresh, Some(1)),
        ];
        assert!(!exchange(&s, GrantUse::Code(1), &again).await);
        let one = [token(200 + attempt, TokenKind::Access, Some(2))];
        assert!(!exchange(&s, GrantUse::Code(2), &one).await);
        assert!(!stored(&s, 100 + attempt).await && !stored(&s, 150 + attempt).await);
        assert!(!stored(&s, 200 + attempt).await);
    }
    // A refused use audits nothing (and went as a list: the head was known).
    assert_eq!(audited(&s).await, 2);
    assert_ways(&s, backend, (21, 1));
    // The refresh token rotates once; the used one is refused after, and issues nothing.
    let next = [
        token(12, TokenKind::Access, None),
        token(13, TokenKind::Refresh, None),
    ];
    assert!(exchange(&s, GrantUse::Refresh(&[11; 32]), &next).await);
    assert!(s
        .oidc_token(&[11; 32])
        .await
        .unwrap()
        .unwrap()
        .used_at
        .is_some());
    assert!(stored(&s, 13).await);
    for attempt in 0..10u8 {
        let stolen = [
            token(30 + attempt, TokenKind::Access, None),
            token(60 + attempt, TokenKind::Refresh, None),
        ];
        assert!(!exchange(&s, GrantUse::Refresh(&[11; 32]), &stolen).await);
        assert!(!stored(&s, 30 + attempt).await && !stored(&s, 60 + attempt).await);
    }
    // Inside a transaction already begun (another write first), the same.
    let mut w = s.begin(T);
    w.revoke_oidc_code_tokens(99).await.unwrap();
    let late = [token(90, TokenKind::Access, None)];
    assert!(w
        .use_grant_then_commit(
            GrantUse::Refresh(&[11; 32]),
            &late,
            issued(),
            &keys().into()
        )
        .await
        .unwrap()
        .is_none());
    let mut w = s.begin(T);
    w.revoke_oidc_code_tokens(99).await.unwrap();
    let fresh = [token(91, TokenKind::Access, None)];
    assert!(w
        .use_grant_then_commit(
            GrantUse::Refresh(&[13; 32]),
            &fresh,
            issued(),
            &keys().into()
        )
        .await
        .unwrap()
        .is_some());
    assert!(!stored(&s, 90).await && stored(&s, 91).await);
    assert_eq!(audited(&s).await, 4);
    chain_holds(&s).await;
}
both!(
    a_use_stores_its_tokens_once_conformance,
    a_use_stores_its_tokens_once
);

/// Two stores on one database, as two processes are (a node and a CLI command): while one
/// exchanges codes, the other appends to the audit chain. The exchanges after each append
/// still commit, once each, with their entries chained after the other's; the chain
/// verifies to its head.
async fn exchanges_follow_another_writers_appends(backend: Backend) {
    let (s, db) = store(backend).await;
    let other = SqlStore::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    put_codes(&s, &[1, 2, 3, 4, 5, 6]).await;
    let mut expected = 0;
    for code in 1..=6u8 {
        if code % 2 == 0 {
            let mut w = other.begin(T);
            w.audit(AuditEvent::new(AuditKind::SignOut, None));
            commit(w).await;
            expected += 1;
        }
        let tokens = [token(10 * code, TokenKind::Access, Some(i64::from(code)))];
        assert!(exchange(&s, GrantUse::Code(i64::from(code)), &tokens).await);
        assert!(!exchange(&s, GrantUse::Code(i64::from(code)), &tokens).await);
        expected += 1;
        assert!(stored(&s, 10 * code).await);
        assert_eq!(audited(&s).await, expected);
    }
    chain_holds(&s).await;
    // On SQLite: the first use, before any audited commit of `s`, and each first use after
    // the other's appends went the usual way; the rest, replays included, as one list.
    assert_ways(&s, backend, (8, 4));
}
both!(
    exchanges_follow_another_writers_appends_conformance,
    exchanges_follow_another_writers_appends
);
