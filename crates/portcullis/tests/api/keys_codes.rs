//! One-time codes and recovery codes across a rotation of `registry.key`
//! (docs/design/keys.md, "The registry key"): a code sent and recovery codes made before the
//! rotation are taken after it (checked under every key of the ring), and those made after
//! it are under the new key alone (they are taken once the old key is gone from the file).

use std::time::Duration;

use portcullis::keys;
use portcullis_testkit::{both, spawn_app_with, Backend, TestApp, BEN, PASSWORD};
use serde_json::{json, Value};

use crate::keys::{codes_to, emailed_code, second_step, sign_in};

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

/// The `dest-hour` bucket of an email address under the registry key `key`, as the
/// throttle table names it.
fn hour_bucket(key: &portcullis_crypto::KeyedHasher, email: &str) -> String {
    let digest = key.hash("portcullis/destination/v1", &[b"email", email.as_bytes()]);
    let id: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("dest-hour:{id}")
}

async fn bucket_count(app: &TestApp, bucket: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT count FROM throttle WHERE bucket = $1")
        .bind(bucket)
        .fetch_optional(app.built.store.pool())
        .await
        .unwrap()
}

/// Codes sent to one address on anonymous requests are counted under every key of the
/// registry ring: a rotation neither resets the hour's count nor leaves the new key's
/// buckets empty.
async fn buckets_across_rotation(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.per_destination_per_hour = 3;
        c.limits.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    app.register(&BEN, "ben.sample", PASSWORD).await;
    let forgot = |i: usize| {
        app.client
            .post(app.url("/api/v1/recovery/user-id/start"))
            .header("x-forwarded-for", format!("203.0.113.{}", 10 + i))
            .json(&json!({"email": "ben@example.com", "channel": "email"}))
            .send()
    };
    let sent = || codes_to(&app, "ben@").len();
    for i in 0..2 {
        assert_eq!(forgot(i).await.unwrap().status(), 202);
    }
    wait_for_codes(&app, 2).await;
    keys::rotate(&app.config, "registry.key").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    for i in 2..5 {
        assert_eq!(forgot(i).await.unwrap().status(), 202, "answered alike");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sent(), 3, "the hour's count went on across the rotation");
    let ring = portcullis_crypto::keyring::load_ring(&app.config.secrets_dir, "registry.key")
        .unwrap()
        .unwrap();
    let under = |id: u32| portcullis_crypto::KeyedHasher::new(ring.get(id).unwrap().clone());
    assert_eq!(
        bucket_count(&app, &hour_bucket(&under(1), "ben@example.com")).await,
        Some(3)
    );
    assert_eq!(
        bucket_count(&app, &hour_bucket(&under(2), "ben@example.com")).await,
        Some(1),
        "the one message after the rotation, under the new key too"
    );
}
both!(
    destination_limits_count_under_every_registry_key_across_a_rotation,
    buckets_across_rotation
);

async fn wait_for_codes(app: &TestApp, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while codes_to(app, "ben@").len() < n {
        assert!(std::time::Instant::now() < deadline, "codes not delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
