//! Issue 13, part B: "This was not me" means recovery (the intruder's password, devices,
//! sessions and factors die, and only a new password gets the owner back in), one lockout
//! rule for the password and the current password, and security answers limited per
//! account across recovery steps. Each test plays several client addresses (the app trusts
//! the loopback proxy, so `X-Forwarded-For` names the client).

use portcullis_testkit::{both, spawn_app_with, Backend, TestApp, ANN, PASSWORD};
use serde_json::{json, Value};
use sqlx::Row;

const OWNER_IP: &str = "198.51.100.7";
const INTRUDER_IP: &str = "203.0.113.66";
const NEW_PASSWORD: &str = "Brand-New-Day-9";

/// The app with the loopback trusted as a proxy, so each request names its client.
pub async fn app_with_addresses(
    backend: Backend,
    tweak: impl FnOnce(&mut portcullis::config::Config),
) -> TestApp {
    spawn_app_with(backend, |c| {
        c.limits.trusted_proxies = vec!["127.0.0.1".into()];
        tweak(c);
    })
    .await
}

/// A request from `ip`, with a bearer token when given.
pub async fn send(
    app: &TestApp,
    ip: &str,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("x-forwarded-for", ip);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn post(
    app: &TestApp,
    ip: &str,
    path: &str,
    bearer: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    send(app, ip, reqwest::Method::POST, path, bearer, Some(body)).await
}

/// A sign-in from `ip` (with a device token when given).
pub async fn sign_in_from(
    app: &TestApp,
    ip: &str,
    password: &str,
    device: Option<&str>,
) -> (u16, Value) {
    let mut body =
        json!({"user_id": "ann.example", "password": password, "account_type": "personal"});
    if let Some(d) = device {
        body["device_token"] = json!(d);
    }
    post(app, ip, "/api/v1/sessions", None, &body).await
}

/// The newest message whose subject contains `subject`.
pub(crate) fn message(app: &TestApp, subject: &str) -> Value {
    let msgs = app.outbox_messages();
    msgs.iter()
        .rev()
        .find(|m| m["subject"].as_str().unwrap_or("").contains(subject))
        .cloned()
        .unwrap_or_else(|| panic!("no message about {subject:?}: {msgs:#?}"))
}

pub(crate) fn code_in(message: &Value) -> String {
    message["body"]
        .as_str()
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned()
}

/// Every table's text columns (and, on SQLite, every column as text) that hold `needle`.
async fn columns_holding(app: &TestApp, needle: &str) -> Vec<String> {
    let pool = app.built.store.pool();
    let columns: Vec<(String, String)> = match app.db.backend {
        Backend::Sqlite => {
            let tables: Vec<String> =
                sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>("name"))
                    .collect();
            let mut all = Vec::new();
            for table in tables {
                for r in sqlx::query(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(pool)
                    .await
                    .unwrap()
                {
                    all.push((table.clone(), r.get::<String, _>("name")));
                }
            }
            all
        }
        Backend::Postgres => sqlx::query(
            "SELECT CAST(table_name AS TEXT) AS t, CAST(column_name AS TEXT) AS c \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             AND data_type IN ('text', 'character varying', 'character')",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>("t"), r.get::<String, _>("c")))
        .collect(),
    };
    assert!(columns.len() > 20, "the scan sees the schema: {columns:?}");
    let mut holding = Vec::new();
    for (table, column) in columns {
        let n: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM \"{table}\" WHERE CAST(\"{column}\" AS TEXT) LIKE $1"
        ))
        .bind(format!("%{needle}%"))
        .fetch_one(pool)
        .await
        .unwrap()
        .get("n");
        if n > 0 {
            holding.push(format!("{table}.{column}"));
        }
    }
    holding
}

