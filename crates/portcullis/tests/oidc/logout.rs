//! RP-Initiated Logout against the running server: a valid `id_token_hint` (expired ones
//! too) signs out at once and goes to the registered `post_logout_redirect_uri` with
//! `state`; an unregistered one is never followed; without a hint the person confirms on a
//! CSRF-protected page; a hint for someone else signs nobody out; afterwards every token
//! of the session is dead and `prompt=none` answers `login_required`.

use portcullis_core::oidc::ClientAuth;
use portcullis_core::service::oidc::ClientRegistration;
use portcullis_testkit::{both, input_value, Backend, Jar, TestApp, BEN, PASSWORD};
use serde_json::Value;

use super::support::*;

const AFTER: &str = "https://rp.example/logged-out";

struct Tokens {
    id_token: String,
    access: String,
    refresh: String,
}

/// Signs in through the client (first-party: no consent page) and exchanges the code.
async fn sign_in(app: &TestApp, jar: &mut Jar, client_id: &str, secret: &str) -> Tokens {
    let (verifier, challenge) = pkce();
    let url = authorize_url(client_id, RP, &challenge, "&nonce=n1")
        .replace("scope=openid", "scope=openid%20offline_access");
    let back = browser(app, jar, &url).await;
    let code = query(&back, "code").unwrap();
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", RP),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let s = |k: &str| body[k].as_str().unwrap().to_owned();
    Tokens {
        id_token: s("id_token"),
        access: s("access_token"),
        refresh: s("refresh_token"),
    }
}

/// The session cookie's name as the server sets it (`__Host-` prefixed when secure).
fn session_cookie(jar: &Jar) -> &'static str {
    if jar.get("__Host-portcullis_session").is_some() {
        "__Host-portcullis_session"
    } else {
        "portcullis_session"
    }
}

async fn logout(app: &TestApp, jar: &mut Jar, params: &[(&str, &str)]) -> reqwest::Response {
    let res = app
        .client
        .get(app.url("/oidc/logout"))
        .query(params)
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    res
}

