//! Credential defences: the device allowance, throttling per address, password change and
//! policy, and timing that does not tell known User IDs from unknown ones.

use std::time::Instant;

use portcullis_testkit::{both, spawn_app, spawn_app_with, Backend, TestApp, ANN, BEN, PASSWORD};
use serde_json::{json, Value};

async fn sign_in_with_device(
    app: &TestApp,
    password: &str,
    device: Option<&str>,
) -> reqwest::Response {
    app.post_json(
        "/api/v1/sessions",
        &json!({"user_id": "ann.example", "password": password, "account_type": "personal", "device_token": device}),
    )
    .await
}

async fn known_device(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    // The owner's phone signs in once and keeps its device token.
    let res = sign_in_with_device(&app, PASSWORD, None).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let device = body["device_token"].as_str().unwrap().to_owned();
    // Signing in again with it issues no new token.
    let res = sign_in_with_device(&app, PASSWORD, Some(&device)).await;
    assert!(res
        .json::<Value>()
        .await
        .unwrap()
        .get("device_token")
        .is_none());
    // A stranger who knows the User ID locks the account...
    for _ in 0..6 {
        assert_eq!(
            sign_in_with_device(&app, "Guess-Guess-1", None)
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        sign_in_with_device(&app, PASSWORD, None).await.status(),
        423
    );
    // ...but the owner's known device still gets in.
    assert_eq!(
        sign_in_with_device(&app, PASSWORD, Some(&device))
            .await
            .status(),
        201
    );
    // Another account's device token is no key to this one.
    app.register(&BEN, "ben.sample", PASSWORD).await;
    let res = app
        .post_json(
            "/api/v1/sessions",
            &json!({"user_id": "ben.sample", "password": PASSWORD, "account_type": "personal"}),
        )
        .await;
    let bens_device = res.json::<Value>().await.unwrap()["device_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        sign_in_with_device(&app, PASSWORD, Some(&bens_device))
            .await
            .status(),
        423
    );
    // The known device has its own small allowance: four failures lock it out too.
    for _ in 0..4 {
        assert_eq!(
            sign_in_with_device(&app, "Guess-Guess-1", Some(&device))
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        sign_in_with_device(&app, PASSWORD, Some(&device))
            .await
            .status(),
        423
    );
}
both!(
    a_known_device_still_signs_in_while_strangers_have_locked_the_account,
    known_device
);

async fn throttling(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.failures_per_window = 5;
        c.limits.window_secs = 600;
    })
    .await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    // Successes do not fill the bucket.
    for _ in 0..6 {
        assert_eq!(
            app.sign_in("ann.example", PASSWORD, "personal")
                .await
                .status(),
            201
        );
    }
    // Failures across many User IDs do.
    for i in 0..5 {
        assert_eq!(
            app.sign_in(&format!("sprayed{i:02}"), PASSWORD, "personal")
                .await
                .status(),
            401
        );
    }
    let res = app.sign_in("sprayed99", PASSWORD, "personal").await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry), "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "too-many-requests");
    // Even the right password waits: the limit is on the address.
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        429
    );
    // Card checks from the same address have their own bucket, limited the same way.
    for _ in 0..5 {
        let res = app
            .post_json("/api/v1/registration/verify-card", &json!({"account_type": "personal", "number": "4111111111111111", "verification": "123"}))
            .await;
        assert_eq!(res.status(), 400);
    }
    let res = app
        .post_json("/api/v1/registration/verify-card", &json!({"account_type": "personal", "number": "4111111111111111", "verification": "123"}))
        .await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    // When the window has passed, sign-in works again.
    app.clock.advance(601);
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
}
both!(
    throttling_per_address_answers_429_with_retry_after,
    throttling
);

#[tokio::test]
async fn throttling_can_be_switched_off_but_lockout_stays() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.limits.enabled = false;
        c.limits.failures_per_window = 2;
    })
    .await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    for i in 0..10 {
        assert_eq!(
            app.sign_in(&format!("nobody{i:02}"), PASSWORD, "personal")
                .await
                .status(),
            401
        );
    }
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
}

async fn change(app: &TestApp, token: &str, current: &str, new: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(token)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap()
}

