//! The consent screen against the running server: a client not registered first-party gets
//! a code only after "Allow"; the grant is kept, so a later request within it skips the
//! page; `prompt=consent` asks again; "Deny" answers `access_denied`; `prompt=none` without
//! a grant answers `consent_required`; the form is CSRF-checked and single use.

use portcullis_core::oidc::ClientAuth;
use portcullis_core::ports::{AuditReads, OidcStore};
use portcullis_core::service::oidc::ClientRegistration;
use portcullis_testkit::{both, input_value, Backend, Jar, TestApp, PASSWORD};

use super::support::*;

/// A public client not registered first-party.
async fn third_party(app: &TestApp) -> String {
    register_client(
        app,
        ClientRegistration {
            name: "Budget Planner".into(),
            redirect_uris: vec![RP.into()],
            post_logout_uris: vec![],
            auth: ClientAuth::None,
            jwks: None,
            jwks_uri: None,
            first_party: false,
            fapi2: false,
            id_token_alg: Default::default(),
        },
    )
    .await
    .0
}

fn url_with(client_id: &str, scope: &str, extra: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let url = authorize_url(client_id, RP, &challenge, extra)
        .replace("scope=openid", &format!("scope={}", urlencode(scope)));
    (url, verifier)
}

/// The consent page's form fields, after checking the page shows the client and scopes.
async fn consent_form(res: reqwest::Response, words: &[&str]) -> (String, String) {
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("location").is_none());
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Budget Planner wants to use your sign-in"),
        "{html}"
    );
    for w in words {
        assert!(html.contains(w), "{w} in {html}");
    }
    assert!(
        html.contains(">Allow<") && html.contains(">Deny<"),
        "{html}"
    );
    (
        input_value(&html, "csrf").unwrap(),
        input_value(&html, "handle").unwrap(),
    )
}

async fn answer(
    app: &TestApp,
    jar: &mut Jar,
    csrf: &str,
    handle: &str,
    decision: &str,
) -> reqwest::Response {
    let res = app
        .client
        .post(app.url("/oidc/consent"))
        .header("cookie", jar.header())
        .form(&[("csrf", csrf), ("handle", handle), ("decision", decision)])
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    res
}

