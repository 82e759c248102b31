//! Consent grants (issue 15): an "Allow" widens the grant by compare and set, so answers at
//! once keep every scope each allowed; and the pending request is used inside the answer's
//! unit of work, so one dropped without its commit leaves the request as it was.

use std::sync::Arc;

use portcullis_core::clock::UnixTime;
use portcullis_core::oidc::scope_union;
use portcullis_core::ports::{OidcStore, StoredRequest, Transactions};
use portcullis_testkit::{both, Backend};

use crate::support::{commit, store, T};

async fn grant_scope(s: &portcullis_store::SqlStore, account: i64) -> Option<String> {
    s.oidc_grant(account, "rp").await.unwrap().map(|g| g.scope)
}

async fn compare_and_set(backend: Backend) {
    let (s, _db) = store(backend).await;
    let mut w = s.begin(T);
    assert!(w.save_oidc_grant(7, "rp", None, "openid").await.unwrap());
    commit(w).await;
    // A writer that read "no grant" misses the live one; one that read it lands.
    let mut w = s.begin(T);
    assert_eq!(
        w.live_oidc_grant_scope(7, "rp").await.unwrap().as_deref(),
        Some("openid")
    );
    assert!(!w
        .save_oidc_grant(7, "rp", None, "openid phone")
        .await
        .unwrap());
    assert!(w
        .save_oidc_grant(7, "rp", Some("openid"), "email openid")
        .await
        .unwrap());
    commit(w).await;
    // A writer that read "openid" before that commit misses, reads again and lands.
    let mut w = s.begin(T);
    assert!(!w
        .save_oidc_grant(7, "rp", Some("openid"), "openid phone")
        .await
        .unwrap());
    let now = w.live_oidc_grant_scope(7, "rp").await.unwrap();
    assert_eq!(now.as_deref(), Some("email openid"));
    let union = scope_union(now.as_deref().unwrap_or(""), "openid phone");
    assert!(w
        .save_oidc_grant(7, "rp", now.as_deref(), &union)
        .await
        .unwrap());
    commit(w).await;
    assert_eq!(
        grant_scope(&s, 7).await.as_deref(),
        Some("email openid phone")
    );
    // Revoked: no live grant; a write expecting the old scopes misses, one expecting none
    // makes it live again with only what was allowed now.
    let mut w = s.begin(T);
    assert!(w.revoke_oidc_grant(7, "rp").await.unwrap());
    commit(w).await;
    assert_eq!(grant_scope(&s, 7).await, None);
    let mut w = s.begin(T);
    assert_eq!(w.live_oidc_grant_scope(7, "rp").await.unwrap(), None);
    assert!(!w
        .save_oidc_grant(7, "rp", Some("email openid phone"), "openid")
        .await
        .unwrap());
    assert!(w.save_oidc_grant(7, "rp", None, "openid").await.unwrap());
    commit(w).await;
    assert_eq!(grant_scope(&s, 7).await.as_deref(), Some("openid"));
}
both!(a_grant_is_widened_only_if_it_is_as_read, compare_and_set);

/// Eight answers at once, each allowing one scope of its own, each by read, union and
/// compare and set (retried on a miss, as the consent answer does): every scope is kept.
async fn racing_answers(backend: Backend) {
    let (s, _db) = store(backend).await;
    let s = Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let asked = format!("openid s{i}");
            for _ in 0..20 {
                let mut w = s.begin(T);
                let granted = w.live_oidc_grant_scope(9, "rp").await.unwrap();
                let scope = scope_union(granted.as_deref().unwrap_or(""), &asked);
                if w.save_oidc_grant(9, "rp", granted.as_deref(), &scope)
                    .await
                    .unwrap()
                {
                    commit(w).await;
                    return;
                }
            }
            panic!("answer {i} never landed");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let kept = grant_scope(&s, 9).await.unwrap();
    let mut kept: Vec<&str> = kept.split(' ').collect();
    kept.sort_unstable();
    assert_eq!(
        kept,
        ["openid", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"],
        "a scope was lost"
    );
}
both!(
    answers_at_once_keep_every_scope_they_allowed,
    racing_answers
);

async fn request_in_work(backend: Backend) {
    let (s, _db) = store(backend).await;
    let hash = [5u8; 32];
    let stored = StoredRequest {
        client_id: "rp".into(),
        request: "{}".into(),
        pushed: false,
        expires_at: UnixTime(T.0 + 600),
        login_as_is: false,
    };
    s.put_oidc_request(&hash, &stored, T).await.unwrap();
    // Used in a unit of work dropped without its commit: still there.
    let mut w = s.begin(T);
    assert!(w.use_oidc_request(&hash, T).await.unwrap().is_some());
    assert!(
        w.use_oidc_request(&hash, T).await.unwrap().is_none(),
        "used once"
    );
    drop(w);
    // Used and committed: gone for everyone.
    let mut w = s.begin(T);
    let got = w.use_oidc_request(&hash, T).await.unwrap().unwrap();
    assert_eq!((got.client_id.as_str(), got.request.as_str()), ("rp", "{}"));
    commit(w).await;
    assert!(s.take_oidc_request(&hash, T).await.unwrap().is_none());
    // Expired: never used.
    let late = [6u8; 32];
    s.put_oidc_request(&late, &stored, T).await.unwrap();
    let mut w = s.begin(UnixTime(T.0 + 601));
    assert!(w
        .use_oidc_request(&late, UnixTime(T.0 + 601))
        .await
        .unwrap()
        .is_none());
}
both!(
    a_pending_request_used_in_a_dropped_unit_of_work_stays_usable,
    request_in_work
);
