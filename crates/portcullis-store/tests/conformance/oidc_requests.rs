//! Stored authorization requests (issue 15): taken once, with their client in the same
//! read; a pushed request that waits for a sign-in as it is moves to a new handle in one
//! conditional statement, which only one of many racing calls wins; a code is read with its
//! account's type.

use std::sync::Arc;

use portcullis_core::audit::{AuditEvent, AuditKind};
use portcullis_core::ids::AccountType;
use portcullis_core::oidc::{ClientAuth, IdTokenAlg, OidcClient};
use portcullis_core::ports::{
    GrantUse, NewOidcCode, NewOidcToken, NewSession, OidcStore, StoredRequest, TokenKind,
    Transactions,
};
use portcullis_core::session::SessionPolicy;
use portcullis_testkit::{both, Backend};

use crate::support::{account, commit, keys, store, T};

fn client(id: &str) -> OidcClient {
    OidcClient {
        client_id: id.into(),
        name: format!("Client {id}"),
        auth: ClientAuth::None,
        secret_hash: None,
        jwks: None,
        jwks_uri: None,
        redirect_uris: vec!["https://rp.example/cb".into()],
        post_logout_uris: Vec::new(),
        first_party: true,
        fapi2: false,
        id_token_alg: IdTokenAlg::Es256,
        revoked: false,
    }
}

async fn register(s: &portcullis_store::SqlStore, id: &str) {
    let mut w = s.begin(T);
    assert!(w.insert_oidc_client(&client(id)).await.unwrap());
    commit(w).await;
}

/// An account with a session, and a code issued in it under `code_hash`: (account, session).
async fn signed_in_with_code(s: &portcullis_store::SqlStore, code_hash: u8) -> (i64, i64) {
    let account_id = account(s, "alice1", "378282246310005").await;
    let mut w = s.begin(T);
    let session_id = w
        .create_session(NewSession {
            token_hash: [1; 32],
            account_id,
            user_agent: None,
            client_ip: None,
            amr: "pwd".into(),
        })
        .await
        .unwrap();
    commit(w).await;
    put_code(s, code_hash, account_id, session_id).await;
    (account_id, session_id)
}

async fn put_code(s: &portcullis_store::SqlStore, hash: u8, account_id: i64, session_id: i64) {
    s.put_oidc_code(NewOidcCode {
        code_hash: [hash; 32],
        client_id: "rp",
        account_id,
        session_id,
        request: "{}",
        auth_time: T,
        now: T,
        expires_at: T.plus_secs(60),
    })
    .await
    .unwrap();
}

fn request(client_id: &str, text: &str, login_as_is: bool) -> StoredRequest {
    StoredRequest {
        client_id: client_id.into(),
        request: text.into(),
        pushed: true,
        expires_at: T.plus_secs(60),
        login_as_is,
    }
}

async fn taken_with_client(backend: Backend) {
    let (s, _db) = store(backend).await;
    register(&s, "rp").await;
    s.put_oidc_request(&[1; 32], &request("rp", "{\"a\":1}", false), T)
        .await
        .unwrap();
    let (got, client) = s.take_oidc_request(&[1; 32], T).await.unwrap().unwrap();
    assert_eq!(
        (got.client_id.as_str(), got.request.as_str()),
        ("rp", "{\"a\":1}")
    );
    assert!(got.pushed && got.expires_at == T.plus_secs(60));
    let client = client.expect("its client, read with it");
    assert_eq!(
        (client.name.as_str(), client.first_party),
        ("Client rp", true)
    );
    assert!(!client.revoked);
    assert!(
        s.take_oidc_request(&[1; 32], T).await.unwrap().is_none(),
        "used once"
    );
    // Unknown or expired: nothing, and the client is not read into anything.
    assert!(s.take_oidc_request(&[9; 32], T).await.unwrap().is_none());
    s.put_oidc_request(&[2; 32], &request("rp", "{}", false), T)
        .await
        .unwrap();
    assert!(s
        .take_oidc_request(&[2; 32], T.plus_secs(61))
        .await
        .unwrap()
        .is_none());
    // A request of a client that was never registered comes without one.
    s.put_oidc_request(&[3; 32], &request("ghost", "{}", false), T)
        .await
        .unwrap();
    let (got, client) = s.take_oidc_request(&[3; 32], T).await.unwrap().unwrap();
    assert_eq!(got.client_id, "ghost");
    assert!(client.is_none());
    // A revoked client's comes as revoked (the caller refuses it).
    s.put_oidc_request(&[4; 32], &request("rp", "{}", false), T)
        .await
        .unwrap();
    let mut w = s.begin(T);
    assert_eq!(w.revoke_oidc_client("rp").await.unwrap(), Some(0));
    commit(w).await;
    let (_, client) = s.take_oidc_request(&[4; 32], T).await.unwrap().unwrap();
    assert!(client.unwrap().revoked);
}
both!(a_request_is_taken_once_with_its_client, taken_with_client);

