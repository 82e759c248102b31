//! One-time codes and recovery codes across a rotation of `registry.key`
//! (docs/design/keys.md, "The registry key"): a code sent and recovery codes made before the
//! rotation are taken after it (checked under every key of the ring), and those made after
//! it are under the new key alone (they are taken once the old key is gone from the file).

use std::time::Duration;

use portcullis::keys;
use portcullis_testkit::{both, spawn_app_with, Backend, TestApp, BEN, PASSWORD};
use serde_json::{json, Value};

use crate::keys::{emailed_code, second_step, sign_in};

/// New recovery codes for the session `token`.
async fn recovery_codes(app: &TestApp, token: &str) -> Vec<String> {
    let res = app
        .client
        .post(app.url("/api/v1/me/factors/recovery-codes"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    serde_json::from_value(res.json::<Value>().await.unwrap()["codes"].clone()).unwrap()
}

async fn codes_across_rotation(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.per_destination_per_hour = 1000;
        c.limits.per_destination_per_day = 1000;
    })
    .await;
    app.register(&BEN, "ben.sample", PASSWORD).await;
    let token = app.token("ben.sample", PASSWORD, "personal").await;
    crate::mfa::enable_email_codes(&app, &token).await;
    let before = recovery_codes(&app, &token).await;

    let (challenge, code) = emailed_code(&app).await;
    keys::rotate(&app.config, "registry.key").unwrap();
    // The app has looked at the file again (at most every half second, on use).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, session) = second_step(&app, &challenge, "email", &code).await;
    assert_eq!(status, 201, "a code from before the rotation: {session}");
    let (_, challenge) = sign_in(&app, "ben.sample", PASSWORD, "personal").await;
    let (status, body) = second_step(&app, &challenge, "recovery_code", &before[0]).await;
    assert_eq!(
        status, 201,
        "a recovery code from before the rotation: {body}"
    );
    let after = recovery_codes(&app, session["session_token"].as_str().unwrap()).await;

    // A code sent now is under key 2, and taken with key 1 gone from the file.
    let (challenge, code) = emailed_code(&app).await;
    let secrets = &app.config.secrets_dir;
    let ring = portcullis_crypto::keyring::load_ring(secrets, "registry.key")
        .unwrap()
        .unwrap();
    assert_eq!(ring.current_id(), 2);
    // The database holds the code's HMAC under key 2, and the new recovery codes' hints
    // are under key 2.
    let under = |id: u32| portcullis_crypto::KeyedHasher::new(ring.get(id).unwrap().clone());
    let step_hash =
        portcullis_crypto::sha256(challenge["challenge_token"].as_str().unwrap().as_bytes());
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT code_hash FROM one_time_codes WHERE step_hash = $1")
            .bind(step_hash.to_vec())
            .fetch_one(app.built.store.pool())
            .await
            .unwrap();
    let code_under = |id| portcullis_core::otp::code_hash(&under(id), &step_hash, &code);
    assert_eq!(stored, code_under(2).to_vec());
    assert_ne!(stored, code_under(1).to_vec());
    let mut hints: Vec<i64> = sqlx::query_scalar("SELECT hint FROM recovery_codes")
        .fetch_all(app.built.store.pool())
        .await
        .unwrap();
    hints.sort_unstable();
    let hints_under = |id| {
        let mut hints: Vec<i64> = after
            .iter()
            .map(|c| {
                let typed = c.replace('-', "").to_lowercase();
                let h = under(id).hash("portcullis/recovery-code-hint/v1", &[typed.as_bytes()]);
                i64::from(h[0])
            })
            .collect();
        hints.sort_unstable();
        hints
    };
    assert_eq!(hints, hints_under(2));
    assert_ne!(hints, hints_under(1));
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
    // A recovery code made after the rotation: its hint is under key 2.
    let (_, challenge) = sign_in(&app, "ben.sample", PASSWORD, "personal").await;
    let (status, body) = second_step(&app, &challenge, "recovery_code", &after[0]).await;
    assert_eq!(
        status, 201,
        "a recovery code from after the rotation: {body}"
    );
}
both!(
    codes_and_recovery_codes_from_before_a_registry_rotation_are_taken_after_it_new_ones_use_the_new_key,
    codes_across_rotation
);
