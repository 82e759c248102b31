//! A fresh PostgreSQL database for one run, dropped at the end (as the testkit does for
//! tests): `pc_bench_<unix seconds>_<random>`, so leftovers of killed runs are recognised and
//! dropped by a later run after two hours.

use anyhow::Context;
use portcullis_core::clock::{Clock, SystemClock};
use rand::Rng;
use sqlx::{Connection, PgConnection, Row};

const PREFIX: &str = "pc_bench_";
const STALE_AFTER_SECS: i64 = 2 * 3600;

/// A database created for this run.
pub struct BenchDb {
    server_url: String,
    name: String,
    pub url: String,
}

impl BenchDb {
    /// Creates the database on the server that `server_url` names (any database on it).
    pub async fn create(server_url: &str) -> anyhow::Result<Self> {
        let now = SystemClock.now().0;
        let name = format!("{PREFIX}{now}_{:08x}", rand::thread_rng().gen::<u32>());
        let mut conn = PgConnection::connect(server_url)
            .await
            .context("connecting to PostgreSQL")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .context("creating the benchmark database")?;
        drop_stale(&mut conn, now).await;
        let _ = conn.close().await;
        Ok(Self {
            server_url: server_url.to_owned(),
            url: replace_database(server_url, &name),
            name,
        })
    }

    /// Drops the database (ending any connection a stopped server left behind).
    pub async fn drop_now(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.server_url)
            .await
            .context("connecting to PostgreSQL")?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await
        .context("dropping the benchmark database")?;
        let _ = conn.close().await;
        Ok(())
    }
}

async fn drop_stale(conn: &mut PgConnection, now: i64) {
    let rows = sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'pc\\_bench\\_%'")
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_default();
    for row in rows {
        let Ok(name) = row.try_get::<String, _>("datname") else {
            continue;
        };
        let stamp: i64 = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(i64::MAX);
        if stamp < now - STALE_AFTER_SECS
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *conn)
                .await;
        }
    }
}

/// `url` with its database name replaced by `name` (the query string kept).
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base.get(scheme_end..).and_then(|rest| rest.find('/')) {
        Some(slash) => base.get(..scheme_end + slash).unwrap_or(base),
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The URL without a password, for the report.
pub fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, rest)), Some((_, host))) => {
            let user = rest.split(['@', ':']).next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://p@h:5432/test?sslmode=disable", "x"),
            "postgres://p@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://p@h:5432", "x"),
            "postgres://p@h:5432/x"
        );
    }

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres://postgres@h:5432/test"),
            "postgres://postgres@h:5432/test"
        );
    }
}
