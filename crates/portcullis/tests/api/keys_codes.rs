//! One-time codes across a rotation of `registry.key` (docs/design/keys.md, "The registry
//! key"): a code sent before the rotation is taken after it (checked under every key of the
//! ring), and a code sent after it is under the new key alone (it is taken once the old key
//! is gone from the file).

use std::time::{Duration, Instant};

use portcullis::keys;
use portcullis_testkit::{both, spawn_app_with, Backend, TestApp, BEN, PASSWORD};
use serde_json::{json, Value};

use crate::keys::{codes_to, second_step, sign_in};

/// Ben signs in and asks for a code by email: the challenge and the code delivered.
async fn emailed_code(app: &TestApp) -> (Value, String) {
    let before = codes_to(app, "ben@").len();
    let (status, challenge) = sign_in(app, "ben.sample", PASSWORD, "personal").await;
    assert_eq!(status, 200, "{challenge}");
    let res = app
        .post_json(
            "/api/v1/sessions/mfa/send",
            &json!({"challenge_token": challenge["challenge_token"], "method": "email"}),
        )
        .await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let codes = codes_to(app, "ben@");
        if codes.len() > before {
            return (challenge, codes[codes.len() - 1].clone());
        }
        assert!(Instant::now() < deadline, "the code was never delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn codes_across_rotation(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.per_destination_per_hour = 1000;
        c.limits.per_destination_per_day = 1000;
    })
    .await;
    app.register(&BEN, "ben.sample", PASSWORD).await;
    let token = app.token("ben.sample", PASSWORD, "personal").await;
    let res = app
        .client
        .post(app.url("/api/v1/me/factors/code"))
        .bearer_auth(&token)
        .json(&json!({"channel": "email"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    let (challenge, code) = emailed_code(&app).await;
    keys::rotate(&app.config, "registry.key").unwrap();
    // The app has looked at the file again (at most every half second, on use).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, session) = second_step(&app, &challenge, "email", &code).await;
    assert_eq!(status, 201, "a code from before the rotation: {session}");

    // A code sent now is under key 2: taken with key 1 gone from the file.
    let (challenge, code) = emailed_code(&app).await;
    let secrets = &app.config.secrets_dir;
    let ring = portcullis_crypto::keyring::load_ring(secrets, "registry.key")
        .unwrap()
        .unwrap();
    assert_eq!(ring.current_id(), 2);
    let two: String = ring
        .get(2)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let temporary = secrets.join("registry.key.new");
    std::fs::write(&temporary, format!("current 2\nkey 2 {two}\n")).unwrap();
    std::fs::rename(&temporary, secrets.join("registry.key")).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    // A wrong code is still refused under the remaining key.
    let (status, _) = second_step(&app, &challenge, "email", "000000").await;
    assert_ne!(status, 201);
    let (status, session) = second_step(&app, &challenge, "email", &code).await;
    assert_eq!(status, 201, "a code from after the rotation: {session}");
}
both!(
    a_code_sent_before_a_registry_rotation_is_taken_after_it_and_new_codes_use_the_new_key,
    codes_across_rotation
);
