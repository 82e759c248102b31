//! Issue 16: `database_read_url`. The "replica" here is a second PostgreSQL database (a
//! fresh copy of the migrated schema) set `default_transaction_read_only = on` (as a hot
//! standby refuses writes), holding one incident the primary does not have, so each answer
//! shows which database it was read from: the status history and the admin views come from
//! the replica; sign-in, sessions and every write go to the primary.

use portcullis_testkit::{spawn_app, spawn_app_on, Backend, TestApp, TestDb, ANN, BEN, PASSWORD};
use serde_json::Value;
use sqlx::Connection;

use crate::status::status_json;
use crate::support::admin_token;

/// A read-only database standing in for a replica: a fresh copy of the migrated schema,
/// holding one incident of its own, then set `default_transaction_read_only = on`.
async fn replica() -> TestDb {
    let db = TestDb::new(Backend::Postgres).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO status_incidents (kind, title, message, state, created_at, updated_at) \
         VALUES ('incident', 'Seen on the replica', 'Only the replica has this row.', \
         'investigating', 0, 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    // Read-only it is: a write there fails as on a standby.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let refused = sqlx::query("DELETE FROM status_incidents")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("read-only transaction"),
        "{refused}"
    );
    conn.close().await.unwrap();
    db
}

async fn incident_titles(app: &TestApp) -> Vec<String> {
    status_json(app).await["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap().to_owned())
        .collect()
}

/// The incident titles once they are `want` (the status answers from memory when the
/// database is slower than its budget, so a loaded machine may need a second look), or
/// the last seen after 10 s.
async fn titles_become(app: &TestApp, want: &[&str]) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = incident_titles(app).await;
        if seen == want || std::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn audit_view(app: &TestApp, token: &str, user_id: &str) -> Vec<Value> {
    let res = app
        .get_bearer(&format!("/api/v1/admin/accounts/{user_id}/audit"), token)
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(portcullis_postgres),
    ignore = "read replicas are PostgreSQL's: PORTCULLIS_TEST_POSTGRES was not set when the \
              tests were built"
)]
async fn read_replica_serves_status_and_admin_views_while_writes_go_to_the_primary() {
    let primary = spawn_app(Backend::Postgres).await;
    let replica = replica().await;
    let node = spawn_app_on(&primary, |c| {
        c.database_read_url = Some(replica.url.clone());
    })
    .await;

    // Status: the node with the replica reads its incidents there.
    assert_eq!(
        titles_become(&node, &["Seen on the replica"]).await,
        ["Seen on the replica"]
    );
    assert!(incident_titles(&primary).await.is_empty());

    // Writes and security reads go to the primary: registering, signing in, the session.
    node.register(&ANN, "ann.example", PASSWORD).await;
    let session = node.token("ann.example", PASSWORD, "personal").await;
    assert_eq!(node.get_bearer("/api/v1/me", &session).await.status(), 200);
    assert_eq!(
        primary
            .sign_in("ann.example", PASSWORD, "personal")
            .await
            .status(),
        201,
        "the account is on the primary"
    );
    // Admin authentication is on the primary (the token exists only there); the account
    // is found there too, but its audit trail is read from the replica, which has none of
    // it (a real replica would lag by moments, not forever).
    let token = admin_token(&primary, "desk", &["accounts:read"]).await;
    assert!(!audit_view(&primary, &token, "ann.example").await.is_empty());
    assert!(audit_view(&node, &token, "ann.example").await.is_empty());
    // An incident posted through the node is written to the primary.
    let res = node
        .client
        .post(node.url("/api/v1/admin/status/incidents"))
        .bearer_auth(admin_token(&primary, "ops", &["status:write"]).await)
        .json(&serde_json::json!({"title": "Posted through the node", "message": "Written."}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    assert_eq!(
        titles_become(&primary, &["Posted through the node"]).await,
        ["Posted through the node"]
    );
    // A second registration through the node, for good measure.
    node.register(&BEN, "ben.example", PASSWORD).await;
    assert_eq!(
        primary
            .sign_in("ben.example", PASSWORD, "personal")
            .await
            .status(),
        201
    );
    drop(node);
}

#[tokio::test]
async fn read_replica_is_refused_for_sqlite() {
    let primary = spawn_app(Backend::Sqlite).await;
    let mut config = primary.config.clone();
    config.database_read_url = Some("postgres://reader@127.0.0.1:1/none".into());
    let clock = std::sync::Arc::new(portcullis_core::clock::FakeClock::new(0));
    let Err(e) = portcullis::app::build(&config, clock, true).await else {
        panic!("a SQLite database with a read replica was accepted");
    };
    assert!(format!("{e:#}").contains("PostgreSQL only"), "{e:#}");
}
