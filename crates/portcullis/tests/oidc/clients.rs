//! Relying parties managed through the admin API (`clients:write`) and the command line
//! (`oidc client list | revoke`): registered with the checks of `oidc client add`, listed
//! without secrets, revoked with every token issued to them, audited.

use portcullis_testkit::{both, Backend, Jar, TestApp};
use serde_json::{json, Value};

use super::support::*;

/// `portcullis …` as the operator runs it: (exit code, stdout, stderr).
pub(super) fn cli(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--database-url", &app.config.database_url])
        .args(args)
        .env("PORTCULLIS_SECRETS_DIR", &app.config.secrets_dir)
        .env("PORTCULLIS_PUBLIC_URL", ISSUER)
        .env("USER", "operator.one")
        .env_remove("SUDO_USER")
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("PORTCULLIS_DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An admin token with `scopes`, made on the command line.
pub(super) fn admin_token(app: &TestApp, name: &str, scopes: &[&str]) -> String {
    let mut args = vec!["admin", "token", "create", "--name", name];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let (code, out, err) = cli(app, &args);
    assert_eq!(code, 0, "{err}");
    out.trim().to_owned()
}

pub(super) async fn api(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = app
        .client
        .request(method, app.url(&format!("/api/v1{path}")))
        .bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let res = rb.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A confidential client's refresh grant (HTTP Basic).
async fn refresh_basic(app: &TestApp, id: &str, secret: &str, refresh: &str) -> reqwest::Response {
    app.client
        .post(app.url("/oidc/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap()
}

async fn introspect_basic(app: &TestApp, id: &str, secret: &str, token: &str) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/oidc/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn userinfo(app: &TestApp, access: &str) -> u16 {
    app.client
        .get(app.url("/oidc/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn clients_admin_api(backend: Backend) {
    use reqwest::Method;
    let app = app(backend).await;
    let admin = admin_token(&app, "rp.onboarding", &["clients:write"]);
    let other = admin_token(&app, "hooks", &["webhooks:write"]);
    let auditor = admin_token(&app, "auditor", &["audit:read"]);

    // Without clients:write: 403; without a token: 401.
    let (status, _) = api(&app, Method::GET, "/admin/oidc/clients", &other, None).await;
    assert_eq!(status, 403, "clients:write is needed");
    let (status, _) = api(&app, Method::GET, "/admin/oidc/clients", "nope", None).await;
    assert_eq!(status, 401);

    // The checks of `oidc client add`.
    for refused in [
        json!({"name": "H", "redirect_uris": ["http://rp.example/cb"]}),
        json!({"name": "F", "redirect_uris": [RP], "profile": "fapi2"}),
        json!({"name": "J", "redirect_uris": [RP], "token_endpoint_auth_method": "private_key_jwt"}),
        json!({"name": "", "redirect_uris": [RP]}),
        json!({"name": "N", "redirect_uris": []}),
        json!({"name": "M", "redirect_uris": [RP], "token_endpoint_auth_method": "plain"}),
    ] {
        let (status, body) = api(
            &app,
            Method::POST,
            "/admin/oidc/clients",
            &admin,
            Some(refused.clone()),
        )
        .await;
        assert_eq!(status, 400, "{refused}: {body}");
    }

    // A confidential site: the secret is in the answer, once.
    let (status, created) = api(
        &app,
        Method::POST,
        "/admin/oidc/clients",
        &admin,
        Some(json!({"name": "Statements", "redirect_uris": [RP], "first_party": true})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let site = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43);
    // The mobile app: a public client, no secret.
    let (status, created) = api(
        &app,
        Method::POST,
        "/admin/oidc/clients",
        &admin,
        Some(
            json!({"name": "Mobile", "redirect_uris": ["http://127.0.0.1/cb"],
                    "token_endpoint_auth_method": "none", "first_party": true}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(created.get("client_secret").is_none(), "{created}");
    let mobile = created["client_id"].as_str().unwrap().to_owned();

    // Listed and shown, never with a secret.
    let res = app
        .client
        .get(app.url("/api/v1/admin/oidc/clients"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(!text.contains(&secret), "no secret in the list");
    assert!(!text.contains("secret_hash") && !text.contains("client_secret\""));
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["client_id"], site.as_str());
    assert_eq!(list[0]["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(list[1]["token_endpoint_auth_method"], "none");
    assert_eq!(list[0]["revoked_at"], Value::Null);
    let (status, one) = api(
        &app,
        Method::GET,
        &format!("/admin/oidc/clients/{site}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["name"], "Statements");
    assert_eq!(one["redirect_uris"], json!([RP]));
    let (status, _) = api(
        &app,
        Method::GET,
        "/admin/oidc/clients/nobody",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 404);

    // The site signs Ann in: a code, then access and refresh tokens.
    let (verifier, challenge) = pkce();
    let url = authorize_url(&site, RP, &challenge, "")
        .replace("scope=openid", "scope=openid%20offline_access");
    let mut jar = Jar::default();
    let back = browser(&app, &mut jar, &url).await;
    let code = query(&back, "code").unwrap();
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .basic_auth(&site, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", RP),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, live) = introspect_basic(&app, &site, &secret, &access).await;
    assert_eq!((status, live["active"].clone()), (200, json!(true)));
    assert_eq!(userinfo(&app, &access).await, 200);

    // Revoked: every token stops working at once, and no new authorization starts.
    let (status, _) = api(
        &app,
        Method::DELETE,
        &format!("/admin/oidc/clients/{site}"),
        &other,
        None,
    )
    .await;
    assert_eq!(status, 403, "revoking needs clients:write");
    let (status, _) = api(
        &app,
        Method::DELETE,
        &format!("/admin/oidc/clients/{site}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        userinfo(&app, &access).await,
        401,
        "the access token is dead"
    );
    let (status, body) = introspect_basic(&app, &site, &secret, &access).await;
    assert!(
        status == 401 || body["active"] == json!(false),
        "introspection: {status} {body}"
    );
    let res = refresh_basic(&app, &site, &secret, &refresh).await;
    assert_eq!(res.status(), 401, "a revoked client cannot refresh");
    let (_, challenge) = pkce();
    let res = app
        .client
        .get(real(&app, &authorize_url(&site, RP, &challenge, "")))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        400,
        "no new authorization for a revoked client"
    );
    assert!(res.headers().get("location").is_none());
    let (status, one) = api(
        &app,
        Method::GET,
        &format!("/admin/oidc/clients/{site}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(one["revoked_at"].is_string(), "{one}");
    // Again: nothing changes; an unknown id is 404.
    let (status, _) = api(
        &app,
        Method::DELETE,
        &format!("/admin/oidc/clients/{site}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = api(
        &app,
        Method::DELETE,
        "/admin/oidc/clients/nobody",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 404);

    // The command line: list (one JSON line each, no secret) and revoke.
    let (code, out, err) = cli(&app, &["oidc", "client", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(&secret));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0]["revoked_at"].is_string());
    assert_eq!(lines[1]["client_id"], mobile.as_str());
    assert_eq!(lines[1]["revoked_at"], Value::Null);
    let (code, _, err) = cli(&app, &["oidc", "client", "revoke", &mobile]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&app, &["oidc", "client", "revoke", "nobody"]);
    assert_eq!(code, 1);
    assert!(err.contains("nobody"), "{err}");

    // Audited: who registered and who revoked, one entry per change.
    let (status, entries) = api(&app, Method::GET, "/admin/audit?limit=500", &auditor, None).await;
    assert_eq!(status, 200);
    let of = |kind: &str| -> Vec<(String, String)> {
        entries
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| {
                (
                    e["actor"].as_str().unwrap().to_owned(),
                    e["detail"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let added = of("oidc_client.added");
    assert_eq!(added.len(), 2, "{added:?}");
    assert!(added
        .iter()
        .all(|(actor, _)| actor == "support:rp.onboarding"));
    let revoked = of("oidc_client.revoked");
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    assert_eq!(revoked[0].0, "support:rp.onboarding");
    assert!(revoked[0].1.contains(&site), "{revoked:?}");
    assert!(revoked[0].1.contains("2 tokens revoked"), "{revoked:?}");
    assert_eq!(revoked[1].0, "cli:operator.one");
    assert!(!format!("{entries}").contains(&secret), "no secret audited");

    // The API document describes the four operations.
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = &doc["paths"];
    for (path, method) in [
        ("/admin/oidc/clients", "get"),
        ("/admin/oidc/clients", "post"),
        ("/admin/oidc/clients/{client_id}", "get"),
        ("/admin/oidc/clients/{client_id}", "delete"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
}
both!(
    oidc_clients_are_registered_listed_and_revoked_through_the_admin_api,
    clients_admin_api
);
