//! The OpenID Connect provider (issue 15) against the running server, on SQLite and
//! PostgreSQL. The relying party is the `openidconnect` crate (an independent client:
//! discovery, the code flow with PKCE, ID-token verification against the JWKS, userinfo);
//! `private_key_jwt` assertions and DPoP proofs are signed here with the `p256` crate,
//! not with the server's own JWS code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "oidc/support.rs"]
mod support;

#[path = "oidc/grants.rs"]
mod grants;

#[path = "oidc/assertions.rs"]
mod assertions;

#[path = "oidc/rotation.rs"]
mod rotation;

#[path = "oidc/consent.rs"]
mod consent;

#[path = "oidc/logout.rs"]
mod logout;

#[path = "oidc/stepup.rs"]
mod stepup;

#[path = "oidc/nonce.rs"]
mod nonce;

#[path = "oidc/clients.rs"]
mod clients;
#[path = "oidc/eddsa.rs"]
mod eddsa;
#[path = "oidc/jwks_uri.rs"]
mod jwks_uri;

#[path = "oidc/authlib.rs"]
mod authlib;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use portcullis_core::clock::Clock;
use portcullis_core::oidc::ClientAuth;
use portcullis_testkit::{both, Backend, Jar};
use serde_json::{json, Value};
use support::*;

