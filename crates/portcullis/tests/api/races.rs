//! Races: requests that reach the server at the same moment. Each test repeats its race
//! [`ROUNDS`] times (a fresh start each round) and asserts that exactly the one legal
//! outcome happened, on SQLite and PostgreSQL.

use std::sync::Arc;

use portcullis_core::ports::AuditReads;
use portcullis_testkit::{both, spawn_app, spawn_app_with, Backend, TestApp, ANN, BEN, PASSWORD};
use serde_json::{json, Value};

use crate::recovery::latest_code;

const ROUNDS: usize = 20;

pub(crate) async fn complete(app: &TestApp, token: &str, user_id: &str) -> u16 {
    app.post_json(
        "/api/v1/registration/complete",
        &json!({
            "registration_token": token,
            "user_id": user_id,
            "password": PASSWORD,
            "security_answers": TestApp::answers(),
            "code_channel": "email"
        }),
    )
    .await
    .status()
    .as_u16()
}

/// Two registrations of one card, each with its own verified step: one account, one 409.
async fn two_registrations(backend: Backend) {
    for round in 0..ROUNDS {
        let app = spawn_app(backend).await;
        let mut tokens = Vec::new();
        for _ in 0..2 {
            let res = app.verify_card(&BEN).await;
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            tokens.push(body["registration_token"].as_str().unwrap().to_owned());
        }
        let (a, b) = tokio::join!(
            complete(&app, &tokens[0], "racer.one"),
            complete(&app, &tokens[1], "racer.two")
        );
        let mut statuses = [a, b];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "round {round}");
        let one = app
            .sign_in("racer.one", PASSWORD, "personal")
            .await
            .status();
        let two = app
            .sign_in("racer.two", PASSWORD, "personal")
            .await
            .status();
        assert_eq!(
            (one == 201) as u8 + (two == 201) as u8,
            1,
            "round {round}: exactly the winner can sign in ({one}, {two})"
        );
        assert_eq!(
            one == 201,
            a == 201,
            "round {round}: the 201 is the account"
        );
    }
}
both!(
    races_two_registrations_of_one_card_make_one_account,
    two_registrations
);

