//! Storage for Portcullis: the core's ports over SQLite and PostgreSQL.
//!
//! One implementation, [`SqlStore`] (reads and claims) with its [`SqlWork`] (the unit of
//! work), runs the same runtime-checked SQL on both databases through sqlx's `Any` driver:
//! every query uses `$n` placeholders, integer seconds for time and
//! `BIGINT`/`TEXT`/`BLOB|BYTEA` columns, which both backends read alike, into row types that
//! derive `sqlx::FromRow`. Every statement is a named constant (see [`sql`]), prepared on
//! both databases by the conformance suite. The few places where the dialects differ are
//! inside this crate, each named by [`sql::Dialect`] or [`Backend`]: the migrations
//! (`migrations/{sqlite,postgres}`, kept equal by the schema-parity test), how a
//! transaction begins (`tx.rs`), claiming outbox rows (`outbox.rs`) and the registry
//! import's placeholders and page cache (`registry.rs`).
//!
//! One file per area: its statements, its row types, its reads (on [`SqlStore`]) and its
//! writes (on [`SqlWork`]).

/// How long a SQLite writer waits for the write lock, in ms: the connections'
/// `busy_timeout` and the in-process write queue's wait (`tx.rs`) are both this one number.
macro_rules! sqlite_busy_timeout_ms {
    () => {
        5000
    };
}

mod account_import;
mod accounts;
mod admin;
mod audit;
mod card_guard;
mod claims;
mod codes;
mod db;
mod devices;
mod error;
mod factors;
mod failover;
mod health;
mod jobs;
mod keys;
mod lifecycle;
mod lockout;
mod oidc;
mod oidc_clients;
mod oidc_jwks;
mod ops;
mod outbox;
pub mod pg_url;
mod registry;
mod registry_bulk;
mod registry_copy;
mod sessions;
pub mod sql;
mod status;
mod steps;
mod sweep;
mod throttle;
mod tx;
mod webhooks;
mod work;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{Store, StoreResult, Transactions, UnitOfWork};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{ConnectOptions, Executor};

pub use error::db_err;
pub use health::SessionTimeouts;
pub use ops::is_contracting;
pub use ops::{
    check_sqlite_file, restrict_to_owner, sqlite_file_in_use, sync_dir, FileCheck, GrantUses,
    Holdings, PoolUsage, SchemaStatus,
};
pub use registry::IMPORT_BATCH;
pub use work::SqlWork;

pub use crate::db::{Db, Lease};
use crate::sql::{statements, Dialect, Statement};

statements! {
    /// Each SQLite connection: the write-ahead log, …
    SQLITE_WAL: sqlite = "PRAGMA journal_mode = WAL";
    SQLITE_SYNCHRONOUS: sqlite = "PRAGMA synchronous = NORMAL";
    /// … and foreign keys enforced. (The wait of up to 5 s for the write lock is the driver's
    /// busy handler, `vendor/sqlx-sqlite`: a `PRAGMA busy_timeout` would put SQLite's own,
    /// which sleeps on the calling thread, back in its place.)
    SQLITE_FOREIGN_KEYS: sqlite = "PRAGMA foreign_keys = ON";
    /// Readiness.
    PING = "SELECT 1";
}

/// The settings of every SQLite connection.
pub(crate) async fn sqlite_setup(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    for pragma in [SQLITE_WAL, SQLITE_SYNCHRONOUS, SQLITE_FOREIGN_KEYS] {
        conn.execute(pragma).await?;
    }
    Ok(())
}

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: Db,
    backend: Backend,
    /// SQLite: the queue of this store's write transactions (see `tx.rs`).
    gate: tx::WriteGate,
    /// Seals outbox bodies that carry a one-time code (see `outbox.rs`).
    outbox_seal: Option<outbox::OutboxSeal>,
    /// A multi-host PostgreSQL URL: the watcher that keeps the pool on the writable host.
    watcher: Option<Arc<failover::Watcher>>,
    /// `database_read_url`: a replica for the reads that may be a little stale (see
    /// [`SqlStore::reads`]); `None` reads everything from `pool`.
    replica: Option<Arc<SqlStore>>,
    /// PostgreSQL: the connections that COPY a registry load's rows (`registry_copy.rs`).
    copy: Option<Arc<registry_copy::CopyPools>>,
    /// SQLite: the one connection registry loads run on, so its page cache stays warm
    /// from one load to the next (`registry.rs`), and the checkpointer that copies their
    /// pages into the file after each commit; `None` on PostgreSQL.
    loads: Option<(Db, registry::Checkpointer)>,
}

