//! Operating the database: the schema version against this binary's migrations, SQLite's
//! integrity and foreign-key checks, online backups of a SQLite file, and the pool's use
//! for `/metrics`. Used by `portcullis db …`, `validate-config` and `serve`'s start-up
//! checks; nothing here is a port of the core (no use case needs it).
//!
//! PostgreSQL backups are the server's own tools (`pg_dump`, base backups): the binary
//! only says which commands, because a consistent online copy of a shared cluster is the
//! database's job, not one client's.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use portcullis_core::ports::{StoreError, StoreResult};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use crate::sql::statements;
use crate::{db_err, migrator, Backend, SqlStore};

statements! {
    /// The migrations applied; `success` is a boolean on PostgreSQL and 0/1 on SQLite,
    /// compared the same way.
    APPLIED_MIGRATIONS = "SELECT version, description, CASE WHEN success THEN 1 ELSE 0 END AS ok, \
        checksum FROM _sqlx_migrations ORDER BY version";
    HOLDINGS = "SELECT (SELECT COUNT(*) FROM registry_records) AS registry_records, \
        (SELECT COUNT(*) FROM online_accounts) AS accounts, \
        (SELECT COUNT(*) FROM audit_log) AS audit_entries";
    INTEGRITY_CHECK: sqlite = "PRAGMA integrity_check";
    FOREIGN_KEY_CHECK: sqlite = "PRAGMA foreign_key_check";
    HAS_MIGRATIONS_SQLITE: sqlite = "SELECT COUNT(*) AS n FROM sqlite_master \
        WHERE type = 'table' AND name = '_sqlx_migrations'";
    HAS_MIGRATIONS_POSTGRES: postgres = "SELECT COUNT(*) AS n FROM information_schema.tables \
        WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'";
    /// Whether another process holds the file: an exclusive lock cannot be had at once.
    TAKE_EXCLUSIVE: sqlite = "BEGIN EXCLUSIVE";
    GIVE_BACK: sqlite = "ROLLBACK";
    /// Foreign keys left unvalidated (`NOT VALID`): the only way a bad row could hide.
    UNVALIDATED_FOREIGN_KEYS: postgres = "SELECT conname || ' on ' || conrelid::regclass::text \
        AS name FROM pg_constraint WHERE contype = 'f' AND NOT convalidated \
        AND connamespace = current_schema()::regnamespace";
    /// An online, consistent copy of the database into the file named by `$1`.
    VACUUM_INTO: sqlite = "VACUUM INTO $1";
}

/// Where a database's schema stands against this binary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Versions applied successfully, in order.
    pub applied: Vec<i64>,
    /// This binary's migrations (version, description).
    pub known: Vec<(i64, String)>,
    /// Applied versions this binary does not know: the database was migrated by a newer
    /// Portcullis (a rolling upgrade under way, or this binary is older than the data).
    pub unknown: Vec<i64>,
    /// Those of `unknown` that contract the schema (a file named `NNNN_contract_…`): they
    /// drop or tighten what an older release uses, so an older binary must not run on them.
    /// The others only expand it, and the previous release runs on them
    /// (docs/design/availability.md, "Rolling upgrades").
    pub contracting: Vec<i64>,
    /// Known versions not applied yet: the next start applies them.
    pub pending: Vec<i64>,
    /// Migrations that started and failed (the database needs attention).
    pub failed: Vec<i64>,
    /// Applied migrations whose text changed since (a modified binary).
    pub changed: Vec<i64>,
}

impl SchemaStatus {
    /// The newest applied version (0 for an empty database).
    pub fn version(&self) -> i64 {
        self.applied.last().copied().unwrap_or(0)
    }

    /// The newest version this binary knows.
    pub fn latest_known(&self) -> i64 {
        self.known.last().map_or(0, |(v, _)| *v)
    }

