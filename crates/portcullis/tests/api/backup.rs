//! A backup taken under registration load, restored into a fresh folder: `portcullis db
//! backup` on SQLite, the `pg_dump` it prints on PostgreSQL; every account acknowledged
//! before the backup began signs in afterwards, `audit verify` passes, and without the
//! secrets folder the restore is refused rather than re-keyed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_testkit::{both, Backend, RealServer, TestDb};
use serde_json::json;
use sqlx::{Connection, Row};

use crate::crash::{card_id, card_number, import, registry_file, CARDS, HALF_WRITTEN_ACCOUNTS};
use crate::operations::{answers, clean, client, post, run};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// Registrations acknowledged so far, in order.
#[derive(Default)]
struct Load {
    next: AtomicUsize,
    acked: Mutex<Vec<usize>>,
    stop: AtomicBool,
}

fn user_id(i: usize) -> String {
    format!("backup.{i}")
}

fn password(i: usize) -> String {
    format!("Backup-Pass-{i}-a")
}

async fn registrar(base: String, load: Arc<Load>) {
    let c = client();
    while !load.stop.load(Ordering::Relaxed) {
        let i = load.next.fetch_add(1, Ordering::Relaxed);
        if i >= CARDS {
            break;
        }
        let (status, body) = post(
            &c,
            format!("{base}/api/v1/registration/verify-card"),
            json!({"account_type": "personal", "number": card_number(i),
                   "verification": card_id(i)}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = post(
            &c,
            format!("{base}/api/v1/registration/complete"),
            json!({"registration_token": body["registration_token"], "user_id": user_id(i),
                   "password": password(i), "security_answers": answers(),
                   "code_channel": "email"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        load.acked.lock().unwrap().push(i);
    }
}

fn server_env(url: &str, secrets: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("PORTCULLIS_DATABASE_URL", url.to_owned()),
        ("PORTCULLIS_SECRETS_DIR", secrets.display().to_string()),
        ("PORTCULLIS_HASHING_MEMORY_KIB", "64".into()),
        ("PORTCULLIS_HASHING_ITERATIONS", "1".into()),
        ("PORTCULLIS_LIMITS_ENABLED", "false".into()),
        ("PORTCULLIS_RISK_NEW_DEVICE_STEP_UP", "false".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

/// A command of the binary against `url` and `secrets`.
fn cli(url: &str, secrets: &Path, args: &[&str]) -> std::process::Command {
    let dir = secrets.parent().unwrap_or(secrets);
    let mut cmd = clean(dir);
    cmd.args(args)
        .env("PORTCULLIS_DATABASE_URL", url)
        .env("PORTCULLIS_SECRETS_DIR", secrets)
        .env(
            "PORTCULLIS_NOTIFY_OUTBOX_FILE",
            dir.join("cli-outbox.jsonl"),
        );
    cmd
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn pg_tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

async fn user_ids(url: &str, backend: Backend) -> BTreeSet<String> {
    let rows = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            let half: i64 = sqlx::query(HALF_WRITTEN_ACCOUNTS)
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get("n");
            assert_eq!(half, 0, "an account without its security answers");
            sqlx::query("SELECT user_id FROM online_accounts")
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("user_id"))
                .collect()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let half: i64 = sqlx::query(HALF_WRITTEN_ACCOUNTS)
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get("n");
            assert_eq!(half, 0, "an account without its security answers");
            sqlx::query("SELECT user_id FROM online_accounts")
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("user_id"))
                .collect()
        }
    };
    rows
}

/// Takes the backup while the load runs: `portcullis db backup` on SQLite; on PostgreSQL
/// the command prints PostgreSQL's tools instead, and the backup is the `pg_dump` it names.
async fn take_backup(backend: Backend, url: &str, secrets: &Path, file: &Path) -> bool {
    let (code, stdout, stderr) = {
        let mut cmd = tokio::process::Command::from(cli(
            url,
            secrets,
            &["db", "backup", &file.display().to_string()],
        ));
        let out = cmd.output().await.unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    match backend {
        Backend::Sqlite => {
            assert_eq!(code, 0, "{stdout}{stderr}");
            assert!(stdout.contains("Back up the secrets folder"), "{stdout}");
            true
        }
        Backend::Postgres => {
            assert_eq!(
                code, 1,
                "nothing is written for PostgreSQL: {stdout}{stderr}"
            );
            assert!(stderr.contains("pg_dump --format=custom"), "{stderr}");
            let Some(pg_dump) = pg_tool("pg_dump") else {
                eprintln!("SKIPPED the PostgreSQL backup and restore: no pg_dump on this machine");
                return false;
            };
            let out = tokio::process::Command::new(pg_dump)
                .arg("--format=custom")
                .arg(format!("--file={}", file.display()))
                .arg(format!("--dbname={url}"))
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            true
        }
    }
}

async fn backup_under_load(backend: Backend) {
    let source_db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!(
            "sqlite://{}",
            dir.path().join("data/portcullis.db").display()
        ),
        Backend::Postgres => source_db.url.clone(),
    };
    let secrets = dir.path().join("secrets");
    import(&url, &secrets, &registry_file(dir.path()));
    let server = RealServer::start(bin(), &server_env(&url, &secrets));

    let load = Arc::new(Load::default());
    let workers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(registrar(server.base.clone(), load.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.acked.lock().unwrap().len() < 25 {
        assert!(Instant::now() < deadline, "the load did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let file = dir.path().join("portcullis-backup.db");
    let before: BTreeSet<usize> = load.acked.lock().unwrap().iter().copied().collect();
    let taken = take_backup(backend, &url, &secrets, &file).await;
    let during = load.acked.lock().unwrap().len() - before.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    drop(server);
    if !taken {
        return;
    }
    let acked: BTreeSet<usize> = load.acked.lock().unwrap().iter().copied().collect();
    eprintln!(
        "{} registrations acknowledged before the backup began, {during} while it ran, {} in all",
        before.len(),
        acked.len()
    );
    assert!(
        acked.len() > before.len(),
        "the load went on while the backup was taken and after it"
    );

    // A fresh folder: the backup and a copy of the secrets folder.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_secrets = fresh.path().join("secrets");
    copy_dir(&secrets, &fresh_secrets);
    let restored_db = TestDb::empty(backend).await;
    let restored = match backend {
        Backend::Sqlite => {
            let url = format!(
                "sqlite://{}",
                fresh.path().join("data/portcullis.db").display()
            );
            let (code, stdout, stderr) = run(cli(
                &url,
                &fresh_secrets,
                &["db", "restore", &file.display().to_string()],
            ));
            assert_eq!(code, 0, "{stdout}{stderr}");
            assert!(stdout.contains("audit chain   intact"), "{stdout}");
            assert!(stdout.contains("db check: ok"), "{stdout}");
            url
        }
        Backend::Postgres => {
            let out = std::process::Command::new(pg_tool("pg_restore").unwrap())
                .args(["--exit-on-error", "--no-owner"])
                .arg(format!("--dbname={}", restored_db.url))
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let (code, stdout, stderr) =
                run(cli(&restored_db.url, &fresh_secrets, &["db", "check"]));
            assert_eq!(code, 0, "{stdout}{stderr}");
            assert!(stdout.contains("db check: ok"), "{stdout}");
            restored_db.url.clone()
        }
    };

    // Every registration acknowledged before the backup began is in it; whatever else is
    // in it was acknowledged too, and whole.
    let in_backup = user_ids(&restored, backend).await;
    for i in &before {
        assert!(
            in_backup.contains(&user_id(*i)),
            "backup.{i} was acknowledged before the backup"
        );
    }
    let acked_ids: BTreeSet<String> = acked.iter().map(|i| user_id(*i)).collect();
    assert!(in_backup.is_subset(&acked_ids), "an unacknowledged account");

    // The restored service: every account in the backup signs in with its password.
    let server = RealServer::start(bin(), &server_env(&restored, &fresh_secrets));
    let c = client();
    for id in &in_backup {
        let i: usize = id.trim_start_matches("backup.").parse().unwrap();
        let (status, body) = post(
            &c,
            server.url("/api/v1/sessions"),
            json!({"user_id": id, "password": password(i), "account_type": "personal"}),
        )
        .await;
        assert_eq!(status, 201, "{id} cannot sign in after the restore: {body}");
    }
    drop(server);
    let (code, stdout, stderr) = run(cli(&restored, &fresh_secrets, &["audit", "verify"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("audit log intact"), "{stdout}");

    // Without the secrets folder the same backup is refused, not silently re-keyed.
    let bare = fresh.path().join("no-secrets");
    let (code, stdout, stderr) = run(cli(&restored, &bare, &["audit", "verify"]));
    assert_ne!(code, 0, "{stdout}");
    assert!(
        stderr.contains("the keys it was written under are missing"),
        "{stderr}"
    );
    assert!(!bare.join("registry.key").exists(), "no key was minted");
}
both!(
    backup_under_registration_load_restores_into_a_fresh_folder,
    backup_under_load
);
