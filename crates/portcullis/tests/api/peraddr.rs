//! Issue 13, part C: limits per client address that hold (IPv6 by /64, IPv4-mapped
//! addresses, trusted proxies as CIDR ranges, every anonymous writer limited), messages
//! per destination (strangers cannot text a phone without end nor use up its owner's
//! quota), recoveries without an oracle (forgot User ID alike including resend), the sweep
//! of expired rows, and new-device messages that name only browser and platform.
//!
//! Each test plays many client addresses: the app trusts the loopback proxy range, and each
//! request names its client in `X-Forwarded-For`.

use portcullis_testkit::{both, spawn_app_with, Backend, TestApp, ANN, PASSWORD};
use serde_json::{json, Value};

/// Trusts the loopback range as a proxy, so `X-Forwarded-For` names the client.
fn behind_proxy(c: &mut portcullis::config::Config) {
    c.limits.trusted_proxies = vec!["127.0.0.0/8".into()];
}

async fn post_from(app: &TestApp, client: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("x-forwarded-for", client)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Status, `Retry-After` and body of an answer, the token (random) blanked.
async fn shape(res: reqwest::Response) -> (u16, Option<String>, String) {
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let mut body: Value = res.json().await.unwrap_or(Value::Null);
    if let Some(token) = body.get_mut("recovery_token") {
        *token = json!("…");
    }
    (status, retry, body.to_string())
}

/// Registers `ANN` with texts as her code channel.
async fn register_ann_by_text(app: &TestApp) {
    let res = app.verify_card(&ANN).await;
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["registration_token"].clone();
    let res = app
        .post_json(
            "/api/v1/registration/complete",
            &json!({
                "registration_token": token,
                "user_id": "ann.example",
                "password": PASSWORD,
                "security_answers": TestApp::answers(),
                "code_channel": "sms"
            }),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

const ANN_PHONE: &str = "+15550100100";

async fn forgot_user_id_alike(backend: Backend) {
    let app = spawn_app_with(backend, behind_proxy).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let mut seen = Vec::new();
    for (i, email) in ["ann@example.com", "nobody@example.com"].iter().enumerate() {
        let client = format!("198.51.100.{}", 10 + i);
        let start = post_from(
            &app,
            &client,
            "/api/v1/recovery/user-id/start",
            &json!({"email": email, "channel": "email"}),
        )
        .await;
        let token = start.json::<Value>().await.unwrap()["recovery_token"].clone();
        let mut answers = Vec::new();
        let resend = json!({"recovery_token": token});
        // At once (a code was just sent, or was it?), then every 30 s until the sends are
        // used up: the same answers, the same Retry-After.
        for _ in 0..12 {
            let res = post_from(&app, &client, "/api/v1/recovery/user-id/resend", &resend).await;
            answers.push(shape(res).await);
            app.clock.advance(30);
        }
        seen.push(answers);
        // Back to the start for the other address.
        app.clock.advance(-12 * 30);
    }
    assert_eq!(seen[0], seen[1], "known vs unknown address");
    let statuses: Vec<u16> = seen[0].iter().map(|a| a.0).collect();
    assert_eq!(statuses[0], 429, "an immediate resend is refused for both");
    assert!(statuses.contains(&202), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        4,
        "five sends in all: {statuses:?}"
    );
}
both!(
    forgot_user_id_answers_alike_for_known_and_unknown_addresses_including_resend,
    forgot_user_id_alike
);

async fn texts_per_destination(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        behind_proxy(c);
        c.risk.new_device_step_up = true;
    })
    .await;
    register_ann_by_text(&app).await;
    // The first sign-in (the registering device) is not asked for a code.
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
    // Seven strangers, seven addresses, one phone.
    for i in 0..7 {
        let res = post_from(
            &app,
            &format!("203.0.113.{}", 20 + i),
            "/api/v1/recovery/user-id/start",
            &json!({"email": "ann@example.com", "channel": "sms"}),
        )
        .await;
        assert_eq!(res.status(), 202, "every one answered alike");
    }
    // Codes by text to her phone (her registration notice went there too).
    let texts = |app: &TestApp| {
        app.outbox_messages()
            .into_iter()
            .filter(|m| {
                m["channel"] == "sms"
                    && m["to"] == ANN_PHONE
                    && m["subject"].as_str().unwrap().contains("security code")
            })
            .count()
    };
    assert_eq!(texts(&app), 3, "at most three an hour to one phone");
    // Nothing went by email instead either (the gateway's quota was never reached).
    assert!(!app
        .outbox_messages()
        .iter()
        .any(|m| m["to"] == "ann@example.com"
            && m["subject"].as_str().unwrap().contains("security code")));
    // The owner's own sign-in from a new device still gets its code by text.
    let res = post_from(
        &app,
        "192.0.2.50",
        "/api/v1/sessions",
        &json!({"user_id": "ann.example", "password": PASSWORD, "account_type": "personal"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let challenge: Value = res.json().await.unwrap();
    assert!(
        challenge["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("sms")),
        "{challenge}"
    );
    let res = app
        .post_json(
            "/api/v1/sessions/mfa/send",
            &json!({"challenge_token": challenge["challenge_token"], "method": "sms"}),
        )
        .await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    assert_eq!(texts(&app), 4, "the owner's code arrived");
    let code_msg = app
        .outbox_messages()
        .into_iter()
        .rfind(|m| m["to"] == ANN_PHONE)
        .unwrap();
    let code: String = code_msg["body"]
        .as_str()
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned();
    let res = app
        .post_json(
            "/api/v1/sessions/mfa",
            &json!({"challenge_token": challenge["challenge_token"], "method": "sms", "code": code}),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    // An hour later the hourly limit has room again, but the daily one (3, below the
    // gateway's 5 a number) is spent: strangers get nothing more today.
    app.clock.advance(3601);
    let before = texts(&app);
    for i in 0..3 {
        post_from(
            &app,
            &format!("203.0.113.{}", 40 + i),
            "/api/v1/recovery/user-id/start",
            &json!({"email": "ann@example.com", "channel": "sms"}),
        )
        .await;
    }
    assert_eq!(
        texts(&app),
        before,
        "the day's share for strangers is spent"
    );
}
both!(
    seven_anonymous_texts_to_one_phone_deliver_three_and_the_owner_still_gets_a_code,
    texts_per_destination
);

async fn anonymous_writers_throttled(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        behind_proxy(c);
        c.limits.failures_per_window = 3;
    })
    .await;
    let calls: [(&str, Value); 3] = [
        (
            "/api/v1/recovery/password/start",
            json!({"user_id": "someone.else"}),
        ),
        ("/api/v1/sessions/passkey/options", json!({})),
        (
            "/api/v1/registration/complete",
            json!({
                "registration_token": "not-a-token",
                "user_id": "new.person",
                "password": PASSWORD,
                "security_answers": TestApp::answers(),
                "code_channel": "email"
            }),
        ),
    ];
    for (path, body) in &calls {
        for _ in 0..3 {
            let res = post_from(&app, "198.51.100.77", path, body).await;
            assert_ne!(res.status(), 429, "{path}");
        }
        let res = post_from(&app, "198.51.100.77", path, body).await;
        assert_eq!(res.status(), 429, "{path}: the fourth from one address");
        assert!(res.headers().get("retry-after").is_some());
        // Another address is not held back.
        let res = post_from(&app, "198.51.100.78", path, body).await;
        assert_ne!(res.status(), 429, "{path}");
    }
}
both!(
    forgot_password_start_passkey_options_and_registration_are_throttled_per_address,
    anonymous_writers_throttled
);

async fn ipv6_by_network(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        behind_proxy(c);
        c.limits.failures_per_window = 3;
    })
    .await;
    let start = json!({"user_id": "someone.else"});
    let path = "/api/v1/recovery/password/start";
    // Three addresses of one /64: one bucket.
    for client in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::abcd:1",
        "2001:db8:1:2:ffff:ffff:ffff:fff0",
    ] {
        let res = post_from(&app, client, path, &start).await;
        assert_eq!(res.status(), 200);
    }
    let res = post_from(&app, "2001:db8:1:2:1234::99", path, &start).await;
    assert_eq!(res.status(), 429, "a fresh address in the same /64");
    // The next /64 is someone else.
    let res = post_from(&app, "2001:db8:1:3::1", path, &start).await;
    assert_eq!(res.status(), 200);
}
both!(ipv6_addresses_in_one_64_share_a_bucket, ipv6_by_network);

async fn proxies(backend: Backend) {
    // A mapped hop matches the plain IPv4 proxy entry; the loopback range is CIDR.
    let app = spawn_app_with(backend, |c| {
        c.limits.trusted_proxies = vec!["127.0.0.0/8".into(), "10.0.0.7".into()];
        c.limits.failures_per_window = 2;
    })
    .await;
    let start = json!({"user_id": "someone.else"});
    let path = "/api/v1/recovery/password/start";
    let via_mapped = "198.51.100.9, ::ffff:10.0.0.7";
    assert_eq!(
        post_from(&app, via_mapped, path, &start).await.status(),
        200
    );
    assert_eq!(
        post_from(&app, via_mapped, path, &start).await.status(),
        200
    );
    // The client behind the mapped hop is 198.51.100.9: its bucket is full.
    assert_eq!(
        post_from(&app, "198.51.100.9", path, &start).await.status(),
        429
    );
    // An untrusted hop is the client itself (its own bucket).
    let via_other = "198.51.100.9, 10.0.0.8";
    assert_eq!(post_from(&app, via_other, path, &start).await.status(), 200);
    // A proxy outside the trusted ranges is not believed: the peer (127.0.0.1) is the
    // client, whatever the header says.
    let app = spawn_app_with(backend, |c| {
        c.limits.trusted_proxies = vec!["10.0.0.0/8".into()];
        c.limits.failures_per_window = 2;
    })
    .await;
    for (i, expected) in [200, 200, 429].into_iter().enumerate() {
        let res = post_from(&app, &format!("198.51.100.{i}"), path, &start).await;
        assert_eq!(res.status(), expected);
    }
}
both!(
    mapped_addresses_match_ipv4_proxies_and_proxies_are_cidr_ranges,
    proxies
);

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(app.built.store.pool())
        .await
        .unwrap()
}

