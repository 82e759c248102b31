//! Issue 17, the card lifecycle through the registry API: a lost card's reissue moves the
//! online account to the new card (the person is told; the old number answers like an
//! unknown card for registration, linking and recovery), a closed card's account stays
//! readable and is then deactivated with notice, and a registry push is all or nothing,
//! bounded, and applied once per `Idempotency-Key`; a reissue finds the replaced card under
//! an old registry key too.

use portcullis_core::ports::{AuditReads, RegistryReads};
use portcullis_testkit::{both, spawn_app, Backend, TestApp, ANN, BEN, PASSWORD};
use serde_json::{json, Value};

use crate::support::admin_token;

const DAY: i64 = 86_400;
/// Ann's replacement card (a reissue after loss), with a card ID of its own.
const NEW_NUMBER: &str = "4012888888881881";
const NEW_CID: &str = "9876";
/// A Luhn-valid number the registry has never held.
const UNKNOWN: &str = "4222222222222";

fn ann(status: &str, replaces: &str, number: &str, cid: &str) -> Value {
    json!({
        "account_type": "personal", "number": number, "verification": cid,
        "expiry": "2031-02", "holder_name": "Ann Example", "email": "ann@example.com",
        "phone": "+15550100100", "product": "Platinum Card", "balance": "10.00",
        "credit_limit": "1000.00", "payment_due_date": "2026-12-20", "minimum_due": "5.00",
        "status": status, "replaces": replaces
    })
}

async fn push(app: &TestApp, token: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/v1/admin/registry/records"))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await.unwrap()
}

async fn pushed(app: &TestApp, token: &str, body: &Value) {
    let res = push(app, token, None, body).await;
    assert_eq!(res.status(), 200);
    let n = body.as_array().unwrap().len();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"records": n}));
}

/// Status and body of a card check, with `tries_left` (which counts down) left out.
async fn answer(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let mut body: Value = res.json().await.unwrap_or(Value::Null);
    if let Some(o) = body.as_object_mut() {
        o.remove("tries_left");
    }
    (status, body)
}

async fn verify_card(app: &TestApp, number: &str, cid: &str) -> (u16, Value) {
    answer(
        app.post_json(
            "/api/v1/registration/verify-card",
            &json!({"account_type": "personal", "number": number, "verification": cid}),
        )
        .await,
    )
    .await
}

