//! Flows 3–5: forgot password, self-service unlock, forgot User ID.

use std::sync::Arc;
use std::time::Duration;

use portcullis_testkit::{
    both, is_problem, spawn_app, spawn_app_with, Backend, TestApp, ANN, BEN, PASSWORD,
};
use serde_json::{json, Value};

/// The code in the newest message to `to`, waiting for it to be delivered.
pub async fn latest_code(app: &TestApp, to: &str, after: usize) -> String {
    for _ in 0..200 {
        let msgs = app.outbox_messages();
        let wanted = |m: &&Value| {
            m["to"] == to
                && m["subject"]
                    .as_str()
                    .unwrap_or("")
                    .contains("security code")
        };
        if let Some(m) = msgs.iter().skip(after).rfind(wanted) {
            let body = m["body"].as_str().unwrap();
            let code: String = body
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .unwrap()
                .to_owned();
            return code;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no code arrived for {to}");
}

async fn start(app: &TestApp, user_id: &str) -> Value {
    let res = app
        .post_json(
            "/api/v1/recovery/password/start",
            &json!({"user_id": user_id}),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn verify(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/api/v1/recovery/password/verify", &body)
        .await
}

async fn forgot_password_by_card(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let old_session = app.token("ann.example", PASSWORD, "personal").await;
    let s = start(&app, "ANN.example").await;
    assert_eq!(s["methods"], json!(["card_id", "security_questions"]));
    assert_eq!(s["questions"].as_array().unwrap().len(), 3);
    let token = s["recovery_token"].as_str().unwrap();
    let seen = app.outbox_messages().len();
    let res = verify(&app, json!({"recovery_token": token, "card_id": "1234"})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code_required"], true);
    assert_eq!(body["channel"], "email");
    assert_eq!(body["destination"], "a•••@example.com");
    let code = latest_code(&app, "ann@example.com", seen).await;
    let res = verify(&app, json!({"recovery_token": token, "code": code})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["unlocked"], false);
    let reset = body["reset_token"].as_str().unwrap().to_owned();
    // The code is single use.
    assert_eq!(
        verify(&app, json!({"recovery_token": token, "code": code}))
            .await
            .status(),
        410
    );
    // The new password must meet the policy.
    let res = app
        .post_json(
            "/api/v1/recovery/password/reset",
            &json!({"reset_token": reset, "new_password": "short"}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let res = app
        .post_json(
            "/api/v1/recovery/password/reset",
            &json!({"reset_token": reset, "new_password": "Brand-New-Day-9"}),
        )
        .await;
    assert_eq!(res.status(), 204);
    // Every session ended; the old password is gone; the new one works; the owner was told.
    assert_eq!(
        app.get_bearer("/api/v1/me", &old_session).await.status(),
        401
    );
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.sign_in("ann.example", "Brand-New-Day-9", "personal")
            .await
            .status(),
        201
    );
    assert!(app.outbox_messages().iter().any(|m| m["subject"]
        .as_str()
        .unwrap()
        .contains("password was reset")));
    // The reset token is single use.
    let res = app
        .post_json(
            "/api/v1/recovery/password/reset",
            &json!({"reset_token": reset, "new_password": "Another-Day-10"}),
        )
        .await;
    assert_eq!(res.status(), 410);
}
both!(
    forgot_password_with_card_id_and_code,
    forgot_password_by_card
);

async fn forgot_password_by_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let s = start(&app, "ann.example").await;
    let ids: Vec<i64> = s["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 4, 6]);
    let token = s["recovery_token"].as_str().unwrap();
    // One wrong answer fails the whole set, with no hint which.
    let res = verify(
        &app,
        json!({"recovery_token": token, "security_answers": [
            {"question_id": 1, "answer": "rex"}, {"question_id": 4, "answer": "Wrong School"}, {"question_id": 6, "answer": "sparky"}]}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "recovery-failed");
    assert_eq!(body["tries_left"], 4);
    // Answers are normalised: case, outer and inner spaces.
    let seen = app.outbox_messages().len();
    let res = verify(
        &app,
        json!({"recovery_token": token, "security_answers": [
            {"question_id": 1, "answer": " REX "}, {"question_id": 4, "answer": "hill   street primary"}, {"question_id": 6, "answer": "Sparky"}]}),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // Answers alone are never enough: the code is still required.
    let code = latest_code(&app, "ann@example.com", seen).await;
    let res = verify(&app, json!({"recovery_token": token, "code": code})).await;
    assert_eq!(res.status(), 200);
}
both!(
    forgot_password_with_security_answers_still_needs_the_code,
    forgot_password_by_answers
);

async fn five_tries(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let s = start(&app, "ann.example").await;
    let token = s["recovery_token"].as_str().unwrap();
    let seen = app.outbox_messages().len();
    assert_eq!(
        verify(&app, json!({"recovery_token": token, "card_id": "1234"}))
            .await
            .status(),
        200
    );
    let code = latest_code(&app, "ann@example.com", seen).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (1..=4).rev() {
        let res = verify(&app, json!({"recovery_token": token, "code": wrong})).await;
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "code-rejected");
        assert_eq!(body["tries_left"], left);
    }
    // The fifth wrong try spends the code; then even the right code is refused.
    assert_eq!(
        verify(&app, json!({"recovery_token": token, "code": wrong}))
            .await
            .status(),
        410
    );
    assert_eq!(
        verify(&app, json!({"recovery_token": token, "code": code}))
            .await
            .status(),
        410
    );
}
both!(a_code_allows_five_tries, five_tries);

async fn expiry_and_resend(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let s = start(&app, "ann.example").await;
    let token = s["recovery_token"].as_str().unwrap();
    let seen = app.outbox_messages().len();
    assert_eq!(
        verify(&app, json!({"recovery_token": token, "card_id": "1234"}))
            .await
            .status(),
        200
    );
    let first = latest_code(&app, "ann@example.com", seen).await;
    // Resending within a minute is refused with Retry-After.
    let res = app
        .post_json(
            "/api/v1/recovery/password/resend",
            &json!({"recovery_token": token}),
        )
        .await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    // Ten minutes on, the code has expired.
    app.clock.advance(10 * 60);
    assert_eq!(
        verify(&app, json!({"recovery_token": token, "code": first}))
            .await
            .status(),
        410
    );
    // A new code works (the step itself lasts 20 minutes).
    let seen = app.outbox_messages().len();
    assert_eq!(
        app.post_json(
            "/api/v1/recovery/password/resend",
            &json!({"recovery_token": token})
        )
        .await
        .status(),
        202
    );
    let second = latest_code(&app, "ann@example.com", seen).await;
    assert_eq!(
        verify(&app, json!({"recovery_token": token, "code": second}))
            .await
            .status(),
        200
    );
}
both!(
    codes_expire_after_ten_minutes_and_resend_is_limited,
    expiry_and_resend
);

async fn racing_code_uses(backend: Backend) {
    let app = spawn_app_with(backend, crate::races::many_codes_to_one_address).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let app = Arc::new(app);
    for _ in 0..5 {
        let s = start(&app, "ann.example").await;
        let token = s["recovery_token"].as_str().unwrap().to_owned();
        let seen = app.outbox_messages().len();
        assert_eq!(
            verify(&app, json!({"recovery_token": token, "card_id": "1234"}))
                .await
                .status(),
            200
        );
        let code = latest_code(&app, "ann@example.com", seen).await;
        let mut handles = Vec::new();
        for _ in 0..2 {
            let app = app.clone();
            let body = json!({"recovery_token": token, "code": code});
            handles.push(tokio::spawn(async move {
                verify(&app, body).await.status().as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for h in handles {
            statuses.push(h.await.unwrap());
        }
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 410], "exactly one use of the code wins");
    }
}
both!(
    two_racing_uses_of_one_code_have_one_winner,
    racing_code_uses
);

async fn self_unlock(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    for _ in 0..6 {
        app.sign_in("ann.example", "Wrong-Horse-1", "personal")
            .await;
    }
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        423
    );
    let s = start(&app, "ann.example").await;
    let token = s["recovery_token"].as_str().unwrap();
    let seen = app.outbox_messages().len();
    assert_eq!(
        verify(&app, json!({"recovery_token": token, "card_id": "1234"}))
            .await
            .status(),
        200
    );
    let code = latest_code(&app, "ann@example.com", seen).await;
    let res = verify(&app, json!({"recovery_token": token, "code": code})).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["unlocked"], true);
    // Unlocked: the old password works again, no reset needed.
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
    use portcullis_core::ports::AuditReads;
    let entries = app.built.store.audit_entries(0, 1000).await.unwrap();
    assert!(entries
        .iter()
        .any(|e| e.kind == "account.unlocked" && e.detail.contains("self-service")));
}
both!(card_id_and_a_code_unlock_a_locked_account, self_unlock);

async fn no_enumeration(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let known = start(&app, "ann.example").await;
    let unknown = start(&app, "nobody.here").await;
    assert_eq!(
        known.as_object().unwrap().keys().collect::<Vec<_>>(),
        unknown.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    assert_eq!(unknown["questions"].as_array().unwrap().len(), 3);
    // Decoy questions stay the same for the same unknown User ID.
    assert_eq!(
        start(&app, "nobody.here").await["questions"],
        unknown["questions"]
    );
    // Wrong details for a real account and any details for no account answer alike.
    let a = verify(
        &app,
        json!({"recovery_token": known["recovery_token"], "card_id": "9999"}),
    )
    .await;
    let b = verify(
        &app,
        json!({"recovery_token": unknown["recovery_token"], "card_id": "1234"}),
    )
    .await;
    assert_eq!(
        (a.status(), is_problem(a.headers())),
        (b.status(), is_problem(b.headers()))
    );
    assert_eq!(a.text().await.unwrap(), b.text().await.unwrap());
    // Forgot User ID: the same answer for a known and an unknown address, and wrong codes
    // count down alike.
    let mut bodies = Vec::new();
    for email in ["ann@example.com", "nobody@example.com"] {
        let res = app
            .post_json(
                "/api/v1/recovery/user-id/start",
                &json!({"email": email, "channel": "email"}),
            )
            .await;
        assert_eq!(res.status(), 202);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
        let token = v["recovery_token"].as_str().unwrap().to_owned();
        let mut answers = Vec::new();
        for _ in 0..6 {
            let res = app
                .post_json(
                    "/api/v1/recovery/user-id/verify",
                    &json!({"recovery_token": token, "code": "000001"}),
                )
                .await;
            answers.push((res.status().as_u16(), res.text().await.unwrap()));
        }
        bodies.push(answers);
    }
    assert_eq!(bodies[0], bodies[1]);
}
both!(recovery_does_not_reveal_who_has_an_account, no_enumeration);

async fn forgot_user_id(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&BEN, "Ben.Sample", PASSWORD).await;
    for channel in ["email", "sms"] {
        let seen = app.outbox_messages().len();
        let res = app
            .post_json(
                "/api/v1/recovery/user-id/start",
                &json!({"email": "BEN@example.com", "channel": channel}),
            )
            .await;
        assert_eq!(res.status(), 202);
        let token = res.json::<Value>().await.unwrap()["recovery_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let to = if channel == "email" {
            "ben@example.com"
        } else {
            "+15550100101"
        };
        let code = latest_code(&app, to, seen).await;
        let res = app
            .post_json(
                "/api/v1/recovery/user-id/verify",
                &json!({"recovery_token": token, "code": code}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["user_id"], "Ben.Sample");
        assert_eq!(body["user_ids"], json!(["Ben.Sample"]));
    }
    let res = app
        .post_json(
            "/api/v1/recovery/user-id/start",
            &json!({"email": "not an email", "channel": "email"}),
        )
        .await;
    assert_eq!(res.status(), 400);
}
both!(forgot_user_id_by_email_or_text, forgot_user_id);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_codes_are_stored_only_hashed() {
    let app = spawn_app(Backend::Sqlite).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let s = start(&app, "ann.example").await;
    let seen = app.outbox_messages().len();
    verify(
        &app,
        json!({"recovery_token": s["recovery_token"], "card_id": "1234"}),
    )
    .await;
    let code = latest_code(&app, "ann@example.com", seen).await;
    let db = std::fs::read(app.db.sqlite_path.as_ref().unwrap()).unwrap();
    let wal = std::fs::read(format!(
        "{}-wal",
        app.db.sqlite_path.as_ref().unwrap().display()
    ))
    .unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!String::from_utf8_lossy(&bytes).contains(&code));
        assert!(!String::from_utf8_lossy(&bytes).contains(s["recovery_token"].as_str().unwrap()));
    }
}
