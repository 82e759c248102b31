//! Flow 8: sessions.

use portcullis_testkit::{both, spawn_app, spawn_app_with, Backend, ANN, PASSWORD};
use serde_json::Value;

async fn sign_out(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    assert_eq!(app.get_bearer("/api/v1/me", &token).await.status(), 200);
    let res = app
        .client
        .delete(app.url("/api/v1/sessions/current"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    // The token is dead on the server, not just forgotten by the client.
    assert_eq!(app.get_bearer("/api/v1/me", &token).await.status(), 401);
}
both!(sign_out_ends_the_session_on_the_server, sign_out);

async fn idle_expiry(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    // Activity within 15 minutes keeps it alive.
    app.clock.advance(14 * 60);
    assert_eq!(app.get_bearer("/api/v1/me", &token).await.status(), 200);
    app.clock.advance(14 * 60);
    assert_eq!(app.get_bearer("/api/v1/me", &token).await.status(), 200);
    // 15 idle minutes end it.
    app.clock.advance(15 * 60);
    assert_eq!(app.get_bearer("/api/v1/me", &token).await.status(), 401);
}
both!(an_idle_session_expires_after_fifteen_minutes, idle_expiry);

async fn absolute_expiry(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    for _ in 0..(12 * 6 - 1) {
        app.clock.advance(10 * 60);
        assert_eq!(app.get_bearer("/api/v1/me", &token).await.status(), 200);
    }
    app.clock.advance(10 * 60);
    assert_eq!(app.get_bearer("/api/v1/me", &token).await.status(), 401);
}
both!(a_busy_session_still_ends_at_twelve_hours, absolute_expiry);

async fn configurable(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.session.idle_secs = 60;
        c.session.absolute_secs = 300;
    })
    .await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let token = app.token("ann.example", PASSWORD, "personal").await;
    app.clock.advance(61);
    assert_eq!(app.get_bearer("/api/v1/me", &token).await.status(), 401);
}
both!(timeouts_are_configurable, configurable);

async fn list_and_end(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let phone = app.token("ann.example", PASSWORD, "personal").await;
    let laptop = app.token("ann.example", PASSWORD, "personal").await;
    assert_ne!(phone, laptop, "a new token at every sign-in");
    let list: Vec<Value> = app
        .get_bearer("/api/v1/me/sessions", &laptop)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    let other = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/me/sessions/{other}")))
        .bearer_auth(&laptop)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_bearer("/api/v1/me", &phone).await.status(), 401);
    assert_eq!(app.get_bearer("/api/v1/me", &laptop).await.status(), 200);
    // Another account's session id is not yours to end.
    let res = app
        .client
        .delete(app.url("/api/v1/me/sessions/999999"))
        .bearer_auth(&laptop)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
both!(sessions_are_listed_and_ended, list_and_end);

#[tokio::test]
async fn garbage_tokens_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    for token in ["", "x", &"a".repeat(500), "' OR 1=1 --"] {
        let res = app
            .client
            .get(app.url("/api/v1/me"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{token}");
    }
}

async fn everywhere_else(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let keep = app.token("ann.example", PASSWORD, "personal").await;
    let others = [
        app.token("ann.example", PASSWORD, "personal").await,
        app.token("ann.example", PASSWORD, "personal").await,
    ];
    let res = app
        .client
        .delete(app.url("/api/v1/me/sessions"))
        .bearer_auth(&keep)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["ended"], 2);
    assert_eq!(app.get_bearer("/api/v1/me", &keep).await.status(), 200);
    for t in &others {
        assert_eq!(app.get_bearer("/api/v1/me", t).await.status(), 401);
    }
    let list: Value = app
        .get_bearer("/api/v1/me/sessions", &keep)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
}
both!(
    sign_out_everywhere_else_keeps_only_this_session,
    everywhere_else
);