async fn discovery_code_flow_refresh(backend: Backend) {
    let app = app(backend).await;
    // The operator registers the site: one JSON line, the secret shown once.
    let (out, line) = cli_client_add(
        &app,
        &[
            "--name",
            "Statements",
            "--redirect-uri",
            RP,
            "--first-party",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client_id = line["client_id"].as_str().unwrap().to_owned();
    // FAPI 2.0 needs private_key_jwt; redirect URIs must be https (or loopback).
    for refused in [
        &["--name", "F", "--redirect-uri", RP, "--profile", "fapi2"][..],
        &["--name", "H", "--redirect-uri", "http://rp.example/cb"][..],
    ] {
        let (out, _) = cli_client_add(&app, refused);
        assert!(!out.status.success(), "{refused:?}");
        assert!(out.stdout.is_empty());
    }
    let secret = line["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43);

    let http = {
        let base = app.base.clone();
        move |req: openidconnect::HttpRequest| send(base.clone(), req)
    };
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(ISSUER.into()).unwrap(), &http)
        .await
        .unwrap();
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(client_id.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(RP.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("offline_access".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut jar = Jar::default();
    let back = browser(&app, &mut jar, url.as_str()).await;
    assert!(back.starts_with(RP), "{back}");
    assert_eq!(
        query(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(query(&back, "iss").as_deref(), Some(ISSUER), "RFC 9207 iss");
    let code = query(&back, "code").unwrap();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("ID token verifies");
    let sub = claims.subject().as_str().to_owned();
    assert_ne!(sub, "ann.example", "sub is opaque, never the User ID");
    assert!(claims.auth_time().is_some());
    let raw = claims_of(&id_token.to_string());
    assert_eq!(raw["account_type"], "personal");
    assert_eq!(raw["amr"], json!(["pwd"]));
    assert!(raw["acr"].is_string());

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.subject().as_str(), sub);

    // The code was single use: a replay is refused and revokes what it issued.
    let replay = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(openidconnect::PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&http)
        .await;
    assert!(replay.is_err());
    let res = app
        .client
        .get(app.url("/oidc/userinfo"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a replayed code revokes its tokens");

    // Refresh: a new grant, rotated at every use; a reused token ends family and session.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    // The browser still has its session: no sign-in this time.
    let back = browser(&app, &mut jar, url.as_str()).await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(query(&back, "code").unwrap()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let first = tokens.refresh_token().unwrap().clone();
    let second = client
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let rotated = second.refresh_token().unwrap().clone();
    assert_ne!(rotated.secret(), first.secret());
    assert!(client
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&http)
        .await
        .is_err());
    // The reuse ended the whole family and the session behind it.
    assert!(client
        .exchange_refresh_token(&rotated)
        .unwrap()
        .request_async(&http)
        .await
        .is_err());
    assert_eq!(
        account_status(&app, &jar).await,
        303,
        "the session behind the family has ended"
    );
    // Two exchanges and a rotation at least were written: on SQLite each in one hand-off
    // (the use, its tokens and its audit entry as one statement list, the server knowing
    // the audit chain's head since its own commits), on PostgreSQL as a unit of work.
    let (one_list, unit_of_work) = grant_uses(&app).await;
    match backend {
        Backend::Sqlite => assert!(
            one_list >= 3 && unit_of_work == 0,
            "{one_list}, {unit_of_work}"
        ),
        Backend::Postgres => assert!(
            one_list == 0 && unit_of_work >= 3,
            "{one_list}, {unit_of_work}"
        ),
    }
}
both!(
    discovery_code_flow_id_token_userinfo_and_refresh_with_an_independent_client,
    discovery_code_flow_refresh
);

async fn code_checks(backend: Backend) {
    let app = app(backend).await;
    let client_id = register(&app, ClientAuth::None, None, false).await;
    let mut jar = Jar::default();
    let (_, challenge) = pkce();

    // Unregistered redirect URIs (other host, longer path, added query, other scheme):
    // refused on a page, never redirected (no open redirect).
    for evil in [
        "https://evil.example/cb",
        "https://rp.example/cb/../../evil",
        "https://rp.example/cb?next=https://evil.example",
        "https://rp.example.evil.example/cb",
        "http://rp.example/cb",
        "javascript:alert(1)",
    ] {
        let res = app
            .client
            .get(real(&app, &authorize_url(&client_id, evil, &challenge, "")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{evil}");
        assert!(res.headers().get("location").is_none(), "{evil}");
    }
    // An unknown client: a page, not a redirect.
    let res = app
        .client
        .get(real(&app, &authorize_url("nobody", RP, &challenge, "")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // PKCE plain, or none at all, is refused (the error goes back with iss).
    let plain = authorize_url(&client_id, RP, &challenge, "")
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let back = browser(&app, &mut jar, &plain).await;
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query(&back, "iss").as_deref(), Some(ISSUER));
    assert!(query(&back, "code").is_none());
    // prompt=none without a session: login_required, no code.
    let back = browser(
        &app,
        &mut jar,
        &authorize_url(&client_id, RP, &challenge, "&prompt=none"),
    )
    .await;
    assert_eq!(query(&back, "error").as_deref(), Some("login_required"));
    assert_eq!(query(&back, "state").as_deref(), Some("st"));

    // Wrong verifier, missing verifier, wrong or missing redirect_uri: each on a fresh code
    // (an earlier refusal must not be what refuses a later case), each invalid_grant, and
    // none of them uses the code up: the right request still succeeds afterwards.
    let wrong = B64.encode(random32());
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "wrong verifier",
            vec![("code_verifier", wrong.as_str()), ("redirect_uri", RP)],
        ),
        ("no verifier", vec![("redirect_uri", RP)]),
        (
            "wrong redirect_uri",
            vec![
                ("code_verifier", ""),
                ("redirect_uri", "https://rp.example/other"),
            ],
        ),
        ("no redirect_uri", vec![("code_verifier", "")]),
    ];
    for (name, form) in cases {
        let (verifier, challenge) = pkce();
        let back = browser(
            &app,
            &mut jar,
            &authorize_url(&client_id, RP, &challenge, ""),
        )
        .await;
        let code = query(&back, "code").unwrap();
        let mut f = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client_id.as_str()),
        ];
        f.extend(form.into_iter().map(|(k, v)| {
            if v.is_empty() {
                (k, verifier.as_str())
            } else {
                (k, v)
            }
        }));
        let refused = (400, "invalid_grant".to_owned());
        assert_eq!(
            error_of(token(&app, &f, None).await).await,
            refused,
            "{name}"
        );
        let res = exchange(&app, &client_id, &code, &verifier, None).await;
        assert_eq!(
            res.status(),
            200,
            "{name}: the refusal did not burn the code"
        );
        // …and a code is single use.
        let res = exchange(&app, &client_id, &code, &verifier, None).await;
        assert_eq!(error_of(res).await, refused, "{name}");
    }

    // An expired code (over 60 s) is refused even with the right verifier.
    let (verifier, challenge) = pkce();
    let back = browser(
        &app,
        &mut jar,
        &authorize_url(&client_id, RP, &challenge, ""),
    )
    .await;
    let code = query(&back, "code").unwrap();
    app.clock.advance(61);
    let res = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("redirect_uri", RP),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // The right verifier on a fresh code works (a public client, PKCE only).
    let (verifier, challenge) = pkce();
    let back = browser(
        &app,
        &mut jar,
        &authorize_url(&client_id, RP, &challenge, ""),
    )
    .await;
    let res = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &query(&back, "code").unwrap()),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("redirect_uri", RP),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body.get("refresh_token").is_none(),
        "no offline_access asked"
    );
}
both!(
    authorization_and_code_checks_refuse_bad_redirects_pkce_replays_and_expired_codes,
    code_checks
);

async fn fapi2(backend: Backend) {
    let app = app(backend).await;
    let rp = RpKey::new("rp-1");
    let client_id = register(
        &app,
        ClientAuth::PrivateKeyJwt,
        Some(json!({"keys": [rp.jwk.clone()]})),
        true,
    )
    .await;
    let other_id = register(&app, ClientAuth::None, None, false).await;
    let now = app.clock.now().0;
    let dpop = RpKey::new("dpop");
    let mut jar = Jar::default();
    let (verifier, challenge) = pkce();

    // A FAPI 2.0 client's request that did not come through PAR: refused, no code.
    let res = app
        .client
        .get(real(&app, &authorize_url(&client_id, RP, &challenge, "")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());

    let par_form = |assertion: String| {
        vec![
            ("response_type", "code".to_owned()),
            ("client_id", client_id.clone()),
            ("redirect_uri", RP.to_owned()),
            ("scope", "openid offline_access".to_owned()),
            ("state", "st".to_owned()),
            ("nonce", "n-1".to_owned()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
            ("dpop_jkt", dpop.thumbprint()),
            ("client_assertion_type", ASSERTION_TYPE.to_owned()),
            ("client_assertion", assertion),
        ]
    };
    // A client assertion for another audience is refused; so is a replayed one.
    let res = app
        .client
        .post(app.url("/oidc/par"))
        .form(&par_form(rp.assertion(
            &client_id,
            "https://other.example",
            now,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let assertion = rp.assertion(&client_id, ISSUER, now);
    let res = app
        .client
        .post(app.url("/oidc/par"))
        .form(&par_form(assertion.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let request_uri = res.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let replayed = app
        .client
        .post(app.url("/oidc/par"))
        .form(&par_form(assertion))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401, "a replayed client assertion");

    let via_par = format!(
        "{ISSUER}/oidc/authorize?client_id={client_id}&request_uri={}",
        urlencode(&request_uri)
    );
    let back = browser(&app, &mut jar, &via_par).await;
    let code = query(&back, "code").unwrap();
    assert_eq!(query(&back, "iss").as_deref(), Some(ISSUER));
    // The request_uri was single use.
    let res = app
        .client
        .get(real(&app, &via_par))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    let token_url = format!("{ISSUER}/oidc/token");
    let form = |assertion: String| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", RP.to_owned()),
            ("code_verifier", verifier.clone()),
            ("client_assertion_type", ASSERTION_TYPE.to_owned()),
            ("client_assertion", assertion),
        ]
    };
    // Proofs with the wrong method, URL or time are refused before the code is looked at.
    for bad in [
        dpop.proof("GET", &token_url, now, None),
        dpop.proof("POST", &format!("{ISSUER}/oidc/par"), now, None),
        dpop.proof("POST", &token_url, now - 600, None),
    ] {
        let res = app
            .client
            .post(app.url("/oidc/token"))
            .header("DPoP", bad)
            .form(&form(rp.assertion(&client_id, ISSUER, now)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "invalid_dpop_proof"
        );
    }
    // Without a proof at all: refused for a FAPI 2.0 client.
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .form(&form(rp.assertion(&client_id, ISSUER, now)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    let proof = dpop.proof("POST", &token_url, now, None);
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .header("DPoP", proof.clone())
        .form(&form(rp.assertion(&client_id, ISSUER, now)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let id = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["aud"], client_id.as_str());

    // A proof used once cannot be used again.
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .header("DPoP", proof)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &rp.assertion(&client_id, ISSUER, now)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_dpop_proof"
    );

    // Userinfo: with a proof bound to the token; the same token as Bearer is refused.
    let info_url = format!("{ISSUER}/oidc/userinfo");
    let res = app
        .client
        .get(app.url("/oidc/userinfo"))
        .header("authorization", format!("DPoP {access}"))
        .header("DPoP", dpop.proof("GET", &info_url, now, Some(&access)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["account_type"],
        "personal"
    );
    let res = app
        .client
        .get(app.url("/oidc/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a DPoP-bound token presented as Bearer");
    let res = app
        .client
        .get(app.url("/oidc/userinfo"))
        .header("authorization", format!("DPoP {access}"))
        .header("DPoP", rp.proof("GET", &info_url, now, Some(&access)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a proof by another key");

    // Introspection: active for its own client; a public client may not introspect.
    let introspect = |assertion: String| {
        app.client
            .post(app.url("/oidc/introspect"))
            .form(&[
                ("token", access.clone()),
                ("client_assertion_type", ASSERTION_TYPE.to_owned()),
                ("client_assertion", assertion),
            ])
            .send()
    };
    let res = introspect(rp.assertion(&client_id, ISSUER, now))
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["cnf"]["jkt"], dpop.thumbprint().as_str());
    let res = app
        .client
        .post(app.url("/oidc/introspect"))
        .form(&[("token", access.as_str()), ("client_id", other_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a public client cannot introspect");
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    // Revocation: the refresh token's whole grant ends, its access token with it.
    let res = app
        .client
        .post(app.url("/oidc/revoke"))
        .form(&[
            ("token", refresh.as_str()),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &rp.assertion(&client_id, ISSUER, now)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = introspect(rp.assertion(&client_id, ISSUER, now))
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["active"], false);

    // A code bound (dpop_jkt) to one key, exchanged with a proof of another: refused.
    let (verifier, challenge) = pkce();
    let mut again = vec![
        ("response_type", "code".to_owned()),
        ("redirect_uri", RP.to_owned()),
        ("scope", "openid".to_owned()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".to_owned()),
        ("dpop_jkt", dpop.thumbprint()),
        ("client_assertion_type", ASSERTION_TYPE.to_owned()),
    ];
    again.push(("client_assertion", rp.assertion(&client_id, ISSUER, now)));
    let res = app
        .client
        .post(app.url("/oidc/par"))
        .form(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let request_uri = res.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let back = browser(
        &app,
        &mut jar,
        &format!(
            "{ISSUER}/oidc/authorize?client_id={client_id}&request_uri={}",
            urlencode(&request_uri)
        ),
    )
    .await;
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .header("DPoP", rp.proof("POST", &token_url, now, None))
        .form(&[
            ("grant_type", "authorization_code".to_owned()),
            ("code", query(&back, "code").unwrap()),
            ("redirect_uri", RP.to_owned()),
            ("code_verifier", verifier),
            ("client_assertion_type", ASSERTION_TYPE.to_owned()),
            ("client_assertion", rp.assertion(&client_id, ISSUER, now)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_dpop_proof"
    );
}
both!(
    fapi2_par_private_key_jwt_and_dpop_with_their_negative_checks,
    fapi2
);