    /// What keeps `serve` (and every command that migrates) from running on this database,
    /// one sentence each: a newer release's contracting migrations, failed ones, changed
    /// ones. A newer release's expand-only migrations do not: that is the previous release
    /// running during a rolling upgrade.
    pub fn start_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.contracting.is_empty() {
            problems.push(format!(
                "the database has contracting migrations this binary does not know ({}): a \
                 newer Portcullis dropped or tightened what this one uses; run that version \
                 (or newer)",
                list(&self.contracting)
            ));
        }
        problems.extend(self.damage());
        problems
    }

    /// Failed and changed migrations.
    fn damage(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.failed.is_empty() {
            problems.push(format!(
                "migrations {} started and failed: restore from a backup or repair by hand",
                list(&self.failed)
            ));
        }
        if !self.changed.is_empty() {
            problems.push(format!(
                "migrations {} differ from the ones applied (checksum): this binary was built \
                 from modified sources",
                list(&self.changed)
            ));
        }
        problems
    }

    /// What is wrong with the schema for a check or a restore, one sentence each: any
    /// migration this binary does not know (it cannot vouch for what it cannot read), failed
    /// and changed ones. Pending migrations are not wrong.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.unknown.is_empty() {
            problems.push(format!(
                "the database has migrations this binary does not know ({}): it was written \
                 by a newer Portcullis; run that version (or newer)",
                list(&self.unknown)
            ));
        }
        problems.extend(self.damage());
        problems
    }
}

/// Versions, comma-separated.
fn list(versions: &[i64]) -> String {
    versions
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a migration's description (sqlx's: the file name after the number, `_` as
/// spaces) marks it as contracting the schema.
pub fn is_contracting(description: &str) -> bool {
    description
        .split([' ', '_'])
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("contract"))
}

/// Counts of what a database holds, for backup and restore summaries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holdings {
    pub registry_records: i64,
    pub accounts: i64,
    pub audit_entries: i64,
}

impl Holdings {
    pub fn is_empty(&self) -> bool {
        self.registry_records == 0 && self.accounts == 0 && self.audit_entries == 0
    }
}

impl std::fmt::Display for Holdings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "online accounts: {}, registry records: {}, audit entries: {}",
            self.accounts, self.registry_records, self.audit_entries
        )
    }
}

/// The connection pool's use: open connections, idle ones, and the most it may open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// The codes and refresh tokens the token endpoint presented to this store for use (won or
/// lost), by how each was written: `one_list`, on SQLite, the use, its tokens and its audit
/// entry sent as one statement list (one hand-off; `tx::audited_at_once`); `unit_of_work`, the
/// usual transaction (PostgreSQL always; on SQLite when this store does not know the audit
/// chain's head, or another process has appended to it since).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantUses {
    pub one_list: u64,
    pub unit_of_work: u64,
}

/// The counters behind [`GrantUses`], shared by a store's units of work.
#[derive(Debug, Default)]
pub(crate) struct GrantUseCounts {
    one_list: AtomicU64,
    unit_of_work: AtomicU64,
}

impl GrantUseCounts {
    /// Counts one use, written as one statement list or not.
    pub(crate) fn count(&self, one_list: bool) {
        let way = if one_list {
            &self.one_list
        } else {
            &self.unit_of_work
        };
        way.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> GrantUses {
        GrantUses {
            one_list: self.one_list.load(Ordering::Relaxed),
            unit_of_work: self.unit_of_work.load(Ordering::Relaxed),
        }
    }
}

/// The result of checking a SQLite file on its own (a backup before it is restored).
#[derive(Clone, Debug)]
pub struct FileCheck {
    pub schema: SchemaStatus,
    pub holdings: Holdings,
    /// Integrity and foreign-key problems; empty when sound.
    pub problems: Vec<String>,
}

async fn schema_status<'c, E>(
    backend: Backend,
    exec: E,
    has_table: bool,
) -> StoreResult<SchemaStatus>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let migrator = &migrator(backend);
    let known: Vec<(i64, String)> = migrator
        .iter()
        .map(|m| (m.version, m.description.to_string()))
        .collect();
    let mut status = SchemaStatus {
        known,
        ..SchemaStatus::default()
    };
    if !has_table {
        status.pending = status.known.iter().map(|(v, _)| *v).collect();
        return Ok(status);
    }
    // `success` is a boolean on PostgreSQL and 0/1 on SQLite: compared the same way.
    let rows = sqlx::query(APPLIED_MIGRATIONS)
        .fetch_all(exec)
        .await
        .map_err(db_err)?;
    for row in rows {
        let version: i64 = row.try_get("version").map_err(db_err)?;
        let description: String = row.try_get("description").map_err(db_err)?;
        let ok: i32 = row.try_get("ok").map_err(db_err)?;
        let checksum: Vec<u8> = row.try_get("checksum").map_err(db_err)?;
        if ok == 0 {
            status.failed.push(version);
            continue;
        }
        status.applied.push(version);
        match migrator.iter().find(|m| m.version == version) {
            None => {
                status.unknown.push(version);
                if is_contracting(&description) {
                    status.contracting.push(version);
                }
            }
            Some(m) if m.checksum.as_ref() != checksum.as_slice() => status.changed.push(version),
            Some(_) => {}
        }
    }
    status.pending = status
        .known
        .iter()
        .map(|(v, _)| *v)
        .filter(|v| !status.applied.contains(v) && !status.failed.contains(v))
        .collect();
    Ok(status)
}

