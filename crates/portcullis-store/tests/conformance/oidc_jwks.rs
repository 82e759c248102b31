//! The key sets fetched from clients' `jwks_uri`s: one fetch claim per client and interval,
//! however many requests race for it, and a set never replaced by one fetched earlier.

use std::sync::Arc;

use portcullis_core::ports::OidcJwksCache;
use portcullis_testkit::{both, Backend};
use serde_json::json;

use crate::support::{store, T};

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
    // Claimed but not stored yet: nothing cached.
    assert!(s.oidc_jwks_cached("rp").await.unwrap().is_none());
    let first = json!({"keys": [{"kid": "a"}]});
    s.save_oidc_jwks("rp", &first, T).await.unwrap();
    let cached = s.oidc_jwks_cached("rp").await.unwrap().unwrap();
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
    let cached = s.oidc_jwks_cached("rp").await.unwrap().unwrap();
    assert_eq!((cached.jwks, cached.fetched_at), (second, later));
}
both!(jwks_uri_fetch_claims_are_one_per_interval, jwks_cache);