async fn consent_screen(backend: Backend) {
    let app = app(backend).await;
    let client_id = third_party(&app).await;
    let mut jar = Jar::default();

    // Sign-in, then the consent page listing the scopes in plain words.
    let (url, verifier) = url_with(&client_id, "openid email", "");
    let res = follow(&app, &mut jar, &url, 0).await;
    let (csrf, handle) = consent_form(res, &["See your email address", "Know it is you"]).await;

    // A forged form (no valid CSRF token) changes nothing.
    let res = answer(&app, &mut jar, "forged", &handle, "allow").await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());

    // "Allow": back to the client with a code, state and iss; the code works.
    let res = answer(&app, &mut jar, &csrf, &handle, "allow").await;
    let back = landing(res).await;
    assert!(back.starts_with(RP), "{back}");
    assert_eq!(query(&back, "state").as_deref(), Some("st"));
    assert_eq!(query(&back, "iss").as_deref(), Some(ISSUER));
    let code = query(&back, "code").unwrap();
    assert_eq!(
        exchange(&app, &client_id, &code, &verifier, None)
            .await
            .status(),
        200
    );

    // The same form again (a replay) is refused: no second code.
    let res = answer(&app, &mut jar, &csrf, &handle, "allow").await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());

    // Within the grant: no page, a code at once.
    let (url, _) = url_with(&client_id, "openid", "");
    let back = browser(&app, &mut jar, &url).await;
    assert!(query(&back, "code").is_some(), "{back}");

    // prompt=consent asks again; "Deny" answers access_denied with state and iss.
    let (url, _) = url_with(&client_id, "openid", "&prompt=consent");
    let res = follow(&app, &mut jar, &url, 0).await;
    let (csrf, handle) = consent_form(res, &[]).await;
    let res = answer(&app, &mut jar, &csrf, &handle, "deny").await;
    let back = landing(res).await;
    assert!(back.starts_with(RP), "{back}");
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&back, "state").as_deref(), Some("st"));
    assert_eq!(query(&back, "iss").as_deref(), Some(ISSUER));
    assert!(query(&back, "code").is_none());

    // A scope beyond the grant asks again; prompt=none cannot, so consent_required.
    let (url, _) = url_with(&client_id, "openid phone", "&prompt=none");
    let back = browser(&app, &mut jar, &url).await;
    assert_eq!(query(&back, "error").as_deref(), Some("consent_required"));
    let (url, _) = url_with(&client_id, "openid phone", "");
    let res = follow(&app, &mut jar, &url, 0).await;
    let (csrf, handle) = consent_form(res, &["See your phone number"]).await;

    // Another browser (no session) cannot answer the page it was never shown.
    let mut stranger = Jar::default();
    let res = answer(&app, &mut stranger, &csrf, &handle, "allow").await;
    assert!(res.headers().get("location").is_none());

    // The grant widens: afterwards openid, email and phone need no page.
    let res = answer(&app, &mut jar, &csrf, &handle, "allow").await;
    assert!(query(&landing(res).await, "code").is_some());
    let (url, _) = url_with(&client_id, "openid email phone", "&prompt=none");
    let back = browser(&app, &mut jar, &url).await;
    assert!(query(&back, "code").is_some(), "{back}");

    // The person sees the grant through the JSON API and withdraws it: the next request
    // asks again.
    let bearer = app.token("ann.example", PASSWORD, "personal").await;
    let res = app.get_bearer("/api/v1/me/oidc-grants", &bearer).await;
    assert_eq!(res.status(), 200);
    let listed: serde_json::Value = res.json().await.unwrap();
    assert_eq!(listed[0]["client_id"], client_id.as_str());
    assert_eq!(listed[0]["client_name"], "Budget Planner");
    assert_eq!(
        listed[0]["scopes"],
        serde_json::json!(["email", "openid", "phone"])
    );
    let gone = |id: String| {
        app.client
            .delete(app.url(&format!("/api/v1/me/oidc-grants/{id}")))
            .bearer_auth(&bearer)
            .send()
    };
    assert_eq!(gone(client_id.clone()).await.unwrap().status(), 204);
    assert_eq!(gone(client_id.clone()).await.unwrap().status(), 404);
    let (url, _) = url_with(&client_id, "openid", "&prompt=none");
    let back = browser(&app, &mut jar, &url).await;
    assert_eq!(query(&back, "error").as_deref(), Some("consent_required"));

    // Audited: two grants given, one refused, one withdrawn.
    let entries = app.built.store.audit_entries(0, 1000).await.unwrap();
    let count = |kind: &str| entries.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count("oidc.grant_given"), 2);
    assert_eq!(count("oidc.grant_denied"), 1);
    assert_eq!(count("oidc.grant_revoked"), 1);
}
both!(
    consent_shown_allowed_denied_skipped_and_forced,
    consent_screen
);

/// "This was not me" ends the account's grants: whoever signed in may have allowed sites
/// in the owner's name.
async fn not_me_ends_grants(backend: Backend) {
    let app = app(backend).await;
    let client_id = third_party(&app).await;
    let mut jar = Jar::default();
    let (url, _) = url_with(&client_id, "openid", "");
    let res = follow(&app, &mut jar, &url, 0).await;
    let (csrf, handle) = consent_form(res, &[]).await;
    let res = answer(&app, &mut jar, &csrf, &handle, "allow").await;
    assert!(query(&landing(res).await, "code").is_some());
    let entries = app.built.store.audit_entries(0, 1000).await.unwrap();
    let account_id = entries
        .iter()
        .find(|e| e.kind == "oidc.grant_given")
        .and_then(|e| e.account_id)
        .unwrap();
    let grants = app.built.store.oidc_grants(account_id).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].client_id, client_id);

    // A sign-in from another device: the owner's notice carries the "not me" link.
    let before = app.wait_for_messages(0).await.len();
    let _ = app.token("ann.example", PASSWORD, "personal").await;
    let messages = app.wait_for_messages(before + 1).await;
    let link = messages
        .iter()
        .filter_map(|m| m["body"].as_str())
        .flat_map(str::split_whitespace)
        .find(|w| w.contains("/not-me/"))
        .unwrap()
        .to_owned();
    let token = link.rsplit('/').next().unwrap();
    let res = app
        .post_json("/api/v1/not-me", &serde_json::json!({ "token": token }))
        .await;
    assert!(res.status().is_success(), "{}", res.status());
    assert!(app
        .built
        .store
        .oidc_grants(account_id)
        .await
        .unwrap()
        .is_empty());
}
both!(not_me_ends_the_accounts_oidc_grants, not_me_ends_grants);