async fn password_change(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let other = app.token("ann.example", PASSWORD, "personal").await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    let res = change(&app, &token, "Not-My-Password-1", "Fresh-Start-77!").await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "current_password");
    let res = change(&app, &token, PASSWORD, "password1").await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    let messages: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("too common")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("capital")),
        "{messages:?}"
    );
    let res = change(&app, &token, PASSWORD, "My-ann.example-1").await;
    assert_eq!(res.status(), 400);
    assert_eq!(change(&app, &token, PASSWORD, PASSWORD).await.status(), 400);
    assert_eq!(
        change(&app, &token, PASSWORD, "Fresh-Start-77!")
            .await
            .status(),
        204
    );
    // This session stays; every other one ended; the new password works, the old does not.
    assert_eq!(app.get_bearer("/api/v1/me", &token).await.status(), 200);
    assert_eq!(app.get_bearer("/api/v1/me", &other).await.status(), 401);
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.sign_in("ann.example", "Fresh-Start-77!", "personal")
            .await
            .status(),
        201
    );
    let msgs = app.outbox_messages();
    assert!(msgs.iter().any(|m| m["subject"]
        .as_str()
        .unwrap()
        .contains("password was changed")));
}
both!(
    password_change_needs_the_current_password_and_ends_other_sessions,
    password_change
);

#[tokio::test]
async fn pci_profile_refuses_the_last_four_passwords() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.password.profile = "pci-dss-4".into()).await;
    let first = "Harbor-Lights-2031";
    app.register(&ANN, "ann.example", first).await;
    let token = app.token("ann.example", first, "personal").await;
    let mut current = first.to_owned();
    for i in 1..=4 {
        let next = format!("Harbor-Lights-20{i:02}x");
        assert_eq!(
            change(&app, &token, &current, &next).await.status(),
            204,
            "{next}"
        );
        current = next;
    }
    // The first password is now five back: allowed again. The one before current is not.
    let res = change(&app, &token, &current, "Harbor-Lights-2003x").await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("last 4"));
    assert_eq!(change(&app, &token, &current, first).await.status(), 204);
    // And the profile's own rules: 12 characters with letters and digits.
    let res = change(&app, &token, first, "short1").await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn registration_refuses_a_common_password_naming_the_rule() {
    let app = spawn_app(Backend::Sqlite).await;
    let res = app.verify_card(&ANN).await;
    let token = res.json::<Value>().await.unwrap()["registration_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post_json(
            "/api/v1/registration/complete",
            &json!({"registration_token": token, "user_id": "ann.example", "password": "Password1!",
                    "security_answers": TestApp::answers(), "code_channel": "email"}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "password");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("too common"));
}

/// Failed sign-ins for unknown and known User IDs, interleaved, at the production hashing
/// parameters: the medians must be within 25% (the benchmark reports the figure against a
/// 10% target; this looser bound keeps a shared machine from making the test flaky).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_known_user_ids_take_the_same_time_to_fail() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.hashing.memory_kib = 19_456;
        c.hashing.iterations = 2;
        c.lockout.lock_after_failures = 100;
        c.limits.enabled = false;
    })
    .await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    // Warm up connections and caches.
    app.sign_in("ann.example", "Wrong-Horse-1", "personal")
        .await;
    app.sign_in("nobody.here", "Wrong-Horse-1", "personal")
        .await;
    // Adjacent pairs, in alternating order, so a change in the machine's load affects both
    // sides of a pair alike; the figure is the median of the pairs' ratios.
    let mut ratios = Vec::new();
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..31 {
        let time = |user: String| {
            let app = &app;
            async move {
                let started = Instant::now();
                let res = app.sign_in(&user, "Wrong-Horse-1", "personal").await;
                assert_eq!(res.status(), 401);
                started.elapsed().as_secs_f64()
            }
        };
        let (k, u) = if i % 2 == 0 {
            let k = time("ann.example".into()).await;
            (k, time(format!("nobody{i:03}")).await)
        } else {
            let u = time(format!("nobody{i:03}")).await;
            (time("ann.example".into()).await, u)
        };
        ratios.push(u / k);
        known.push(k);
        unknown.push(u);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = median(&mut ratios);
    let (k, u) = (median(&mut known), median(&mut unknown));
    eprintln!(
        "failed sign-in medians: known {:.1} ms, unknown {:.1} ms; median pair ratio unknown/known {ratio:.3}",
        k * 1e3,
        u * 1e3
    );
    assert!((0.8..1.25).contains(&ratio), "unknown/known = {ratio:.3}");
}

// Multi-threaded: the testkit waits for delivery only on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_from_a_new_device_tells_the_owner() {
    let app = spawn_app(Backend::Sqlite).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let new_device_notices = |app: &TestApp| {
        app.outbox_messages()
            .iter()
            .filter(|m| m["subject"].as_str().unwrap().contains("New sign-in"))
            .count()
    };
    // The first device after registration is expected: no notice.
    let res = sign_in_with_device(&app, PASSWORD, None).await;
    let device = res.json::<Value>().await.unwrap()["device_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(new_device_notices(&app), 0);
    // The same device again: no notice.
    sign_in_with_device(&app, PASSWORD, Some(&device)).await;
    assert_eq!(new_device_notices(&app), 0);
    // Another device: the owner is told.
    sign_in_with_device(&app, PASSWORD, None).await;
    assert_eq!(new_device_notices(&app), 1);
}
