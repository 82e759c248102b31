//! Flows 9 and 10: changing contact details (password, then a code to the new address, then
//! a notice to the old one), linking and unlinking cards, and the inactivity job (warning,
//! deactivation, reactivation by support or by card), through HTTP on both databases.

use portcullis_core::ports::AuditReads;
use portcullis_testkit::{
    both, input_value, is_problem, spawn_app, spawn_app_on, spawn_app_with, Backend, Jar, TestApp,
    ANN, ANN_BLUE, BEN, PASSWORD,
};
use serde_json::{json, Value};

use crate::pages::{get, post};
use crate::support::{admin_token, cli};

const DAY: i64 = 86_400;

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

/// The 6 digits of the newest code message sent to `to`.
fn code_sent_to(messages: &[Value], to: &str) -> String {
    let body = messages
        .iter()
        .rev()
        .find(|m| m["to"] == to && m["subject"].as_str().unwrap().contains("security code"))
        .unwrap_or_else(|| panic!("no code to {to}: {messages:?}"))["body"]
        .as_str()
        .unwrap()
        .to_owned();
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned()
}

async fn audit_kinds(app: &TestApp) -> Vec<String> {
    app.built
        .store
        .audit_entries(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn me(app: &TestApp, token: &str) -> Value {
    let res = app.get_bearer("/api/v1/me", token).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn contact_change_by_email(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    assert_eq!(me(&app, &token).await["email"], "ann@example.com");

    // The password is required, and checked.
    let res = post_bearer(
        &app,
        "/api/v1/me/contact",
        &token,
        &json!({"current_password": "Wrong-Horse-42", "field": "email", "value": "ann.new@example.org"}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "current_password");
    // A bad address names the field.
    let res = post_bearer(
        &app,
        "/api/v1/me/contact",
        &token,
        &json!({"current_password": PASSWORD, "field": "email", "value": "not-an-address"}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "email");

    let res = post_bearer(
        &app,
        "/api/v1/me/contact",
        &token,
        &json!({"current_password": PASSWORD, "field": "email", "value": "Ann.New@Example.org"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["field"], "email");
    assert_eq!(started["sent_to"], "a•••@example.org");
    let change = started["change_token"].as_str().unwrap().to_owned();
    // Nothing changes before the code.
    assert_eq!(me(&app, &token).await["email"], "ann@example.com");
    let code = code_sent_to(&app.outbox_messages(), "ann.new@example.org");

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let res = post_bearer(
        &app,
        "/api/v1/me/contact/confirm",
        &token,
        &json!({"change_token": change, "code": wrong}),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(is_problem(res.headers()));
    assert_eq!(res.json::<Value>().await.unwrap()["tries_left"], 4);

    let res = post_bearer(
        &app,
        "/api/v1/me/contact/confirm",
        &token,
        &json!({"change_token": change, "code": code}),
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(me(&app, &token).await["email"], "ann.new@example.org");
    // The old address is told, through the outbox.
    let messages = app.outbox_messages();
    assert!(
        messages.iter().any(|m| m["to"] == "ann@example.com"
            && m["subject"]
                .as_str()
                .unwrap()
                .contains("email address was changed")),
        "{messages:?}"
    );
    // Single use.
    let res = post_bearer(
        &app,
        "/api/v1/me/contact/confirm",
        &token,
        &json!({"change_token": change, "code": code}),
    )
    .await;
    assert_eq!(res.status(), 410);
    let kinds = audit_kinds(&app).await;
    assert!(kinds.contains(&"contact.change_started".to_owned()));
    assert!(kinds.contains(&"contact.changed".to_owned()));
}
both!(
    a_contact_change_needs_the_password_and_a_code_to_the_new_address,
    contact_change_by_email
);

async fn contact_change_by_phone(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    app.register(&BEN, "ben.sample", PASSWORD).await;
    let ann = app.token("ann.example", PASSWORD, "personal").await;
    let ben = app.token("ben.sample", PASSWORD, "personal").await;
    let res = post_bearer(
        &app,
        "/api/v1/me/contact",
        &ann,
        &json!({"current_password": PASSWORD, "field": "phone", "value": "+15550109999"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let change = res.json::<Value>().await.unwrap()["change_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let messages = app.outbox_messages();
    let code_message = messages
        .iter()
        .find(|m| m["to"] == "+15550109999")
        .expect("the code goes to the new number");
    assert_eq!(code_message["channel"], "sms");
    let code = code_sent_to(&messages, "+15550109999");
    // Another account's session cannot use Ann's change.
    let res = post_bearer(
        &app,
        "/api/v1/me/contact/confirm",
        &ben,
        &json!({"change_token": change, "code": code}),
    )
    .await;
    assert_eq!(res.status(), 410);
    // Five wrong codes spend it; the right one then no longer works.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let res = post_bearer(
            &app,
            "/api/v1/me/contact/confirm",
            &ann,
            &json!({"change_token": change, "code": wrong}),
        )
        .await;
        assert!(matches!(res.status().as_u16(), 400 | 410));
    }
    let res = post_bearer(
        &app,
        "/api/v1/me/contact/confirm",
        &ann,
        &json!({"change_token": change, "code": code}),
    )
    .await;
    assert_eq!(res.status(), 410);
    assert_eq!(me(&app, &ann).await["phone"], "+15550100100");
}
both!(
    a_phone_change_code_goes_by_text_and_allows_five_tries,
    contact_change_by_phone
);

async fn contact_change_page(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let mut jar = signed_in_browser(&app).await;
    let (status, html) = get(&app, &mut jar, "/security").await;
    assert_eq!(status, 200);
    assert!(html.contains("Contact details"), "{html}");
    let csrf = input_value(&html, "csrf").unwrap();
    // Without the CSRF token nothing happens.
    let res = post(
        &app,
        &mut jar,
        "/security/contact",
        &[
            ("csrf", "x"),
            ("field", "email"),
            ("value", "ann.new@example.org"),
            ("current_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), 403);
    let res = post(
        &app,
        &mut jar,
        "/security/contact",
        &[
            ("csrf", &csrf),
            ("field", "email"),
            ("value", "ann.new@example.org"),
            ("current_password", "nope-Nope-1"),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("That is not your current password."));
    let res = post(
        &app,
        &mut jar,
        "/security/contact",
        &[
            ("csrf", &csrf),
            ("field", "email"),
            ("value", "ann.new@example.org"),
            ("current_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("a•••@example.org"), "{html}");
    let token = input_value(&html, "token").unwrap();
    let code = code_sent_to(&app.outbox_messages(), "ann.new@example.org");
    let res = post(
        &app,
        &mut jar,
        "/security/contact/confirm",
        &[("csrf", &csrf), ("token", &token), ("code", &code)],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Your email address is changed"), "{html}");
    assert!(html.contains("a•••@example.org"));
}
both!(
    the_security_page_changes_the_email_address,
    contact_change_page
);

/// Signs Ann in through the sign-in page; the jar holds the session cookie.
async fn signed_in_browser(app: &TestApp) -> Jar {
    let mut jar = Jar::default();
    let (_, html) = get(app, &mut jar, "/").await;
    let csrf = input_value(&html, "csrf").unwrap();
    let res = post(
        app,
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
    jar
}

fn link_body(card: &portcullis_testkit::Card) -> Value {
    json!({"number": card.number, "verification": card.verification})
}

async fn link_and_unlink(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    app.register(&BEN, "ben.sample", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    let first = me(&app, &token).await["cards"][0]["id"].as_i64().unwrap();

    // The only card cannot be unlinked.
    let res = delete_bearer(&app, &format!("/api/v1/me/cards/{first}"), &token).await;
    assert_eq!(res.status(), 409);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "last-card");

    // A wrong card ID is not recognised.
    let res = post_bearer(
        &app,
        "/api/v1/me/cards",
        &token,
        &json!({"number": ANN_BLUE.number, "verification": "999"}),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "card-not-recognised"
    );
    // Ben's card is another holder's (and already has its own account): refused with the
    // answer a wrong card ID gets (no card-ID oracle).
    let res = post_bearer(&app, "/api/v1/me/cards", &token, &link_body(&BEN)).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "card-not-recognised"
    );

    let res = post_bearer(&app, "/api/v1/me/cards", &token, &link_body(&ANN_BLUE)).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let card: Value = res.json().await.unwrap();
    assert_eq!(card["last4"], "4444");
    assert_eq!(card["product"], "Blue Cash Card");
    let cards = me(&app, &token).await["cards"].as_array().unwrap().clone();
    assert_eq!(cards.len(), 2);
    // Twice is refused.
    let res = post_bearer(&app, "/api/v1/me/cards", &token, &link_body(&ANN_BLUE)).await;
    assert_eq!(res.status(), 409);

    // Another account's card id is not Ann's to unlink.
    let res = delete_bearer(&app, "/api/v1/me/cards/999999", &token).await;
    assert_eq!(res.status(), 404);
    let res = delete_bearer(&app, &format!("/api/v1/me/cards/{first}"), &token).await;
    assert_eq!(res.status(), 204);
    let cards = me(&app, &token).await["cards"].as_array().unwrap().clone();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0]["last4"], "4444");
    let second = cards[0]["id"].as_i64().unwrap();
    let res = delete_bearer(&app, &format!("/api/v1/me/cards/{second}"), &token).await;
    assert_eq!(res.status(), 409, "never the last");
    let kinds = audit_kinds(&app).await;
    assert!(kinds.contains(&"card.linked".to_owned()));
    assert!(kinds.contains(&"card.unlinked".to_owned()));
    // No card number anywhere in the audit log.
    let entries = app.built.store.audit_entries(0, 1000).await.unwrap();
    assert!(!entries.iter().any(|e| e.detail.contains(ANN_BLUE.number)));
}
both!(
    cards_of_the_same_holder_are_linked_and_unlinked_never_the_last,
    link_and_unlink
);

async fn parallel_unlinks(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    let res = post_bearer(&app, "/api/v1/me/cards", &token, &link_body(&ANN_BLUE)).await;
    assert_eq!(res.status(), 201);
    let ids: Vec<i64> = me(&app, &token).await["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    // Both cards unlinked at once: one wins, the account keeps a card.
    let (path_a, path_b) = (
        format!("/api/v1/me/cards/{}", ids[0]),
        format!("/api/v1/me/cards/{}", ids[1]),
    );
    let a = delete_bearer(&app, &path_a, &token);
    let b = delete_bearer(&app, &path_b, &token);
    let (a, b) = tokio::join!(a, b);
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 409]);
    assert_eq!(me(&app, &token).await["cards"].as_array().unwrap().len(), 1);
}
both!(two_parallel_unlinks_leave_one_card, parallel_unlinks);

async fn link_throttled(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.failures_per_window = 2).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    let bad = json!({"number": ANN_BLUE.number, "verification": "999"});
    for _ in 0..2 {
        let res = post_bearer(&app, "/api/v1/me/cards", &token, &bad).await;
        assert_eq!(res.status(), 400);
    }
    let res = post_bearer(&app, "/api/v1/me/cards", &token, &link_body(&ANN_BLUE)).await;
    assert_eq!(
        res.status(),
        429,
        "the card-check bucket of registration is full"
    );
    assert!(res.headers().contains_key("retry-after"));
}
both!(
    failed_card_links_are_throttled_like_registration,
    link_throttled
);

async fn link_page(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let mut jar = signed_in_browser(&app).await;
    let (_, html) = get(&app, &mut jar, "/security").await;
    let csrf = input_value(&html, "csrf").unwrap();
    assert!(
        !html.contains("/unlink"),
        "no unlink button for the only card"
    );
    let res = post(
        &app,
        &mut jar,
        "/security/cards",
        &[
            ("csrf", &csrf),
            ("number", ANN_BLUE.number),
            ("verification", "999"),
        ],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("We could not link this card"));
    let res = post(
        &app,
        &mut jar,
        "/security/cards",
        &[
            ("csrf", &csrf),
            ("number", ANN_BLUE.number),
            ("verification", ANN_BLUE.verification),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("ending 4444 is now linked"), "{html}");
    let unlink = html
        .split("action=\"/security/cards/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_owned();
    let res = post(
        &app,
        &mut jar,
        &format!("/security/cards/{unlink}/unlink"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("The card is unlinked"));
}
both!(the_security_page_links_and_unlinks_cards, link_page);

// ---------------------------------------------------------------------------------------
// Inactivity.

async fn warn_then_deactivate(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    app.register(&BEN, "ben.sample", PASSWORD).await;
    let old_session = app.token("ann.example", PASSWORD, "personal").await;
    let core = &app.built.app;

    // 23 months: nothing to do.
    app.clock.advance(700 * DAY);
    // Ben signs in now: his 24 months start again.
    app.token("ben.sample", PASSWORD, "personal").await;
    let run = core.run_inactivity(true, "test").await.unwrap();
    assert!(run.warned.is_empty() && run.deactivated.is_empty());

    // 24 months after Ann's last sign-in: a dry run lists her and changes nothing.
    app.clock.advance(31 * DAY);
    let run = core.run_inactivity(true, "test").await.unwrap();
    assert_eq!(run.warned, ["ann.example"]);
    let run = core.run_inactivity(true, "test").await.unwrap();
    assert_eq!(run.warned, ["ann.example"], "a dry run changes nothing");
    let run = core.run_inactivity(false, "test").await.unwrap();
    assert_eq!(run.warned, ["ann.example"]);
    assert!(run.deactivated.is_empty());
    let messages = app.outbox_messages();
    assert!(
        messages
            .iter()
            .any(|m| m["to"] == "ann@example.com"
                && m["subject"].as_str().unwrap().contains("inactive")),
        "{messages:?}"
    );
    // Warned once only.
    let run = core.run_inactivity(false, "test").await.unwrap();
    assert!(run.warned.is_empty());

    // 30 days later, still no sign-in: deactivated.
    app.clock.advance(29 * DAY);
    assert!(core
        .run_inactivity(false, "test")
        .await
        .unwrap()
        .deactivated
        .is_empty());
    app.clock.advance(DAY);
    let run = core.run_inactivity(false, "test").await.unwrap();
    assert_eq!(run.deactivated, ["ann.example"]);
    let messages = app.outbox_messages();
    assert!(messages
        .iter()
        .any(|m| m["subject"].as_str().unwrap().contains("was deactivated")));

    // A deactivated account is refused exactly like a wrong password.
    let refused = app.sign_in("ann.example", PASSWORD, "personal").await;
    assert_eq!(refused.status(), 401);
    let refused: Value = refused.json().await.unwrap();
    let wrong: Value = app
        .sign_in("ann.example", "Wrong-Horse-42", "personal")
        .await
        .json()
        .await
        .unwrap();
    let unknown: Value = app
        .sign_in("nobody.here", PASSWORD, "personal")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refused, wrong);
    assert_eq!(refused, unknown);
    // Its sessions ended (they had also expired, but the rows are gone too).
    assert_eq!(
        app.get_bearer("/api/v1/me", &old_session).await.status(),
        401
    );
    let kinds = audit_kinds(&app).await;
    assert!(kinds.contains(&"account.inactivity_warned".to_owned()));
    assert!(kinds.contains(&"account.deactivated".to_owned()));
}
both!(
    an_inactive_account_is_warned_then_deactivated,
    warn_then_deactivate
);

async fn sign_in_clears_warning(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.inactivity.warn_after_secs = 10 * DAY;
        c.inactivity.deactivate_after_secs = 2 * DAY;
    })
    .await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let core = &app.built.app;
    app.clock.advance(10 * DAY);
    assert_eq!(
        core.run_inactivity(false, "test").await.unwrap().warned,
        ["ann.example"]
    );
    // Ann signs in after the warning: she keeps her account.
    app.token("ann.example", PASSWORD, "personal").await;
    app.clock.advance(3 * DAY);
    let run = core.run_inactivity(false, "test").await.unwrap();
    assert!(
        run.deactivated.is_empty() && run.warned.is_empty(),
        "{run:?}"
    );
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
}
both!(
    a_sign_in_after_the_warning_keeps_the_account_and_durations_are_configurable,
    sign_in_clears_warning
);

/// Ann, deactivated after inactivity (with short, configured durations).
async fn deactivated_ann(backend: Backend) -> TestApp {
    let app = spawn_app_with(backend, |c| {
        c.inactivity.warn_after_secs = 10 * DAY;
        c.inactivity.deactivate_after_secs = 2 * DAY;
    })
    .await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let core = &app.built.app;
    app.clock.advance(10 * DAY);
    core.run_inactivity(false, "test").await.unwrap();
    app.clock.advance(2 * DAY);
    assert_eq!(
        core.run_inactivity(false, "test")
            .await
            .unwrap()
            .deactivated,
        ["ann.example"]
    );
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        401
    );
    app
}

async fn support_reactivates(backend: Backend) {
    let app = deactivated_ann(backend).await;
    let token = admin_token(&app, "agent.smith", &["accounts:read", "accounts:unlock"]).await;
    let shown: Value = app
        .get_bearer("/api/v1/admin/accounts/ann.example", &token)
        .await
        .json()
        .await
        .unwrap();
    assert!(shown["deactivated_at"].is_string(), "{shown}");
    let res = post_bearer(
        &app,
        "/api/v1/admin/accounts/ann.example/reactivate",
        &token,
        &json!({"reason": "caller verified by phone"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["reactivated"], true);
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
    // Inactivity counts again from the reactivation.
    assert!(app
        .built
        .app
        .run_inactivity(true, "test")
        .await
        .unwrap()
        .warned
        .is_empty());
    let res = post_bearer(
        &app,
        "/api/v1/admin/accounts/ann.example/reactivate",
        &token,
        &json!({"reason": "again"}),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["reactivated"], false);
    let entries = app.built.store.audit_entries(0, 1000).await.unwrap();
    assert!(entries
        .iter()
        .any(|e| e.kind == "account.reactivated" && e.actor == "support:agent.smith"));
    assert!(app
        .outbox_messages()
        .iter()
        .any(|m| m["subject"].as_str().unwrap().contains("active again")));
}
both!(
    support_reactivates_a_deactivated_account,
    support_reactivates
);

async fn card_reactivates(backend: Backend) {
    let app = deactivated_ann(backend).await;
    // The registration path: the card verifies again, and step 2 brings the account back.
    let res = app.verify_card(&ANN).await;
    assert_eq!(res.status(), 200);
    let verified: Value = res.json().await.unwrap();
    assert_eq!(verified["reactivation"], true);
    let res = app
        .post_json(
            "/api/v1/registration/complete",
            &json!({
                "registration_token": verified["registration_token"],
                "user_id": "ann.again",
                "password": "Fresh-Lantern-77",
                "security_answers": TestApp::answers(),
                "code_channel": "email"
            }),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        401
    );
    let token = app.token("ann.again", "Fresh-Lantern-77", "personal").await;
    let home = me(&app, &token).await;
    assert_eq!(
        home["cards"][0]["last4"], "0005",
        "the same account, its cards kept"
    );
    let entries = app.built.store.audit_entries(0, 1000).await.unwrap();
    assert!(entries.iter().any(|e| e.kind == "account.reactivated"));
    // An active account's card is still refused (as a wrong card ID is).
    assert_eq!(app.verify_card(&ANN).await.status(), 400);
}
both!(
    card_verification_reactivates_a_deactivated_account,
    card_reactivates
);

async fn cli_runs_inactivity(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    // The binary uses the real clock: nobody is 24 months inactive yet.
    let run = cli(&app, &["admin", "run-inactivity", "--dry-run"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("dry run: 0 to deactivate, 0 to warn"),
        "{}",
        run.stdout
    );
    // Ann's last activity two years back (as the database would hold it).
    sqlx_exec(
        &app,
        "UPDATE online_accounts SET last_active_at = last_active_at - 800 * 86400",
    )
    .await;
    let run = cli(&app, &["admin", "run-inactivity", "--dry-run"]).await;
    assert!(
        run.stdout.contains("would warn ann.example"),
        "{}",
        run.stdout
    );
    let run = cli(&app, &["admin", "run-inactivity"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("warned ann.example"), "{}", run.stdout);
    let run = cli(&app, &["admin", "run-inactivity", "--dry-run"]).await;
    assert!(run.stdout.contains("0 to warn"), "{}", run.stdout);
    let entries = app.built.store.audit_entries(0, 1000).await.unwrap();
    assert!(entries
        .iter()
        .any(|e| e.kind == "account.inactivity_warned" && e.actor == "cli:operator.one"));
}
both!(admin_run_inactivity_lists_then_acts, cli_runs_inactivity);

async fn sqlx_exec(app: &TestApp, sql: &str) {
    sqlx::query(sql)
        .execute(app.built.store.pool())
        .await
        .unwrap();
}

async fn one_node_runs_the_job(backend: Backend) {
    let first = spawn_app(backend).await;
    let second = spawn_app_on(&first, |_| {}).await;
    first.register(&ANN, "ann.example", PASSWORD).await;
    let later = portcullis_core::clock::Clock::now(&first.clock).0 + 800 * DAY;
    first.clock.set(later);
    second.clock.set(later);
    // Both nodes' schedulers fire at once: one claims the lease and runs.
    let (a, b) = tokio::join!(
        first.built.app.run_scheduled_inactivity("node-a", 3600),
        second.built.app.run_scheduled_inactivity("node-b", 3600),
    );
    let runs: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(runs.len(), 1, "exactly one node ran the job");
    assert_eq!(runs[0].warned, ["ann.example"]);
    // Within the interval neither runs again; after it, one does.
    assert!(first
        .built
        .app
        .run_scheduled_inactivity("node-a", 3600)
        .await
        .unwrap()
        .is_none());
    first.clock.advance(3600);
    second.clock.advance(3600);
    assert!(second
        .built
        .app
        .run_scheduled_inactivity("node-b", 3600)
        .await
        .unwrap()
        .is_some());
    let warnings = first
        .outbox_messages()
        .into_iter()
        .chain(second.outbox_messages())
        .filter(|m| m["subject"].as_str().unwrap().contains("inactive"))
        .count();
    assert_eq!(warnings, 1, "one warning, whichever node sent it");
}
both!(
    the_inactivity_job_runs_on_one_node_at_a_time,
    one_node_runs_the_job
);
