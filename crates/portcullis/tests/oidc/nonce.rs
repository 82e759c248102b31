//! DPoP server nonces (RFC 9449 §8, §9), the audit trail of grants, and the sweep of
//! expired OpenID Connect rows.

use portcullis_core::clock::Clock;
use portcullis_core::oidc::ClientAuth;
use portcullis_core::ports::AuditReads;
use portcullis_core::service::oidc::ClientRegistration;
use portcullis_testkit::{both, Backend, Jar, TestApp};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::support::*;

fn nonce_of(res: &reqwest::Response) -> String {
    res.headers()["dpop-nonce"].to_str().unwrap().to_owned()
}

/// A refresh by a public client with a DPoP proof carrying `nonce`.
async fn refreshed(
    app: &TestApp,
    client_id: &str,
    key: &RpKey,
    nonce: &str,
    token: &str,
) -> reqwest::Response {
    let url = format!("{ISSUER}/oidc/token");
    let proof = key.proof_with_nonce("POST", &url, app.clock.now().0, None, Some(nonce));
    refresh(app, client_id, token, Some(proof)).await
}

async fn nonces(backend: Backend) {
    let app = app_with(backend, |c| c.oidc.dpop_nonce = true).await;
    let client_id = register(&app, ClientAuth::None, None, false).await;
    let key = RpKey::new("dpop");
    let token_url = format!("{ISSUER}/oidc/token");
    let info_url = format!("{ISSUER}/oidc/userinfo");
    let mut jar = Jar::default();
    let (code, verifier) = offline_code(&app, &mut jar, &client_id).await;
    let now = || app.clock.now().0;

    // A proof without the server's nonce: 400 use_dpop_nonce, and the nonce to use.
    let proof = key.proof("POST", &token_url, now(), None);
    let res = exchange(&app, &client_id, &code, &verifier, Some(proof)).await;
    let nonce = nonce_of(&res);
    assert_eq!(error_of(res).await, (400, "use_dpop_nonce".to_owned()));
    // A made-up nonce is no better.
    let proof = key.proof_with_nonce("POST", &token_url, now(), None, Some("0123abcd"));
    let res = exchange(&app, &client_id, &code, &verifier, Some(proof)).await;
    assert_eq!(error_of(res).await, (400, "use_dpop_nonce".to_owned()));
    // With it: the code (not used up by the refusals) gives DPoP-bound tokens.
    let proof = key.proof_with_nonce("POST", &token_url, now(), None, Some(&nonce));
    let res = exchange(&app, &client_id, &code, &verifier, Some(proof)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(nonce_of(&res), nonce, "the same nonce within its window");
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let mut refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    // Userinfo: without the nonce 401 with a DPoP challenge naming use_dpop_nonce.
    let userinfo = |nonce: Option<String>| {
        let proof = key.proof_with_nonce("GET", &info_url, now(), Some(&access), nonce.as_deref());
        app.client
            .get(app.url("/oidc/userinfo"))
            .header("authorization", format!("DPoP {access}"))
            .header("DPoP", proof)
            .send()
    };
    let res = userinfo(None).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(nonce_of(&res), nonce);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains("error=\"use_dpop_nonce\""),
        "{challenge}"
    );
    assert_eq!(userinfo(Some(nonce.clone())).await.unwrap().status(), 200);

    // Nonces need no shared state: a keyed MAC of a 5-minute window. The previous
    // window's is still accepted; the one before is not.
    app.clock.advance(300);
    let res = refreshed(&app, &client_id, &key, &nonce, &refresh_token).await;
    assert_eq!(res.status(), 200, "the previous window's nonce");
    let newer = nonce_of(&res);
    assert_ne!(newer, nonce);
    refresh_token = res.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock.advance(300);
    let res = refreshed(&app, &client_id, &key, &nonce, &refresh_token).await;
    assert_eq!(error_of(res).await, (400, "use_dpop_nonce".to_owned()));
    let res = refreshed(&app, &client_id, &key, &newer, &refresh_token).await;
    assert_eq!(res.status(), 200);
}
both!(
    dpop_server_nonces_are_asked_for_and_live_two_windows,
    nonces
);

/// The kinds of the audit entries written after `seq`.
async fn audited_after(app: &TestApp, seq: i64) -> Vec<(String, String)> {
    app.built
        .store
        .audit_entries(seq, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with("oidc."))
        .map(|e| (e.kind, e.actor))
        .collect()
}