pub(crate) async fn recovery_token_with_code(app: &TestApp, user_id: &str) -> (String, String) {
    let res = app
        .post_json(
            "/api/v1/recovery/password/start",
            &json!({"user_id": user_id}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["recovery_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = app.outbox_messages().len();
    let res = app
        .post_json(
            "/api/v1/recovery/password/verify",
            &json!({"recovery_token": token, "card_id": ANN.verification}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let code = latest_code(app, "ann@example.com", seen).await;
    (token, code)
}

/// Each round sends a recovery code to one address, more than the three an hour a
/// destination gets by default (`limits.per_destination_per_hour`).
pub fn many_codes_to_one_address(c: &mut portcullis::config::Config) {
    c.limits.per_destination_per_hour = 1000;
    c.limits.per_destination_per_day = 1000;
    // The daily one is kept below the gateway's quota a number.
    c.notify.sms_per_number_per_day = 1001;
}

/// Two uses of one one-time code at once: one 200 (with a reset token), one 410.
async fn two_code_uses(backend: Backend) {
    let app = spawn_app_with(backend, many_codes_to_one_address).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    for round in 0..ROUNDS {
        // A new recovery each round; an hour apart so no send limit is reached.
        app.clock.advance(3600);
        let (token, code) = recovery_token_with_code(&app, "ann.example").await;
        let body = json!({"recovery_token": token, "code": code});
        let (a, b) = tokio::join!(
            app.post_json("/api/v1/recovery/password/verify", &body),
            app.post_json("/api/v1/recovery/password/verify", &body)
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 410], "round {round}");
    }
}
both!(races_two_uses_of_one_code_have_one_winner, two_code_uses);

/// Five failures already, then three wrong passwords and the right one at once. The legal
/// outcomes: a failure takes the sixth slot first (the account locks; the right password
/// hears 423, or 401 when it arrived while that failure was still being evaluated) or the
/// success comes first (201, the count restarts, three failures do not lock).
async fn failures_at_threshold(backend: Backend) {
    for round in 0..ROUNDS {
        let app = spawn_app(backend).await;
        app.register(&ANN, "ann.example", PASSWORD).await;
        for _ in 0..5 {
            assert_eq!(
                app.sign_in("ann.example", "Wrong-Horse-42", "personal")
                    .await
                    .status(),
                401
            );
        }
        let app = Arc::new(app);
        let mut wrong = Vec::new();
        for _ in 0..3 {
            let app = app.clone();
            wrong.push(tokio::spawn(async move {
                app.sign_in("ann.example", "Wrong-Horse-42", "personal")
                    .await
                    .status()
                    .as_u16()
            }));
        }
        let right = app.sign_in("ann.example", PASSWORD, "personal").await;
        for w in wrong {
            assert_eq!(w.await.unwrap(), 401, "round {round}");
        }
        let right = right.status().as_u16();
        let entries = app.built.store.audit_entries(0, 1000).await.unwrap();
        let locks = entries
            .iter()
            .filter(|e| e.kind == "account.locked")
            .count();
        let evaluated = entries
            .iter()
            .filter(|e| e.kind == "signin.failed" && e.detail.starts_with("wrong password"))
            .count();
        let after = app
            .sign_in("ann.example", PASSWORD, "personal")
            .await
            .status()
            .as_u16();
        match right {
            // The lock came first (423), or the sixth slot was already taken by a wrong
            // password under evaluation, so the right one was refused unevaluated (401, the
            // lockout state machine's "exhausted" edge): either way one lock, exactly the
            // threshold evaluated.
            423 | 401 => {
                assert_eq!(locks, 1, "round {round}");
                assert_eq!(evaluated, 6, "round {round}");
                assert_eq!(after, 423, "round {round}: still locked");
            }
            // The success came first: the three failures after it are too few to lock.
            201 => {
                assert_eq!(locks, 0, "round {round}: {evaluated} evaluated");
                assert_eq!(after, 201, "round {round}");
            }
            other => panic!("round {round}: the right password got {other}"),
        }
    }
}
both!(
    races_failures_around_the_lock_threshold_lock_once_or_not_at_all,
    failures_at_threshold
);

/// A password reset and sign-ins with the old and new passwords at once. Whatever order
/// the server saw: the reset succeeds, the new password works afterwards, the old one does
/// not, and a session the old password won is ended by the reset (no session outlives it);
/// a session the new password won in the moment before the reset's sweep may be ended too.
async fn reset_and_sign_in(backend: Backend) {
    let app = spawn_app_with(backend, many_codes_to_one_address).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let mut old = PASSWORD.to_owned();
    for round in 0..ROUNDS {
        app.clock.advance(3600);
        let (token, code) = recovery_token_with_code(&app, "ann.example").await;
        let res = app
            .post_json(
                "/api/v1/recovery/password/verify",
                &json!({"recovery_token": token, "code": code}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let reset = res.json::<Value>().await.unwrap()["reset_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let new = format!("Fresh-Meadow-{round:02}-Qx");
        let reset_body = json!({"reset_token": reset, "new_password": new});
        let (r, old_in, new_in) = tokio::join!(
            app.post_json("/api/v1/recovery/password/reset", &reset_body),
            app.sign_in("ann.example", &old, "personal"),
            app.sign_in("ann.example", &new, "personal"),
        );
        assert_eq!(r.status(), 204, "round {round}");
        for (label, res) in [("old", old_in), ("new", new_in)] {
            let status = res.status().as_u16();
            assert!(
                status == 201 || status == 401,
                "round {round}: {label} password got {status}"
            );
            if status == 201 {
                let session = res.json::<Value>().await.unwrap()["session_token"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let me = app.get_bearer("/api/v1/me", &session).await.status();
                if label == "old" {
                    assert_eq!(
                        me, 401,
                        "round {round}: a session of the old password outlived the reset"
                    );
                } else {
                    // The new password can win a session in the moment between the reset's
                    // new hash and its sweep of every session; the sweep then ends it too.
                    // Failing closed is legal; anything but 200 or 401 is not.
                    assert!(me == 200 || me == 401, "round {round}: {me}");
                }
            }
        }
        assert_eq!(
            app.sign_in("ann.example", &old, "personal").await.status(),
            401,
            "round {round}"
        );
        assert_eq!(
            app.sign_in("ann.example", &new, "personal").await.status(),
            201,
            "round {round}"
        );
        old = new;
    }
}
both!(
    races_password_reset_and_sign_in_leave_no_old_session,
    reset_and_sign_in
);
