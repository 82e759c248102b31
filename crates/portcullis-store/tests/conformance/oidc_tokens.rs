//! The token endpoint's writes (issue 15): a code or a refresh token is used once, and the
//! tokens a use issues are stored with it or not at all. On SQLite the use and the tokens'
//! `INSERT` are one statement list that also begins the unit's transaction, where SQLite
//! reports the `BEGIN`'s and the `SELECT`'s counts as an earlier statement's: a use that
//! changed nothing must read as such whatever the connection last wrote, so each refused use
//! is tried more times than the pool has connections.

use portcullis_core::ports::{NewOidcCode, NewOidcToken, OidcStore, TokenKind, Transactions};
use portcullis_testkit::{both, Backend};

use crate::support::{commit, store, T};

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

async fn stored(s: &portcullis_store::SqlStore, hash: u8) -> bool {
    s.oidc_token(&[hash; 32]).await.unwrap().is_some()
}

async fn a_use_stores_its_tokens_once(backend: Backend) {
    let (s, _db) = store(backend).await;
    for code in [1u8, 2] {
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
    // Code 1 issues an access and a refresh token; code 2 (no `offline_access`) one.
    let mut w = s.begin(T);
    let pair = [
        token(10, TokenKind::Access, Some(1)),
        token(11, TokenKind::Refresh, Some(1)),
    ];
    assert!(w.exchange_oidc_code(1, &pair).await.unwrap());
    commit(w).await;
    let mut w = s.begin(T);
    assert!(w
        .exchange_oidc_code(2, &[token(20, TokenKind::Access, Some(2))])
        .await
        .unwrap());
    commit(w).await;
    assert!(stored(&s, 10).await && stored(&s, 11).await && stored(&s, 20).await);
    for attempt in 0..10u8 {
        let mut w = s.begin(T);
        let again = [
            token(100 + attempt, TokenKind::Access, Some(1)),
            token(150 + attempt, TokenKind::Refresh, Some(1)),
        ];
        assert!(!w.exchange_oidc_code(1, &again).await.unwrap());
        drop(w);
        let mut w = s.begin(T);
        let one = [token(200 + attempt, TokenKind::Access, Some(2))];
        assert!(!w.exchange_oidc_code(2, &one).await.unwrap());
        drop(w);
        assert!(!stored(&s, 100 + attempt).await && !stored(&s, 150 + attempt).await);
        assert!(!stored(&s, 200 + attempt).await);
    }
    // The refresh token rotates once; the used one is refused after, and issues nothing.
    let mut w = s.begin(T);
    let next = [
        token(12, TokenKind::Access, None),
        token(13, TokenKind::Refresh, None),
    ];
    assert!(w.rotate_oidc_refresh(&[11; 32], &next).await.unwrap());
    commit(w).await;
    assert!(s
        .oidc_token(&[11; 32])
        .await
        .unwrap()
        .unwrap()
        .used_at
        .is_some());
    assert!(stored(&s, 13).await);
    for attempt in 0..10u8 {
        let mut w = s.begin(T);
        let stolen = [
            token(30 + attempt, TokenKind::Access, None),
            token(60 + attempt, TokenKind::Refresh, None),
        ];
        assert!(!w.rotate_oidc_refresh(&[11; 32], &stolen).await.unwrap());
        drop(w);
        assert!(!stored(&s, 30 + attempt).await && !stored(&s, 60 + attempt).await);
    }
    // Inside a transaction already begun (another write first), the same.
    let mut w = s.begin(T);
    w.revoke_oidc_code_tokens(99).await.unwrap();
    assert!(!w
        .rotate_oidc_refresh(&[11; 32], &[token(90, TokenKind::Access, None)])
        .await
        .unwrap());
    assert!(w
        .rotate_oidc_refresh(&[13; 32], &[token(91, TokenKind::Access, None)])
        .await
        .unwrap());
    commit(w).await;
    assert!(!stored(&s, 90).await && stored(&s, 91).await);
}
both!(
    a_use_stores_its_tokens_once_conformance,
    a_use_stores_its_tokens_once
);
