//! Storage for Portcullis: the core's ports over SQLite and PostgreSQL.
//!
//! One implementation, [`SqlStore`], runs the same runtime-checked SQL on both databases
//! through sqlx's `Any` driver: every query uses `$n` placeholders, integer seconds for time
//! and `BIGINT`/`TEXT`/`BLOB|BYTEA` columns, which both backends read alike. The few places
//! where the dialects differ (migrations, claiming outbox rows) are named in [`Backend`] and
//! stay inside this crate. The conformance suite in `tests/` runs against both databases.

mod accounts;
mod admin;
mod audit;
mod codes;
mod devices;
mod error;
mod factors;
mod lifecycle;
mod lockout;
mod ops;
mod outbox;
mod registry;
mod sessions;
mod status;
mod steps;
mod throttle;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::ports::{Store, StoreResult};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

pub use error::db_err;
pub use ops::{
    check_sqlite_file, restrict_to_owner, sqlite_file_in_use, sync_dir, FileCheck, Holdings,
    PoolUsage, SchemaStatus,
};

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// Seals outbox bodies that carry a one-time code (see `outbox.rs`).
    outbox_seal: Option<outbox::OutboxSeal>,
}

/// Connection settings.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

impl SqlStore {
    /// Connects to `url` (`sqlite://path` or `postgres://…`), creating a SQLite file and its
    /// folder when missing, and applies the migrations.
    pub async fn connect(url: &str, options: StoreOptions) -> StoreResult<Self> {
        let store = Self::open(url, options).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without applying migrations (checks and backups, which must not change
    /// the database they look at).
    pub async fn open(url: &str, options: StoreOptions) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(portcullis_core::ports::StoreError::Internal(format!(
                "unsupported database URL scheme (use sqlite:// or postgres://): {}",
                url.split(':').next().unwrap_or("")
            )));
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let connect_options = AnyConnectOptions::from_str(&url)
            .map_err(db_err)?
            .disable_statement_logging();
        let mut pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => options.max_connections.min(8),
                Backend::Postgres => options.max_connections,
            })
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            // No ping before every query (it doubled the round trips of each request); a
            // broken connection fails its query, which answers 503, and is then dropped.
            .test_before_acquire(false);
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(connect_options).await.map_err(db_err)?;
        Ok(Self {
            pool,
            backend,
            outbox_seal: None,
        })
    }

    async fn migrate(&self) -> StoreResult<()> {
        let result = ops::migrator(self.backend).run(&self.pool).await;
        result.map_err(|e| {
            portcullis_core::ports::StoreError::Internal(format!("migration failed: {e}"))
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn kind(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Makes sure the SQLite file's folder exists and the file is created when missing.
fn prepare_sqlite_url(url: &str) -> StoreResult<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        if let Some(parent) = Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    portcullis_core::ports::StoreError::Internal(format!(
                        "cannot create the database folder {}: {e}",
                        parent.display()
                    ))
                })?;
            }
        }
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}
