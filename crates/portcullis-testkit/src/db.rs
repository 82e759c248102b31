//! Test databases: a temporary SQLite file, or a PostgreSQL database copied from a
//! migrated template on the server `PORTCULLIS_TEST_POSTGRES` names.

use std::path::PathBuf;

use portcullis_core::clock::{Clock, SystemClock};
use tempfile::TempDir;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("PORTCULLIS_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
}

/// A fresh database for one test; a PostgreSQL one is dropped again when the test ends.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    pg_name: Option<(String, String)>,
    /// The SQLite file, for tests that read it directly.
    pub sqlite_path: Option<PathBuf>,
    _dir: TempDir,
}

/// The PostgreSQL server to use; panics with what to do when there is none (a PostgreSQL
/// variant runs only when the variable was set at build time, see [`both!`]).
pub fn require_postgres_url() -> String {
    postgres_url().unwrap_or_else(|| {
        panic!(
            "this test runs on PostgreSQL, but PORTCULLIS_TEST_POSTGRES is not set. It was set \
             when the tests were built (or the variant would be ignored): set it again, e.g. \
             PORTCULLIS_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test"
        )
    })
}

impl TestDb {
    /// A fresh database on `backend`. PostgreSQL needs `PORTCULLIS_TEST_POSTGRES` (panics
    /// with a clear message without it).
    pub async fn new(backend: Backend) -> Self {
        Self::create(backend, true).await
    }

    /// A fresh database with no schema at all (PostgreSQL: not copied from the migrated
    /// template), for restoring a dump into.
    pub async fn empty(backend: Backend) -> Self {
        Self::create(backend, false).await
    }

    async fn create(backend: Backend, migrated: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join("portcullis.db");
                Self {
                    url: format!("sqlite://{}", path.display()),
                    backend,
                    pg_name: None,
                    sqlite_path: Some(path),
                    _dir: dir,
                }
            }
            Backend::Postgres => {
                let server = require_postgres_url();
                let template = if migrated {
                    Some(migrated_template(&server).await)
                } else {
                    None
                };
                let name = format!(
                    "pc_test_{}_{}",
                    SystemClock.now().0,
                    hex(&portcullis_crypto::token::random_bytes::<6>())
                );
                let mut conn = connect_pg(&server).await;
                create_database(&mut conn, &name, template.as_deref()).await;
                drop_stale_databases(&mut conn).await;
                Self {
                    url: replace_db(&server, &name),
                    backend,
                    pg_name: Some((server, name)),
                    sqlite_path: None,
                    _dir: dir,
                }
            }
        }
    }
}

impl TestDb {
    /// The same database again, for a second node; the first `TestDb` owns it and drops it.
    pub fn shared(&self) -> Self {
        Self {
            url: self.url.clone(),
            backend: self.backend,
            pg_name: None,
            sqlite_path: self.sqlite_path.clone(),
            _dir: tempfile::tempdir().unwrap(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.pg_name.take() else {
            return;
        };
        // Drop from a thread of its own: Drop cannot await, and the test's runtime may be
        // shutting down. FORCE ends the app's remaining connections.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use sqlx::Connection;
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

async fn connect_pg(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .expect("connecting to PORTCULLIS_TEST_POSTGRES")
}

/// `CREATE DATABASE name [TEMPLATE template]`, tried again for a few seconds while the
/// template still has a closing connection (PostgreSQL refuses to copy one in use).
async fn create_database(conn: &mut sqlx::PgConnection, name: &str, template: Option<&str>) {
    let sql = match template {
        Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
        None => format!("CREATE DATABASE {name}"),
    };
    let mut tries = 0;
    loop {
        match sqlx::query(&sql).execute(&mut *conn).await {
            Ok(_) => return,
            Err(e) if tries < 50 && e.to_string().contains("being accessed by other users") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating the test database {name}: {e}"),
        }
    }
}

/// A database with every migration applied, kept on the server as the template each
/// PostgreSQL test database is copied from (a copy takes a fraction of the time the
/// migrations take). Its name carries the migrations' fingerprint, so a changed migration
/// makes a new template; an advisory lock lets one test process build it while the others
/// wait.
async fn migrated_template(server: &str) -> String {
    use sqlx::Row;
    let fingerprint = portcullis_store::migrations_fingerprint(portcullis_store::Backend::Postgres);
    let name = format!("pc_tmpl_{fingerprint}");
    let lock = i64::from_str_radix(&fingerprint[..8], 16).unwrap_or(42);
    let mut conn = connect_pg(server).await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock)
        .execute(&mut conn)
        .await
        .expect("taking the template lock");
    let exists = sqlx::query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS e")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .map(|r| r.get::<bool, _>("e"))
        .unwrap_or(false);
    if !exists {
        // Built under another name and renamed when complete: a killed build leaves a
        // `pc_build_…` database (dropped as stale later), never a half-migrated template.
        let building = format!("pc_build_{}_{fingerprint}", SystemClock.now().0);
        create_database(&mut conn, &building, None).await;
        let store = portcullis_store::SqlStore::connect(
            &replace_db(server, &building),
            portcullis_store::StoreOptions::default(),
        )
        .await
        .expect("migrating the template database");
        store.close().await;
        // The migrator's own connection can outlive the pool's close: end every session on
        // the new database, or the rename waits for them (5 s a try, server side).
        let rename = format!("ALTER DATABASE {building} RENAME TO {name}");
        let mut tries = 0;
        loop {
            let _ = sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&building)
            .execute(&mut conn)
            .await;
            match sqlx::query(&rename).execute(&mut conn).await {
                Ok(_) => break,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 5, "publishing the template database: {e}");
                }
            }
        }
    }
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock)
        .execute(&mut conn)
        .await;
    name
}

/// Test databases older than an hour are leftovers of killed runs.
async fn drop_stale_databases(conn: &mut sqlx::PgConnection) {
    use sqlx::Row;
    let cutoff = SystemClock.now().0 - 3600;
    let rows = sqlx::query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'pc_test_%' OR datname LIKE 'pc_build_%'",
    )
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_default();
    for row in rows {
        let name: String = row.get("datname");
        let stamp: i64 = name
            .split('_')
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(i64::MAX);
        if stamp < cutoff {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *conn)
                .await;
        }
    }
}

fn replace_db(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::replace_db;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            replace_db("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_db("postgres://p@h:5432/test?sslmode=disable", "x"),
            "postgres://p@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            replace_db("postgres://p@h:5432", "x"),
            "postgres://p@h:5432/x"
        );
    }
}