async fn holdings<'c, E>(exec: E) -> StoreResult<Holdings>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query(HOLDINGS)
        .fetch_one(exec)
        .await
        .map_err(db_err)?;
    Ok(Holdings {
        registry_records: row.try_get("registry_records").map_err(db_err)?,
        accounts: row.try_get("accounts").map_err(db_err)?,
        audit_entries: row.try_get("audit_entries").map_err(db_err)?,
    })
}

/// SQLite's own checks: `integrity_check` and `foreign_key_check`, as sentences.
async fn sqlite_problems(conn: &mut sqlx::SqliteConnection) -> StoreResult<Vec<String>> {
    let mut problems = Vec::new();
    let rows = sqlx::query(INTEGRITY_CHECK)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    for row in rows {
        let line: String = row.try_get(0).map_err(db_err)?;
        if line != "ok" {
            problems.push(format!("integrity: {line}"));
        }
    }
    let rows = sqlx::query(FOREIGN_KEY_CHECK)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    for row in rows {
        let table: String = row.try_get(0).map_err(db_err)?;
        let rowid: Option<i64> = row.try_get(1).map_err(db_err)?;
        let parent: String = row.try_get(2).map_err(db_err)?;
        problems.push(format!(
            "foreign key: {table} row {} points to a missing {parent} row",
            rowid.map_or_else(|| "?".to_owned(), |r| r.to_string())
        ));
    }
    Ok(problems)
}

/// Checks a SQLite file without changing it (opened read-only): integrity, foreign keys,
/// schema and what it holds.
pub async fn check_sqlite_file(path: &Path) -> StoreResult<FileCheck> {
    if !path.is_file() {
        return Err(StoreError::Internal(format!(
            "{} is not a file",
            path.display()
        )));
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .disable_statement_logging();
    let mut conn = options.connect().await.map_err(db_err)?;
    let problems = sqlite_problems(&mut conn).await?;
    let has_table: i64 = sqlx::query(HAS_MIGRATIONS_SQLITE)
        .fetch_one(&mut conn)
        .await
        .map_err(db_err)?
        .try_get(0)
        .map_err(db_err)?;
    conn.close().await.map_err(db_err)?;
    // The schema and counts through the `Any` driver, as the store reads them.
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut any = sqlx::AnyConnection::connect(&url).await.map_err(db_err)?;
    let schema = schema_status(Backend::Sqlite, &mut any, has_table > 0).await;
    let holdings = if has_table > 0 {
        holdings(&mut any).await?
    } else {
        Holdings::default()
    };
    any.close().await.map_err(db_err)?;
    if has_table == 0 {
        return Err(StoreError::Internal(format!(
            "{} is not a Portcullis database (no migrations table)",
            path.display()
        )));
    }
    Ok(FileCheck {
        schema: schema?,
        holdings,
        problems,
    })
}

/// Whether another process has the SQLite file at `path` open for writing or reading
/// (a running `serve`): an exclusive lock cannot be had at once.
pub async fn sqlite_file_in_use(path: &Path) -> StoreResult<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::ZERO)
        .locking_mode(sqlx::sqlite::SqliteLockingMode::Exclusive)
        .disable_statement_logging();
    let mut conn = match options.connect().await {
        Ok(c) => c,
        Err(e) if is_busy(&e) => return Ok(true),
        Err(e) => return Err(db_err(e)),
    };
    let taken = sqlx::query(TAKE_EXCLUSIVE).execute(&mut conn).await;
    let in_use = match taken {
        Ok(_) => {
            let _ = sqlx::query(GIVE_BACK).execute(&mut conn).await;
            false
        }
        Err(e) if is_busy(&e) => true,
        Err(e) => return Err(db_err(e)),
    };
    let _ = conn.close().await;
    Ok(in_use)
}

fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| c == "5" || c == "6" || c.parse::<i32>().is_ok_and(|n| n & 0xff == 5 || n & 0xff == 6)))
}

impl SqlStore {
    /// Where the schema stands against this binary's migrations.
    pub async fn schema_status(&self) -> StoreResult<SchemaStatus> {
        let has_table = match self.backend {
            Backend::Sqlite => {
                sqlx::query(HAS_MIGRATIONS_SQLITE)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err)?
                    .try_get::<i64, _>("n")
                    .map_err(db_err)?
                    > 0
            }
            Backend::Postgres => {
                sqlx::query(HAS_MIGRATIONS_POSTGRES)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err)?
                    .try_get::<i64, _>("n")
                    .map_err(db_err)?
                    > 0
            }
        };
        schema_status(self.backend, &self.pool, has_table).await
    }

    /// What the database holds (needs the schema in place).
    pub async fn holdings(&self) -> StoreResult<Holdings> {
        holdings(&self.pool).await
    }

    /// Integrity and foreign-key problems, as sentences; empty when sound. SQLite checks
    /// its file and every foreign key; PostgreSQL enforces foreign keys as it writes, so
    /// only a constraint left unvalidated (`NOT VALID`) could hide a bad row.
    pub async fn consistency_problems(&self) -> StoreResult<Vec<String>> {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = self.pool.acquire().await.map_err(db_err)?;
                let mut problems = Vec::new();
                for row in sqlx::query(INTEGRITY_CHECK)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err)?
                {
                    let line: String = row.try_get(0).map_err(db_err)?;
                    if line != "ok" {
                        problems.push(format!("integrity: {line}"));
                    }
                }
                for row in sqlx::query(FOREIGN_KEY_CHECK)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err)?
                {
                    let table: String = row.try_get(0).map_err(db_err)?;
                    let parent: String = row.try_get(2).map_err(db_err)?;
                    problems.push(format!(
                        "foreign key: a {table} row points to a missing {parent} row"
                    ));
                }
                Ok(problems)
            }
            Backend::Postgres => {
                let rows = sqlx::query(UNVALIDATED_FOREIGN_KEYS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                rows.iter()
                    .map(|r| {
                        r.try_get::<String, _>("name")
                            .map(|n| format!("foreign key {n} is not validated"))
                            .map_err(db_err)
                    })
                    .collect()
            }
        }
    }

    /// An online, consistent copy of a SQLite database in `path` (`VACUUM INTO`: one read
    /// transaction, so writers go on and the copy is the database at one moment). The copy
    /// is written beside `path` under a temporary name and renamed when complete, so a
    /// file at `path` is always a whole backup; it is readable by its owner only.
    pub async fn backup_sqlite(&self, path: &Path) -> StoreResult<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Internal(
                "an online backup by the binary is for SQLite; use pg_dump for PostgreSQL".into(),
            ));
        }
        if path.exists() {
            return Err(StoreError::Internal(format!(
                "{} exists: a backup never overwrites a file",
                path.display()
            )));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "backup".into());
        let partial = path.with_file_name(format!(".{name}.partial"));
        let _ = std::fs::remove_file(&partial);
        let target = partial.to_string_lossy().into_owned();
        let copied = sqlx::query(VACUUM_INTO)
            .bind(target)
            .execute(&self.pool)
            .await
            .map_err(db_err);
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        let io = |e: std::io::Error| StoreError::Internal(format!("{}: {e}", path.display()));
        restrict_to_owner(&partial).map_err(io)?;
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&partial, path).map_err(io)?;
        sync_dir(path);
        Ok(())
    }

    /// The token endpoint's uses so far, by how they were written, for `/metrics`.
    pub fn grant_uses(&self) -> GrantUses {
        self.gate.grant_uses.read()
    }

    /// The connection pool's use, for `/metrics`.
    pub fn pool_usage(&self) -> PoolUsage {
        let (open, idle, max) = self.pool.counts();
        PoolUsage {
            open,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
            max,
        }
    }
}

/// Owner-only permissions: a backup holds password hashes and sealed secrets.
pub fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Makes a rename in `path`'s folder durable (best effort: not every platform can).
pub fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}
