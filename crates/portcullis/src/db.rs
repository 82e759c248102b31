//! `portcullis db backup | restore | check`: a consistent copy of a SQLite database taken
//! while the service runs, its restore into a stopped or fresh installation, and a check of
//! a database against this binary and its secrets folder.
//!
//! A database is only half of a backup: card data is found by its HMAC under the registry
//! key and authenticator-app secrets are sealed under the factor key, both files in
//! `secrets_dir`. Every command here says so, and `serve` refuses to mint new keys for a
//! database that holds data (see [`crate::app`]).
//!
//! PostgreSQL is backed up by PostgreSQL's own tools; these commands print the exact ones.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::ports::OutboxStore;
use portcullis_core::service::{Portcullis, SupportAuthority};
use portcullis_crypto::secrets::load_existing_key;
use portcullis_crypto::{HashParams, HashPool, KeyRing, KeyedHasher, LiveRing};
use portcullis_store::{
    check_sqlite_file, restrict_to_owner, sqlite_file_in_use, sync_dir, SqlStore, StoreOptions,
};

use crate::app::{redact_url, AUDIT_KEY, REGISTRY_KEY};
use crate::config::Config;

/// The SQLite file a `sqlite:` URL names; `None` for PostgreSQL.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

fn small_pool() -> StoreOptions {
    StoreOptions {
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(10),
        ..StoreOptions::default()
    }
}

/// The commands PostgreSQL's own tools need, for this database.
fn postgres_advice(config: &Config, file: &Path, restore: bool) -> String {
    let url = redact_url(&config.database_url);
    let file = file.display();
    let secrets = config.secrets_dir.display();
    let head = if restore {
        "portcullis db restore restores SQLite files. For PostgreSQL, restore a pg_dump \
         archive with PostgreSQL's own tool, into an empty database, with the service stopped:"
    } else {
        "portcullis db backup copies SQLite files. PostgreSQL is backed up, online and \
         consistently, by PostgreSQL's own tools; nothing was written."
    };
    format!(
        "{head}\n\n\
         A logical backup of this database (consistent, online; the password comes from \
         PGPASSWORD or ~/.pgpass):\n\
         \x20 pg_dump --format=custom --file='{file}' --dbname='{url}'\n\n\
         Its restore into a new, empty database (then point database_url at it):\n\
         \x20 createdb --template=template0 portcullis_restored\n\
         \x20 pg_restore --exit-on-error --no-owner --dbname='postgres://…/portcullis_restored' '{file}'\n\n\
         Point-in-time recovery of the whole cluster (with WAL archiving configured):\n\
         \x20 pg_basebackup --pgdata=/var/backups/portcullis-base --wal-method=stream \
         --checkpoint=fast --progress --dbname='{url}'\n\n\
         Back up the secrets folder ({secrets}) as well, and keep it apart from the \
         database backups: without it the data cannot be read (docs/operations.md)."
    )
}