async fn sweep(backend: Backend) {
    let app = spawn_app_with(backend, behind_proxy).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    app.token("ann.example", PASSWORD, "personal").await;
    for (i, email) in ["ann@example.com", "nobody@example.com"].iter().enumerate() {
        post_from(
            &app,
            &format!("198.51.100.{i}"),
            "/api/v1/recovery/user-id/start",
            &json!({"email": email, "channel": "email"}),
        )
        .await;
    }
    post_from(
        &app,
        "198.51.100.5",
        "/api/v1/recovery/password/start",
        &json!({"user_id": "ann.example"}),
    )
    .await;
    for table in ["steps", "one_time_codes", "throttle", "devices"] {
        assert!(count(&app, table).await > 0, "{table}");
    }
    // Nothing is due yet.
    let swept = app.built.app.sweep_expired().await.unwrap();
    assert_eq!(swept.steps + swept.codes + swept.devices, 0, "{swept:?}");
    // 401 days on: everything above has expired, and the devices' cookies are gone.
    app.clock.advance(401 * 86_400);
    // A step started now stays.
    let live = post_from(
        &app,
        "198.51.100.9",
        "/api/v1/recovery/user-id/start",
        &json!({"email": "ann@example.com", "channel": "email"}),
    )
    .await;
    assert_eq!(live.status(), 202);
    let swept = app.built.app.sweep_expired().await.unwrap();
    assert!(swept.steps >= 3, "{swept:?}");
    assert!(swept.codes >= 1, "{swept:?}");
    assert!(swept.throttle >= 3, "{swept:?}");
    assert!(swept.devices >= 1, "{swept:?}");
    assert_eq!(count(&app, "devices").await, 0);
    assert_eq!(count(&app, "steps").await, 1, "the live step stays");
    assert_eq!(count(&app, "one_time_codes").await, 1, "and its code");
    // The live step still works.
    let token = live.json::<Value>().await.unwrap()["recovery_token"].clone();
    let code = crate::recovery::latest_code(&app, "ann@example.com", 0).await;
    let res = app
        .post_json(
            "/api/v1/recovery/user-id/verify",
            &json!({"recovery_token": token, "code": code}),
        )
        .await;
    assert_eq!(res.status(), 200);
}
both!(
    the_sweep_deletes_expired_steps_codes_buckets_and_devices,
    sweep
);

async fn user_agents(backend: Backend) {
    let app = spawn_app_with(backend, behind_proxy).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    app.token("ann.example", PASSWORD, "personal").await;
    let agents = [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64) Your card is blocked, call +1 202 0777 now \
             AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
            "Chrome on Windows",
        ),
        (
            "URGENT: verify your account at https://evil.example/bank today",
            "a browser",
        ),
    ];
    for (ua, named) in agents {
        let seen = app.outbox_messages().len();
        let res = app
            .client
            .post(app.url("/api/v1/sessions"))
            .header("user-agent", ua)
            .json(&json!({"user_id": "ann.example", "password": PASSWORD, "account_type": "personal"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let notice = app
            .outbox_messages()
            .into_iter()
            .skip(seen)
            .find(|m| m["subject"].as_str().unwrap().contains("New sign-in"))
            .expect("a new-device notice");
        let body = notice["body"].as_str().unwrap();
        assert!(body.contains(&format!("from {named}")), "{body}");
        for words in ["blocked", "0777", "evil", "URGENT", "verify your account"] {
            assert!(!body.contains(words), "{words:?} repeated in {body}");
        }
    }
}
both!(
    the_new_device_message_names_only_browser_and_platform,
    user_agents
);