async fn not_me_is_recovery(backend: Backend) {
    let app = app_with_addresses(backend, |_| {}).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    // The owner's usual device.
    let (status, owner) = sign_in_from(&app, OWNER_IP, PASSWORD, None).await;
    assert_eq!(status, 201, "{owner}");
    let owner_device = owner["device_token"].as_str().unwrap().to_owned();
    let owner_session = owner["session_token"].as_str().unwrap().to_owned();

    // The intruder, with the stolen password, from a new device and another address.
    app.clock.advance(60);
    let (status, intruder) = sign_in_from(&app, INTRUDER_IP, PASSWORD, None).await;
    assert_eq!(status, 201, "{intruder}");
    let intruder_device = intruder["device_token"].as_str().unwrap().to_owned();
    let bearer = intruder["session_token"].as_str().unwrap().to_owned();
    // The owner is told, with a "This was not me" link; its token is nowhere in the
    // database in clear (the step holds its hash, the outbox row a sealed body).
    let notice = message(&app, "New sign-in");
    let body = notice["body"].as_str().unwrap();
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/not-me/"))
        .unwrap_or_else(|| panic!("no link in {body}"));
    let not_me = link.rsplit('/').next().unwrap().to_owned();
    assert!(not_me.len() >= 20, "{not_me}");
    assert_eq!(columns_holding(&app, &not_me).await, Vec::<String>::new());

    // The intruder adds an authenticator app, recovery codes, and trusts the device.
    let (status, enrol) = post(
        &app,
        INTRUDER_IP,
        "/api/v1/me/factors/totp",
        Some(&bearer),
        &json!({}),
    )
    .await;
    assert_eq!(status, 201, "{enrol}");
    let secret = enrol["secret"].as_str().unwrap().to_owned();
    let code = portcullis_testkit::totp_now(&app, &secret);
    let (status, answer) = post(
        &app,
        INTRUDER_IP,
        "/api/v1/me/factors/totp/confirm",
        Some(&bearer),
        &json!({"code": code}),
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    let (status, codes) = post(
        &app,
        INTRUDER_IP,
        "/api/v1/me/factors/recovery-codes",
        Some(&bearer),
        &json!({}),
    )
    .await;
    assert_eq!(status, 201, "{codes}");
    let intruder_recovery_code = codes["codes"][0].as_str().unwrap().to_owned();
    app.clock.advance(30);
    let (status, challenge) =
        sign_in_from(&app, INTRUDER_IP, PASSWORD, Some(&intruder_device)).await;
    assert_eq!(status, 200, "{challenge}");
    assert_eq!(challenge["methods"], json!(["totp", "recovery_code"]));
    let (status, trusted) = post(
        &app,
        INTRUDER_IP,
        "/api/v1/sessions/mfa",
        None,
        &json!({"challenge_token": challenge["challenge_token"], "method": "totp",
                "code": portcullis_testkit::totp_now(&app, &secret), "trust_device": true}),
    )
    .await;
    assert_eq!(status, 201, "{trusted}");
    let second_bearer = trusted["session_token"].as_str().unwrap().to_owned();
    app.clock.advance(60);
    // Trusted: the intruder's device skips the second step now.
    assert_eq!(
        sign_in_from(&app, INTRUDER_IP, PASSWORD, Some(&intruder_device))
            .await
            .0,
        201
    );

    // The owner presses "This was not me".
    let (status, answer) = post(
        &app,
        OWNER_IP,
        "/api/v1/not-me",
        None,
        &json!({"token": not_me}),
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    let told = message(&app, "We locked your");
    assert!(
        told["body"].as_str().unwrap().contains("new password"),
        "{told}"
    );
    // Every session is gone, the owner's as well.
    for token in [&bearer, &second_bearer, &owner_session] {
        assert_eq!(
            send(
                &app,
                OWNER_IP,
                reqwest::Method::GET,
                "/api/v1/me",
                Some(token),
                None
            )
            .await
            .0,
            401
        );
    }
    // The password is refused from every device and address, trusted or not, and stays
    // refused once the lock has run out: 423 (to the right password), never a session and
    // never a second step the intruder holds.
    for (ip, device) in [
        (INTRUDER_IP, Some(intruder_device.as_str())),
        (INTRUDER_IP, None),
        (OWNER_IP, Some(owner_device.as_str())),
    ] {
        let (status, problem) = sign_in_from(&app, ip, PASSWORD, device).await;
        assert_eq!(status, 423, "{problem}");
    }
    app.clock.advance(8 * 86_400);
    let (status, problem) = sign_in_from(&app, INTRUDER_IP, PASSWORD, Some(&intruder_device)).await;
    assert_eq!(status, 423, "after the lock's time: {problem}");
    // The intruder's recovery code is no way in either (there is no challenge to use it on).

    // The owner recovers with card ID + code: no unlock keeps the old password.
    let (status, start) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/start",
        None,
        &json!({"user_id": "ann.example"}),
    )
    .await;
    assert_eq!(status, 200);
    let token = start["recovery_token"].as_str().unwrap().to_owned();
    let (status, sent) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": token, "card_id": ANN.verification}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let code = code_in(&message(&app, "security code"));
    let (status, accepted) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": token, "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["unlocked"], false, "{accepted}");
    assert_eq!(accepted["new_password_required"], true, "{accepted}");
    let reset = accepted["reset_token"].as_str().unwrap().to_owned();
    // Still refused: only the new password unlocks.
    assert_eq!(
        sign_in_from(&app, OWNER_IP, PASSWORD, Some(&owner_device))
            .await
            .0,
        423
    );
    // The old password cannot be chosen again.
    let (status, problem) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/reset",
        None,
        &json!({"reset_token": reset, "new_password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "new_password", "{problem}");
    let (status, problem) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/reset",
        None,
        &json!({"reset_token": reset, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 204, "{problem}");

    // The intruder's password is dead; the new one works, and the factors the intruder
    // added are gone: no second step is asked, even on the intruder's once-trusted device.
    assert_eq!(
        sign_in_from(&app, INTRUDER_IP, PASSWORD, Some(&intruder_device))
            .await
            .0,
        401
    );
    let (status, session) = sign_in_from(&app, OWNER_IP, NEW_PASSWORD, None).await;
    assert_eq!(status, 201, "no second step remains: {session}");
    let owner_bearer = session["session_token"].as_str().unwrap().to_owned();
    let (status, factors) = send(
        &app,
        OWNER_IP,
        reqwest::Method::GET,
        "/api/v1/me/factors",
        Some(&owner_bearer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{factors}");
    assert_eq!(factors["factors"], json!([]), "{factors}");
    assert_eq!(factors["recovery_codes_left"], 0, "{factors}");
    assert_eq!(factors["trusted_devices"], json!([]), "{factors}");
    // The intruder's device is a stranger again: it gets no session without the new
    // password, and its recovery code opens nothing.
    let (status, _) =
        sign_in_from(&app, INTRUDER_IP, "Wrong-Guess-77", Some(&intruder_device)).await;
    assert_eq!(status, 401);
    assert!(!intruder_recovery_code.is_empty());

    // After delivery the outbox holds no link in clear either.
    assert_eq!(columns_holding(&app, &not_me).await, Vec::<String>::new());
}
both!(
    not_me_then_recovery_leaves_the_intruder_nothing,
    not_me_is_recovery
);

/// A reset by recovery ends device trust, and the "not me" links sent before it die.
async fn reset_ends_trust(backend: Backend) {
    let app = app_with_addresses(backend, |_| {}).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let (_, first) = sign_in_from(&app, OWNER_IP, PASSWORD, None).await;
    let bearer = first["session_token"].as_str().unwrap().to_owned();
    let device = first["device_token"].as_str().unwrap().to_owned();
    // An authenticator app, and this device trusted.
    let (status, enrol) = post(
        &app,
        OWNER_IP,
        "/api/v1/me/factors/totp",
        Some(&bearer),
        &json!({}),
    )
    .await;
    assert_eq!(status, 201, "{enrol}");
    let secret = enrol["secret"].as_str().unwrap().to_owned();
    let code = portcullis_testkit::totp_now(&app, &secret);
    assert_eq!(
        post(
            &app,
            OWNER_IP,
            "/api/v1/me/factors/totp/confirm",
            Some(&bearer),
            &json!({"code": code})
        )
        .await
        .0,
        204
    );
    app.clock.advance(30);
    let (_, challenge) = sign_in_from(&app, OWNER_IP, PASSWORD, Some(&device)).await;
    let (status, _) = post(
        &app,
        OWNER_IP,
        "/api/v1/sessions/mfa",
        None,
        &json!({"challenge_token": challenge["challenge_token"], "method": "totp",
                "code": portcullis_testkit::totp_now(&app, &secret), "trust_device": true}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        sign_in_from(&app, OWNER_IP, PASSWORD, Some(&device))
            .await
            .0,
        201
    );
    // Forgot password: card ID, code, new password.
    let (_, start) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/start",
        None,
        &json!({"user_id": "ann.example"}),
    )
    .await;
    let token = start["recovery_token"].as_str().unwrap().to_owned();
    assert_eq!(
        post(
            &app,
            OWNER_IP,
            "/api/v1/recovery/password/verify",
            None,
            &json!({"recovery_token": token, "card_id": ANN.verification})
        )
        .await
        .0,
        200
    );
    let code = code_in(&message(&app, "security code"));
    let (_, accepted) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": token, "code": code}),
    )
    .await;
    assert_eq!(accepted["new_password_required"], false, "{accepted}");
    let reset = accepted["reset_token"].as_str().unwrap().to_owned();
    assert_eq!(
        post(
            &app,
            OWNER_IP,
            "/api/v1/recovery/password/reset",
            None,
            &json!({"reset_token": reset, "new_password": NEW_PASSWORD})
        )
        .await
        .0,
        204
    );
    // The once-trusted device is asked for the second step again.
    let (status, challenge) = sign_in_from(&app, OWNER_IP, NEW_PASSWORD, Some(&device)).await;
    assert_eq!(status, 200, "trust ended with the reset: {challenge}");
}
both!(a_password_reset_ends_device_trust, reset_ends_trust);

/// The "not me" link of a notice sent before a reset dies with the reset.
async fn link_dies_with_reset(backend: Backend) {
    let app = app_with_addresses(backend, |_| {}).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    assert_eq!(sign_in_from(&app, OWNER_IP, PASSWORD, None).await.0, 201);
    assert_eq!(sign_in_from(&app, INTRUDER_IP, PASSWORD, None).await.0, 201);
    let body = message(&app, "New sign-in")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/not-me/"))
        .unwrap();
    let not_me = link.rsplit('/').next().unwrap().to_owned();
    let (_, start) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/start",
        None,
        &json!({"user_id": "ann.example"}),
    )
    .await;
    let token = start["recovery_token"].as_str().unwrap().to_owned();
    assert_eq!(
        post(
            &app,
            OWNER_IP,
            "/api/v1/recovery/password/verify",
            None,
            &json!({"recovery_token": token, "card_id": ANN.verification})
        )
        .await
        .0,
        200
    );
    let code = code_in(&message(&app, "security code"));
    let (_, accepted) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": token, "code": code}),
    )
    .await;
    let reset = accepted["reset_token"].as_str().unwrap().to_owned();
    assert_eq!(
        post(
            &app,
            OWNER_IP,
            "/api/v1/recovery/password/reset",
            None,
            &json!({"reset_token": reset, "new_password": NEW_PASSWORD})
        )
        .await
        .0,
        204
    );
    let (status, _) = post(
        &app,
        OWNER_IP,
        "/api/v1/not-me",
        None,
        &json!({"token": not_me}),
    )
    .await;
    assert_eq!(status, 410);
    assert_eq!(
        sign_in_from(&app, OWNER_IP, NEW_PASSWORD, None).await.0,
        201
    );
}
both!(a_reset_voids_earlier_not_me_links, link_dies_with_reset);

/// Six wrong current passwords (password change and contact change, from a stolen session
/// at one address) lock the account like six wrong sign-ins: the right password from a new
/// device at another address gets 423, the owner is told at once, and the lock ends.
async fn current_password_locks(backend: Backend) {
    let app = app_with_addresses(backend, |_| {}).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let (_, first) = sign_in_from(&app, OWNER_IP, PASSWORD, None).await;
    let stolen = first["session_token"].as_str().unwrap().to_owned();
    for i in 0..6 {
        let (status, problem) = if i % 2 == 0 {
            post(&app, INTRUDER_IP, "/api/v1/me/password", Some(&stolen), &json!({"current_password": format!("Guess-{i}-Pass!"), "new_password": "Intruder-Owns-It-1"})).await
        } else {
            post(&app, INTRUDER_IP, "/api/v1/me/contact", Some(&stolen), &json!({"current_password": format!("Guess-{i}-Pass!"), "field": "email", "value": "mallory@example.net"})).await
        };
        assert_eq!(status, 400, "{problem}");
        assert_eq!(
            problem["errors"][0]["field"], "current_password",
            "{problem}"
        );
    }
    // Locked: the right password from a new device (a third address) hears of it...
    let (status, problem) = sign_in_from(&app, "192.0.2.33", PASSWORD, None).await;
    assert_eq!(status, 423, "{problem}");
    assert!(problem["locked_until"].is_string(), "{problem}");
    // ...a wrong one does not...
    assert_eq!(
        sign_in_from(&app, "192.0.2.34", "Wrong-Horse-42", None)
            .await
            .0,
        401
    );
    // ...the owner was told, once...
    let locks = app
        .outbox_messages()
        .iter()
        .filter(|m| m["subject"].as_str().unwrap_or("").contains("is locked"))
        .count();
    assert_eq!(locks, 1);
    // ...and the right current password does not get past the lock either.
    let (status, _) = post(
        &app,
        INTRUDER_IP,
        "/api/v1/me/contact",
        Some(&stolen),
        &json!({"current_password": PASSWORD, "field": "email", "value": "mallory@example.net"}),
    )
    .await;
    assert_eq!(status, 400);
    // The lock ends after the configured time.
    app.clock.advance(7 * 86_400);
    assert_eq!(
        sign_in_from(&app, "192.0.2.33", PASSWORD, None).await.0,
        201
    );
}
both!(
    wrong_current_passwords_lock_and_the_lock_ends,
    current_password_locks
);

fn answers(right: bool) -> Value {
    let mut a = TestApp::answers();
    if !right {
        a[1]["answer"] = json!("Wrong School");
    }
    a
}

/// Security answers count per account across recovery steps (and addresses): five wrong
/// answers in all switch them off for the lock's time, the owner is told, the card ID still
/// works, and the answers work again once the time has passed.
async fn answers_per_account(backend: Backend) {
    let app = app_with_addresses(backend, |_| {}).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let start = |ip: &'static str| {
        let app = &app;
        async move {
            let (status, s) = post(
                app,
                ip,
                "/api/v1/recovery/password/start",
                None,
                &json!({"user_id": "ann.example"}),
            )
            .await;
            assert_eq!(status, 200);
            s["recovery_token"].as_str().unwrap().to_owned()
        }
    };
    // Five wrong sets over three steps, from three addresses: each step alone is far from
    // its own limit.
    let mut wrong = 0;
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        let token = start(ip).await;
        for _ in 0..2 {
            if wrong == 5 {
                break;
            }
            let (status, problem) = post(
                &app,
                ip,
                "/api/v1/recovery/password/verify",
                None,
                &json!({"recovery_token": token, "security_answers": answers(false)}),
            )
            .await;
            assert_eq!(status, 400, "{problem}");
            wrong += 1;
        }
    }
    // The owner was told.
    let told = message(&app, "security answers");
    assert!(told["body"].as_str().unwrap().contains("card ID"), "{told}");
    // A fresh step, the right answers: refused (answered like a wrong set).
    let token = start("192.0.2.4").await;
    let (status, problem) = post(
        &app,
        "192.0.2.4",
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": token, "security_answers": answers(true)}),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["code"], "recovery-failed", "{problem}");
    // The card ID still works.
    let (status, sent) = post(
        &app,
        "192.0.2.4",
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": token, "card_id": ANN.verification}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    // After the lock's time the answers work again.
    app.clock.advance(7 * 86_400 + 1);
    let token = start("192.0.2.5").await;
    let (status, sent) = post(
        &app,
        "192.0.2.5",
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": token, "security_answers": answers(true)}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
}
both!(
    security_answers_are_limited_per_account_across_steps,
    answers_per_account
);

/// The same through the pages: the "not me" page locks, the recovery pages then say the old
/// password no longer works and never "your account is unlocked", and only a new password
/// (not the old one) gets back in.
async fn not_me_pages(backend: Backend) {
    use crate::pages::{get, post as form};
    use portcullis_testkit::{input_value, Jar};
    let app = app_with_addresses(backend, |_| {}).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    assert_eq!(sign_in_from(&app, OWNER_IP, PASSWORD, None).await.0, 201);
    assert_eq!(sign_in_from(&app, INTRUDER_IP, PASSWORD, None).await.0, 201);
    let body = message(&app, "New sign-in")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/not-me/"))
        .unwrap();
    let not_me = link.rsplit('/').next().unwrap().to_owned();
    let mut jar = Jar::default();
    let (status, html) = get(&app, &mut jar, &format!("/not-me/{not_me}")).await;
    assert_eq!(status, 200);
    let csrf = input_value(&html, "csrf").unwrap();
    let res = form(
        &app,
        &mut jar,
        "/not-me",
        &[("csrf", &csrf), ("token", &not_me)],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Your old password no longer works"), "{html}");
    assert!(
        html.contains("Choose a new password with your card"),
        "{html}"
    );
    // Recovery through the pages.
    let (_, html) = get(&app, &mut jar, "/recover/password").await;
    let csrf = input_value(&html, "csrf").unwrap();
    let res = form(
        &app,
        &mut jar,
        "/recover/password",
        &[("csrf", &csrf), ("user_id", "ann.example")],
    )
    .await;
    let token = input_value(&res.text().await.unwrap(), "token").unwrap();
    let res = form(
        &app,
        &mut jar,
        "/recover/password/verify",
        &[
            ("csrf", &csrf),
            ("token", &token),
            ("method", "card"),
            ("card_id", ANN.verification),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let code = code_in(&message(&app, "security code"));
    let res = form(
        &app,
        &mut jar,
        "/recover/password/code",
        &[("csrf", &csrf), ("token", &token), ("code", &code)],
    )
    .await;
    let html = res.text().await.unwrap();
    assert!(!html.contains("Your account is unlocked"), "{html}");
    assert!(
        html.contains("Your account stays locked until you choose a new password"),
        "{html}"
    );
    let reset = input_value(&html, "token").unwrap();
    assert_eq!(sign_in_from(&app, OWNER_IP, PASSWORD, None).await.0, 423);
    let res = form(
        &app,
        &mut jar,
        "/recover/password/reset",
        &[
            ("csrf", &csrf),
            ("token", &reset),
            ("new_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = form(
        &app,
        &mut jar,
        "/recover/password/reset",
        &[
            ("csrf", &csrf),
            ("token", &reset),
            ("new_password", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        sign_in_from(&app, OWNER_IP, NEW_PASSWORD, None).await.0,
        201
    );
}
both!(not_me_and_recovery_through_the_pages, not_me_pages);
