//! Flows 2 and 3: signing in, and the lockout.

use portcullis_testkit::{both, is_problem, spawn_app, Backend, ANN, PASSWORD};
use serde_json::{json, Value};

async fn failures_look_alike(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let mut bodies = Vec::new();
    for (user, pw, kind) in [
        ("ann.example", "Wrong-Horse-42", "personal"),
        ("nobody.here", PASSWORD, "personal"),
        ("ann.example", PASSWORD, "corporate"),
        ("x", PASSWORD, "personal"),
        ("ann.example", "", "personal"),
        ("ann.example", PASSWORD, "admin"),
    ] {
        let res = app.sign_in(user, pw, kind).await;
        assert_eq!(res.status(), 401, "{user}/{kind}");
        assert!(is_problem(res.headers()));
        assert!(res.headers().get("retry-after").is_none());
        bodies.push(res.text().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:#?}");
    let body: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body["code"], "sign-in-failed");
    assert_eq!(body["status"], 401);
}
both!(
    wrong_password_unknown_user_and_wrong_type_get_one_answer,
    failures_look_alike
);

async fn case_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "Ann.Example", PASSWORD).await;
    // User IDs are case-insensitive...
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
    assert_eq!(
        app.sign_in("ANN.EXAMPLE", PASSWORD, "personal")
            .await
            .status(),
        201
    );
    // ...passwords are not.
    assert_eq!(
        app.sign_in("ann.example", &PASSWORD.to_lowercase(), "personal")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.sign_in("ann.example", &PASSWORD.to_uppercase(), "personal")
            .await
            .status(),
        401
    );
    // The spelling chosen at registration is what /me shows.
    let token = app.token("ANN.example", PASSWORD, "personal").await;
    let me: Value = app
        .get_bearer("/api/v1/me", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], "Ann.Example");
}
both!(
    user_id_is_case_insensitive_and_password_case_sensitive,
    case_rules
);

async fn nfkc(backend: Backend) {
    let app = spawn_app(backend).await;
    // Registered with fullwidth characters, signed in with their plain forms (NFKC).
    app.register(&ANN, "ann.example", "Ｃｏｒｒｅｃｔ-Horse-42")
        .await;
    assert_eq!(
        app.sign_in("ann.example", "Correct-Horse-42", "personal")
            .await
            .status(),
        201
    );
}
both!(passwords_are_compared_after_nfkc, nfkc);

async fn malformed(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in ["{", "[]", "null", "{\"user_id\": 5}", "not json at all", ""] {
        let res = app
            .client
            .post(app.url("/api/v1/sessions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
        assert!(is_problem(res.headers()));
    }
    let res = app
        .client
        .post(app.url("/api/v1/registration/verify-card"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A card number in the wrong type is not echoed back.
    let res = app
        .client
        .post(app.url("/api/v1/registration/verify-card"))
        .header("content-type", "application/json")
        .body(r#"{"account_type":"personal","number":378282246310005,"verification":"1234"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(!res.text().await.unwrap().contains("378282246310005"));
}
both!(malformed_json_is_400_never_5xx, malformed);

async fn lockout_rule(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    for _ in 0..6 {
        assert_eq!(
            app.sign_in("ann.example", "Wrong-Horse-42", "personal")
                .await
                .status(),
            401
        );
    }
    // Locked: a wrong password still gets the generic answer...
    let res = app
        .sign_in("ann.example", "Wrong-Horse-42", "personal")
        .await;
    assert_eq!(res.status(), 401);
    let generic = res.text().await.unwrap();
    // ...and only the correct password learns of the lock and how to unlock.
    let res = app.sign_in("ann.example", PASSWORD, "personal").await;
    assert_eq!(res.status(), 423);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "account-locked");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("Forgot your password"));
    assert!(body["locked_until"].is_string());
    assert!(!generic.contains("lock"));
    // The owner was told at once.
    let msgs = app.outbox_messages();
    assert!(
        msgs.iter()
            .any(|m| m["subject"].as_str().unwrap().contains("locked")),
        "{msgs:?}"
    );
    // Seven days later the lock has run out.
    app.clock.advance(7 * 86_400);
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
}
both!(
    six_failures_lock_and_only_the_right_password_hears_of_it,
    lockout_rule
);

async fn success_resets(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    for _ in 0..5 {
        app.sign_in("ann.example", "Wrong-Horse-42", "personal")
            .await;
    }
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
    for _ in 0..5 {
        app.sign_in("ann.example", "Wrong-Horse-42", "personal")
            .await;
    }
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
    // The wrong account type with the right password is not counted as a password failure.
    for _ in 0..10 {
        assert_eq!(
            app.sign_in("ann.example", PASSWORD, "merchant")
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
}
both!(a_success_resets_the_count, success_resets);

/// 40 wrong attempts in parallel: the account locks, and no more than the threshold were
/// evaluated (the audit log records each evaluated failure).
async fn parallel_failures(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let app = std::sync::Arc::new(app);
    let mut handles = Vec::new();
    for _ in 0..40 {
        let app = app.clone();
        handles.push(tokio::spawn(async move {
            app.sign_in("ann.example", "Wrong-Horse-42", "personal")
                .await
                .status()
                .as_u16()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 401);
    }
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        423
    );
    let evaluated = app.built.store.as_ref();
    use portcullis_core::ports::AuditReads;
    let entries = evaluated.audit_entries(0, 1000).await.unwrap();
    let wrong = entries
        .iter()
        .filter(|e| e.kind == "signin.failed" && e.detail.starts_with("wrong password"))
        .count();
    assert_eq!(wrong, 6, "evaluated wrong passwords");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.kind == "account.locked")
            .count(),
        1
    );
}
both!(
    forty_parallel_failures_evaluate_at_most_the_threshold,
    parallel_failures
);

#[tokio::test]
async fn json_sign_in_is_case_tolerant_about_bearer_scheme() {
    let app = spawn_app(Backend::Sqlite).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let _ = json!({});
}
