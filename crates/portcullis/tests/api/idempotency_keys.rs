//! Issue 16: `Idempotency-Key`s on the POSTs that create something — registration
//! completion and posting a status incident. A client whose answer was lost retries with
//! the same key and body and gets the first answer again (`Idempotent-Replayed: true`),
//! applied once; the same key with another body is 422; retries racing the first all get
//! its answer; keys are swept after a day.

use std::sync::Arc;

use portcullis_core::ports::AuditReads;
use portcullis_testkit::{
    both, is_problem, spawn_app, spawn_app_with, Backend, Card, TestApp, ANN, BEN,
};
use serde_json::{json, Value};

use crate::status::status_json;
use crate::support::admin_token;

fn body(token: &str, user_id: &str) -> Value {
    json!({
        "registration_token": token,
        "user_id": user_id,
        "password": portcullis_testkit::PASSWORD,
        "security_answers": TestApp::answers(),
        "code_channel": "email"
    })
}

async fn complete(app: &TestApp, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/v1/registration/complete"))
        .json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await.unwrap()
}

async fn step_token(app: &TestApp, card: &Card) -> String {
    let res = app.verify_card(card).await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["registration_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn replayed(res: &reqwest::Response) -> bool {
    res.headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

async fn accounts_created(app: &TestApp) -> usize {
    app.built
        .store
        .audit_entries(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == "account.created")
        .count()
}

async fn retry_and_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = step_token(&app, &BEN).await;
    let first = body(&token, "ben.example");
    let res = complete(&app, Some("reg-7f3a9c"), &first).await;
    assert_eq!(res.status(), 201);
    assert!(!replayed(&res));
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer, json!({"user_id": "ben.example"}));

    // The answer was lost: the same request again gets the same answer, applied once.
    let res = complete(&app, Some("reg-7f3a9c"), &first).await;
    assert_eq!(res.status(), 201);
    assert!(replayed(&res), "Idempotent-Replayed: true");
    assert_eq!(res.json::<Value>().await.unwrap(), answer);
    assert_eq!(accounts_created(&app).await, 1);
    let ready = app
        .outbox_messages()
        .iter()
        .filter(|m| m["subject"].as_str().unwrap().contains("account is ready"))
        .count();
    assert_eq!(ready, 1, "the holder is told once");

    // The same key with another body: 422, nothing applied.
    let res = complete(&app, Some("reg-7f3a9c"), &body(&token, "ben.other")).await;
    assert_eq!(res.status(), 422);
    assert!(is_problem(res.headers()));
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "idempotency-key-reused"
    );
    // Without the key the retry meets its own consumed step.
    assert_eq!(complete(&app, None, &first).await.status(), 410);
    // A key that is not 1 to 200 visible ASCII characters is refused before anything.
    for bad in ["", &"k".repeat(201)] {
        let res = complete(&app, Some(bad), &first).await;
        assert_eq!(res.status(), 400, "{bad:?}");
    }
    assert_eq!(
        app.sign_in("ben.example", portcullis_testkit::PASSWORD, "personal")
            .await
            .status(),
        201
    );

    // Kept a day: then the sweep removes it and a retry is a new request (its step is gone).
    app.clock.advance(86_400 + 1);
    let swept = app.built.app.sweep_expired().await.unwrap();
    assert_eq!(swept.idempotency_keys, 1);
    let res = complete(&app, Some("reg-7f3a9c"), &first).await;
    assert_eq!(res.status(), 410);
    assert!(!replayed(&res));
}
both!(
    registration_with_an_idempotency_key_is_applied_once_and_replayed,
    retry_and_conflict
);

/// Registration keys are scoped by the registration token: another client using the same
/// key is applied normally (not 422, not someone else's answer).
async fn keys_per_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let ben = step_token(&app, &BEN).await;
    let ann = step_token(&app, &ANN).await;
    let res = complete(&app, Some("shared-key"), &body(&ben, "ben.example")).await;
    assert_eq!(res.status(), 201);
    let res = complete(&app, Some("shared-key"), &body(&ann, "ann.example")).await;
    assert_eq!(res.status(), 201, "another token's key is its own");
    assert!(!replayed(&res));
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"user_id": "ann.example"})
    );
    assert_eq!(accounts_created(&app).await, 2);
}
both!(
    registration_keys_are_scoped_by_the_registration_token,
    keys_per_token
);