/// Connection settings.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// PostgreSQL: statement, lock and idle-in-transaction timeouts per connection.
    pub session_timeouts: SessionTimeouts,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            session_timeouts: SessionTimeouts::default(),
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
        // A multi-host URL (or one asking for a read-write session): the host is chosen
        // here, after connecting, as libpq does (see `failover.rs`).
        let choice = match backend {
            Backend::Postgres => match pg_url::PgUrl::parse(url) {
                Ok(parsed) if parsed.needs_host_choice() => {
                    let choice = Arc::new(failover::HostChoice::new(parsed)?);
                    choice.choose().await?;
                    Some(choice)
                }
                Ok(_) => None,
                // A URL this parser refuses but that names one host and asks for no
                // session check goes to sqlx as before, which has the last word on it.
                Err(e) if pg_url::asks_for_host_choice(url) => {
                    return Err(portcullis_core::ports::StoreError::Internal(e.to_string()))
                }
                Err(_) => None,
            },
            Backend::Sqlite => None,
        };
        let connect_options = match &choice {
            Some(choice) => choice.current_options().ok_or_else(|| {
                portcullis_core::ports::StoreError::Internal("database_url has no host".into())
            })?,
            None => {
                let url = match backend {
                    Backend::Sqlite => prepare_sqlite_url(url)?,
                    Backend::Postgres => url.to_owned(),
                };
                AnyConnectOptions::from_str(&url)
                    .map_err(db_err)?
                    .disable_statement_logging()
            }
        };
        let mut pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => options.max_connections.min(8) + db::SPARE,
                Backend::Postgres => options.max_connections,
            })
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            // No ping before every query (it doubled the round trips of each request); a
            // broken connection fails its query, which answers 503, and is then dropped.
            .test_before_acquire(false)
            // Never hand out a connection again that is still inside a transaction.
            .after_release({
                let choice = choice.clone();
                move |conn, meta| {
                    let choice = choice.clone();
                    Box::pin(async move {
                        let clean = health::clean_for_reuse(conn, backend, choice.is_some()).await;
                        if let Some(choice) = choice {
                            if !clean {
                                // A broken connection: perhaps the host is gone.
                                choice.suspect();
                            }
                            return Ok(clean && !choice.stale(&meta));
                        }
                        Ok(clean)
                    })
                }
            });
        if backend == Backend::Postgres {
            let timeouts = options.session_timeouts;
            let check = choice.clone();
            pool = pool.after_connect(move |conn, _meta| {
                let check = check.clone();
                Box::pin(async move {
                    if let Some(choice) = check {
                        choice.check_new(conn).await?;
                    }
                    timeouts.apply(conn).await
                })
            });
        }
        if let Some(choice) = choice.clone() {
            // Connections made before the pool moved to a new host are closed, not used.
            pool = pool.before_acquire(move |_conn, meta| {
                let stale = choice.stale(&meta);
                Box::pin(async move { Ok(!stale) })
            });
        }
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| Box::pin(sqlite_setup(conn)));
        }
        let (copy, loads) = match backend {
            Backend::Postgres => {
                let fixed = choice.is_none().then(|| connect_options.clone());
                let copy =
                    registry_copy::CopyPools::new(fixed, choice.clone(), options.session_timeouts);
                (Some(Arc::new(copy)), None)
            }
            // An in-memory database is the connection's own: loads share the pool then.
            Backend::Sqlite if url.contains(":memory:") => (None, None),
            Backend::Sqlite => (None, Some(registry::loads_pool(&connect_options))),
        };
        let pool = pool.connect_with(connect_options).await.map_err(db_err)?;
        let loads = loads.map(|l| (Db::pooled(l), registry::Checkpointer::new(pool.clone())));
        let watcher = choice.map(|c| Arc::new(failover::Watcher::start(c, pool.clone())));
        let pool = match backend {
            Backend::Sqlite => Db::kept(
                pool,
                options.max_connections.min(8),
                options.acquire_timeout,
            ),
            Backend::Postgres => Db::pooled(pool),
        };
        Ok(Self {
            pool,
            backend,
            gate: tx::WriteGate::new(backend),
            outbox_seal: None,
            watcher,
            replica: None,
            copy,
            loads,
        })
    }

    /// Reads that may be a little stale go to the PostgreSQL at `url` (a hot standby, or a
    /// role whose sessions are read-only): the service status history and incidents, and
    /// the admin views of an account's audit trail and of admin tokens
    /// (docs/design/availability.md, "Read replicas"). Everything else — sessions, limits,
    /// sign-in, admin authentication, every write — stays on the primary. No migrations
    /// are run there.
    pub async fn with_read_replica(
        mut self,
        url: &str,
        options: StoreOptions,
    ) -> StoreResult<Self> {
        if self.backend != Backend::Postgres
            || !(url.starts_with("postgres:") || url.starts_with("postgresql:"))
        {
            return Err(portcullis_core::ports::StoreError::Internal(
                "database_read_url is for PostgreSQL only (a postgres:// URL, with a \
                 postgres:// database_url)"
                    .into(),
            ));
        }
        self.replica = Some(Arc::new(Self::open(url, options).await?));
        Ok(self)
    }

    /// The pool for reads that may be a little stale: the replica's when
    /// `database_read_url` is set, the primary's otherwise.
    pub fn reads(&self) -> &Db {
        self.replica.as_ref().map_or(&self.pool, |r| &r.pool)
    }

    /// Applies this binary's pending migrations. A database a newer release has migrated
    /// with expand-only migrations is run on as it is (the previous release during a rolling
    /// upgrade, docs/design/availability.md); contracting, failed or changed migrations
    /// refuse the start.
    async fn migrate(&self) -> StoreResult<()> {
        let status = self.schema_status().await?;
        let refusals = status.start_problems();
        if !refusals.is_empty() {
            return Err(portcullis_core::ports::StoreError::Internal(
                refusals.join("; "),
            ));
        }
        let mut migrator = migrator(self.backend);
        if !status.unknown.is_empty() {
            tracing::info!(
                newer = ?status.unknown,
                "the schema has expand-only migrations of a newer release; this release runs \
                 on it (a rolling upgrade)"
            );
            migrator.set_ignore_missing(true);
        }
        migrator.run(self.pool.pool()).await.map_err(|e| {
            portcullis_core::ports::StoreError::Internal(format!("migration failed: {e}"))
        })
    }

    pub fn pool(&self) -> &Db {
        &self.pool
    }

    pub fn kind(&self) -> Backend {
        self.backend
    }

    /// The PostgreSQL host the pool uses, `host:port`, when `database_url` names several
    /// (or asks for a read-write session); `None` otherwise.
    pub fn chosen_host(&self) -> Option<String> {
        self.watcher.as_ref().map(|w| w.choice.current_host())
    }

    pub async fn close(&self) {
        if let Some((loads, _)) = &self.loads {
            loads.close().await;
        }
        if let Some(copy) = &self.copy {
            copy.close().await;
        }
        self.pool.close().await;
        if let Some(replica) = &self.replica {
            replica.pool.close().await;
        }
    }
}

