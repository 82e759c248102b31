//! The support console: unlocking and showing accounts from the command line and the admin
//! API, admin tokens (scoped, revocable, never stored), and `audit verify` against an
//! attacker with write access to the database.

use portcullis_core::audit::AuditEntry;
use portcullis_core::ports::AuditReads;
use portcullis_testkit::{both, is_problem, spawn_app, Backend, TestApp, ANN, PASSWORD};
use serde_json::{json, Value};

/// What the command line prints and how it ends.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real binary against the test app's database, secrets and outbox, as the
/// operating-system user `operator.one`.
pub(crate) async fn cli(app: &TestApp, args: &[&str]) -> Run {
    cli_with(app, args, &[]).await
}

/// [`cli`] with some more `PORTCULLIS_*` settings in its environment.
pub(crate) async fn cli_with(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .envs(env.iter().copied())
        .arg("--database-url")
        .arg(&app.db.url)
        .args(args)
        .env("PORTCULLIS_SECRETS_DIR", &app.config.secrets_dir)
        // The operator's configuration sends notifications where the service does.
        .env("PORTCULLIS_NOTIFY_OUTBOX_FILE", &app.outbox)
        .env("USER", "operator.one")
        .env_remove("SUDO_USER")
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("PORTCULLIS_DATABASE_URL")
        .current_dir(app.dir.path())
        .output()
        .await
        .expect("running the portcullis binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Adds a webhook subscription straight through the store (past the URL rules), in a unit
/// of work of its own. Its id.
pub(crate) async fn subscribe_in_store(
    store: &portcullis_store::SqlStore,
    url: &str,
    events: &portcullis_core::webhooks::EventFilter,
    secret: &str,
    now: portcullis_core::clock::UnixTime,
) -> i64 {
    use portcullis_core::ports::Transactions;
    let mut work = store.begin(now);
    let id = work
        .add_subscription(url, events, &secrecy::SecretString::from(secret.to_owned()))
        .await
        .unwrap();
    let key = portcullis_crypto::KeyedHasher::new(zeroize::Zeroizing::new([1; 32]));
    work.commit(&key.into()).await.unwrap();
    id
}

/// Creates an admin token through the command line; returns the token it printed.
pub(crate) async fn admin_token(app: &TestApp, name: &str, scopes: &[&str]) -> String {
    let mut args = vec!["admin", "token", "create", "--name", name];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let run = cli(app, &args).await;
    assert_eq!(run.code, 0, "token create: {}", run.stderr);
    assert!(
        run.stderr.contains("shown only this once"),
        "{}",
        run.stderr
    );
    let token = run.stdout.trim().to_owned();
    assert_eq!(token.len(), 43, "one line, the token: {:?}", run.stdout);
    token
}

/// Registers Ann and locks her account with six wrong passwords.
async fn locked_ann(app: &TestApp) {
    app.register(&ANN, "ann.example", PASSWORD).await;
    for _ in 0..6 {
        let res = app
            .sign_in("ann.example", "Wrong-Horse-42", "personal")
            .await;
        assert_eq!(res.status(), 401);
    }
    let res = app.sign_in("ann.example", PASSWORD, "personal").await;
    assert_eq!(res.status(), 423, "locked");
}

/// Whether a message whose subject contains `needle` reaches the outbox within 10 s
/// (messages queued by another process are delivered on the serving node's next poll).
async fn eventually_sent(app: &TestApp, needle: &str) -> bool {
    for _ in 0..200 {
        if app
            .outbox_messages()
            .iter()
            .any(|m| m["subject"].as_str().unwrap_or("").contains(needle))
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

async fn audit_log(app: &TestApp) -> Vec<AuditEntry> {
    app.built.store.audit_entries(0, 10_000).await.unwrap()
}

async fn admin_get(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.get_bearer(&format!("/api/v1/admin{path}"), token).await
}

async fn admin_unlock(
    app: &TestApp,
    user_id: &str,
    token: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/admin/accounts/{user_id}/unlock")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn unlock_from_the_command_line(backend: Backend) {
    let app = spawn_app(backend).await;
    locked_ann(&app).await;
    // A reason is required.
    let run = cli(&app, &["admin", "unlock", "ann.example", "--reason", " x "]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("reason"), "{}", run.stderr);
    let run = cli(
        &app,
        &[
            "admin",
            "unlock",
            "ANN.example",
            "--reason",
            "Caller verified by phone, ticket 4711",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("unlocked"), "{}", run.stdout);
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
    let log = audit_log(&app).await;
    let action = log
        .iter()
        .find(|e| e.kind == "support.action" && e.detail.starts_with("unlock"))
        .expect("the unlock is audited");
    assert_eq!(action.actor, "cli:operator.one");
    assert!(
        action
            .detail
            .contains("Caller verified by phone, ticket 4711"),
        "{}",
        action.detail
    );
    assert!(log
        .iter()
        .any(|e| e.kind == "account.unlocked" && e.actor == "cli:operator.one"));
    // The person hears of it on their channel: the command queued the message at wall-clock
    // time, and the serving node (whose test clock stands still) delivers it once due.
    app.clock.advance(60);
    assert!(eventually_sent(&app, "unlocked").await);
    // Unlocking again changes nothing; an unknown User ID is an error.
    let run = cli(
        &app,
        &["admin", "unlock", "ann.example", "--reason", "again"],
    )
    .await;
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("was not locked"), "{}", run.stdout);
    let run = cli(
        &app,
        &["admin", "unlock", "nobody.here", "--reason", "typo"],
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no online account"), "{}", run.stderr);
}
both!(
    support_unlock_from_the_command_line_is_audited_with_who_and_why,
    unlock_from_the_command_line
);

async fn unlock_through_the_api(backend: Backend) {
    let app = spawn_app(backend).await;
    locked_ann(&app).await;
    let token = admin_token(&app, "dana.support", &["accounts:unlock", "accounts:read"]).await;
    // Bad input is a clear 400 and changes nothing.
    let res = admin_unlock(&app, "ann.example", &token, &json!({"reason": "no"})).await;
    assert_eq!(res.status(), 400);
    assert!(is_problem(res.headers()));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "reason");
    let res = admin_unlock(&app, "ann.example", &token, &json!({})).await;
    assert_eq!(res.status(), 400);
    // Unknown accounts are 404: support may know which User IDs exist.
    let res = admin_unlock(
        &app,
        "nobody.here",
        &token,
        &json!({"reason": "caller asked"}),
    )
    .await;
    assert_eq!(res.status(), 404);
    assert!(is_problem(res.headers()));
    let res = admin_unlock(
        &app,
        "ann.example",
        &token,
        &json!({"reason": "Caller passed ID&V on the phone"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"unlocked": true})
    );
    assert_eq!(
        app.sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
    let res = admin_unlock(&app, "ann.example", &token, &json!({"reason": "once more"})).await;
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"unlocked": false})
    );
    let log = audit_log(&app).await;
    let action = log
        .iter()
        .find(|e| e.kind == "support.action" && e.detail.starts_with("unlock (was locked)"))
        .expect("the unlock is audited");
    assert_eq!(action.actor, "support:dana.support");
    assert!(action.detail.contains("Caller passed ID&V on the phone"));
    assert_eq!(action.client_ip.as_deref(), Some("127.0.0.1"));
    // Support reads the same story through the API.
    let res = admin_get(&app, "/accounts/ann.example/audit?limit=5", &token).await;
    assert_eq!(res.status(), 200);
    let entries: Vec<Value> = res.json().await.unwrap();
    assert_eq!(entries.len(), 5);
    assert!(
        entries
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() > w[1]["seq"].as_i64()),
        "newest first"
    );
    assert!(entries
        .iter()
        .any(|e| e["actor"] == "support:dana.support" && e["kind"] == "support.action"));
    for bad in ["limit=0", "limit=501", "limit=lots"] {
        let res = admin_get(&app, &format!("/accounts/ann.example/audit?{bad}"), &token).await;
        assert_eq!(res.status(), 400, "{bad}");
        assert!(is_problem(res.headers()), "{bad}");
    }
    let res = admin_get(&app, "/accounts/nobody.here/audit", &token).await;
    assert_eq!(res.status(), 404);
}
both!(
    support_unlock_through_the_admin_api_is_audited_with_who_and_why,
    unlock_through_the_api
);

async fn tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    // No token, a malformed one, a made-up one: 401.
    let res = app
        .client
        .get(app.url("/api/v1/admin/accounts/ann.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(is_problem(res.headers()));
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    for bogus in ["x", "Ann's session", &"A".repeat(43), &"A".repeat(500)] {
        let res = admin_get(&app, "/accounts/ann.example", bogus).await;
        assert_eq!(res.status(), 401, "{bogus}");
    }
    // A person's session token is not an admin token.
    let session = app.token("ann.example", PASSWORD, "personal").await;
    assert_eq!(
        admin_get(&app, "/accounts/ann.example", &session)
            .await
            .status(),
        401
    );

    let reader = admin_token(&app, "rita.reader", &["accounts:read"]).await;
    let auditor = admin_token(&app, "aldo.auditor", &["audit:read"]).await;
    // The reader sees the account, without secrets or hashes...
    let res = admin_get(&app, "/accounts/ANN.EXAMPLE", &reader).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let view: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(view["user_id"], "ann.example");
    assert_eq!(view["locked"], false);
    assert!(view["recent"].as_array().unwrap().len() >= 2);
    for secret in ["$argon2", ANN.number, PASSWORD, &session] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    for key in view.as_object().unwrap().keys() {
        assert!(!key.contains("hash") && !key.contains("password"), "{key}");
    }
    // ...and nothing else: each scope is its own.
    let res = admin_unlock(
        &app,
        "ann.example",
        &reader,
        &json!({"reason": "just trying"}),
    )
    .await;
    assert_eq!(res.status(), 403);
    assert!(is_problem(res.headers()));
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "forbidden");
    assert_eq!(
        admin_get(&app, "/audit/verify", &reader).await.status(),
        403
    );
    assert_eq!(
        admin_get(&app, "/accounts/ann.example", &auditor)
            .await
            .status(),
        403
    );
    let res = admin_get(&app, "/audit/verify", &auditor).await;
    assert_eq!(res.status(), 200);
    let verdict: Value = res.json().await.unwrap();
    assert_eq!(verdict["intact"], true);
    assert_eq!(verdict["first_bad"], Value::Null);
    assert!(verdict["entries"].as_i64().unwrap() > 3);
    let res = admin_get(&app, "/audit?after=0&limit=2", &auditor).await;
    assert_eq!(res.status(), 200);
    let page: Vec<Value> = res.json().await.unwrap();
    assert_eq!(
        (page[0]["seq"].as_i64(), page[1]["seq"].as_i64()),
        (Some(1), Some(2))
    );
    // Refusals are audited with who tried what.
    let log = audit_log(&app).await;
    assert!(log.iter().any(|e| e.kind == "support.denied"
        && e.actor == "support:rita.reader"
        && e.detail.contains("accounts:unlock")));

    // One active token per name; a token cannot pass for an id.
    let run = cli(
        &app,
        &[
            "admin",
            "token",
            "create",
            "--name",
            "rita.reader",
            "--scope",
            "audit:read",
        ],
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("revoke it first"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let run = cli(
        &app,
        &[
            "admin",
            "token",
            "create",
            "--name",
            "1234",
            "--scope",
            "audit:read",
        ],
    )
    .await;
    assert_eq!(run.code, 1);
    let run = cli(
        &app,
        &[
            "admin",
            "token",
            "create",
            "--name",
            "x",
            "--scope",
            "accounts:write",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "clap refuses an unknown scope");
    assert!(run.stderr.contains("accounts:unlock"), "{}", run.stderr);

    // Revoked: 401 at once.
    let run = cli(&app, &["admin", "token", "revoke", "rita.reader"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("rita.reader"));
    let res = admin_get(&app, "/accounts/ann.example", &reader).await;
    assert_eq!(res.status(), 401);
    assert!(is_problem(res.headers()));
    let run = cli(&app, &["admin", "token", "revoke", "rita.reader"]).await;
    assert_eq!(run.code, 1, "nothing left to revoke");
    // The name is free again, and revoking by id works too.
    let second = admin_token(&app, "rita.reader", &["accounts:read"]).await;
    assert_eq!(
        admin_get(&app, "/accounts/ann.example", &second)
            .await
            .status(),
        200
    );
    let list = cli(&app, &["admin", "token", "list"]).await;
    assert_eq!(list.code, 0);
    let id = list
        .stdout
        .lines()
        .find(|l| l.contains("rita.reader") && l.contains("active"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_eq!(cli(&app, &["admin", "token", "revoke", &id]).await.code, 0);
    assert_eq!(
        admin_get(&app, "/accounts/ann.example", &second)
            .await
            .status(),
        401
    );

    // `token list` shows names, scopes and state, never a token.
    let list = cli(&app, &["admin", "token", "list"]).await;
    assert_eq!(list.code, 0);
    assert!(list.stdout.contains("aldo.auditor"));
    assert!(list.stdout.contains("audit:read"));
    assert!(list.stdout.contains("revoked"));
    assert!(list.stdout.contains("active"));
    for token in [&reader, &auditor, &second] {
        assert!(!list.stdout.contains(token.as_str()));
        assert!(!list.stderr.contains(token.as_str()));
    }

    // The database holds each token's SHA-256 only.
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT name, token_hash, scopes, created_at, revoked_at, last_used_at FROM admin_tokens",
    )
    .fetch_all(app.built.store.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    let mut hashes = Vec::new();
    for row in &rows {
        let name: String = row.get("name");
        let scopes: String = row.get("scopes");
        let hash: Vec<u8> = row.get("token_hash");
        for token in [&reader, &auditor, &second] {
            assert!(!name.contains(token.as_str()) && !scopes.contains(token.as_str()));
            assert!(!hash.windows(token.len()).any(|w| w == token.as_bytes()));
        }
        let last_used: Option<i64> = row.get("last_used_at");
        assert!(last_used.is_some(), "every token here was used");
        hashes.push(hash);
    }
    for token in [&reader, &auditor, &second] {
        assert!(hashes.contains(&portcullis_crypto::sha256(token.as_bytes()).to_vec()));
    }
    match backend {
        Backend::Sqlite => {
            // Every byte of the database file and its write-ahead log.
            let path = app.db.sqlite_path.clone().unwrap();
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
            for token in [&reader, &auditor, &second] {
                assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
            }
        }
        Backend::Postgres => {
            // Every column of every row, as PostgreSQL prints it.
            let rows = sqlx::query("SELECT CAST(t AS TEXT) AS row FROM admin_tokens t")
                .fetch_all(app.built.store.pool())
                .await
                .unwrap();
            for row in rows {
                let text: String = row.get("row");
                for token in [&reader, &auditor, &second] {
                    assert!(!text.contains(token.as_str()), "{text}");
                }
            }
        }
    }
    // Nor does the audit log mention them.
    for e in audit_log(&app).await {
        for token in [&reader, &auditor, &second] {
            assert!(!e.detail.contains(token.as_str()));
        }
    }
    // The API document describes the admin API and its security scheme.
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["components"]["securitySchemes"]["admin_bearer"].is_object());
    assert!(doc["paths"]["/admin/accounts/{user_id}/unlock"]["post"].is_object());
}
both!(admin_tokens_are_scoped_revocable_and_never_stored, tokens);

/// The SQL an attacker with database access runs to get past the append-only triggers.
pub(crate) async fn drop_audit_triggers(app: &TestApp, backend: Backend) {
    let statements: &[&str] = match backend {
        Backend::Sqlite => &[
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
        ],
        // One trigger refuses both UPDATE and DELETE.
        Backend::Postgres => &["DROP TRIGGER audit_log_no_update ON audit_log"],
    };
    for sql in statements {
        sqlx::query(sql)
            .execute(app.built.store.pool())
            .await
            .unwrap();
    }
}

/// Ann registers and signs in and out a few times: a dozen entries.
async fn some_history(app: &TestApp) {
    app.register(&ANN, "ann.example", PASSWORD).await;
    for _ in 0..3 {
        app.sign_in("ann.example", "Wrong-Horse-42", "personal")
            .await;
        app.token("ann.example", PASSWORD, "personal").await;
    }
    assert!(audit_log(app).await.len() >= 7);
}

async fn verify_finds_an_edit(backend: Backend) {
    let app = spawn_app(backend).await;
    some_history(&app).await;
    let run = cli(&app, &["audit", "verify"]).await;
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("audit log intact"), "{}", run.stdout);
    drop_audit_triggers(&app, backend).await;
    sqlx::query("UPDATE audit_log SET detail = 'nothing to see here' WHERE seq = 3")
        .execute(app.built.store.pool())
        .await
        .unwrap();
    let run = cli(&app, &["audit", "verify"]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("TAMPERED"), "{}", run.stdout);
    assert!(run.stdout.contains("entry 3:"), "{}", run.stdout);
    assert!(run.stdout.contains("edited"), "{}", run.stdout);
    // The admin API gives the same verdict.
    let auditor = admin_token(&app, "aldo.auditor", &["audit:read"]).await;
    let verdict: Value = admin_get(&app, "/audit/verify", &auditor)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verdict["intact"], false);
    assert_eq!(verdict["entries"], 2);
    assert_eq!(verdict["first_bad"]["seq"], 3);
    assert_eq!(verdict["first_bad"]["problem"], "altered");
}
both!(
    audit_verify_exits_1_naming_an_entry_edited_in_the_database,
    verify_finds_an_edit
);

async fn verify_finds_deletions(backend: Backend) {
    let app = spawn_app(backend).await;
    some_history(&app).await;
    drop_audit_triggers(&app, backend).await;
    // A row from the middle.
    sqlx::query("DELETE FROM audit_log WHERE seq = 4")
        .execute(app.built.store.pool())
        .await
        .unwrap();
    let run = cli(&app, &["audit", "verify"]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("entry 5:"), "{}", run.stdout);
    assert!(run.stdout.contains("deleted"), "{}", run.stdout);
    // Rows from the end leave an intact but shorter chain; the head still knows.
    let app = spawn_app(backend).await;
    some_history(&app).await;
    let last = audit_log(&app).await.last().unwrap().seq;
    drop_audit_triggers(&app, backend).await;
    sqlx::query("DELETE FROM audit_log WHERE seq >= $1")
        .bind(last - 1)
        .execute(app.built.store.pool())
        .await
        .unwrap();
    let run = cli(&app, &["audit", "verify"]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("entry {}:", last - 1)),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("deleted from the end"),
        "{}",
        run.stdout
    );
}
both!(audit_verify_finds_deleted_entries, verify_finds_deletions);

async fn show(backend: Backend) {
    let app = spawn_app(backend).await;
    locked_ann(&app).await;
    let run = cli(&app, &["admin", "show", "ann.example"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("User ID:        ann.example"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("LOCKED until"), "{}", run.stdout);
    assert!(
        run.stdout.contains("Recent audit events:"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("account.locked"), "{}", run.stdout);
    assert!(run.stdout.contains("signin.failed"), "{}", run.stdout);
    assert!(!run.stdout.contains("$argon2"));
    assert!(!run.stdout.contains(ANN.number));
    // The look itself is audited.
    assert!(audit_log(&app)
        .await
        .iter()
        .any(|e| e.kind == "support.action"
            && e.actor == "cli:operator.one"
            && e.detail == "viewed the account"));
    cli(
        &app,
        &[
            "admin",
            "unlock",
            "ann.example",
            "--reason",
            "verified caller",
        ],
    )
    .await;
    let run = cli(&app, &["admin", "show", "ann.example"]).await;
    assert!(run.stdout.contains("not locked"), "{}", run.stdout);
    assert!(run.stdout.contains("verified caller"), "{}", run.stdout);
    let run = cli(&app, &["admin", "show", "nobody.here"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no online account"), "{}", run.stderr);
}
both!(admin_show_prints_the_lock_state_and_recent_events, show);
