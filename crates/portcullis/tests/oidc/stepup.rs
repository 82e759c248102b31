//! `acr_values` step-up: a request for `urn:portcullis:acr:mfa` makes the sign-in pass the
//! second factor (only the second step when the browser is already signed in with the
//! password), and the ID token's `amr` and `acr` say what was used (RFC 8176).

use portcullis_core::oidc::ClientAuth;
use portcullis_testkit::{both, input_value, totp_now, Backend, Jar, TestApp, PASSWORD};
use serde_json::{json, Value};

use super::support::*;

const MFA: &str = "&acr_values=urn%3Aportcullis%3Aacr%3Amfa";

/// Turns on an authenticator app for Ann through the API; its base32 secret.
async fn enrol_totp(app: &TestApp) -> String {
    let token = app.token("ann.example", PASSWORD, "personal").await;
    let res = app
        .client
        .post(app.url("/api/v1/me/factors/totp"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let secret = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .post(app.url("/api/v1/me/factors/totp/confirm"))
        .bearer_auth(&token)
        .json(&json!({"code": totp_now(app, &secret)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    // The next code is another time step (a step is accepted once).
    app.clock.advance(30);
    secret
}

/// The claims of the ID token a code is exchanged for.
async fn id_claims(app: &TestApp, client_id: &str, back: &str, verifier: &str) -> Value {
    let code = query(back, "code").unwrap_or_else(|| panic!("no code: {back}"));
    let res = exchange(app, client_id, &code, verifier, None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    claims_of(body["id_token"].as_str().unwrap())
}

async fn get(app: &TestApp, jar: &mut Jar, url: &str) -> reqwest::Response {
    let res = app
        .client
        .get(url)
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    res
}

async fn step_up(backend: Backend) {
    let app = app(backend).await;
    let client_id = register(&app, ClientAuth::None, None, false).await;
    let (verifier, challenge) = pkce();
    let meta: Value = app
        .client
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["acr_values_supported"],
        json!(["urn:portcullis:acr:password", "urn:portcullis:acr:mfa"])
    );

    // No second factor set up: the sign-in with the password cannot meet the request.
    let mut jar = Jar::default();
    let url = authorize_url(&client_id, RP, &challenge, MFA);
    let back = browser(&app, &mut jar, &url).await;
    assert!(back.starts_with(RP), "{back}");
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("unmet_authentication_requirements")
    );
    assert_eq!(query(&back, "state").as_deref(), Some("st"));
    // Without acr_values the same session gets a code: the password alone.
    let back = browser(
        &app,
        &mut jar,
        &authorize_url(&client_id, RP, &challenge, ""),
    )
    .await;
    let claims = id_claims(&app, &client_id, &back, &verifier).await;
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["acr"], "urn:portcullis:acr:password");

    // Ann sets up an authenticator app. Her browser's session is still the password's.
    let secret = enrol_totp(&app).await;
    let none = authorize_url(&client_id, RP, &challenge, &format!("{MFA}&prompt=none"));
    let back = browser(&app, &mut jar, &none).await;
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("interaction_required")
    );

    // The request for a second factor: only the second step, no password page.
    let before = jar.clone();
    let res = get(&app, &mut jar, &real(&app, &url)).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(!html.contains("name=\"password\""), "{html}");
    let step = input_value(&html, "challenge").expect("the second-step page");
    let csrf = input_value(&html, "csrf").unwrap();
    let res = app
        .client
        .post(app.url("/sign-in/mfa"))
        .header("cookie", jar.header())
        .form(&[
            ("csrf", csrf.as_str()),
            ("challenge", step.as_str()),
            ("method", "totp"),
            ("code", totp_now(&app, &secret).as_str()),
            ("remember", "false"),
        ])
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    // The second step's answer goes on with the request (no redirect to `/oidc/resume`).
    assert!(res.headers().get("location").is_none());
    let back = crate::support::landing(res).await;
    let claims = id_claims(&app, &client_id, &back, &verifier).await;
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "urn:portcullis:acr:mfa");
    // The password-only session was replaced by the stronger one.
    assert_eq!(account_status(&app, &before).await, 303);
    assert_eq!(account_status(&app, &jar).await, 200);

    // The stronger session meets the next request for a second factor at once.
    let back = browser(&app, &mut jar, &url).await;
    let claims = id_claims(&app, &client_id, &back, &verifier).await;
    assert_eq!(claims["acr"], "urn:portcullis:acr:mfa");
}
both!(
    acr_values_mfa_asks_only_the_second_step_and_amr_acr_say_what_was_used,
    step_up
);
