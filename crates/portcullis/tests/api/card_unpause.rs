//! Issue 13: a paused card's own way back (`POST /recovery/card/start`, `/recovery/card/verify`):
//! a one-time code to the registry's contact for the card, then the right card ID. The
//! first step answers alike for any card number; the card ID is checked only after the right
//! code, once per code, and counts on the paused card. Client addresses are played through a
//! trusted proxy's `X-Forwarded-For`.

use portcullis_core::audit::AuditEntry;
use portcullis_core::ports::AuditReads;
use portcullis_testkit::{both, spawn_app_with, Backend, Card, TestApp, ANN, BEN, PASSWORD};
use serde_json::{json, Value};

async fn app_with_limit(backend: Backend, limit: u32) -> TestApp {
    spawn_app_with(backend, |c| {
        c.limits.trusted_proxies = vec!["127.0.0.1".into()];
        c.limits.card_id_failures = limit;
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

async fn verify_card_from(app: &TestApp, ip: &str, card: &Card, verification: &str) -> u16 {
    post_from(
        app,
        ip,
        "/api/v1/registration/verify-card",
        &json!({"account_type": card.account_type, "number": card.number, "verification": verification}),
    )
    .await
    .0
}

/// `limit` wrong card IDs for `card` from as many addresses: the card is paused.
async fn pause(app: &TestApp, card: &Card, limit: u32) {
    for i in 0..limit {
        let status = verify_card_from(
            app,
            &format!("203.0.113.{}", 100 + i),
            card,
            &format!("{:04}", 9000 + i),
        )
        .await;
        assert_eq!(status, 400);
    }
    assert_eq!(
        count(
            &audit(app).await,
            "card.paused",
            &card.number[card.number.len() - 4..]
        ),
        1,
        "paused"
    );
}

async fn start(app: &TestApp, ip: &str, card: &Card) -> (u16, Value) {
    post_from(
        app,
        ip,
        "/api/v1/recovery/card/start",
        &json!({"account_type": card.account_type, "number": card.number}),
    )
    .await
}

async fn finish(app: &TestApp, ip: &str, token: &Value, code: &str, card_id: &str) -> (u16, Value) {
    post_from(
        app,
        ip,
        "/api/v1/recovery/card/verify",
        &json!({"recovery_token": token, "code": code, "verification": card_id}),
    )
    .await
}

async fn audit(app: &TestApp) -> Vec<AuditEntry> {
    app.built.store.audit_entries(0, 10_000).await.unwrap()
}

fn count(entries: &[AuditEntry], kind: &str, detail: &str) -> usize {
    entries
        .iter()
        .filter(|e| e.kind == kind && e.detail.contains(detail))
        .count()
}

fn messages_to(app: &TestApp, to: &str, subject: &str) -> Vec<Value> {
    app.outbox_messages()
        .into_iter()
        .filter(|m| m["to"] == to && m["subject"].as_str().unwrap_or("").contains(subject))
        .collect()
}

/// The code in the latest security-code message to `to`.
fn last_code(app: &TestApp, to: &str) -> String {
    let msgs = messages_to(app, to, "security code");
    let body = msgs.last().expect("a code message")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned()
}

/// A code that is not `code`.
fn other_than(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

/// Ben's card is paused by guessing; the code goes to the registry's email; a right code
/// with a wrong card ID does not clear it (and uses the code up); a fresh code with the
/// right card ID does: audited, Ben told, and registration works again.
async fn paused_card_comes_back(backend: Backend) {
    let app = app_with_limit(backend, 5).await;
    pause(&app, &BEN, 5).await;
    assert_eq!(
        verify_card_from(&app, "198.51.100.1", &BEN, BEN.verification).await,
        400,
        "paused: the right card ID is refused"
    );

    let (status, body) = start(&app, "198.51.100.2", &BEN).await;
    assert_eq!(status, 202, "{body}");
    let token = body["recovery_token"].clone();
    let code = last_code(&app, "ben@example.com");

    // A wrong code first: counted on the step.
    let (status, wrong_code) = finish(
        &app,
        "198.51.100.2",
        &token,
        &other_than(&code),
        BEN.verification,
    )
    .await;
    assert_eq!(status, 400, "{wrong_code}");
    assert_eq!(wrong_code["code"], "code-rejected");
    // The right code with a wrong card ID: not cleared, and the code is used up.
    let (status, body) = finish(&app, "198.51.100.2", &token, &code, "0000").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "card-not-recognised");
    assert_eq!(
        verify_card_from(&app, "198.51.100.3", &BEN, BEN.verification).await,
        400,
        "still paused"
    );
    let (status, _) = finish(&app, "198.51.100.2", &token, &code, BEN.verification).await;
    assert_eq!(status, 410, "one card ID per code");
    let entries = audit(&app).await;
    assert_eq!(
        count(
            &entries,
            "registration.card_failed",
            "way back: card ••••8431: wrong card ID (1 of 5)"
        ),
        1
    );
    assert_eq!(count(&entries, "card.cleared", ""), 0);

    // A fresh code and the right card ID.
    let (status, body) = start(&app, "198.51.100.4", &BEN).await;
    assert_eq!(status, 202);
    let code = last_code(&app, "ben@example.com");
    let (status, body2) = finish(
        &app,
        "198.51.100.4",
        &body["recovery_token"],
        &code,
        BEN.verification,
    )
    .await;
    assert_eq!(status, 204, "{body2}");
    let entries = audit(&app).await;
    assert_eq!(
        count(
            &entries,
            "card.cleared",
            "card ••••8431 accepts its card ID again, by the holder"
        ),
        1
    );
    assert_eq!(
        messages_to(&app, "ben@example.com", "works online again").len(),
        1
    );
    // The card's count starts afresh: registration works again.
    app.register(&BEN, "ben.sample", PASSWORD).await;
    // Both steps are in the API document.
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in ["/recovery/card/start", "/recovery/card/verify"] {
        assert!(doc["paths"][path]["post"].is_object(), "{path}");
    }
}
both!(
    a_paused_card_comes_back_with_a_code_to_the_registry_email_and_its_card_id,
    paused_card_comes_back
);

/// An unknown card number, a card that is not paused and a paused one get the same answer to
/// both steps (only the paused card's holder is sent a code); codes to one destination are
/// limited (3 an hour) whatever the client address; wrong codes are limited per step.
async fn same_answer_for_any_card(backend: Backend) {
    let app = app_with_limit(backend, 5).await;
    pause(&app, &BEN, 5).await;
    let unknown = Card {
        account_type: "personal",
        number: "4111111111111111",
        verification: "1111",
    };
    let mut tokens = Vec::new();
    for (i, card) in [&BEN, &ANN, &unknown].into_iter().enumerate() {
        let (status, body) = start(&app, &format!("198.51.100.{}", 10 + i), card).await;
        assert_eq!(status, 202, "{body}");
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["recovery_token"]);
        tokens.push(body["recovery_token"].clone());
    }
    let ben_code = last_code(&app, "ben@example.com");
    assert!(
        messages_to(&app, "ann@example.com", "security code").is_empty(),
        "not paused: no code"
    );
    // The same wrong-code answers, try after try, for all three.
    let wrong = other_than(&ben_code);
    for tries_left in (1..5).rev() {
        let answers: Vec<(u16, Value)> = futures_answers(&app, &tokens, &wrong).await;
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        assert_eq!(answers[0].0, 400);
        assert_eq!(answers[0].1["code"], "code-rejected");
        assert_eq!(answers[0].1["tries_left"], tries_left, "{:?}", answers[0]);
    }
    let answers = futures_answers(&app, &tokens, &wrong).await;
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 410, "5 wrong codes: the step is spent");
    // Even the right code now.
    let (status, _) = finish(
        &app,
        "198.51.100.20",
        &tokens[0],
        &ben_code,
        BEN.verification,
    )
    .await;
    assert_eq!(status, 410);

    // Codes to Ben's registry email: at most 3 an hour, from any number of addresses (the
    // first start above was one).
    for i in 0..4 {
        let (status, _) = start(&app, &format!("192.0.2.{}", 30 + i), &BEN).await;
        assert_eq!(status, 202, "the same answer when held back");
    }
    assert_eq!(
        messages_to(&app, "ben@example.com", "security code").len(),
        3
    );
    assert_eq!(
        verify_card_from(&app, "198.51.100.21", &BEN, BEN.verification).await,
        400,
        "still paused"
    );
}
both!(
    unknown_unpaused_and_paused_cards_answer_alike_on_the_way_back,
    same_answer_for_any_card
);

async fn futures_answers(app: &TestApp, tokens: &[Value], code: &str) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        out.push(
            finish(
                app,
                &format!("198.51.100.{}", 40 + i),
                token,
                code,
                BEN.verification,
            )
            .await,
        );
    }
    out
}