async fn introspect_active(app: &TestApp, client_id: &str, secret: &str, token: &str) -> bool {
    let res = app
        .client
        .post(app.url("/oidc/introspect"))
        .basic_auth(client_id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["active"] == true
}

async fn userinfo_status(app: &TestApp, access: &str) -> u16 {
    app.client
        .get(app.url("/oidc/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn rp_initiated_logout(backend: Backend) {
    let app = app(backend).await;
    let (client_id, secret) = register_client(
        &app,
        ClientRegistration {
            name: "Statements".into(),
            redirect_uris: vec![RP.into()],
            post_logout_uris: vec![AFTER.into()],
            auth: ClientAuth::SecretBasic,
            jwks: None,
            jwks_uri: None,
            first_party: true,
            fapi2: false,
            id_token_alg: Default::default(),
        },
    )
    .await;
    // Discovery names the endpoint.
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
        meta["end_session_endpoint"],
        format!("{ISSUER}/oidc/logout")
    );

    let mut jar = Jar::default();
    let t = sign_in(&app, &mut jar, &client_id, &secret).await;

    // Open-redirect attempts: never followed, nobody signed out.
    for evil in [
        "https://evil.example/",
        "https://rp.example/logged-out/../x",
        "https://rp.example/logged-out?next=https://evil.example/",
        "https://rp.example/logged-out.evil.example",
        "https://rp.example@evil.example/logged-out",
        "HTTPS://RP.EXAMPLE/logged-out",
    ] {
        let res = logout(
            &app,
            &mut jar,
            &[
                ("id_token_hint", &t.id_token),
                ("post_logout_redirect_uri", evil),
            ],
        )
        .await;
        assert_eq!(res.status(), 400, "{evil}");
        assert!(res.headers().get("location").is_none(), "{evil}");
        // Nor with only a client_id, nor with no client at all.
        let res = logout(
            &app,
            &mut jar,
            &[
                ("client_id", &client_id),
                ("post_logout_redirect_uri", evil),
            ],
        )
        .await;
        assert_eq!(res.status(), 400, "{evil}");
        let res = logout(&app, &mut jar, &[("post_logout_redirect_uri", AFTER)]).await;
        assert_eq!(res.status(), 400, "no client named");
        assert_eq!(account_status(&app, &jar).await, 200, "still signed in");
    }
    // A tampered hint is not ours.
    let (signed, sig) = t.id_token.rsplit_once('.').unwrap();
    let mut sig = sig.as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let forged = format!("{signed}.{}", String::from_utf8(sig).unwrap());
    let res = logout(&app, &mut jar, &[("id_token_hint", &forged)]).await;
    assert_eq!(res.status(), 400);
    assert_eq!(account_status(&app, &jar).await, 200);

    // Without a hint: a confirmation page, and a forged confirmation signs nobody out.
    let res = logout(
        &app,
        &mut jar,
        &[
            ("client_id", &client_id),
            ("post_logout_redirect_uri", AFTER),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Statements asked to sign you out"), "{html}");
    assert!(html.contains(">Sign out</button>"), "{html}");
    let res = app
        .client
        .post(app.url("/oidc/logout/confirm"))
        .header("cookie", jar.header())
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", input_value(&html, "csrf").unwrap().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(account_status(&app, &jar).await, 200);

    // Someone else's browser with Ann's hint: refused, Ben stays signed in.
    app.register(&BEN, "ben.example", PASSWORD).await;
    let ben = app.token("ben.example", PASSWORD, "personal").await;
    let res = app
        .client
        .get(app.url("/oidc/logout"))
        .query(&[("id_token_hint", t.id_token.as_str())])
        .header("cookie", format!("{}={ben}", session_cookie(&jar)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.get_bearer("/api/v1/me", &ben).await.status(), 200);

    // The ID token has expired (5 minutes): still a valid hint. Signed out at once, back to
    // the registered URI with state.
    app.clock.advance(400);
    assert!(introspect_active(&app, &client_id, &secret, &t.refresh).await);
    let res = logout(
        &app,
        &mut jar,
        &[
            ("id_token_hint", &t.id_token),
            ("post_logout_redirect_uri", AFTER),
            ("state", "bye 1"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], format!("{AFTER}?state=bye%201"));
    assert_eq!(account_status(&app, &jar).await, 303, "signed out");

    // Every token of that session is dead.
    assert!(!introspect_active(&app, &client_id, &secret, &t.refresh).await);
    let t2 = sign_in(&app, &mut jar, &client_id, &secret).await;
    assert_eq!(userinfo_status(&app, &t2.access).await, 200);

    // The confirmation path: the page, then "Sign out" (CSRF-checked), then the redirect.
    let res = logout(
        &app,
        &mut jar,
        &[
            ("client_id", &client_id),
            ("post_logout_redirect_uri", AFTER),
            ("state", "s2"),
        ],
    )
    .await;
    let html = res.text().await.unwrap();
    let res = app
        .client
        .post(app.url("/oidc/logout/confirm"))
        .header("cookie", jar.header())
        .form(&[
            ("csrf", input_value(&html, "csrf").unwrap().as_str()),
            ("client_id", client_id.as_str()),
            ("post_logout_redirect_uri", AFTER),
            ("state", "s2"),
        ])
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    assert_eq!(res.status(), 200, "the way back is a page after a form");
    assert_eq!(landing(res).await, format!("{AFTER}?state=s2"));
    assert_eq!(account_status(&app, &jar).await, 303);
    assert_eq!(userinfo_status(&app, &t2.access).await, 401);
    assert!(!introspect_active(&app, &client_id, &secret, &t2.access).await);

    // prompt=none after the sign-out: login_required.
    let (_, challenge) = pkce();
    let url = authorize_url(&client_id, RP, &challenge, "&prompt=none");
    let back = browser(&app, &mut jar, &url).await;
    assert_eq!(query(&back, "error").as_deref(), Some("login_required"));
    assert_eq!(query(&back, "state").as_deref(), Some("st"));

    // Nothing to redirect to: the "signed out" page.
    let res = logout(&app, &mut jar, &[]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are signed out"));
}
both!(
    rp_initiated_logout_hint_confirm_and_refusals,
    rp_initiated_logout
);