async fn audit_and_sweep(backend: Backend) {
    let app = app(backend).await;
    let client_id = register(&app, ClientAuth::None, None, false).await;
    let actor = format!("oidc-client:{client_id}");
    let mut jar = Jar::default();
    let (code, verifier) = offline_code(&app, &mut jar, &client_id).await;
    let res = exchange(&app, &client_id, &code, &verifier, None).await;
    let body: Value = res.json().await.unwrap();
    let first = body["refresh_token"].as_str().unwrap().to_owned();
    // The issuer's fraud system listens for stolen tokens (docs/design/webhooks.md).
    let hook = app
        .built
        .app
        .webhook_add(
            &portcullis_core::support::SupportAuthority::operator("cli:test"),
            "https://fraud.example/hooks",
            "oidc.refresh_reused,oidc.code_replayed",
        )
        .await
        .unwrap();
    let res = refresh(&app, &client_id, &first, None).await;
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let res = app
        .client
        .post(app.url("/oidc/revoke"))
        .form(&[("client_id", client_id.as_str()), ("token", &access)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A used refresh token again: the family is revoked and the session ended.
    let res = refresh(&app, &client_id, &first, None).await;
    assert_eq!(error_of(res).await, (400, "invalid_grant".to_owned()));
    let kinds = audited_after(&app, 0).await;
    let expected: Vec<(String, String)> = [
        "oidc.token_issued",
        "oidc.refresh_rotated",
        "oidc.token_revoked",
        "oidc.refresh_reused",
    ]
    .iter()
    .map(|k| ((*k).to_owned(), actor.clone()))
    .collect();
    assert_eq!(kinds, expected);
    // The reuse, and nothing before it, went to the subscriber, written with the change.
    let sent: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_type, body FROM webhook_deliveries WHERE subscription_id = $1",
    )
    .bind(hook.id)
    .fetch_all(app.built.store.pool())
    .await
    .unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, "oidc.refresh_reused");
    let event: Value = serde_json::from_str(&sent[0].1).unwrap();
    assert_eq!(event["type"], "oidc.refresh_reused");
    assert_eq!(event["data"]["actor"], actor.as_str());
    assert!(
        event["data"]["detail"]
            .as_str()
            .unwrap()
            .ends_with("tokens revoked; session ended"),
        "{event}"
    );

    // A confidential client's failed authentication: one entry a minute, however many.
    let confidential = app
        .built
        .app
        .register_oidc_client(ClientRegistration {
            name: "Site".into(),
            redirect_uris: vec![RP.into()],
            post_logout_uris: vec![],
            auth: ClientAuth::SecretBasic,
            jwks: None,
            jwks_uri: None,
            first_party: true,
            fapi2: false,
            id_token_alg: Default::default(),
        })
        .await
        .unwrap();
    let secret = confidential.client_secret.unwrap();
    let seq = app.built.store.audit_head().await.unwrap().0;
    let revoke_as = |secret: String| {
        app.client
            .post(app.url("/oidc/revoke"))
            .basic_auth(&confidential.client_id, Some(secret))
            .form(&[("token", "x")])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(revoke_as("wrong".into()).await.unwrap().status(), 401);
    }
    assert_eq!(
        revoke_as(secret.expose_secret().to_owned())
            .await
            .unwrap()
            .status(),
        200
    );
    app.clock.advance(60);
    assert_eq!(revoke_as("wrong".into()).await.unwrap().status(), 401);
    let failed = audited_after(&app, seq).await;
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.iter().all(|(k, a)| k == "oidc.client_auth_failed"
        && *a == format!("oidc-client:{}", confidential.client_id)));

    // The sweep: after a day, the used request, the code and the access tokens go; the
    // refresh tokens stay until they expire (30 days).
    app.clock.advance(2 * 86_400);
    let swept = app.built.app.sweep_expired().await.unwrap();
    assert!(swept.oidc >= 4, "{swept:?}");
    assert_eq!(app.built.app.sweep_expired().await.unwrap().oidc, 0);
    app.clock.advance(30 * 86_400);
    let swept = app.built.app.sweep_expired().await.unwrap();
    assert_eq!(swept.oidc, 2, "the two refresh tokens");
}
both!(
    oidc_grants_are_audited_and_expired_rows_swept,
    audit_and_sweep
);
