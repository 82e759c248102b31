//! Operating it (issue 18), through the real binary: the demo as a newcomer first sees it,
//! production mode's refusals, `validate-config`, and a backup taken under registration
//! load, restored into a fresh folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_testkit::{both, Backend, RealServer, TestDb};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::crash::{card_id, card_number, import, registry_file, CARDS, HALF_WRITTEN_ACCOUNTS};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// The binary as a newcomer runs it: in `dir`, with none of the caller's `PORTCULLIS_*`
/// settings or `RUST_LOG`.
fn clean(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("PORTCULLIS_") || name == "RUST_LOG" {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd.current_dir(dir);
    cmd
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn post(c: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let res = c.post(url).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn answers() -> Value {
    json!([
        {"question_id": 1, "answer": "Rex"},
        {"question_id": 4, "answer": "Hill Street Primary"},
        {"question_id": 6, "answer": "Sparky"}
    ])
}

/// A demo card as `serve --demo` printed it.
#[derive(Debug)]
struct PrintedCard {
    account_type: String,
    number: String,
    verification: String,
    holder: String,
}

/// Reads `  Merchant Account  (merchant)   merchant number 1234567890  verification code
/// SHOP42  (Corner Coffee Ltd, Merchant Services)`.
fn parse_card(line: &str) -> Option<PrintedCard> {
    let account_type = line.split('(').nth(1)?.split(')').next()?.to_owned();
    let after = |label: &str| {
        line.split(label)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    };
    let number = after("card number ").or_else(|| after("merchant number "))?;
    let verification = after("card ID ").or_else(|| after("verification code "))?;
    let holder = line.rsplit('(').next()?.split(',').next()?.to_owned();
    Some(PrintedCard {
        account_type,
        number,
        verification,
        holder,
    })
}

#[allow(clippy::disallowed_methods)] // test support: polls the child's output
fn wait_for(path: &Path, what: &str, done: impl Fn(&str) -> bool, err: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not appear:\n{text}\n{}",
            std::fs::read_to_string(err).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap()
}

/// The signed-in session of a just-registered account: a device the account has not seen
/// is asked for a code, read from the demo outbox the banner named.
async fn session(
    c: &reqwest::Client,
    base: &str,
    outbox: &Path,
    user_id: &str,
    password: &str,
    account_type: &str,
) -> String {
    let (status, body) = post(
        c,
        format!("{base}/api/v1/sessions"),
        json!({"user_id": user_id, "password": password, "account_type": account_type}),
    )
    .await;
    if status == 201 {
        return body["session_token"].as_str().unwrap().to_owned();
    }
    assert_eq!(status, 200, "sign-in of {user_id}: {body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    let challenge = body["challenge_token"].as_str().unwrap().to_owned();
    let before = std::fs::read_to_string(outbox).unwrap_or_default().len();
    let (status, _) = post(
        c,
        format!("{base}/api/v1/sessions/mfa/send"),
        json!({"challenge_token": challenge, "method": "email"}),
    )
    .await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        let text = std::fs::read_to_string(outbox).unwrap_or_default();
        let code = text.get(before..).and_then(|new| {
            new.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter_map(|m| m["body"].as_str().map(str::to_owned))
                .flat_map(|b| {
                    b.split(|ch: char| !ch.is_ascii_digit())
                        .filter(|w| w.len() == 6)
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .last()
        });
        if let Some(code) = code {
            break code;
        }
        assert!(Instant::now() < deadline, "no code reached the outbox");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (status, body) = post(
        c,
        format!("{base}/api/v1/sessions/mfa"),
        json!({"challenge_token": challenge, "method": "email", "code": code}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["session_token"].as_str().unwrap().to_owned()
}

/// `cargo run --release -- serve --demo` on a fresh folder, as a newcomer: the address is
/// `http://localhost:PORT` (so passkeys are on), one card of each account type is printed
/// and each opens an online account whose home greets the holder by name, the outbox is
/// where the banner says, and stderr (not a terminal: JSON lines) has no WARN or ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_first_start_is_clean_with_passkeys_and_every_account_type() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdout.log");
    let err = dir.path().join("stderr.log");
    let mut child = clean(dir.path())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let banner = wait_for(
        &out,
        "the demo banner",
        |t| {
            t.lines()
                .filter(|l| l.contains(" card ID ") || l.contains(" verification code "))
                .count()
                >= 3
        },
        &err,
    );
    let base = banner
        .lines()
        .find_map(|l| l.strip_prefix("Portcullis is running at "))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    assert!(
        base.starts_with("http://localhost:"),
        "the demo's address is a host name: {base}"
    );
    let outbox_line = banner
        .lines()
        .find(|l| l.starts_with("Demo mode:"))
        .unwrap();
    assert!(
        outbox_line.contains(&format!("{base}/demo/outbox")),
        "{outbox_line}"
    );
    let outbox = dir
        .path()
        .join(outbox_line.rsplit(" and in ").next().unwrap().trim());
    let cards: Vec<PrintedCard> = banner.lines().filter_map(parse_card).collect();
    let types: BTreeSet<&str> = cards.iter().map(|c| c.account_type.as_str()).collect();
    assert_eq!(
        types,
        BTreeSet::from(["corporate", "merchant", "personal"]),
        "{banner}"
    );

    let c = client();
    // Passkeys are on: a sign-in with a passkey can start, for the relying party localhost.
    let (status, body) = post(
        &c,
        format!("{base}/api/v1/sessions/passkey/options"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "passkeys are off: {body}");
    assert_eq!(body["options"]["publicKey"]["rpId"], "localhost", "{body}");

    // Each printed card opens an account of its type; the home greets the holder by name.
    for card in &cards {
        let user_id = format!("newcomer.{}", card.account_type);
        let password = "Harbour-Lantern-42!";
        let (status, body) = post(
            &c,
            format!("{base}/api/v1/registration/verify-card"),
            json!({"account_type": card.account_type, "number": card.number,
                   "verification": card.verification}),
        )
        .await;
        assert_eq!(status, 200, "{card:?}: {body}");
        let (status, body) = post(
            &c,
            format!("{base}/api/v1/registration/complete"),
            json!({"registration_token": body["registration_token"], "user_id": user_id,
                   "password": password, "security_answers": answers(),
                   "code_channel": "email"}),
        )
        .await;
        assert_eq!(status, 201, "{card:?}: {body}");
        let token = session(&c, &base, &outbox, &user_id, password, &card.account_type).await;
        let me: Value = c
            .get(format!("{base}/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["holder_name"], card.holder.as_str(), "{me}");
        assert_eq!(me["account_type"], card.account_type.as_str());
    }
    let res = c.get(format!("{base}/demo/outbox")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(terminate(&mut child).success());

    let logs = std::fs::read_to_string(&err).unwrap();
    assert!(logs.lines().count() >= 2, "{logs}");
    for line in logs.lines() {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|_| panic!("not a JSON line (stderr is not a terminal): {line}"));
        let level = entry["level"].as_str().unwrap_or("");
        assert!(
            !matches!(level, "WARN" | "ERROR"),
            "a newcomer's first start logged {level}: {line}"
        );
    }
}

/// `log.format = "text"` (here `PORTCULLIS_LOG_FORMAT`) gives readable lines even when
/// standard error is not a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_text_writes_readable_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdout.log");
    let err = dir.path().join("stderr.log");
    let mut child = clean(dir.path())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_LOG_FORMAT", "text")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let banner = wait_for(&out, "the address", |t| t.contains("running at"), &err);
    let base = banner
        .lines()
        .find_map(|l| l.strip_prefix("Portcullis is running at "))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    // Serving (so SIGTERM is a graceful stop, not the default kill).
    let res = client().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(terminate(&mut child).success());
    let logs = std::fs::read_to_string(&err).unwrap();
    let line = logs.lines().next().unwrap();
    assert!(serde_json::from_str::<Value>(line).is_err(), "{line}");
    assert!(line.contains(" INFO "), "{line}");
}

fn run(mut cmd: std::process::Command) -> (i32, String, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Production mode (the default without `--demo`) refuses plain HTTP on a public address
/// and every demo setting, each by name, before it touches anything; a production
/// configuration on loopback starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_refuses_plain_http_on_a_public_address_and_demo_settings() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = clean(dir.path());
    cmd.args(["serve", "--listen", "0.0.0.0:0"]);
    let (code, _, stderr) = run(cmd);
    assert_eq!(code, 1, "{stderr}");
    for expected in [
        "production mode refuses this configuration",
        "listen = \"0.0.0.0:0\" is not a loopback address",
        "public_url is not set",
        "no email transport",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing:\n{stderr}");
    }
    assert!(
        !dir.path().join("portcullis-data").exists(),
        "a refused start creates nothing"
    );

    // The demo's settings, each named.
    let mut cmd = clean(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_PUBLIC_URL", "https://login.bank.example")
        .env("PORTCULLIS_NOTIFY_SMTP_HOST", "127.0.0.1")
        .env("PORTCULLIS_NOTIFY_FROM", "Bank <no-reply@bank.example>")
        .env("PORTCULLIS_NOTIFY_OUTBOX_FILE", dir.path().join("o.jsonl"))
        .env("PORTCULLIS_LIMITS_ENABLED", "false")
        .env("PORTCULLIS_SECURE_COOKIES", "false")
        .env("PORTCULLIS_HASHING_MEMORY_KIB", "64")
        .env("PORTCULLIS_HASHING_ITERATIONS", "1");
    let (code, _, stderr) = run(cmd);
    assert_eq!(code, 1, "{stderr}");
    for expected in [
        "notify.outbox_file",
        "limits.enabled = false",
        "secure_cookies = false",
        "hashing.memory_kib = 64",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing:\n{stderr}");
    }
    assert!(!stderr.contains("listen ="), "loopback is fine:\n{stderr}");

    // --demo under an explicit production mode.
    let mut cmd = clean(dir.path());
    cmd.args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_MODE", "production");
    let (code, _, stderr) = run(cmd);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--demo cannot run in production mode"),
        "{stderr}"
    );

    // A production configuration on loopback (behind a proxy) starts and serves.
    let out = dir.path().join("stdout.log");
    let err = dir.path().join("stderr.log");
    let mut child = clean(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_PUBLIC_URL", "https://login.bank.example")
        .env("PORTCULLIS_NOTIFY_SMTP_HOST", "127.0.0.1")
        .env("PORTCULLIS_NOTIFY_FROM", "Bank <no-reply@bank.example>")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let banner = wait_for(&out, "the address", |t| t.contains("running at"), &err);
    let base = banner
        .lines()
        .find_map(|l| l.strip_prefix("Portcullis is running at "))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let res = client().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // No demo here.
    let res = client()
        .get(format!("{base}/demo/outbox"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(terminate(&mut child).success());
}

/// `validate-config` lists every problem at once and exits 1; a public listener behind a
/// named proxy with the production settings is valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_config_lists_every_problem_before_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portcullis.toml");
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:8080\"\npublic_url = \"http://login.bank.example\"\n\
         [notify]\noutbox_file = \"/tmp/outbox.jsonl\"\n\
         smtp_password_file = \"/nonexistent/smtp-password\"\n",
    )
    .unwrap();
    let mut cmd = clean(dir.path());
    cmd.args(["validate-config", "--config"]).arg(&file);
    let (code, stdout, _) = run(cmd);
    assert_eq!(code, 1, "{stdout}");
    for expected in [
        "mode = production",
        "problem: listen = \"0.0.0.0:8080\" is not a loopback address",
        "problem: public_url = \"http://login.bank.example\" is not an https:// address",
        "problem: notify.outbox_file",
        "problem: notify.smtp_password_file = \"/nonexistent/smtp-password\" cannot be read",
        "configuration is NOT valid: 4 problems",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }

    std::fs::write(
        &file,
        "listen = \"0.0.0.0:8080\"\npublic_url = \"https://login.bank.example\"\n\
         [limits]\ntrusted_proxies = [\"10.0.0.2\"]\n\
         [notify]\nsmtp_host = \"mail.bank.example\"\nfrom = \"Bank <no-reply@bank.example>\"\n",
    )
    .unwrap();
    let mut cmd = clean(dir.path());
    cmd.args(["validate-config", "--config"]).arg(&file);
    let (code, stdout, _) = run(cmd);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(stdout.contains("note: there is no database"), "{stdout}");
    assert!(
        !dir.path().join("portcullis-data").exists(),
        "nothing created"
    );
}

// ---------------------------------------------------------------------------------------
// Backup under load, restored into a fresh folder.

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
    let Some(source_db) = TestDb::new(backend).await else {
        return;
    };
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
    let restored_db = TestDb::new(backend).await.unwrap();
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

/// OpenTelemetry: a build with the `otel` feature sends each request's span to the OTLP
/// endpoint (here a fake collector on loopback); a build without it refuses a configuration
/// that asks for traces instead of ignoring it. CI runs this test both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_go_to_the_otlp_endpoint_only_from_a_build_with_otel() {
    type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let seen: Seen = Arc::default();
    let collector = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<Seen>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let kind = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    seen.lock().unwrap().push((kind, body.to_vec()));
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdout.log");
    let err = dir.path().join("stderr.log");
    let mut child = clean(dir.path())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("PORTCULLIS_TELEMETRY_OTLP_ENDPOINT", &endpoint)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    if !cfg!(feature = "otel") {
        let status = child.wait().unwrap();
        let stderr = std::fs::read_to_string(&err).unwrap();
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("no OpenTelemetry support"), "{stderr}");
        return;
    }
    let banner = wait_for(&out, "the address", |t| t.contains("running at"), &err);
    let base = banner
        .lines()
        .find_map(|l| l.strip_prefix("Portcullis is running at "))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let res = client()
        .get(format!("{base}/api/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Stopping flushes the spans still buffered.
    assert!(terminate(&mut child).success());
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "no spans reached the collector");
    assert!(seen
        .iter()
        .all(|(kind, _)| kind == "application/x-protobuf"));
    let all: Vec<u8> = seen.iter().flat_map(|(_, b)| b.clone()).collect();
    let has = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"portcullis"), "the service name");
    assert!(has(b"request"), "the request span");
    assert!(has(b"/api/v1/status"), "the request's path");
}