/// Four copies of one keyed request at once (a client retrying before the first answered):
/// one applies, the others get its answer; one account.
async fn racing_retries(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let token = step_token(&app, &ANN).await;
    let request = body(&token, "ann.example");
    let mut handles = Vec::new();
    for _ in 0..4 {
        let app = app.clone();
        let request = request.clone();
        handles.push(tokio::spawn(async move {
            let res = complete(&app, Some("reg-race-1"), &request).await;
            let status = res.status().as_u16();
            let again = replayed(&res);
            (
                status,
                again,
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        }));
    }
    let mut answers = Vec::new();
    for h in handles {
        answers.push(h.await.unwrap());
    }
    assert!(
        answers
            .iter()
            .all(|(s, _, b)| *s == 201 && *b == json!({"user_id": "ann.example"})),
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|(_, again, _)| !again).count(),
        1,
        "one applied, the rest replayed: {answers:?}"
    );
    assert_eq!(accounts_created(&app).await, 1);
}
both!(
    racing_copies_of_a_keyed_registration_make_one_account,
    racing_retries
);

/// The per-address limit comes before a key's kept answer. Every completion call counts
/// on the address's bucket, a replay too: with the bucket full, a replay and a probe under
/// the kept key with another password (which would otherwise answer 422 or a replay, telling
/// whether the guess matched the kept request) both get 429 + `Retry-After`. The client's
/// honest retry gets its kept answer once the window has passed, long after its
/// registration token expired.
async fn limit_before_replay(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.failures_per_window = 3).await;
    let token = step_token(&app, &BEN).await;
    let first = body(&token, "ben.example");
    let mut guess = first.clone();
    guess["password"] = json!("Another-Guess-993");
    let res = complete(&app, Some("reg-limit-1"), &first).await;
    assert_eq!(res.status(), 201);
    let res = complete(&app, Some("reg-limit-1"), &first).await;
    assert_eq!(res.status(), 201);
    assert!(replayed(&res));
    let res = complete(&app, Some("reg-limit-1"), &guess).await;
    assert_eq!(res.status(), 422, "another request under the key");

    // Three calls from this address: the bucket is full.
    for (what, request) in [("a probe", &guess), ("a replay", &first)] {
        let res = complete(&app, Some("reg-limit-1"), request).await;
        assert_eq!(res.status(), 429, "{what} past the limit");
        assert!(res.headers().get("retry-after").is_some(), "{what}");
        assert!(!replayed(&res), "{what}");
    }

    app.clock.advance(601);
    let res = complete(&app, Some("reg-limit-1"), &first).await;
    assert_eq!(res.status(), 201, "the retry after the window");
    assert!(replayed(&res));
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"user_id": "ben.example"})
    );
    assert_eq!(accounts_created(&app).await, 1);
}
both!(
    a_registration_replay_counts_on_the_per_address_limit_and_is_answered_within_it,
    limit_before_replay
);

async fn post_incident(app: &TestApp, token: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/admin/status/incidents"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// An operator's tool retrying an incident post: one incident, the same answer; the same
/// key with another post is 422; another operator's same key is theirs (keys are scoped
/// per actor): applied normally.
async fn incident_retry(backend: Backend) {
    let app = spawn_app(backend).await;
    let ops = admin_token(&app, "ops", &["status:write"]).await;
    let post = json!({"title": "Slow sign-in", "message": "Looking into it."});
    let res = post_incident(&app, &ops, "inc-1", &post).await;
    assert_eq!(res.status(), 201);
    assert!(!replayed(&res));
    let first: Value = res.json().await.unwrap();
    let res = post_incident(&app, &ops, "inc-1", &post).await;
    assert_eq!(res.status(), 201);
    assert!(replayed(&res));
    assert_eq!(res.json::<Value>().await.unwrap()["id"], first["id"]);
    let other = json!({"title": "Slow sign-in", "message": "Fixed."});
    assert_eq!(
        post_incident(&app, &ops, "inc-1", &other).await.status(),
        422
    );
    let desk = admin_token(&app, "desk", &["status:write"]).await;
    let res = post_incident(&app, &desk, "inc-1", &post).await;
    assert_eq!(
        res.status(),
        201,
        "another operator's key space is not this one's"
    );
    assert!(!replayed(&res));
    assert_ne!(res.json::<Value>().await.unwrap()["id"], first["id"]);
    let status = status_json(&app).await;
    let posted = status["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["title"] == "Slow sign-in")
        .count();
    assert_eq!(posted, 2, "one incident per operator: {status}");
}
both!(
    an_incident_posted_twice_with_one_idempotency_key_is_posted_once,
    incident_retry
);