async fn rekeyed_as_is(backend: Backend) {
    let (s, _db) = store(backend).await;
    register(&s, "rp").await;
    register(&s, "other").await;
    let later = T.plus_secs(600);
    let rekey = |old: u8, new: u8, client: &'static str, now| {
        let s = &s;
        async move {
            s.rekey_oidc_request((&[old; 32], &[new; 32]), client, now, later)
                .await
                .unwrap()
        }
    };
    s.put_oidc_request(&[1; 32], &request("rp", "{\"as\":\"is\"}", true), T)
        .await
        .unwrap();
    // Not another client's, and not once expired.
    assert!(!rekey(1, 2, "other", T).await);
    assert!(!rekey(1, 2, "rp", T.plus_secs(61)).await);
    assert!(rekey(1, 2, "rp", T).await);
    // The old handle names nothing now; the new one holds the request unchanged, no longer
    // pushed, until the new expiry, and cannot be re-keyed again.
    assert!(s.take_oidc_request(&[1; 32], T).await.unwrap().is_none());
    assert!(!rekey(2, 3, "rp", T).await);
    let (got, client) = s
        .take_oidc_request(&[2; 32], T.plus_secs(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.request, "{\"as\":\"is\"}");
    assert!(!got.pushed && got.expires_at == later);
    assert_eq!(client.unwrap().client_id, "rp");
    assert!(!rekey(2, 3, "rp", T).await, "used: stays used");

    // A request that is not as is stays where it was, for the long way.
    s.put_oidc_request(&[4; 32], &request("rp", "{}", false), T)
        .await
        .unwrap();
    assert!(!rekey(4, 5, "rp", T).await);
    assert!(s.take_oidc_request(&[4; 32], T).await.unwrap().is_some());
    // Nor a used one, nor one of a revoked client.
    s.put_oidc_request(&[6; 32], &request("rp", "{}", true), T)
        .await
        .unwrap();
    assert!(s.take_oidc_request(&[6; 32], T).await.unwrap().is_some());
    assert!(!rekey(6, 7, "rp", T).await);
    s.put_oidc_request(&[8; 32], &request("other", "{}", true), T)
        .await
        .unwrap();
    let mut w = s.begin(T);
    assert_eq!(w.revoke_oidc_client("other").await.unwrap(), Some(0));
    commit(w).await;
    assert!(!rekey(8, 9, "other", T).await);

    // Twenty browsers race with one request_uri: one gets the sign-in.
    s.put_oidc_request(&[10; 32], &request("rp", "{}", true), T)
        .await
        .unwrap();
    let s = Arc::new(s);
    let mut racers = Vec::new();
    for n in 0..20u8 {
        let s = s.clone();
        racers.push(tokio::spawn(async move {
            s.rekey_oidc_request((&[10; 32], &[100 + n; 32]), "rp", T, later)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for r in racers {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 1);
}
both!(
    a_pushed_request_moves_to_the_sign_in_once_and_only_as_is,
    rekeyed_as_is
);

async fn code_with_account_type(backend: Backend) {
    let (s, _db) = store(backend).await;
    register(&s, "rp").await;
    let (account_id, session_id) = signed_in_with_code(&s, 1).await;
    // A code of an account that is not there.
    put_code(&s, 2, account_id + 1000, session_id).await;
    let policy = SessionPolicy::default();
    let (client, code) = s
        .oidc_client_and_code("rp", &[1; 32], policy, T.plus_secs(10))
        .await
        .unwrap();
    let (code, open) = code.unwrap();
    assert!(open);
    assert_eq!(code.account_type, Some(AccountType::Personal));
    assert_eq!((code.account_id, code.session_id), (account_id, session_id));
    assert_eq!(client.unwrap().client_id, "rp");
    // An account that is gone reads as none (the exchange is refused).
    let (_, code) = s
        .oidc_client_and_code("rp", &[2; 32], policy, T.plus_secs(10))
        .await
        .unwrap();
    assert_eq!(code.unwrap().0.account_type, None);
    // An unknown code, or an unknown client, reads as none beside what is there.
    let (client, code) = s
        .oidc_client_and_code("rp", &[3; 32], policy, T)
        .await
        .unwrap();
    assert!(client.is_some() && code.is_none());
    let (client, code) = s
        .oidc_client_and_code("ghost", &[1; 32], policy, T)
        .await
        .unwrap();
    assert!(client.is_none() && code.is_some());
    // Past the session's idle timeout: read, and closed.
    let idle = T.plus_secs(policy.idle_secs + 1);
    let (_, code) = s
        .oidc_client_and_code("rp", &[1; 32], policy, idle)
        .await
        .unwrap();
    assert!(!code.unwrap().1);
}
both!(
    a_code_is_read_with_its_client_and_its_accounts_type,
    code_with_account_type
);

async fn token_with_client(backend: Backend) {
    let (s, _db) = store(backend).await;
    register(&s, "rp").await;
    let (account_id, session_id) = signed_in_with_code(&s, 5).await;
    let (_, code) = s
        .oidc_client_and_code("rp", &[5; 32], SessionPolicy::default(), T)
        .await
        .unwrap();
    let code_id = code.unwrap().0.id;
    let token = NewOidcToken {
        token_hash: [7; 32],
        kind: TokenKind::Refresh,
        family: "family",
        code_id: Some(code_id),
        client_id: "rp",
        account_id,
        session_id,
        scope: "openid offline_access",
        dpop_jkt: None,
        auth_time: T,
        now: T,
        expires_at: T.plus_secs(600),
    };
    let event = AuditEvent::new(AuditKind::OidcTokenIssued, Some(account_id));
    assert!(s
        .begin(T)
        .use_grant_then_commit(GrantUse::Code(code_id), &[token], event, &keys().into())
        .await
        .unwrap()
        .is_some());
    let policy = SessionPolicy::default();
    let (client, token) = s
        .oidc_client_and_token("rp", &[7; 32], policy, T.plus_secs(10))
        .await
        .unwrap();
    let (token, open) = token.unwrap();
    assert!(open && token.kind == TokenKind::Refresh && token.family == "family");
    assert_eq!(client.unwrap().name, "Client rp");
    let (client, token) = s
        .oidc_client_and_token("ghost", &[8; 32], policy, T)
        .await
        .unwrap();
    assert!(client.is_none() && token.is_none());
}
both!(a_refresh_token_is_read_with_its_client, token_with_client);
