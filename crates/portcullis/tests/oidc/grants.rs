//! Grants against the running server: tokens end with the sign-in session (idle and
//! absolute lifetime), and a failed exchange (another client, a wrong verifier or DPoP key)
//! never uses up someone else's code or refresh token.

use portcullis_core::clock::Clock;
use portcullis_core::oidc::ClientAuth;
use portcullis_testkit::{both, Backend, Jar, PASSWORD};
use serde_json::Value;

use super::support::*;

async fn session_lifetime(backend: Backend) {
    let app = app(backend).await;
    let client_id = register(&app, ClientAuth::None, None, false).await;
    let mut jar = Jar::default();
    let (code, verifier) = offline_code(&app, &mut jar, &client_id).await;
    let res = exchange(&app, &client_id, &code, &verifier, None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let first = body["refresh_token"].as_str().unwrap().to_owned();

    // The person keeps using Portcullis every 10 minutes (never idle) for 11 h 50 min.
    for _ in 0..71 {
        app.clock.advance(600);
        assert_eq!(account_status(&app, &jar).await, 200);
    }
    // 12 h − 50 s after sign-in the session is open: the refresh works.
    app.clock.advance(550);
    let res = refresh(&app, &client_id, &first, None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let second = body["refresh_token"].as_str().unwrap().to_owned();

    // 12 h + 50 s: past the absolute lifetime (not idle: last use 650 s ago), the access
    // token itself 100 s old (of 300).
    app.clock.advance(100);
    let res = app
        .client
        .get(app.url("/oidc/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "userinfo after the session's absolute end"
    );
    assert_eq!(
        error_of(refresh(&app, &client_id, &second, None).await).await,
        (400, "invalid_grant".to_owned()),
        "refresh after the session's absolute end"
    );
    assert_eq!(
        account_status(&app, &jar).await,
        303,
        "the sign-in session itself has ended"
    );
}
both!(
    oidc_tokens_end_with_the_sessions_absolute_lifetime,
    session_lifetime
);

async fn no_burning(backend: Backend) {
    let app = app(backend).await;
    let a = register(&app, ClientAuth::None, None, false).await;
    let b = register(&app, ClientAuth::None, None, false).await;
    let key = RpKey::new("a-dpop");
    let thief = RpKey::new("other-dpop");
    let token_url = format!("{ISSUER}/oidc/token");
    let info_url = format!("{ISSUER}/oidc/userinfo");
    let mut jar = Jar::default();
    let (code, verifier) = offline_code(&app, &mut jar, &a).await;

    // Another client with the right verifier, then the right client with a wrong one:
    // refused, and the code is still there for the right request.
    let res = exchange(&app, &b, &code, &verifier, None).await;
    assert_eq!(error_of(res).await, (400, "invalid_grant".to_owned()));
    let wrong = pkce().0;
    let res = exchange(&app, &a, &code, &wrong, None).await;
    assert_eq!(error_of(res).await, (400, "invalid_grant".to_owned()));
    let now = app.clock.now().0;
    let proof = key.proof("POST", &token_url, now, None);
    let res = exchange(&app, &a, &code, &verifier, Some(proof)).await;
    assert_eq!(res.status(), 200, "the refusals did not burn the code");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let first = body["refresh_token"].as_str().unwrap().to_owned();

    // The refresh token: another client, then another DPoP key, cannot use it up. (The
    // right proof's htu differs in scheme and host case: the same URL, RFC 9449 §4.3.)
    let res = refresh(
        &app,
        &b,
        &first,
        Some(key.proof("POST", &token_url, now, None)),
    )
    .await;
    assert_eq!(error_of(res).await, (400, "invalid_grant".to_owned()));
    let res = refresh(
        &app,
        &a,
        &first,
        Some(thief.proof("POST", &token_url, now, None)),
    )
    .await;
    assert_eq!(error_of(res).await, (400, "invalid_dpop_proof".to_owned()));
    let res = refresh(
        &app,
        &a,
        &first,
        Some(key.proof(
            "POST",
            &token_url.replace("http://localhost", "HTTP://LocalHost"),
            now,
            None,
        )),
    )
    .await;
    assert_eq!(
        res.status(),
        200,
        "the refusals did not burn the refresh token"
    );
    let body: Value = res.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let userinfo = |access: String| {
        app.client
            .get(app.url("/oidc/userinfo"))
            .header("authorization", format!("DPoP {access}"))
            .header("DPoP", key.proof("GET", &info_url, now, Some(&access)))
            .send()
    };
    assert_eq!(userinfo(access.clone()).await.unwrap().status(), 200);
    // A proof of the right key whose `ath` is another token's hash: refused.
    let res = app
        .client
        .get(app.url("/oidc/userinfo"))
        .header("authorization", format!("DPoP {access}"))
        .header(
            "DPoP",
            key.proof("GET", &info_url, now, Some("another token")),
        )
        .send()
        .await
        .unwrap();
    // RFC 9449 §7.1: the proof is not for this token, so the token is refused.
    assert_eq!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .split_once(' ')
            .unwrap(),
        ("DPoP", "algs=\"ES256\", error=\"invalid_token\""),
        "ath mismatch"
    );
    assert_eq!(
        error_of(res).await,
        (401, "invalid_token".to_owned()),
        "ath mismatch"
    );

    // The used code replayed by another client: refused, and A's grant lives on…
    let res = exchange(&app, &b, &code, &verifier, None).await;
    assert_eq!(error_of(res).await, (400, "invalid_grant".to_owned()));
    assert_eq!(userinfo(access.clone()).await.unwrap().status(), 200);
    // …replayed by the client it was issued to: everything it issued is revoked.
    let proof = key.proof("POST", &token_url, now, None);
    let res = exchange(&app, &a, &code, &verifier, Some(proof)).await;
    assert_eq!(error_of(res).await, (400, "invalid_grant".to_owned()));
    assert_eq!(userinfo(access).await.unwrap().status(), 401);
}
both!(
    a_wrong_client_verifier_or_dpop_key_cannot_burn_a_code_or_refresh_token,
    no_burning
);

async fn max_age_resume(backend: Backend) {
    let app = app(backend).await;
    let client_id = register(&app, ClientAuth::None, None, false).await;
    let mut jar = Jar::default();
    let (_, challenge) = pkce();
    let back = browser(
        &app,
        &mut jar,
        &authorize_url(&client_id, RP, &challenge, ""),
    )
    .await;
    assert!(query(&back, "code").is_some());
    // 100 s later, a request with max_age=30: the session's sign-in is too old, so the
    // browser signs in again, 40 s after the request arrived (more than max_age). The new
    // sign-in was made for this request: a code, not another sign-in page.
    app.clock.advance(100);
    let url = authorize_url(&client_id, RP, &challenge, "&max_age=30");
    let back = browser_slow(&app, &mut jar, &url, 40).await;
    assert!(back.starts_with(RP), "{back}");
    assert!(query(&back, "code").is_some(), "{back}");

    // The same through `/oidc/resume` (where a sign-in's answer sent the browser before it
    // went on with the request itself, and where a redirect of such a node still may): a
    // request with max_age=30 waits for a sign-in; the sign-in comes, and the browser comes
    // back to the request 40 s after it. max_age was fixed when the request arrived, so
    // the sign-in made for it still gets a code.
    app.clock.advance(100);
    let res = app
        .client
        .get(real(&app, &url))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    assert!(res.headers()["location"].to_str().unwrap().starts_with('/'));
    let session = app.token("ann.example", PASSWORD, "personal").await;
    app.clock.advance(40);
    // The browser's session cookie (under the name the server gave it) now holds it.
    let mut cookies = jar.clone();
    let slot = cookies
        .0
        .iter_mut()
        .find(|(n, _)| n.ends_with("portcullis_session"))
        .expect("the browser's session cookie");
    slot.1 = session;
    let res = app
        .client
        .get(app.url("/oidc/resume"))
        .header("cookie", cookies.header())
        .send()
        .await
        .unwrap();
    let back = landing(res).await;
    assert!(back.starts_with(RP), "{back}");
    assert!(query(&back, "code").is_some(), "{back}");
}
both!(
    max_age_is_fixed_when_the_request_arrives_so_a_slow_resume_still_gets_a_code,
    max_age_resume
);