/// With `limits.card_id_failures` = 2: two wrong card IDs on the way back (each with its own
/// right code) and the way back is closed: the right card ID with a third right code is
/// refused, Ben is told to call, and only support clears the card.
async fn way_back_limited(backend: Backend) {
    let app = app_with_limit(backend, 2).await;
    pause(&app, &BEN, 2).await;
    for i in 0..2 {
        let (_, body) = start(&app, &format!("198.51.100.{}", 50 + i), &BEN).await;
        let code = last_code(&app, "ben@example.com");
        let (status, _) = finish(
            &app,
            "198.51.100.60",
            &body["recovery_token"],
            &code,
            "0000",
        )
        .await;
        assert_eq!(status, 400);
    }
    assert_eq!(
        messages_to(&app, "ben@example.com", "needs a call").len(),
        1
    );
    let (_, body) = start(&app, "198.51.100.52", &BEN).await;
    let code = last_code(&app, "ben@example.com");
    let (status, answer) = finish(
        &app,
        "198.51.100.60",
        &body["recovery_token"],
        &code,
        BEN.verification,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "card-not-recognised");
    assert_eq!(count(&audit(&app).await, "card.cleared", ""), 0);
    assert_eq!(
        verify_card_from(&app, "198.51.100.61", &BEN, BEN.verification).await,
        400
    );
}
both!(
    wrong_card_ids_on_the_way_back_count_on_the_card_and_close_it,
    way_back_limited
);

