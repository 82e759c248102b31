//! Issue 13: "This was not me" removes the passkeys added in the disputed session, proved
//! over HTTP with a software passkey (`soft_passkey.rs`): the intruder's passkey signs in
//! before, and after "not me" and the owner's recovery it opens nothing (401, an unknown
//! credential — not 423, a locked account). And it puts back contact details the intruder
//! changed, so the owner's recovery code does not go to the intruder.

use portcullis_testkit::{both, Backend, TestApp, ANN, PASSWORD};
use serde_json::{json, Value};

use crate::not_me::{app_with_addresses, code_in, message, post, send, sign_in_from};
use crate::soft_passkey::SoftPasskey;

const ORIGIN: &str = "http://localhost:8080";
const OWNER_IP: &str = "198.51.100.8";
const INTRUDER_IP: &str = "203.0.113.67";
const NEW_PASSWORD: &str = "Brand-New-Day-9";

/// A sign-in with `passkey` alone from `ip`.
async fn passkey_sign_in(app: &TestApp, ip: &str, passkey: &mut SoftPasskey) -> (u16, Value) {
    let (status, o) = post(
        app,
        ip,
        "/api/v1/sessions/passkey/options",
        None,
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{o}");
    let credential = passkey.assert(&o["options"], ORIGIN);
    post(
        app,
        ip,
        "/api/v1/sessions/passkey",
        None,
        &json!({"passkey_token": o["passkey_token"], "credential": credential}),
    )
    .await
}

async fn not_me_removes_passkeys(backend: Backend) {
    let app = app_with_addresses(backend, |c| c.public_url = Some(ORIGIN.into())).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let (status, owner) = sign_in_from(&app, OWNER_IP, PASSWORD, None).await;
    assert_eq!(status, 201, "{owner}");

    // The intruder signs in from a new device and adds a passkey.
    app.clock.advance(60);
    let (status, intruder) = sign_in_from(&app, INTRUDER_IP, PASSWORD, None).await;
    assert_eq!(status, 201, "{intruder}");
    let bearer = intruder["session_token"].as_str().unwrap().to_owned();
    let body = message(&app, "New sign-in")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let not_me = body
        .split_whitespace()
        .find(|w| w.contains("/not-me/"))
        .and_then(|l| l.rsplit('/').next())
        .unwrap()
        .to_owned();
    let (status, o) = post(
        &app,
        INTRUDER_IP,
        "/api/v1/me/factors/passkeys/options",
        Some(&bearer),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{o}");
    let mut passkey = SoftPasskey::new();
    let credential = passkey.register(&o["options"], ORIGIN);
    let (status, added) = post(
        &app,
        INTRUDER_IP,
        "/api/v1/me/factors/passkeys",
        Some(&bearer),
        &json!({"registration_token": o["registration_token"], "credential": credential,
                "name": "Not Ann's key"}),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    // It works: the intruder signs in with the passkey alone.
    app.clock.advance(30);
    let (status, session) = passkey_sign_in(&app, INTRUDER_IP, &mut passkey).await;
    assert_eq!(status, 201, "the software passkey signs in: {session}");

    // The owner presses "This was not me".
    app.clock.advance(30);
    let (status, answer) = post(
        &app,
        OWNER_IP,
        "/api/v1/not-me",
        None,
        &json!({"token": not_me}),
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    let (status, problem) = passkey_sign_in(&app, INTRUDER_IP, &mut passkey).await;
    assert_eq!(
        status, 401,
        "the passkey is gone, not merely locked out: {problem}"
    );

    // The owner recovers with card ID + code and a new password.
    let (_, start) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/start",
        None,
        &json!({"user_id": "ann.example"}),
    )
    .await;
    let token = start["recovery_token"].clone();
    let (status, sent) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": token, "card_id": ANN.verification}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let code = code_in(&message(&app, "security code"));
    let (status, accepted) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": token, "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    let (status, problem) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/reset",
        None,
        &json!({"reset_token": accepted["reset_token"], "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 204, "{problem}");

    // Unlocked now, and still the intruder's passkey opens nothing; the owner has no factor.
    let (status, problem) = passkey_sign_in(&app, INTRUDER_IP, &mut passkey).await;
    assert_eq!(status, 401, "{problem}");
    let (status, session) = sign_in_from(&app, OWNER_IP, NEW_PASSWORD, None).await;
    assert_eq!(status, 201, "{session}");
    let (status, factors) = send(
        &app,
        OWNER_IP,
        reqwest::Method::GET,
        "/api/v1/me/factors",
        session["session_token"].as_str(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{factors}");
    assert_eq!(factors["factors"], json!([]), "{factors}");
}
both!(
    not_me_removes_the_intruders_passkey_proved_with_a_software_passkey,
    not_me_removes_passkeys
);

/// The intruder changes Ann's email to their own; "This was not me" puts it back, so the
/// lock notice and the recovery code reach Ann, never the intruder's address.
async fn not_me_reverts_contact(backend: Backend) {
    let app = app_with_addresses(backend, |_| {}).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let (status, _) = sign_in_from(&app, OWNER_IP, PASSWORD, None).await;
    assert_eq!(status, 201);
    app.clock.advance(60);
    let (status, intruder) = sign_in_from(&app, INTRUDER_IP, PASSWORD, None).await;
    assert_eq!(status, 201, "{intruder}");
    let bearer = intruder["session_token"].as_str().unwrap().to_owned();
    let body = message(&app, "New sign-in")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let not_me = body
        .split_whitespace()
        .find(|w| w.contains("/not-me/"))
        .and_then(|l| l.rsplit('/').next())
        .unwrap()
        .to_owned();
    // The intruder moves the email to an address of their own.
    let (status, started) = post(
        &app,
        INTRUDER_IP,
        "/api/v1/me/contact",
        Some(&bearer),
        &json!({"current_password": PASSWORD, "field": "email", "value": "mallory@example.net"}),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let code = code_in(&message(&app, "security code"));
    let (status, answer) = post(
        &app,
        INTRUDER_IP,
        "/api/v1/me/contact/confirm",
        Some(&bearer),
        &json!({"change_token": started["change_token"], "code": code}),
    )
    .await;
    assert_eq!(status, 204, "{answer}");

    app.clock.advance(30);
    let (status, answer) = post(
        &app,
        OWNER_IP,
        "/api/v1/not-me",
        None,
        &json!({"token": not_me}),
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    let told = message(&app, "We locked your");
    assert_eq!(told["to"], "ann@example.com", "{told}");
    assert!(told["body"]
        .as_str()
        .unwrap()
        .contains("put back the contact details"));

    // Recovery: the code goes to Ann's own address.
    let (_, start) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/start",
        None,
        &json!({"user_id": "ann.example"}),
    )
    .await;
    let (status, sent) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": start["recovery_token"], "card_id": ANN.verification}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["destination"], "a•••@example.com", "{sent}");
    let code_message = message(&app, "security code");
    assert_eq!(code_message["to"], "ann@example.com");
}
both!(
    not_me_puts_back_the_email_the_intruder_changed,
    not_me_reverts_contact
);
