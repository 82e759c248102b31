//! Issue 16: `database_read_url`. The "replica" here is a second PostgreSQL database made
//! from the migrated template and set `default_transaction_read_only = on` (as a hot
//! standby refuses writes), holding one incident the primary does not have, so each answer
//! shows which database it was read from: the status history and the admin views come from
//! the replica; sign-in, sessions and every write go to the primary.

use portcullis_testkit::{
    postgres_url, spawn_app, spawn_app_on, Backend, TestApp, ANN, BEN, PASSWORD,
};
use serde_json::Value;
use sqlx::Connection;

use crate::support::admin_token;

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let cut = base.rfind('/').unwrap();
    let mut out = format!("{}/{name}", &base[..cut]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A read-only copy of the empty migrated schema with one incident of its own; dropped
/// when the test ends.
struct Replica {
    server: String,
    name: String,
    url: String,
}

impl Replica {
    async fn create() -> Self {
        let server = postgres_url().expect("PORTCULLIS_TEST_POSTGRES");
        let fingerprint =
            portcullis_store::migrations_fingerprint(portcullis_store::Backend::Postgres);
        let name = format!(
            "pc_test_{}_replica",
            portcullis_core::clock::Clock::now(&portcullis_core::clock::SystemClock).0
        );
        let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
        let mut tries = 0;
        loop {
            match sqlx::query(&format!(
                "CREATE DATABASE {name} TEMPLATE pc_tmpl_{fingerprint}"
            ))
            .execute(&mut conn)
            .await
            {
                Ok(_) => break,
                Err(e) if tries < 50 && e.to_string().contains("being accessed") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("creating the replica: {e}"),
            }
        }
        let url = with_database(&server, &name);
        let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO status_incidents (kind, title, message, state, created_at, updated_at) \
             VALUES ('incident', 'Seen on the replica', 'Only the replica has this row.', \
             'investigating', 0, 0)",
        )
        .execute(&mut db)
        .await
        .unwrap();
        db.close().await.unwrap();
        sqlx::query(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = on"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        // Read-only it is: a write there fails as on a standby.
        let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
        let refused = sqlx::query("DELETE FROM status_incidents")
            .execute(&mut db)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("read-only transaction"),
            "{refused}"
        );
        db.close().await.unwrap();
        Self { server, name, url }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

async fn incident_titles(app: &TestApp) -> Vec<String> {
    let res = app
        .client
        .get(app.url("/api/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["incidents"]
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
    let replica = Replica::create().await;
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
