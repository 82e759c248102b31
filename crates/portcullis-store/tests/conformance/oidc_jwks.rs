//! The key sets fetched from clients' `jwks_uri`s: one fetch claim per client and interval,
//! however many requests race for it, and a set never replaced by one fetched earlier.

use std::sync::Arc;

use portcullis_core::oidc::{ClientAuth, IdTokenAlg, OidcClient};
use portcullis_core::ports::{OidcJwksCache, Transactions};
use portcullis_testkit::{both, Backend};
use serde_json::json;

use crate::support::{commit, store, T};

async fn jwks_cache(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = Arc::new(s);
    assert!(s.oidc_jwks_cached("rp").await.unwrap().is_none());
    // The first claim ever, raced by 20 requests: exactly one wins.
    let mut handles = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.claim_oidc_jwks_fetch("rp", T, T.plus_secs(-60))
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for h in handles {
        won += usize::from(h.await.unwrap());
    }
    assert_eq!(won, 1, "one fetch for the whole race");
    // Claimed but not stored yet (or the fetch failed): the claim is read back, no set.
    let row = s.oidc_jwks_cached("rp").await.unwrap().unwrap();
    assert_eq!(row.attempted_at, T);
    assert!(row.set.is_none());
    let first = json!({"keys": [{"kid": "a"}]});
    s.save_oidc_jwks("rp", &first, T).await.unwrap();
    let cached = s
        .oidc_jwks_cached("rp")
        .await
        .unwrap()
        .unwrap()
        .set
        .unwrap();
    assert_eq!((cached.jwks, cached.fetched_at), (first.clone(), T));

    // Within the interval: refused; once it has passed, one claim again.
    let later = T.plus_secs(30);
    assert!(!s
        .claim_oidc_jwks_fetch("rp", later, later.plus_secs(-60))
        .await
        .unwrap());
    let later = T.plus_secs(61);
    assert!(s
        .claim_oidc_jwks_fetch("rp", later, later.plus_secs(-60))
        .await
        .unwrap());
    assert!(!s
        .claim_oidc_jwks_fetch("rp", later, later.plus_secs(-60))
        .await
        .unwrap());
    // Another client has its own budget.
    assert!(s
        .claim_oidc_jwks_fetch("other", later, later.plus_secs(-60))
        .await
        .unwrap());

    let second = json!({"keys": [{"kid": "b"}]});
    s.save_oidc_jwks("rp", &second, later).await.unwrap();
    // A slow fetch that finishes late never replaces a newer set.
    s.save_oidc_jwks("rp", &first, T.plus_secs(1))
        .await
        .unwrap();
    let row = s.oidc_jwks_cached("rp").await.unwrap().unwrap();
    assert_eq!(row.attempted_at, later);
    let cached = row.set.unwrap();
    assert_eq!((cached.jwks, cached.fetched_at), (second, later));
}
both!(jwks_uri_fetch_claims_are_one_per_interval, jwks_cache);

/// Revoking a client drops the keys fetched from its `jwks_uri`, with its tokens.
async fn revoked_client_cache(backend: Backend) {
    let (s, _db) = store(backend).await;
    let client = OidcClient {
        client_id: "rp".into(),
        name: "RP".into(),
        auth: ClientAuth::PrivateKeyJwt,
        secret_hash: None,
        jwks: None,
        jwks_uri: Some("https://rp.example/jwks".into()),
        redirect_uris: vec!["https://rp.example/cb".into()],
        post_logout_uris: Vec::new(),
        first_party: false,
        fapi2: false,
        id_token_alg: IdTokenAlg::Es256,
        revoked: false,
    };
    let mut w = s.begin(T);
    assert!(w.insert_oidc_client(&client).await.unwrap());
    commit(w).await;
    for id in ["rp", "other"] {
        assert!(s
            .claim_oidc_jwks_fetch(id, T, T.plus_secs(-60))
            .await
            .unwrap());
        s.save_oidc_jwks(id, &json!({"keys": [{"kid": "a"}]}), T)
            .await
            .unwrap();
    }
    let mut w = s.begin(T);
    assert_eq!(w.revoke_oidc_client("rp").await.unwrap(), Some(0));
    commit(w).await;
    assert!(s.oidc_jwks_cached("rp").await.unwrap().is_none());
    assert!(
        s.oidc_jwks_cached("other").await.unwrap().is_some(),
        "only its own row"
    );
}
both!(
    revoking_a_client_drops_its_fetched_keys,
    revoked_client_cache
);
