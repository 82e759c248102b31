//! The pages over plain HTTP, as a browser without JavaScript would use them: forms, CSRF,
//! cookies and headers. (The browser tests in e2e/ drive the same pages in Chromium.)

use portcullis_testkit::{
    both, input_value, spawn_app, spawn_app_with, Backend, Jar, TestApp, ANN, PASSWORD,
};

pub(crate) async fn get(app: &TestApp, jar: &mut Jar, path: &str) -> (u16, String) {
    let res = app
        .client
        .get(app.url(path))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

pub(crate) async fn post(
    app: &TestApp,
    jar: &mut Jar,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let res = app
        .client
        .post(app.url(path))
        .header("cookie", jar.header())
        .form(form)
        .send()
        .await
        .unwrap();
    jar.absorb(&res);
    res
}

async fn register_and_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut jar = Jar::default();
    let (status, html) = get(&app, &mut jar, "/register").await;
    assert_eq!(status, 200);
    let csrf = input_value(&html, "csrf").unwrap();
    let res = post(
        &app,
        &mut jar,
        "/register",
        &[
            ("csrf", &csrf),
            ("account_type", "personal"),
            ("number", "3782 822463 10005"),
            ("verification", "1234"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Step 2 of 2"));
    let token = input_value(&html, "token").unwrap();
    let res = post(
        &app,
        &mut jar,
        "/register/account",
        &[
            ("csrf", &csrf),
            ("token", &token),
            ("user_id", "ann.example"),
            ("password", PASSWORD),
            ("question_0", "1"),
            ("answer_0", "Rex"),
            ("question_1", "2"),
            ("answer_1", "Volvo"),
            ("question_2", "3"),
            ("answer_2", "Marie"),
            ("code_channel", "email"),
        ],
    )
    .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());

    let (_, html) = get(&app, &mut jar, "/").await;
    let csrf_before = input_value(&html, "csrf").unwrap();
    let res = post(
        &app,
        &mut jar,
        "/",
        &[
            ("csrf", &csrf_before),
            ("user_id", "ANN.EXAMPLE"),
            ("password", PASSWORD),
            ("account_type", "personal"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account");
    let set = portcullis_testkit::set_cookies(&res);
    let session = set
        .iter()
        .find(|c| c.starts_with("__Host-portcullis_session="))
        .expect("session cookie");
    for attr in ["Path=/", "HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(session.contains(attr), "{session} lacks {attr}");
    }
    assert!(!session.contains("Domain"));
    let (status, html) = get(&app, &mut jar, "/account").await;
    assert_eq!(status, 200);
    assert!(html.contains("ending 0005"), "{html}");
    assert!(html.contains("Platinum Card"));
    // The greeting is the holder's name from the registry, not the User ID.
    assert!(html.contains("Welcome, Ann Example"), "{html}");
    assert!(!html.contains("378282246310005"));

    // The CSRF token from before sign-in no longer works (the cookie was rotated).
    let res = post(&app, &mut jar, "/signout", &[("csrf", &csrf_before)]).await;
    assert_eq!(res.headers()["location"], "/account");
    let (_, html) = get(&app, &mut jar, "/account").await;
    let csrf = input_value(&html, "csrf").unwrap();
    let res = post(&app, &mut jar, "/signout", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 303);
    let (status, _) = get(&app, &mut jar, "/account").await;
    assert_eq!(status, 303, "signed out: /account redirects to sign in");
}
both!(
    register_sign_in_and_account_home_through_the_pages,
    register_and_sign_in
);

#[tokio::test]
async fn forms_refuse_missing_or_wrong_csrf() {
    let app = spawn_app(Backend::Sqlite).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let mut jar = Jar::default();
    let (_, html) = get(&app, &mut jar, "/").await;
    let csrf = input_value(&html, "csrf").unwrap();
    let form = |c: &str| {
        vec![
            ("csrf".to_owned(), c.to_owned()),
            ("user_id".to_owned(), "ann.example".to_owned()),
            ("password".to_owned(), PASSWORD.to_owned()),
            ("account_type".to_owned(), "personal".to_owned()),
        ]
    };
    // Missing token, wrong token, right token without its cookie, cross-site origin.
    for (token, cookie, origin) in [
        ("", jar.header(), None),
        ("AAAA", jar.header(), None),
        (csrf.as_str(), String::new(), None),
        (csrf.as_str(), jar.header(), Some("https://evil.example")),
    ] {
        let mut req = app
            .client
            .post(app.url("/"))
            .header("cookie", cookie)
            .form(&form(token));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 403, "token {token:?}");
        assert!(res.text().await.unwrap().contains("this form expired"));
    }
    let res = app
        .client
        .post(app.url("/"))
        .header("cookie", jar.header())
        .form(&form(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in [
        "/",
        "/register",
        "/account",
        "/nowhere",
        "/healthz",
        "/api/v1/me",
        "/api/v1/security-questions",
        "/static/style.css",
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        if !path.starts_with("/static/") {
            assert_eq!(h["cache-control"], "no-store", "{path}");
        }
        assert!(h.contains_key("x-request-id"), "{path}");
        // Plain HTTP: never HSTS (RFC 6797 §7.2); over TLS see tls.rs.
        assert!(!h.contains_key("strict-transport-security"), "{path}");
    }
}

/// Behind a TLS-terminating proxy named in `limits.trusted_proxies`, its
/// `X-Forwarded-Proto: https` brings HSTS (a year, subdomains); the same header from anyone
/// else does not.
async fn hsts_behind_a_proxy(backend: Backend) {
    let proxied = spawn_app_with(backend, |c| {
        c.limits.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let direct = spawn_app(backend).await;
    for path in ["/", "/healthz", "/api/v1/security-questions"] {
        let res = proxied
            .client
            .get(proxied.url(path))
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        let hsts = res.headers()["strict-transport-security"].to_str().unwrap();
        let max_age: u64 = hsts
            .split(';')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(
            max_age >= 31_536_000 && hsts.contains("includeSubDomains"),
            "{path}: HSTS for at least a year: {hsts}"
        );
        let res = proxied.client.get(proxied.url(path)).send().await.unwrap();
        assert!(!res.headers().contains_key("strict-transport-security"));
        let res = direct
            .client
            .get(direct.url(path))
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        assert!(
            !res.headers().contains_key("strict-transport-security"),
            "{path}: an untrusted peer's header counts for nothing"
        );
    }
}

both!(
    hsts_follows_a_trusted_proxy_that_terminated_tls,
    hsts_behind_a_proxy
);

/// No session fixation: a session cookie the browser already holds (planted by an attacker,
/// or left from an earlier session) never becomes the signed-in session. Sign-in always
/// issues a new random value, and signing in again issues another.
async fn fixation(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    const SESSION: &str = "__Host-portcullis_session";
    let planted = "attacker-chosen-value-0123456789abcdefghijklmnop";
    let mut sessions = Vec::new();
    for _ in 0..2 {
        // A browser holding the planted value (the signed-in page redirects away from the
        // sign-in form, so each round starts from a fresh jar).
        let mut jar = Jar::default();
        jar.0.push((SESSION.to_owned(), planted.to_owned()));
        let (_, html) = get(&app, &mut jar, "/").await;
        let csrf = input_value(&html, "csrf").unwrap();
        let res = post(
            &app,
            &mut jar,
            "/",
            &[
                ("csrf", &csrf),
                ("user_id", "ann.example"),
                ("password", PASSWORD),
                ("account_type", "personal"),
            ],
        )
        .await;
        assert_eq!(res.status(), 303);
        let value = jar.get(SESSION).unwrap().to_owned();
        assert_ne!(value, planted, "the planted value became the session");
        assert!(value.len() >= 43, "at least 256 bits: {value}");
        sessions.push(value);
        let (status, _) = get(&app, &mut jar, "/account").await;
        assert_eq!(status, 200);
    }
    assert_ne!(
        sessions[0], sessions[1],
        "a second sign-in gets a new session value"
    );
    // The planted value opens nothing.
    let mut attacker = Jar::default();
    attacker.0.push((SESSION.to_owned(), planted.to_owned()));
    let (status, _) = get(&app, &mut attacker, "/account").await;
    assert_eq!(status, 303);
    // Through the API, each sign-in gets its own token too.
    let a = app.token("ann.example", PASSWORD, "personal").await;
    let b = app.token("ann.example", PASSWORD, "personal").await;
    assert_ne!(a, b);
}
both!(
    sign_in_issues_a_new_session_value_and_ignores_a_planted_one,
    fixation
);

#[tokio::test]
async fn pages_are_small_and_have_no_inline_script_or_style() {
    let app = spawn_app(Backend::Sqlite).await;
    // Everything a page loads: both stylesheets and both scripts.
    let mut css = String::new();
    for asset in [
        "/static/style.css",
        "/static/theme.css",
        "/static/passkeys.js",
        "/static/password.js",
    ] {
        let res = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        css.push_str(&res.text().await.unwrap());
    }
    for path in ["/", "/register", "/demo/outbox"] {
        let html = app
            .client
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.len() + css.len() < 50_000,
            "{path}: {} bytes with its stylesheets and scripts",
            html.len() + css.len()
        );
        // The scripts are the external passkeys and password files; nothing inline.
        let rest = html
            .replace(r#"<script src="/static/passkeys.js" defer></script>"#, "")
            .replace(r#"<script src="/static/password.js" defer></script>"#, "");
        assert!(!rest.contains("<script"), "{path}");
        assert!(!html.contains(" style=\""), "{path}");
        assert!(
            !html.contains(" on") || !html.contains("onclick="),
            "{path}"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{path}: no third-party requests"
        );
    }
}

#[tokio::test]
async fn the_sign_in_page_keeps_the_user_id_but_never_the_password() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut jar = Jar::default();
    let (_, html) = get(&app, &mut jar, "/").await;
    let csrf = input_value(&html, "csrf").unwrap();
    let res = post(
        &app,
        &mut jar,
        "/",
        &[
            ("csrf", &csrf),
            ("user_id", "ann.example"),
            ("password", "Secret-Guess-1"),
            ("account_type", "personal"),
        ],
    )
    .await;
    assert_eq!(res.status(), 401);
    let html = res.text().await.unwrap();
    assert!(html.contains("value=\"ann.example\""));
    assert!(!html.contains("Secret-Guess-1"));
    assert!(html.contains("is not correct"));
}

async fn recover_through_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    for _ in 0..6 {
        app.sign_in("ann.example", "Wrong-Horse-1", "personal")
            .await;
    }
    let mut jar = Jar::default();
    let (status, html) = get(&app, &mut jar, "/recover/password").await;
    assert_eq!(status, 200);
    let csrf = input_value(&html, "csrf").unwrap();
    let res = post(
        &app,
        &mut jar,
        "/recover/password",
        &[("csrf", &csrf), ("user_id", "ann.example")],
    )
    .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("Confirm it is you"));
    assert!(html.contains("What was the name of your first pet?"));
    let token = input_value(&html, "token").unwrap();
    let seen = app.outbox_messages().len();
    let res = post(
        &app,
        &mut jar,
        "/recover/password/verify",
        &[
            ("csrf", &csrf),
            ("token", &token),
            ("method", "card"),
            ("card_id", "1234"),
        ],
    )
    .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("a•••@example.com"), "{html}");
    let code = super::recovery::latest_code(&app, "ann@example.com", seen).await;
    let res = post(
        &app,
        &mut jar,
        "/recover/password/code",
        &[("csrf", &csrf), ("token", &token), ("code", "000000")],
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = post(
        &app,
        &mut jar,
        "/recover/password/code",
        &[("csrf", &csrf), ("token", &token), ("code", &code)],
    )
    .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("Your account is unlocked"), "{html}");
    let reset = input_value(&html, "token").unwrap();
    let res = post(
        &app,
        &mut jar,
        "/recover/password/reset",
        &[
            ("csrf", &csrf),
            ("token", &reset),
            ("new_password", "Brand-New-Day-9"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Your password is changed"));
    assert_eq!(
        app.sign_in("ann.example", "Brand-New-Day-9", "personal")
            .await
            .status(),
        201
    );

    // Forgot User ID through the pages.
    let (_, html) = get(&app, &mut jar, "/recover/user-id").await;
    let csrf = input_value(&html, "csrf").unwrap();
    let seen = app.outbox_messages().len();
    let res = post(
        &app,
        &mut jar,
        "/recover/user-id",
        &[
            ("csrf", &csrf),
            ("email", "ann@example.com"),
            ("channel", "email"),
        ],
    )
    .await;
    let html = res.text().await.unwrap();
    let token = input_value(&html, "token").unwrap();
    let code = super::recovery::latest_code(&app, "ann@example.com", seen).await;
    let res = post(
        &app,
        &mut jar,
        "/recover/user-id/code",
        &[("csrf", &csrf), ("token", &token), ("code", &code)],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("<strong>ann.example</strong>"));
}
both!(
    forgot_password_unlock_and_forgot_user_id_through_the_pages,
    recover_through_pages
);

/// The issuer's colours come from the configuration as a stylesheet of their own, linked after
/// the main one, with the same security headers as every answer and a cache lifetime.
#[tokio::test]
async fn the_theme_stylesheet_carries_the_configured_colours() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.theme.brand = "#1a4d2e".into();
        c.theme.brand_ink = "#fffdf5".into();
        c.theme.brand_dark = "#8fd6a8".into();
        c.theme.brand_ink_dark = "#04140a".into();
    })
    .await;
    let res = app
        .client
        .get(app.url("/static/theme.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/css; charset=utf-8");
    assert!(header("content-security-policy").contains("style-src 'self'"));
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "public, max-age=3600");
    let css = res.text().await.unwrap();
    let (light, dark) = css
        .split_once("@media (prefers-color-scheme: dark)")
        .unwrap();
    assert!(
        light.contains("--brand: #1a4d2e; --brand-ink: #fffdf5;"),
        "{css}"
    );
    assert!(
        dark.contains("--brand: #8fd6a8; --brand-ink: #04140a;"),
        "{css}"
    );

    let (_, html) = get(&app, &mut Jar::default(), "/").await;
    let main = html.find(r#"<link rel="stylesheet" href="/static/style.css">"#);
    let theme = html.find(r#"<link rel="stylesheet" href="/static/theme.css">"#);
    assert!(
        matches!((main, theme), (Some(m), Some(t)) if m < t),
        "theme.css is linked after style.css, so it wins"
    );
    assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"));
}