/// The same way back through the pages: `/recover/card`, then the code and the card ID; the
/// answer page for a card that is not paused is the same as for a paused one.
async fn way_back_through_the_pages(backend: Backend) {
    use crate::pages::{get, post};
    use portcullis_testkit::{input_value, Jar};
    let app = app_with_limit(backend, 5).await;
    pause(&app, &BEN, 5).await;
    let mut jar = Jar::default();
    let (status, html) = get(&app, &mut jar, "/recover/card").await;
    assert_eq!(status, 200);
    let csrf = input_value(&html, "csrf").unwrap();
    let mut pages = Vec::new();
    for card in [&ANN, &BEN] {
        let res = post(
            &app,
            &mut jar,
            "/recover/card",
            &[
                ("csrf", &csrf),
                ("account_type", "personal"),
                ("number", card.number),
            ],
        )
        .await;
        pages.push((res.status().as_u16(), res.text().await.unwrap()));
    }
    assert_eq!(pages[0].0, 200, "{}", pages[0].1);
    let token = input_value(&pages[1].1, "token").unwrap();
    let strip = |html: &str, token: &str| html.replace(token, "TOKEN");
    let ann_token = input_value(&pages[0].1, "token").unwrap();
    assert_eq!(
        strip(&pages[0].1, &ann_token),
        strip(&pages[1].1, &token),
        "the same page for a card that is not paused"
    );
    let code = last_code(&app, "ben@example.com");
    let res = post(
        &app,
        &mut jar,
        "/recover/card/verify",
        &[
            ("csrf", &csrf),
            ("token", &token),
            ("code", &code),
            ("verification", BEN.verification),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Your card works online again"));
    assert_eq!(
        verify_card_from(&app, "198.51.100.70", &BEN, BEN.verification).await,
        200
    );
}
both!(
    a_paused_card_comes_back_through_the_pages,
    way_back_through_the_pages
);