/// `portcullis db backup FILE`.
pub async fn backup(config: &Config, file: &Path) -> anyhow::Result<ExitCode> {
    if is_postgres(&config.database_url) {
        eprintln!("{}", postgres_advice(config, file, false));
        return Ok(ExitCode::FAILURE);
    }
    let db = sqlite_path(&config.database_url)
        .with_context(|| format!("{} is not a SQLite file", config.database_url))?;
    if !db.is_file() {
        bail!("there is no database at {}", db.display());
    }
    let store = SqlStore::open(&config.database_url, small_pool())
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    store
        .backup_sqlite(file)
        .await
        .with_context(|| format!("writing the backup {}", file.display()))?;
    store.close().await;
    let check = check_sqlite_file(file)
        .await
        .with_context(|| format!("reading the backup {} back", file.display()))?;
    if !check.problems.is_empty() {
        bail!(
            "the backup {} does not pass SQLite's checks:\n  {}",
            file.display(),
            check.problems.join("\n  ")
        );
    }
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({size} bytes, schema version {}): {}",
        db.display(),
        file.display(),
        check.schema.version(),
        check.holdings
    );
    println!(
        "Back up the secrets folder ({}) too, kept apart from this file: without it the \
         backup cannot be read.",
        config.secrets_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `portcullis db restore FILE [--force]`.
pub async fn restore(config: &Config, file: &Path, force: bool) -> anyhow::Result<ExitCode> {
    if is_postgres(&config.database_url) {
        eprintln!("{}", postgres_advice(config, file, true));
        return Ok(ExitCode::FAILURE);
    }
    let target = sqlite_path(&config.database_url)
        .with_context(|| format!("{} is not a SQLite file", config.database_url))?;
    let check = check_sqlite_file(file)
        .await
        .with_context(|| format!("checking the backup {}", file.display()))?;
    let mut refusals = check.problems.clone();
    refusals.extend(check.schema.problems());
    if !refusals.is_empty() {
        eprintln!(
            "error: {} cannot be restored; nothing was changed:",
            file.display()
        );
        for r in &refusals {
            eprintln!("  - {r}");
        }
        return Ok(ExitCode::FAILURE);
    }
    if target.exists() {
        if sqlite_file_in_use(&target)
            .await
            .with_context(|| format!("checking whether {} is in use", target.display()))?
        {
            eprintln!(
                "error: {} is in use (a running Portcullis?): stop the service first; nothing \
                 was changed.",
                target.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        if !force {
            eprintln!(
                "error: {} exists. `portcullis db restore --force {}` moves it (and its -wal \
                 and -shm files) aside, with a .before-restore-<time> suffix, and restores the \
                 backup in its place; nothing was changed.",
                target.display(),
                file.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        let suffix = format!("before-restore-{}", SystemClock.now().0);
        for (from, to) in sqlite_family(&target, &suffix) {
            if from.exists() {
                std::fs::rename(&from, &to).with_context(|| {
                    format!("moving {} aside to {}", from.display(), to.display())
                })?;
                println!("moved {} aside to {}", from.display(), to.display());
            }
        }
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "portcullis.db".into());
    let partial = target.with_file_name(format!(".{name}.restoring"));
    std::fs::copy(file, &partial)
        .with_context(|| format!("copying {} to {}", file.display(), partial.display()))?;
    restrict_to_owner(&partial).with_context(|| partial.display().to_string())?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .with_context(|| partial.display().to_string())?;
    std::fs::rename(&partial, &target)
        .with_context(|| format!("moving the copy to {}", target.display()))?;
    sync_dir(&target);
    println!(
        "restored {} into {}: {}",
        file.display(),
        target.display(),
        check.holdings
    );
    if !check.schema.pending.is_empty() {
        println!(
            "The backup's schema is version {}; this binary applies its newer migrations at \
             the next start.",
            check.schema.version()
        );
    }
    // The same check an operator runs by hand, on the restored file.
    println!();
    check_database(config).await
}

/// The file, its `-wal` and `-shm`, each with where it moves to.
fn sqlite_family(db: &Path, suffix: &str) -> Vec<(PathBuf, PathBuf)> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|ext| {
            let mut from = db.as_os_str().to_owned();
            from.push(ext);
            let mut to = db.as_os_str().to_owned();
            to.push(format!(".{suffix}{ext}"));
            (PathBuf::from(from), PathBuf::from(to))
        })
        .collect()
}

/// `portcullis db check`: the schema against this binary, integrity and foreign keys, the
/// audit chain under the audit key, and which keys are present. Changes nothing.
pub async fn check_database(config: &Config) -> anyhow::Result<ExitCode> {
    let mut problems: Vec<String> = Vec::new();
    let url = &config.database_url;
    println!("database      {}", redact_url(url));
    if let Some(path) = sqlite_path(url) {
        if !path.is_file() {
            bail!("there is no database at {}", path.display());
        }
    }
    let store = Arc::new(
        SqlStore::open(url, small_pool())
            .await
            .with_context(|| format!("opening the database ({})", redact_url(url)))?,
    );
    let schema = store.schema_status().await.context("reading the schema")?;
    let schema_problems = schema.problems();
    if schema_problems.is_empty() {
        let state = if schema.pending.is_empty() {
            "up to date".to_owned()
        } else {
            format!(
                "{} newer migrations are applied at the next start",
                schema.pending.len()
            )
        };
        println!(
            "schema        version {} (this binary: {}): {state}",
            schema.version(),
            schema.latest_known()
        );
    } else {
        println!("schema        version {}: PROBLEM", schema.version());
        problems.extend(schema_problems);
    }
    if !schema.unknown.is_empty() || schema.applied.is_empty() {
        // A newer schema, or none: the rest cannot be read by this binary.
        return Ok(report(problems, &store).await);
    }
    let consistency = store
        .consistency_problems()
        .await
        .context("checking integrity and foreign keys")?;
    if consistency.is_empty() {
        println!("consistency   integrity and foreign keys ok");
    } else {
        println!("consistency   {} PROBLEMS", consistency.len());
        problems.extend(consistency);
    }
    match store.holdings().await {
        Ok(h) => println!("holds         {h}"),
        Err(e) => problems.push(format!("cannot count what the database holds: {e}")),
    }
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for name in crate::keys::ALL {
        match load_existing_key(&config.secrets_dir, name) {
            Ok(Some(_)) => present.push(name),
            Ok(None) => missing.push(name),
            Err(e) => problems.push(e.to_string()),
        }
    }
    // The audit chain: each entry under the key id it names in audit.key.
    match crate::keys::audit_ring(&config.secrets_dir) {
        Ok(Some(ring)) => {
            let check = verify_audit_chain(config, store.clone(), ring).await?;
            let per_key = crate::keys::audit_rows_text(store.as_ref())
                .await
                .context("counting audit entries per key")?;
            match check.first_bad {
                None => println!(
                    "audit chain   intact: {} entries, each verified under its {AUDIT_KEY} \
                     key ({per_key})",
                    check.entries
                ),
                Some(bad) => {
                    println!("audit chain   BROKEN ({per_key})");
                    problems.push(format!(
                        "the audit chain does not verify under {}/{AUDIT_KEY}: {bad} \
                         ({} entries verified before it). Either the log was tampered \
                         with, or the secrets folder is not the one this database was \
                         written with.",
                        config.secrets_dir.display(),
                        check.entries
                    ));
                }
            }
        }
        Ok(None) => {
            println!("audit chain   not checked: no {AUDIT_KEY} and no {REGISTRY_KEY}");
        }
        Err(e) => problems.push(format!("{e:#}")),
    }
    println!(
        "keys          {} in {}{}",
        if present.is_empty() {
            "none".to_owned()
        } else {
            present.join(", ")
        },
        config.secrets_dir.display(),
        if missing.is_empty() {
            String::new()
        } else {
            format!("; missing: {}", missing.join(", "))
        }
    );
    let holds_data = store
        .holdings()
        .await
        .map(|h| !h.is_empty())
        .unwrap_or(true);
    let needed: Vec<&str> = crate::app::KEYS_THE_DATA_NEEDS
        .into_iter()
        .filter(|k| missing.contains(k))
        .collect();
    if holds_data && !needed.is_empty() {
        problems.push(format!(
            "the secrets folder has no {}, and the database holds data written under it: \
             restore the secrets folder from the same backup (serve refuses to start \
             without it)",
            needed.join(" or ")
        ));
    }
    // Key ids: every sealed value and registry row names the key it is under; each must be
    // in its keyring here.
    match crate::keys::check_key_ids(&config.secrets_dir, store.as_ref()).await {
        Ok((line, found)) => {
            println!(
                "key ids       {}",
                if found.is_empty() {
                    "all known"
                } else {
                    "UNKNOWN"
                }
            );
            if !line.is_empty() {
                println!("              {line}");
            }
            problems.extend(found);
        }
        Err(e) => problems.push(format!("cannot check key ids: {e:#}")),
    }
    Ok(report(problems, &store).await)
}

async fn report(problems: Vec<String>, store: &SqlStore) -> ExitCode {
    store.close().await;
    if problems.is_empty() {
        println!("db check: ok");
        ExitCode::SUCCESS
    } else {
        let n = problems.len();
        println!("db check: {n} problem{}", if n == 1 { "" } else { "s" });
        for p in &problems {
            println!("  - {p}");
        }
        ExitCode::FAILURE
    }
}

/// The audit chain, walked by the same code as `portcullis audit verify`, over a store that
/// was opened without migrating (a check changes nothing) and sends no messages.
async fn verify_audit_chain(
    config: &Config,
    store: Arc<SqlStore>,
    audit: KeyRing,
) -> anyhow::Result<portcullis_core::service::AuditCheck> {
    // Nothing is looked up or hashed but the chain: any key will do for the registry's.
    let registry_key = KeyedHasher::new(audit.current().clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Nothing is hashed: the smallest pool there is.
    let hasher = HashPool::start(HashParams::insecure_for_tests(), 1, 1)
        .context("starting the hashing pool")?;
    let delivery = portcullis_notify::DeliveryWorker::new(
        store.clone() as Arc<dyn OutboxStore>,
        clock.clone(),
        portcullis_notify::Transports {
            email: None,
            sms: None,
        },
        portcullis_notify::DeliveryConfig::default(),
    );
    let app = Portcullis::new(
        store,
        hasher,
        registry_key,
        clock,
        Arc::new(delivery.notifier()),
        config.policies(),
    )
    .with_audit_ring(LiveRing::fixed(audit));
    app.verify_audit(&SupportAuthority::operator(&crate::admin::cli_actor()))
        .await
        .context("walking the audit chain")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_come_from_the_url() {
        assert_eq!(
            sqlite_path("sqlite://./portcullis-data/portcullis.db"),
            Some(PathBuf::from("./portcullis-data/portcullis.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/portcullis/p.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/portcullis/p.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }

    #[test]
    fn a_restore_moves_the_whole_file_family_aside() {
        let moves = sqlite_family(Path::new("/d/p.db"), "before-restore-5");
        assert_eq!(
            moves,
            vec![
                (
                    PathBuf::from("/d/p.db"),
                    PathBuf::from("/d/p.db.before-restore-5")
                ),
                (
                    PathBuf::from("/d/p.db-wal"),
                    PathBuf::from("/d/p.db.before-restore-5-wal")
                ),
                (
                    PathBuf::from("/d/p.db-shm"),
                    PathBuf::from("/d/p.db.before-restore-5-shm")
                ),
            ]
        );
    }

    #[test]
    fn the_postgres_advice_names_the_tools_and_hides_the_password() {
        let config = Config {
            database_url: "postgres://app:s3cret@db.internal:5432/portcullis".into(),
            ..Config::default()
        };
        let text = postgres_advice(&config, Path::new("/b/p.dump"), false);
        assert!(text.contains("pg_dump --format=custom --file='/b/p.dump'"));
        assert!(text.contains("postgres://app@db.internal:5432/portcullis"));
        assert!(text.contains("pg_basebackup"));
        assert!(!text.contains("s3cret"));
        let text = postgres_advice(&config, Path::new("/b/p.dump"), true);
        assert!(text.contains("pg_restore --exit-on-error --no-owner"));
    }
}