/// The migrations this build runs on `backend` (embedded at compile time).
fn migrator(backend: Backend) -> sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    }
}

/// A short fingerprint of the migrations this build runs on `backend` (their versions and
/// checksums): test tooling keys a migrated template database with it, so a changed
/// migration never meets a database migrated by the old one.
pub fn migrations_fingerprint(backend: Backend) -> String {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for m in migrator(backend).iter() {
        parts.push(m.version.to_be_bytes().to_vec());
        parts.push(m.checksum.to_vec());
    }
    let joined: Vec<u8> = parts.concat();
    portcullis_crypto::sha256(&joined)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
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

impl Transactions for SqlStore {
    fn begin(&self, now: UnixTime) -> Box<dyn UnitOfWork> {
        Box::new(SqlWork::new(
            self.pool.clone(),
            (self.backend, self.gate.clone()),
            self.outbox_seal.clone(),
            now,
        ))
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query(PING)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn probe_write(
        &self,
        node: &str,
        now: portcullis_core::clock::UnixTime,
    ) -> StoreResult<()> {
        self.write_probe(node, now).await
    }

    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Every statement the store runs on `backend`, by name: the named constants of every
/// module, and the registry import's upsert at one row and at a full batch (the one
/// statement built at run time, by its row count).
pub fn statements(backend: Backend) -> Vec<(String, String)> {
    let all: &[&[Statement]] = &[
        STATEMENTS,
        account_import::STATEMENTS,
        accounts::STATEMENTS,
        admin::STATEMENTS,
        audit::STATEMENTS,
        card_guard::STATEMENTS,
        codes::STATEMENTS,
        devices::STATEMENTS,
        factors::STATEMENTS,
        failover::STATEMENTS,
        health::STATEMENTS,
        jobs::STATEMENTS,
        keys::STATEMENTS,
        lifecycle::STATEMENTS,
        ops::STATEMENTS,
        lockout::STATEMENTS,
        oidc::STATEMENTS,
        oidc_clients::STATEMENTS,
        oidc_jwks::STATEMENTS,
        outbox::STATEMENTS,
        registry::STATEMENTS,
        registry_bulk::STATEMENTS,
        registry_copy::STATEMENTS,
        sessions::STATEMENTS,
        status::STATEMENTS,
        steps::STATEMENTS,
        sweep::STATEMENTS,
        throttle::STATEMENTS,
        tx::STATEMENTS,
        webhooks::STATEMENTS,
    ];
    let wanted = match backend {
        Backend::Sqlite => Dialect::Sqlite,
        Backend::Postgres => Dialect::Postgres,
    };
    let mut out: Vec<(String, String)> = all
        .iter()
        .flat_map(|s| s.iter())
        .filter(|s| s.dialect == Dialect::Both || s.dialect == wanted)
        .map(|s| (s.name.to_owned(), s.sql.to_owned()))
        .collect();
    for rows in [1, IMPORT_BATCH] {
        out.push(match backend {
            Backend::Postgres => (
                format!("registry::upsert_sql({rows})"),
                registry::upsert_sql(rows, backend, 1),
            ),
            Backend::Sqlite => (
                format!("registry::sqlite_merge_sql({rows})"),
                registry::sqlite_merge_sql(rows),
            ),
        });
    }
    for rows in [1, 2, audit::APPEND_CHUNK] {
        out.push((
            format!("audit::append_sql({rows})"),
            audit::append_sql(rows, backend),
        ));
        if backend == Backend::Sqlite {
            out.push((
                format!("audit::append_commit_sql({rows})"),
                audit::append_commit_sql(rows),
            ));
        }
    }
    out
}