async fn link(app: &TestApp, session: &str, number: &str, cid: &str) -> (u16, Value) {
    answer(
        app.client
            .post(app.url("/api/v1/me/cards"))
            .bearer_auth(session)
            .json(&json!({"number": number, "verification": cid}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn recover_with(app: &TestApp, user_id: &str, cid: &str) -> (u16, Value) {
    let start: Value = app
        .post_json(
            "/api/v1/recovery/password/start",
            &json!({"user_id": user_id}),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = start["recovery_token"].as_str().unwrap();
    answer(
        app.post_json(
            "/api/v1/recovery/password/verify",
            &json!({"recovery_token": token, "card_id": cid}),
        )
        .await,
    )
    .await
}

async fn me(app: &TestApp, session: &str) -> Value {
    let res = app.get_bearer("/api/v1/me", session).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn lost_then_reissued(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    app.register(&BEN, "ben.sample", PASSWORD).await;
    let issuer = admin_token(&app, "issuer.feed", &["registry:write"]).await;
    let unknown_registration = verify_card(&app, UNKNOWN, "1234").await;
    assert_eq!(unknown_registration.0, 400);
    let ben = app.token("ben.sample", PASSWORD, "personal").await;
    let unknown_link = link(&app, &ben, UNKNOWN, "1234").await;
    assert_eq!(unknown_link.0, 400);
    let wrong_recovery = recover_with(&app, "ann.example", "1111").await;

    // Reported lost, then reissued under a new number in a later push.
    pushed(
        &app,
        &issuer,
        &json!([ann("lost_stolen", "", ANN.number, ANN.verification)]),
    )
    .await;
    let seen = app.outbox_messages().len();
    pushed(
        &app,
        &issuer,
        &json!([ann("", ANN.number, NEW_NUMBER, NEW_CID)]),
    )
    .await;

    // Ann sees the new card, not the old one, and was told.
    let session = app.token("ann.example", PASSWORD, "personal").await;
    let home = me(&app, &session).await;
    let last4: Vec<&str> = home["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["last4"].as_str().unwrap())
        .collect();
    assert_eq!(last4, ["1881"]);
    assert_eq!(home["read_only"], false);
    let told = app.wait_for_messages(seen + 1).await;
    assert!(
        told[seen..].iter().any(|m| m["to"] == "ann@example.com"
            && m["body"]
                .as_str()
                .unwrap()
                .contains("ending 1881 replaces the card ending 0005")),
        "{told:?}"
    );

    // The old number answers exactly like an unknown card, with its right card ID, for
    // registration, linking (from another account) and recovery.
    assert_eq!(
        verify_card(&app, ANN.number, ANN.verification).await,
        unknown_registration
    );
    assert_eq!(
        link(&app, &ben, ANN.number, ANN.verification).await,
        unknown_link
    );
    assert_eq!(
        recover_with(&app, "ann.example", ANN.verification).await,
        wrong_recovery
    );
    // The new card works for recovery, and is taken (it backs Ann's account).
    assert_eq!(recover_with(&app, "ann.example", NEW_CID).await.0, 200);

    // Support sees both events on the account.
    let shown = crate::support::cli(&app, &["admin", "show", "ann.example"]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("••••1881"), "{}", shown.stdout);
    assert!(shown.stdout.contains("card.reissued"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("card.status_changed"),
        "{}",
        shown.stdout
    );
}
both!(
    a_lost_card_reissued_moves_the_account_and_the_old_number_proves_nothing,
    lost_then_reissued
);

/// After `registry.key` is rotated, a reissue pushed under the new key finds the replaced
/// card still under key 1 (docs/design/keys.md, "The registry key"): the account moves to
/// the new card and the old number answers like an unknown card.
async fn reissued_across_a_registry_key_rotation(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let issuer = admin_token(&app, "issuer.feed", &["registry:write"]).await;
    let store = &app.built.store;
    assert!(store
        .count_by_key()
        .await
        .unwrap()
        .iter()
        .all(|(id, _)| *id == 1));
    portcullis::keys::rotate(&app.config, "registry.key").unwrap();
    // The app looks at the keyring file at most every half second.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let unknown_registration = verify_card(&app, UNKNOWN, "1234").await;
    assert_eq!(unknown_registration.0, 400);
    let wrong_recovery = recover_with(&app, "ann.example", "1111").await;
    // Only the new card is in the load: Ann's old card is still under key 1.
    pushed(
        &app,
        &issuer,
        &json!([ann("", ANN.number, NEW_NUMBER, NEW_CID)]),
    )
    .await;
    let session = app.token("ann.example", PASSWORD, "personal").await;
    let home = me(&app, &session).await;
    let last4: Vec<&str> = home["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["last4"].as_str().unwrap())
        .collect();
    assert_eq!(last4, ["1881"]);
    // Both Ann's cards are under key 2 now (the replaced one moved by the load).
    let by_key = store.count_by_key().await.unwrap();
    assert!(by_key.contains(&(2, 2)), "{by_key:?}");
    assert_eq!(
        verify_card(&app, ANN.number, ANN.verification).await,
        unknown_registration
    );
    assert_eq!(
        recover_with(&app, "ann.example", ANN.verification).await,
        wrong_recovery
    );
    assert_eq!(recover_with(&app, "ann.example", NEW_CID).await.0, 200);
}
both!(
    a_reissue_after_a_registry_key_rotation_moves_the_account_off_the_old_key_card,
    reissued_across_a_registry_key_rotation
);

async fn blocked_card_answers_like_unknown(backend: Backend) {
    let app = spawn_app(backend).await;
    let issuer = admin_token(&app, "issuer.feed", &["registry:write"]).await;
    let unknown = verify_card(&app, UNKNOWN, "1234").await;
    for status in ["blocked", "lost_stolen", "closed"] {
        pushed(
            &app,
            &issuer,
            &json!([ann(status, "", ANN.number, ANN.verification)]),
        )
        .await;
        assert_eq!(
            verify_card(&app, ANN.number, ANN.verification).await,
            unknown,
            "{status}"
        );
    }
    pushed(
        &app,
        &issuer,
        &json!([ann("active", "", ANN.number, ANN.verification)]),
    )
    .await;
    assert_eq!(verify_card(&app, ANN.number, ANN.verification).await.0, 200);
}
both!(
    a_card_that_is_not_active_answers_like_an_unknown_card,
    blocked_card_answers_like_unknown
);

async fn closed_then_deactivated(backend: Backend) {
    let app = spawn_app_with_read_only_days(backend, 30).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let issuer = admin_token(&app, "issuer.feed", &["registry:write"]).await;
    pushed(
        &app,
        &issuer,
        &json!([ann("closed", "", ANN.number, ANN.verification)]),
    )
    .await;

    // Read-only: Ann still signs in and reads her statement.
    let session = app.token("ann.example", PASSWORD, "personal").await;
    let home = me(&app, &session).await;
    assert_eq!(home["read_only"], true);
    assert_eq!(home["cards"][0]["status"], "closed");
    assert_eq!(home["cards"][0]["balance"], "10.00");
    // Read-only: changing the account's settings is refused, with its own problem code.
    let res = app
        .client
        .post(app.url("/api/v1/me/contact"))
        .bearer_auth(&session)
        .json(&json!({"current_password": PASSWORD, "field": "email", "value": "ann.new@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "account-read-only"
    );
    let core = &app.built.app;
    app.clock.advance(29 * DAY);
    let run = core.run_inactivity(false, "test").await.unwrap();
    assert!(run.deactivated.is_empty(), "{run:?}");
    app.token("ann.example", PASSWORD, "personal").await;

    // After the read-only time: deactivated, with notice.
    app.clock.advance(DAY + 1);
    let open = app.token("ann.example", PASSWORD, "personal").await;
    let seen = app.outbox_messages().len();
    let run = core.run_inactivity(false, "test").await.unwrap();
    assert_eq!(run.deactivated, ["ann.example"]);
    // The deactivation ends the sessions it finds open.
    let res = app.get_bearer("/api/v1/me", &open).await;
    assert_eq!(res.status(), 401, "a deactivated account keeps no session");
    let told = app.wait_for_messages(seen + 1).await;
    assert!(
        told[seen..].iter().any(|m| m["to"] == "ann@example.com"
            && m["subject"].as_str().unwrap().contains("was closed")),
        "{told:?}"
    );
    let res = app.sign_in("ann.example", PASSWORD, "personal").await;
    assert_eq!(res.status(), 401, "a deactivated account does not sign in");
    let run = core.run_inactivity(false, "test").await.unwrap();
    assert!(run.deactivated.is_empty(), "once");
}
both!(
    a_closed_cards_account_stays_readable_then_is_deactivated_with_notice,
    closed_then_deactivated
);

async fn spawn_app_with_read_only_days(backend: Backend, days: i64) -> TestApp {
    portcullis_testkit::spawn_app_with(backend, |c| c.cards.closed_read_only_days = days).await
}

async fn pushes(backend: Backend) {
    let app = spawn_app(backend).await;
    let issuer = admin_token(&app, "issuer.feed", &["registry:write"]).await;
    let reader = admin_token(&app, "rita.reader", &["accounts:read"]).await;
    let body = json!([ann("", "", NEW_NUMBER, NEW_CID)]);
    assert_eq!(push(&app, &reader, None, &body).await.status(), 403);
    assert_eq!(push(&app, "not-a-token", None, &body).await.status(), 401);

    // A retried push with the same key is applied once and answered alike.
    let audit_before = app.built.store.audit_head().await.unwrap().0;
    let first = push(&app, &issuer, Some("batch-0001"), &body).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.json::<Value>().await.unwrap(), json!({"records": 1}));
    let after_first = app.built.store.audit_head().await.unwrap().0;
    assert!(after_first > audit_before, "the load is audited");
    let retry = push(&app, &issuer, Some("batch-0001"), &body).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.unwrap(), json!({"records": 1}));
    assert_eq!(
        app.built.store.audit_head().await.unwrap().0,
        after_first,
        "the retry applied nothing"
    );
    // The same key with another body is refused, and applies nothing.
    let other = json!([ann("closed", "", NEW_NUMBER, NEW_CID)]);
    let res = push(&app, &issuer, Some("batch-0001"), &other).await;
    assert_eq!(res.status(), 422);
    assert_eq!(
        verify_card(&app, NEW_NUMBER, NEW_CID).await.0,
        200,
        "still active"
    );

    // One bad record rejects the whole batch, naming its index and field.
    let mut bad = ann("", "", "4111111111111111", "321");
    bad["expiry"] = json!("2031-13");
    let batch = json!([ann("", "", "5105105105105100", "456"), bad]);
    let res = push(&app, &issuer, None, &batch).await;
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(
        problem["errors"],
        json!([{"index": 1, "field": "expiry", "message": "must be YYYY-MM"}])
    );
    assert_eq!(
        verify_card(&app, "5105105105105100", "456").await.0,
        400,
        "nothing applied"
    );

    // More than 10,000 records are refused before anything is read into the registry.
    let many: Vec<Value> = (0..10_001u64)
        .map(|i| {
            ann(
                "",
                "",
                &portcullis_core::card::with_luhn_check_digit(&format!("4{i:014}")),
                "123",
            )
        })
        .collect();
    let res = push(&app, &issuer, None, &Value::Array(many)).await;
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["index"], 10_000);
    assert_eq!(
        app.built.store.count_records().await.unwrap(),
        6,
        "the demo cards and one push"
    );
}
both!(
    a_registry_push_is_bounded_all_or_nothing_and_applied_once_per_key,
    pushes
);
