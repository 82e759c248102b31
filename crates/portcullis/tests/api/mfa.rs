//! Flows 2, 6 and 7: second factors (authenticator apps checked against pyotp, codes by
//! email, recovery codes), trusted devices, re-authentication, step-up on a new device, the
//! "This was not me" link and "Remember me".

use portcullis_core::clock::Clock;
use portcullis_testkit::smtp::{skip_without_venv, venv_python};
use portcullis_testkit::{
    both, input_value, spawn_app, spawn_app_with, Backend, Jar, TestApp, ANN, PASSWORD,
};
use serde_json::{json, Value};

/// A TOTP code from pyotp (an independent implementation) for `secret` at unix time `at`;
/// `None` (with a loud line) when the venv has no pyotp.
fn pyotp_code(secret: &str, at: i64) -> Option<String> {
    let Some(python) = venv_python() else {
        skip_without_venv("the pyotp checks");
        return None;
    };
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, pyotp; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))",
            secret,
            &at.to_string(),
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        skip_without_venv(&format!(
            "the pyotp checks (pyotp missing: {})",
            String::from_utf8_lossy(&out.stderr)
        ));
        return None;
    }
    Some(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

async fn post_bearer(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn delete_bearer(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn sign_in_device(app: &TestApp, device: Option<&str>) -> (u16, Value) {
    let mut body =
        json!({"user_id": "ann.example", "password": PASSWORD, "account_type": "personal"});
    if let Some(d) = device {
        body["device_token"] = json!(d);
    }
    let res = app.post_json("/api/v1/sessions", &body).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn mfa(
    app: &TestApp,
    challenge: &Value,
    method: &str,
    code: &str,
    trust: bool,
) -> (u16, Value) {
    let res = app
        .post_json(
            "/api/v1/sessions/mfa",
            &json!({
                "challenge_token": challenge["challenge_token"],
                "method": method,
                "code": code,
                "trust_device": trust,
            }),
        )
        .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// The 6-digit code in the newest message whose subject contains `subject`.
fn latest_code(app: &TestApp, subject: &str) -> String {
    let messages = app.outbox_messages();
    let body = messages
        .iter()
        .rev()
        .find(|m| m["subject"].as_str().unwrap().contains(subject))
        .unwrap_or_else(|| panic!("no message about {subject}: {messages:?}"))["body"]
        .as_str()
        .unwrap()
        .to_owned();
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned()
}

pub(crate) async fn enable_email_codes(app: &TestApp, token: &str) {
    let res = post_bearer(
        app,
        "/api/v1/me/factors/code",
        token,
        &json!({"channel": "email"}),
    )
    .await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
}

async fn totp(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    let res = post_bearer(&app, "/api/v1/me/factors/totp", &token, &json!({})).await;
    assert_eq!(res.status(), 201);
    let enrol: Value = res.json().await.unwrap();
    let secret = enrol["secret"].as_str().unwrap().to_owned();
    let uri = enrol["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let now = app.clock.now().0;
    let Some(code) = pyotp_code(&secret, now) else {
        return;
    };
    // A wrong code does not turn it on.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let res = post_bearer(
        &app,
        "/api/v1/me/factors/totp/confirm",
        &token,
        &json!({"code": wrong}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = post_bearer(
        &app,
        "/api/v1/me/factors/totp/confirm",
        &token,
        &json!({"code": code}),
    )
    .await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());

    // Sign-in now asks for the app's code.
    app.clock.advance(30);
    let (status, challenge) = sign_in_device(&app, None).await;
    assert_eq!(status, 200, "{challenge}");
    assert_eq!(challenge["mfa_required"], true);
    assert_eq!(challenge["methods"], json!(["totp"]));
    let code = pyotp_code(&secret, app.clock.now().0).unwrap();
    let (status, session) = mfa(&app, &challenge, "totp", &code, false).await;
    assert_eq!(status, 201, "{session}");
    let bearer = session["session_token"].as_str().unwrap();
    assert_eq!(app.get_bearer("/api/v1/me", bearer).await.status(), 200);

    // The same code again (same 30-second step) is refused: never the same code twice.
    let (_, challenge) = sign_in_device(&app, None).await;
    let (status, problem) = mfa(&app, &challenge, "totp", &code, false).await;
    assert_eq!(status, 400, "{problem}");
    // One step late (the previous step's code) is refused too, once a later one was used.
    let previous = pyotp_code(&secret, app.clock.now().0 - 30).unwrap();
    let (status, _) = mfa(&app, &challenge, "totp", &previous, false).await;
    assert_eq!(status, 400);
    // The next step's code (clock skew of one step) is accepted.
    let next = pyotp_code(&secret, app.clock.now().0 + 30).unwrap();
    let (status, _) = mfa(&app, &challenge, "totp", &next, false).await;
    assert_eq!(status, 201);
    // Two steps away is not.
    app.clock.advance(30);
    let (_, challenge) = sign_in_device(&app, None).await;
    let far = pyotp_code(&secret, app.clock.now().0 + 90).unwrap();
    let (status, _) = mfa(&app, &challenge, "totp", &far, false).await;
    assert_eq!(status, 400);
}
both!(totp_codes_from_pyotp_are_accepted_once, totp);

async fn reauth(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    app.clock.advance(6 * 60);
    for path in [
        "/api/v1/me/factors/totp",
        "/api/v1/me/factors/recovery-codes",
    ] {
        let res = post_bearer(&app, path, &token, &json!({})).await;
        assert_eq!(res.status(), 403, "{path}");
        let problem: Value = res.json().await.unwrap();
        assert!(problem["type"]
            .as_str()
            .unwrap()
            .ends_with("reauthentication-required"));
    }
    let res = post_bearer(
        &app,
        "/api/v1/me/reauthenticate",
        &token,
        &json!({"password": "Wrong-Horse-1"}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = post_bearer(
        &app,
        "/api/v1/me/reauthenticate",
        &token,
        &json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = post_bearer(&app, "/api/v1/me/factors/totp", &token, &json!({})).await;
    assert_eq!(res.status(), 201);
    // ... for five minutes.
    app.clock.advance(5 * 60 + 1);
    let res = post_bearer(
        &app,
        "/api/v1/me/factors/code",
        &token,
        &json!({"channel": "email"}),
    )
    .await;
    assert_eq!(res.status(), 403);
}
both!(factor_changes_need_the_password_within_five_minutes, reauth);

async fn recovery_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    enable_email_codes(&app, &token).await;
    let res = post_bearer(
        &app,
        "/api/v1/me/factors/recovery-codes",
        &token,
        &json!({}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let first: Vec<String> =
        serde_json::from_value(res.json::<Value>().await.unwrap()["codes"].clone()).unwrap();
    assert_eq!(first.len(), 10);
    let mut unique = first.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10);

    let (status, challenge) = sign_in_device(&app, None).await;
    assert_eq!(status, 200);
    assert_eq!(challenge["methods"], json!(["email", "recovery_code"]));
    // Typed in capitals with spaces: still accepted.
    let typed = first[0].to_uppercase().replace('-', " ");
    let (status, body) = mfa(&app, &challenge, "recovery_code", &typed, false).await;
    assert_eq!(status, 201, "{body}");
    // Used once: refused the second time.
    let (_, challenge) = sign_in_device(&app, None).await;
    let (status, _) = mfa(&app, &challenge, "recovery_code", &first[0], false).await;
    assert_eq!(status, 400);
    let res = app.get_bearer("/api/v1/me/factors", &token).await;
    assert_eq!(res.json::<Value>().await.unwrap()["recovery_codes_left"], 9);

    // New codes void the old ones.
    let res = post_bearer(
        &app,
        "/api/v1/me/factors/recovery-codes",
        &token,
        &json!({}),
    )
    .await;
    let second: Vec<String> =
        serde_json::from_value(res.json::<Value>().await.unwrap()["codes"].clone()).unwrap();
    let (status, _) = mfa(&app, &challenge, "recovery_code", &first[1], false).await;
    assert_eq!(status, 400);
    let (status, _) = mfa(&app, &challenge, "recovery_code", &second[0], false).await;
    assert_eq!(status, 201);
    let subjects: Vec<String> = app
        .outbox_messages()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        subjects.iter().any(|s| s.contains("New recovery codes")),
        "{subjects:?}"
    );
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("recovery code was used")),
        "{subjects:?}"
    );
}
both!(
    recovery_codes_work_once_and_new_ones_void_the_old,
    recovery_codes
);

async fn email_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    enable_email_codes(&app, &token).await;
    let (_, challenge) = sign_in_device(&app, None).await;
    assert_eq!(
        challenge["method_details"][0]["destination"],
        "a•••@example.com"
    );
    let send = json!({"challenge_token": challenge["challenge_token"], "method": "email"});
    let res = app.post_json("/api/v1/sessions/mfa/send", &send).await;
    assert_eq!(res.status(), 202);
    // Again at once: too soon.
    let res = app.post_json("/api/v1/sessions/mfa/send", &send).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    // A method the challenge did not offer.
    let res = app
        .post_json(
            "/api/v1/sessions/mfa/send",
            &json!({"challenge_token": challenge["challenge_token"], "method": "sms"}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let code = latest_code(&app, "security code");
    let (status, _) = mfa(&app, &challenge, "email", &code, false).await;
    assert_eq!(status, 201);
    // The challenge is spent.
    let (status, _) = mfa(&app, &challenge, "email", &code, false).await;
    assert_eq!(status, 410);
    // Removing the factor (recently signed in) turns the second step off.
    let factors: Value = app
        .get_bearer("/api/v1/me/factors", &token)
        .await
        .json()
        .await
        .unwrap();
    let id = factors["factors"][0]["id"].as_i64().unwrap();
    assert_eq!(
        delete_bearer(&app, &format!("/api/v1/me/factors/{id}"), &token)
            .await
            .status(),
        204
    );
    let (status, _) = sign_in_device(&app, None).await;
    assert_eq!(status, 201);
}
both!(email_codes_as_a_second_factor, email_codes);

async fn trusted(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    enable_email_codes(&app, &token).await;
    let pass = |trust: bool| {
        let app = &app;
        async move {
            let (status, challenge) = sign_in_device(app, None).await;
            assert_eq!(status, 200);
            app.post_json(
                "/api/v1/sessions/mfa/send",
                &json!({"challenge_token": challenge["challenge_token"], "method": "email"}),
            )
            .await;
            let code = latest_code(app, "security code");
            let (status, session) = mfa(app, &challenge, "email", &code, trust).await;
            assert_eq!(status, 201);
            session
        }
    };
    let session = pass(true).await;
    let device = session["device_token"].as_str().unwrap().to_owned();
    // The trusted device skips the second step.
    let (status, session) = sign_in_device(&app, Some(&device)).await;
    assert_eq!(status, 201);
    let token = session["session_token"].as_str().unwrap().to_owned();
    let factors: Value = app
        .get_bearer("/api/v1/me/factors", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(factors["trusted_devices"].as_array().unwrap().len(), 1);
    let device_id = factors["trusted_devices"][0]["id"].as_i64().unwrap();
    // Revoked: asked again.
    assert_eq!(
        delete_bearer(
            &app,
            &format!("/api/v1/me/devices/{device_id}/trust"),
            &token
        )
        .await
        .status(),
        204
    );
    let (status, _) = sign_in_device(&app, Some(&device)).await;
    assert_eq!(status, 200);
    // Trusted again, then 30 days pass: asked again.
    let session = pass(true).await;
    let device = session["device_token"].as_str().unwrap().to_owned();
    app.clock.advance(29 * 86_400);
    assert_eq!(sign_in_device(&app, Some(&device)).await.0, 201);
    app.clock.advance(2 * 86_400);
    assert_eq!(sign_in_device(&app, Some(&device)).await.0, 200);
}
both!(
    trusted_devices_skip_the_second_step_until_expiry_or_revocation,
    trusted
);

async fn step_up(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.risk.new_device_step_up = true).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    // The first device after registration is not asked.
    let (status, first) = sign_in_device(&app, None).await;
    assert_eq!(status, 201, "{first}");
    let known = first["device_token"].as_str().unwrap().to_owned();
    let first_token = first["session_token"].as_str().unwrap().to_owned();
    // A device the account has not seen is asked for a code to the registered channel.
    let (status, challenge) = sign_in_device(&app, None).await;
    assert_eq!(status, 200, "{challenge}");
    assert_eq!(challenge["new_device"], true);
    assert_eq!(challenge["methods"], json!(["email"]));
    // The known device is not.
    assert_eq!(sign_in_device(&app, Some(&known)).await.0, 201);
    app.post_json(
        "/api/v1/sessions/mfa/send",
        &json!({"challenge_token": challenge["challenge_token"], "method": "email"}),
    )
    .await;
    let code = latest_code(&app, "security code");
    let (status, _) = mfa(&app, &challenge, "email", &code, false).await;
    assert_eq!(status, 201);

    // The owner is told, with a link that ends every session and locks the account.
    let notice = app
        .outbox_messages()
        .into_iter()
        .find(|m| m["subject"].as_str().unwrap().contains("New sign-in"))
        .expect("a new-device notice");
    let body = notice["body"].as_str().unwrap();
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/not-me/"))
        .unwrap_or_else(|| panic!("no link in {body}"));
    let not_me = link.rsplit('/').next().unwrap();
    // The page behind the link only asks (a mail scanner opening it changes nothing).
    let res = app
        .client
        .get(app.url(&format!("/not-me/{not_me}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.get_bearer("/api/v1/me", &first_token).await.status(),
        200
    );
    let res = app
        .post_json("/api/v1/not-me", &json!({"token": not_me}))
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get_bearer("/api/v1/me", &first_token).await.status(),
        401
    );
    assert_eq!(sign_in_device(&app, Some(&known)).await.0, 423);
    // Used once.
    let res = app
        .post_json("/api/v1/not-me", &json!({"token": not_me}))
        .await;
    assert_eq!(res.status(), 410);
}
both!(a_new_device_steps_up_and_not_me_locks_the_account, step_up);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_second_step_codes_count_towards_the_lock() {
    let app = spawn_app(Backend::Sqlite).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    enable_email_codes(&app, &token).await;
    let mut wrong = 0;
    let mut statuses = Vec::new();
    // Six wrong codes over two challenges lock the account (threshold 6), even though the
    // password was right each time.
    while wrong < 6 {
        let (status, challenge) = sign_in_device(&app, None).await;
        assert_eq!(status, 200, "{challenge}");
        for _ in 0..5 {
            if wrong == 6 {
                break;
            }
            let (status, _) = mfa(&app, &challenge, "email", "000000", false).await;
            statuses.push(status);
            wrong += 1;
        }
    }
    assert!(
        statuses.iter().all(|s| *s == 400 || *s == 410),
        "{statuses:?}"
    );
    let (status, _) = sign_in_device(&app, None).await;
    assert_eq!(status, 423);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_me_keeps_only_the_user_id_and_forget_me_removes_it() {
    let app = spawn_app(Backend::Sqlite).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let mut jar = Jar::default();
    let get = |jar: &Jar| {
        let req = app.client.get(app.url("/")).header("cookie", jar.header());
        async move { req.send().await.unwrap() }
    };
    let res = get(&jar).await;
    jar.absorb(&res);
    let html = res.text().await.unwrap();
    assert!(html.contains("Do not tick this on a shared or public device"));
    let csrf = input_value(&html, "csrf").unwrap();
    let res = app
        .client
        .post(app.url("/"))
        .header("cookie", jar.header())
        .form(&[
            ("csrf", csrf.as_str()),
            ("user_id", "ann.example"),
            ("password", PASSWORD),
            ("account_type", "personal"),
            ("remember", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let set: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let remember = set
        .iter()
        .find(|c| c.starts_with("__Host-portcullis_remember="))
        .unwrap();
    assert!(
        remember.starts_with("__Host-portcullis_remember=ann.example;"),
        "{remember}"
    );
    assert!(
        remember.contains("HttpOnly") && remember.contains("Secure"),
        "{remember}"
    );
    assert!(!set.iter().any(|c| c.contains(PASSWORD)));
    // The device cookie comes with the first sign-in of a browser.
    assert!(
        set.iter()
            .any(|c| c.starts_with("__Host-portcullis_device=")),
        "{set:?}"
    );
    jar.absorb(&res);
    // Signed out (only the remembered User ID and device remain): the form is filled in.
    let mut fresh = Jar(vec![(
        "__Host-portcullis_remember".into(),
        "ann.example".into(),
    )]);
    let res = get(&fresh).await;
    fresh.absorb(&res);
    let html = res.text().await.unwrap();
    assert_eq!(
        input_value(&html, "user_id").as_deref(),
        Some("ann.example")
    );
    assert!(html.contains("Forget me"));
    let csrf = input_value(&html, "csrf").unwrap();
    let res = app
        .client
        .post(app.url("/forget-me"))
        .header("cookie", fresh.header())
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cleared = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-portcullis_remember="))
        .unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}
