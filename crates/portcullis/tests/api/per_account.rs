//! Issue 13: secrets limited per account, not only per step or per address. One-time codes
//! of anonymous flows are bounded per account across steps and resends (a destination past
//! its share gets no code at all, so strangers at many addresses cannot open steps with
//! guessable codes without end), and a reset token takes a bounded number of tries.
//! Client addresses are played through a trusted proxy's `X-Forwarded-For`.

use portcullis_testkit::{both, spawn_app_with, Backend, TestApp, ANN, PASSWORD};
use serde_json::{json, Value};
use sqlx::Row;

use crate::recovery::latest_code;

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| {
        c.limits.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await
}

async fn post_from(app: &TestApp, ip: &str, path: &str, body: &Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(path))
        .header("x-forwarded-for", ip)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The one-time codes ever stored for the account `user_id` (used or not).
async fn codes_of(app: &TestApp, user_id: &str) -> i64 {
    sqlx::query(
        "SELECT COUNT(*) AS n FROM one_time_codes c JOIN online_accounts a ON a.id = c.account_id \
         WHERE a.user_id = $1",
    )
    .bind(user_id)
    .fetch_one(app.built.store.pool())
    .await
    .unwrap()
    .get::<i64, _>("n")
}

/// Twelve strangers at twelve addresses ask forgot User ID for Ann's address: every answer
/// is alike, three codes go out (her address's share an hour and a day), and only those
/// three exist — the other nine steps hold no code, so across steps and resends Ann's codes
/// take at most 3 × 5 tries a day. A wrong code answers alike on a step with a code and on
/// one without.
async fn codes_bounded_per_account(backend: Backend) {
    let app = app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let mut tokens = Vec::new();
    for i in 0..12 {
        let (status, body) = post_from(
            &app,
            &format!("203.0.113.{}", 60 + i),
            "/api/v1/recovery/user-id/start",
            &json!({"email": "ann@example.com", "channel": "email"}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        tokens.push(body["recovery_token"].as_str().unwrap().to_owned());
    }
    let sent = app
        .outbox_messages()
        .iter()
        .filter(|m| {
            m["to"] == "ann@example.com"
                && m["subject"]
                    .as_str()
                    .unwrap_or("")
                    .contains("security code")
        })
        .count();
    assert_eq!(sent, 3);
    assert_eq!(
        codes_of(&app, "ann.example").await,
        3,
        "no code behind a held step"
    );

    // Resends from fresh addresses a minute later: no new code beyond the share either.
    app.clock.advance(61);
    for (i, token) in tokens.iter().enumerate() {
        let (status, _) = post_from(
            &app,
            &format!("198.51.100.{}", 60 + i),
            "/api/v1/recovery/user-id/resend",
            &json!({"recovery_token": token}),
        )
        .await;
        assert_eq!(status, 202);
    }
    assert_eq!(
        codes_of(&app, "ann.example").await,
        3,
        "resends made no code"
    );

    // A wrong code: the same answer on a step with a code (the first) and one without.
    let code = latest_code(&app, "ann@example.com", 0).await;
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let first = post_from(
        &app,
        "192.0.2.1",
        "/api/v1/recovery/user-id/verify",
        &json!({"recovery_token": tokens[0], "code": wrong}),
    )
    .await;
    let last = post_from(
        &app,
        "192.0.2.2",
        "/api/v1/recovery/user-id/verify",
        &json!({"recovery_token": tokens[11], "code": wrong}),
    )
    .await;
    assert_eq!(first.0, 400, "{first:?}");
    assert_eq!(first, last);
}
both!(
    one_time_codes_are_bounded_per_account_across_steps_and_resends_from_many_addresses,
    codes_bounded_per_account
);

/// Forgot password to a reset token for Ann (card ID + code).
async fn reset_token(app: &TestApp) -> String {
    let (_, s) = post_from(
        app,
        "192.0.2.10",
        "/api/v1/recovery/password/start",
        &json!({"user_id": "ann.example"}),
    )
    .await;
    let token = s["recovery_token"].clone();
    let seen = app.outbox_messages().len();
    let (status, body) = post_from(
        app,
        "192.0.2.10",
        "/api/v1/recovery/password/verify",
        &json!({"recovery_token": token, "card_id": ANN.verification}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let code = latest_code(app, "ann@example.com", seen).await;
    let (status, body) = post_from(
        app,
        "192.0.2.10",
        "/api/v1/recovery/password/verify",
        &json!({"recovery_token": token, "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["reset_token"].as_str().unwrap().to_owned()
}

/// A reset token takes five new passwords that pass the policy's own checks (each costs
/// argon2 comparisons with the recent ones) from any addresses; the sixth finds it dead,
/// even with a good password. A password that breaks the policy costs no try.
async fn reset_tries_bounded(backend: Backend) {
    // A profile that keeps recent passwords, so a reset compares with them (argon2).
    let app = spawn_app_with(backend, |c| {
        c.limits.trusted_proxies = vec!["127.0.0.1".into()];
        c.password.profile = "pci-dss-4".into();
    })
    .await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let reset = reset_token(&app).await;
    let (status, _) = post_from(
        &app,
        "203.0.113.90",
        "/api/v1/recovery/password/reset",
        &json!({"reset_token": reset, "new_password": "short"}),
    )
    .await;
    assert_eq!(status, 400);
    for i in 0..5 {
        // The current password is among the recent ones: refused after hashing.
        let (status, body) = post_from(
            &app,
            &format!("203.0.113.{}", 91 + i),
            "/api/v1/recovery/password/reset",
            &json!({"reset_token": reset, "new_password": PASSWORD}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
    }
    let (status, _) = post_from(
        &app,
        "203.0.113.99",
        "/api/v1/recovery/password/reset",
        &json!({"reset_token": reset, "new_password": "Brand-New-Day-9"}),
    )
    .await;
    assert_eq!(status, 410, "the token is dead");
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201,
        "the password did not change"
    );
    // A fresh recovery works.
    let reset = reset_token(&app).await;
    let (status, _) = post_from(
        &app,
        "203.0.113.99",
        "/api/v1/recovery/password/reset",
        &json!({"reset_token": reset, "new_password": "Brand-New-Day-9"}),
    )
    .await;
    assert_eq!(status, 204);
}
both!(
    a_reset_token_takes_five_tries_then_it_is_dead,
    reset_tries_bounded
);

/// Sign-in second steps: wrong email codes and wrong recovery codes, one or two per
/// challenge, each challenge from its own client address, count on Ann's account: the sixth
/// locks it (423 to the right password from anywhere) and Ann is told.
async fn second_step_codes_lock(backend: Backend) {
    let app = app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    let res = app
        .client
        .post(app.url("/api/v1/me/factors/code"))
        .bearer_auth(&token)
        .json(&json!({"channel": "email"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .client
        .post(app.url("/api/v1/me/factors/recovery-codes"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let sign_in =
        json!({"user_id": "ann.example", "password": PASSWORD, "account_type": "personal"});
    for i in 0..6 {
        let ip = format!("203.0.113.{}", 120 + i);
        let (status, challenge) = post_from(&app, &ip, "/api/v1/sessions", &sign_in).await;
        assert_eq!(status, 200, "challenge {i}: {challenge}");
        let (method, code) = if i % 2 == 0 {
            ("email", "000000")
        } else {
            ("recovery_code", "aaaa-bbbb-cccc")
        };
        let (status, body) = post_from(
            &app,
            &ip,
            "/api/v1/sessions/mfa",
            &json!({"challenge_token": challenge["challenge_token"], "method": method,
                    "code": code, "trust_device": false}),
        )
        .await;
        assert!(status == 400 || status == 410, "{status} {body}");
    }
    let (status, body) = post_from(&app, "192.0.2.99", "/api/v1/sessions", &sign_in).await;
    assert_eq!(status, 423, "locked after six wrong second steps: {body}");
    assert!(app
        .outbox_messages()
        .iter()
        .any(|m| m["to"] == "ann@example.com"
            && m["subject"].as_str().unwrap_or("").contains("locked")));
}
both!(
    wrong_second_step_and_recovery_codes_lock_the_account_across_challenges_and_addresses,
    second_step_codes_lock
);
