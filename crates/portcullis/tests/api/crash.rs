//! Crash safety: the real binary under a load of registrations, sign-ins and password
//! resets, killed with SIGKILL at random moments and restarted. After every restart each
//! acknowledged request is still there, nothing is half-written (no account without its
//! security answers, no one-time code without its message), and SQLite's integrity check
//! passes. Then a database outage: a private PostgreSQL cluster stopped for ten seconds
//! under load (never the machine's shared server).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_core::registry::COLUMNS;
use portcullis_testkit::{Backend, RealServer, TestDb};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

mod notices;

const KILLS: usize = 10;
pub(crate) const CARDS: usize = 400;
const WORKERS: usize = 6;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// A cheap pseudo-random number (kill moments, operation choice): no seed to pin, and a
/// failing run prints what it did.
#[allow(clippy::disallowed_methods)] // randomness from the wall clock, not a rule's time
fn random(below: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut x = nanos ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x % below.max(1)
}

pub(crate) fn card_number(i: usize) -> String {
    portcullis_core::card::with_luhn_check_digit(&format!(
        "37{:012}",
        555_000_000 + i as u64 * 7919
    ))
}

pub(crate) fn card_id(i: usize) -> String {
    format!("{:04}", 1000 + i)
}

fn email(i: usize) -> String {
    format!("crash{i}@example.com")
}

/// A registry file of `CARDS` personal cards in the contract's CSV format.
pub(crate) fn registry_file(dir: &Path) -> PathBuf {
    let mut csv = COLUMNS.join(",");
    csv.push('\n');
    for i in 0..CARDS {
        let row: Vec<String> = COLUMNS
            .iter()
            .map(|c| match *c {
                "account_type" => "personal".into(),
                "number" => card_number(i),
                "verification" => card_id(i),
                "expiry" => "2029-08".into(),
                "holder_name" => format!("Crash Tester {i}"),
                "email" => email(i),
                "phone" => format!("+1555020{i:04}"),
                "product" => "Platinum Card".into(),
                "balance" => "100.00".into(),
                "credit_limit" => "1000.00".into(),
                "payment_due_date" => "2026-12-20".into(),
                "minimum_due" => "35.00".into(),
                other => panic!("unknown column {other}"),
            })
            .collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    let path = dir.join("registry.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

/// What the clients were told, per card index.
#[derive(Default)]
struct User {
    /// The password the server last acknowledged.
    password: Option<String>,
    /// A password a reset sent but never heard back about: it may or may not have landed.
    maybe: Option<String>,
    /// Sessions acknowledged since the last reset began.
    sessions: Vec<String>,
    busy: bool,
}

#[derive(Default)]
struct Ledger {
    users: Mutex<HashMap<usize, User>>,
    next_card: AtomicUsize,
    acked: AtomicUsize,
}

struct Target {
    base: String,
    outbox: PathBuf,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn post(
    client: &reqwest::Client,
    t: &Target,
    path: &str,
    body: Value,
) -> Option<(u16, Value)> {
    let res = client
        .post(format!("{}{path}", t.base))
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    Some((status, body))
}

fn answers() -> Value {
    json!([
        {"question_id": 1, "answer": "Rex"},
        {"question_id": 4, "answer": "Hill Street Primary"},
        {"question_id": 6, "answer": "Sparky"}
    ])
}

/// The newest code sent to `to` after the first `after` messages to it.
async fn code_for(t: &Target, to: &str, after: usize, deadline: Instant) -> Option<String> {
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&t.outbox).unwrap_or_default();
        let msgs: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["to"] == to)
            .collect();
        if let Some(m) = msgs.iter().skip(after).rfind(|m| {
            m["subject"]
                .as_str()
                .unwrap_or("")
                .contains("security code")
        }) {
            return m["body"]
                .as_str()
                .unwrap_or("")
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .map(str::to_owned);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn messages_to(t: &Target, to: &str) -> usize {
    std::fs::read_to_string(&t.outbox)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["to"] == to)
        .count()
}

async fn register(c: &reqwest::Client, t: &Target, ledger: &Ledger, i: usize) {
    let Some((200, body)) = post(
        c,
        t,
        "/api/v1/registration/verify-card",
        json!({"account_type": "personal", "number": card_number(i), "verification": card_id(i)}),
    )
    .await
    else {
        return;
    };
    let token = body["registration_token"].as_str().unwrap_or("").to_owned();
    let password = format!("Crash-Pass-{i}-a");
    let answer = post(
        c,
        t,
        "/api/v1/registration/complete",
        json!({"registration_token": token, "user_id": format!("crash{i}"), "password": password,
               "security_answers": answers(), "code_channel": "email"}),
    )
    .await;
    if let Some((201, _)) = answer {
        ledger.users.lock().unwrap().entry(i).or_default().password = Some(password);
        ledger.acked.fetch_add(1, Ordering::Relaxed);
    }
}

async fn sign_in(c: &reqwest::Client, t: &Target, ledger: &Ledger, i: usize, password: &str) {
    let answer = post(
        c,
        t,
        "/api/v1/sessions",
        json!({"user_id": format!("crash{i}"), "password": password, "account_type": "personal"}),
    )
    .await;
    if let Some((201, body)) = answer {
        let token = body["session_token"].as_str().unwrap_or("").to_owned();
        ledger
            .users
            .lock()
            .unwrap()
            .entry(i)
            .or_default()
            .sessions
            .push(token);
        ledger.acked.fetch_add(1, Ordering::Relaxed);
    }
}

async fn reset(c: &reqwest::Client, t: &Target, ledger: &Ledger, i: usize, round: usize) {
    // Whatever happens next, sessions from before the reset may be ended by it.
    ledger
        .users
        .lock()
        .unwrap()
        .entry(i)
        .or_default()
        .sessions
        .clear();
    let Some((200, body)) = post(
        c,
        t,
        "/api/v1/recovery/password/start",
        json!({"user_id": format!("crash{i}")}),
    )
    .await
    else {
        return;
    };
    let token = body["recovery_token"].as_str().unwrap_or("").to_owned();
    let seen = messages_to(t, &email(i));
    let Some((200, _)) = post(
        c,
        t,
        "/api/v1/recovery/password/verify",
        json!({"recovery_token": token, "card_id": card_id(i)}),
    )
    .await
    else {
        return;
    };
    let Some(code) = code_for(t, &email(i), seen, Instant::now() + Duration::from_secs(5)).await
    else {
        return;
    };
    let Some((200, body)) = post(
        c,
        t,
        "/api/v1/recovery/password/verify",
        json!({"recovery_token": token, "code": code}),
    )
    .await
    else {
        return;
    };
    let reset = body["reset_token"].as_str().unwrap_or("").to_owned();
    let new = format!("Crash-Pass-{i}-r{round}-{}", random(1_000_000));
    ledger.users.lock().unwrap().entry(i).or_default().maybe = Some(new.clone());
    let answer = post(
        c,
        t,
        "/api/v1/recovery/password/reset",
        json!({"reset_token": reset, "new_password": new}),
    )
    .await;
    let mut users = ledger.users.lock().unwrap();
    let user = users.entry(i).or_default();
    match answer {
        Some((204, _)) => {
            user.password = Some(new);
            user.maybe = None;
            ledger.acked.fetch_add(1, Ordering::Relaxed);
        }
        // Refused for certain: the old password stands.
        Some((s, _)) if s < 500 => user.maybe = None,
        // No answer, or a 5xx: it may have landed.
        _ => {}
    }
}

/// One client: registers new cards while there are any, mixed with sign-ins and resets of
/// accounts it already knows of.
async fn worker(t: Arc<Target>, ledger: Arc<Ledger>, stop: Arc<AtomicBool>, round: usize) {
    let c = client();
    while !stop.load(Ordering::Relaxed) {
        let choice = random(10);
        let any_known = ledger
            .users
            .lock()
            .unwrap()
            .values()
            .any(|u| !u.busy && u.maybe.is_none() && u.password.is_some());
        if choice < 5 || !any_known {
            let i = ledger.next_card.fetch_add(1, Ordering::Relaxed);
            if i < CARDS {
                register(&c, &t, &ledger, i).await;
                continue;
            }
        }
        // Picked and marked busy under one lock: two workers never work on one account at
        // once (a reset racing a sign-in of the same account may rightly end its session).
        let picked = {
            let mut users = ledger.users.lock().unwrap();
            let known: Vec<usize> = users
                .iter()
                .filter(|(_, u)| !u.busy && u.maybe.is_none() && u.password.is_some())
                .map(|(i, _)| *i)
                .take(50)
                .collect();
            known
                .get(random(known.len() as u64) as usize)
                .copied()
                .and_then(|i| {
                    let user = users.get_mut(&i)?;
                    user.busy = true;
                    Some((i, user.password.clone()?))
                })
        };
        let Some((i, password)) = picked else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if choice < 8 {
            sign_in(&c, &t, &ledger, i, &password).await;
        } else {
            reset(&c, &t, &ledger, i, round).await;
        }
        ledger.users.lock().unwrap().entry(i).or_default().busy = false;
    }
}

/// Every acknowledged account signs in with its acknowledged password (or the one a reset
/// was sending when the server died), and every acknowledged session still works.
async fn check_acknowledged(t: &Target, ledger: &Ledger) -> usize {
    let c = client();
    type Known = (usize, Option<String>, Option<String>, Vec<String>);
    let users: Vec<Known> = ledger
        .users
        .lock()
        .unwrap()
        .iter()
        .map(|(i, u)| (*i, u.password.clone(), u.maybe.clone(), u.sessions.clone()))
        .collect();
    let mut checked = 0;
    for (i, password, maybe, sessions) in users {
        for token in &sessions {
            let res = c
                .get(format!("{}/api/v1/me", t.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                200,
                "crash{i}: an acknowledged session was lost"
            );
            checked += 1;
        }
        let Some(password) = password else {
            continue;
        };
        let mut candidates = vec![password];
        candidates.extend(maybe);
        let mut landed = None;
        for p in &candidates {
            let (status, _) = post(
                &c,
                t,
                "/api/v1/sessions",
                json!({"user_id": format!("crash{i}"), "password": p, "account_type": "personal"}),
            )
            .await
            .unwrap();
            if status == 201 {
                landed = Some(p.clone());
                break;
            }
        }
        let landed = landed.unwrap_or_else(|| {
            panic!(
                "crash{i}: an acknowledged account cannot sign in ({} candidates)",
                candidates.len()
            )
        });
        let mut users = ledger.users.lock().unwrap();
        let user = users.entry(i).or_default();
        user.password = Some(landed);
        user.maybe = None;
        user.busy = false;
        checked += 1;
    }
    checked
}

pub(crate) const HALF_WRITTEN_ACCOUNTS: &str = "SELECT COUNT(*) AS n FROM online_accounts a \
     WHERE (SELECT COUNT(*) FROM security_answers s WHERE s.account_id = a.id) <> 3";
const CODES_WITHOUT_MESSAGE: &str = "SELECT COUNT(*) AS n FROM one_time_codes c \
     JOIN online_accounts a ON a.id = c.account_id \
     WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.recipient = a.email \
                       AND o.created_at >= c.created_at - 1)";

/// Nothing half-written: every account has its three answers, every one-time code has its
/// message queued, and (SQLite) the file passes its own integrity check.
async fn check_database(url: &str, backend: Backend) {
    let (half, orphans): (i64, i64) = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            let ok: String = sqlx::query("PRAGMA integrity_check")
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get(0);
            assert_eq!(ok, "ok", "SQLite integrity check");
            (
                sqlx::query(HALF_WRITTEN_ACCOUNTS)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
                    .get("n"),
                sqlx::query(CODES_WITHOUT_MESSAGE)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
                    .get("n"),
            )
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            (
                sqlx::query(HALF_WRITTEN_ACCOUNTS)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
                    .get("n"),
                sqlx::query(CODES_WITHOUT_MESSAGE)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
                    .get("n"),
            )
        }
    };
    assert_eq!(half, 0, "an account without its security answers");
    assert_eq!(orphans, 0, "a one-time code without its message");
}

pub(crate) fn import(url: &str, secrets: &Path, file: &Path) {
    import_with(bin(), url, secrets, file);
}

/// [`import`] with the binary `bin` (the previous release's, in the upgrade test).
pub(crate) fn import_with(bin: &str, url: &str, secrets: &Path, file: &Path) {
    let out = std::process::Command::new(bin)
        .args(["registry", "import"])
        .arg(file)
        .env("PORTCULLIS_DATABASE_URL", url)
        .env("PORTCULLIS_SECRETS_DIR", secrets)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "registry import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn server_env(url: &str, secrets: &Path, outbox: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("PORTCULLIS_DATABASE_URL", url.to_owned()),
        ("PORTCULLIS_SECRETS_DIR", secrets.display().to_string()),
        (
            "PORTCULLIS_NOTIFY_OUTBOX_FILE",
            outbox.display().to_string(),
        ),
        ("PORTCULLIS_NOTIFY_POLL_SECS", "0.05".into()),
        ("PORTCULLIS_HASHING_MEMORY_KIB", "64".into()),
        ("PORTCULLIS_HASHING_ITERATIONS", "1".into()),
        // The load comes from one address: the per-address throttle is not under test.
        ("PORTCULLIS_LIMITS_ENABLED", "false".into()),
        // Sign-ins come from clients without a device cookie; step-up is not under test.
        ("PORTCULLIS_RISK_NEW_DEVICE_STEP_UP", "false".into()),
        ("RUST_LOG", "warn".into()),
    ]
}

async fn sigkill_under_load(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("portcullis.db").display()),
        Backend::Postgres => db.url.clone(),
    };
    let secrets = dir.path().join("secrets");
    let outbox = dir.path().join("outbox.jsonl");
    let env = server_env(&url, &secrets, &outbox);
    let ledger = Arc::new(Ledger::default());
    let mut imported = false;
    for round in 0..KILLS {
        let mut server = RealServer::start(bin(), &env);
        if !imported {
            import(&url, &secrets, &registry_file(dir.path()));
            imported = true;
        }
        let t = Arc::new(Target {
            base: server.base.clone(),
            outbox: outbox.clone(),
        });
        // Everything acknowledged before the last kill is there after the restart.
        let checked = check_acknowledged(&t, &ledger).await;
        check_database(&url, backend).await;
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| tokio::spawn(worker(t.clone(), ledger.clone(), stop.clone(), round)))
            .collect();
        let wait = 300 + random(1_700);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.unwrap();
        }
        eprintln!(
            "round {round}: killed after {wait} ms; {checked} acknowledged facts checked, {} acknowledged so far",
            ledger.acked.load(Ordering::Relaxed)
        );
    }
    let server = RealServer::start(bin(), &env);
    let t = Target {
        base: server.base.clone(),
        outbox: outbox.clone(),
    };
    let checked = check_acknowledged(&t, &ledger).await;
    check_database(&url, backend).await;
    assert!(
        ledger.acked.load(Ordering::Relaxed) > 20,
        "the load did something"
    );
    eprintln!("after the last restart: {checked} acknowledged facts checked");
}
portcullis_testkit::both!(
    crash_sigkill_under_load_loses_nothing_acknowledged,
    sigkill_under_load
);

// ---------------------------------------------------------------------------------------
// PostgreSQL stopped for ten seconds under load, on a private cluster of this test's own.

/// A PostgreSQL cluster in a temporary folder on a random port, run as the `postgres` user
/// (the server refuses to run as root). Stopped and removed on drop. Also used by the
/// outage and rolling-restart tests (`outage.rs`, `rolling.rs`).
pub(crate) struct PrivatePg {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn as_postgres(program: &Path) -> std::process::Command {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        std::process::Command::new(program)
    }
}

impl PrivatePg {
    pub(crate) fn start() -> Result<Self, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|_| "no /usr/lib/postgresql (PostgreSQL server binaries)".to_owned())?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .ok_or("no initdb and pg_ctl under /usr/lib/postgresql/*/bin")?;
        let dir = tempfile::Builder::new()
            .prefix("portcullis-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        let _ = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        let out = as_postgres(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let pg = Self {
            bin,
            data,
            port,
            _dir: dir,
        };
        pg.up()?;
        Ok(pg)
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub(crate) fn up(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data.display()
        );
        let out = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-w", "-t", "30", "-D"])
            .arg(&self.data)
            .args(["-l"])
            .arg(self.data.join("server.log"))
            .args(["-o", &opts, "start"])
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    pub(crate) fn down(&self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-w", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.down();
    }
}

fn database_state(status: &Value) -> String {
    status["components"]
        .as_array()
        .and_then(|parts| parts.iter().find(|c| c["name"] == "database"))
        .and_then(|c| c["state"].as_str())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_postgres_outage_answers_503_and_recovers_without_restart() {
    let pg = match PrivatePg::start() {
        Ok(pg) => pg,
        Err(reason) => {
            eprintln!(
                "SKIPPED crash_postgres_outage_answers_503_and_recovers_without_restart: {reason}"
            );
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let outbox = dir.path().join("outbox.jsonl");
    const PROBE_SECS: f64 = 0.5;
    let mut env = server_env(&pg.url(), &secrets, &outbox);
    env.push(("PORTCULLIS_STATUS_PROBE_SECS", PROBE_SECS.to_string()));
    env.push(("PORTCULLIS_DATABASE_ACQUIRE_TIMEOUT_SECS", "1".into()));
    let server = RealServer::start(bin(), &env);
    import(&pg.url(), &secrets, &registry_file(dir.path()));
    let t = Arc::new(Target {
        base: server.base.clone(),
        outbox,
    });
    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| tokio::spawn(worker(t.clone(), ledger.clone(), stop.clone(), 0)))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = client();
    let status = |c: reqwest::Client, base: String| async move {
        c.get(format!("{base}/api/v1/status"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(
        database_state(&status(c.clone(), t.base.clone()).await),
        "operational"
    );

    // The outage. One task watches the status API; this one keeps signing in.
    pg.down();
    let stopped = Instant::now();
    let watcher = {
        let (c, base) = (c.clone(), t.base.clone());
        tokio::spawn(async move {
            while stopped.elapsed() < Duration::from_secs(10) {
                if let Ok(res) = c.get(format!("{base}/api/v1/status")).send().await {
                    if let Ok(s) = res.json::<Value>().await {
                        if database_state(&s) != "operational" {
                            return Some(stopped.elapsed());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None
        })
    };
    let mut outage_answers: HashMap<u16, usize> = HashMap::new();
    while stopped.elapsed() < Duration::from_secs(10) {
        let res = c
            .post(format!("{}/api/v1/sessions", t.base))
            .json(&json!({"user_id": "crash0", "password": "Crash-Pass-0-a", "account_type": "personal"}))
            .send()
            .await
            .unwrap();
        let code = res.status().as_u16();
        if stopped.elapsed() > Duration::from_secs(2) {
            assert_eq!(code, 503, "during the outage");
            let retry = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            assert!(retry.is_some_and(|r| r >= 1), "503 without Retry-After");
        }
        *outage_answers.entry(code).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen_degraded = watcher.await.unwrap();
    let degraded_after = seen_degraded.expect("the status never showed the database down");
    // The next probe reports it: the wait for that probe and the probe itself each take at
    // most one interval (a probe's timeout is capped at the interval); plus the status
    // answer's database budget (0.5 s) and the watcher's poll.
    assert!(
        degraded_after < Duration::from_secs_f64(2.0 * PROBE_SECS + 1.0),
        "the status showed the outage only after {degraded_after:?}"
    );

    // Back: the same process serves again, and nothing acknowledged was lost.
    pg.up().unwrap();
    let back = Instant::now();
    loop {
        let res = c
            .get(format!("{}/api/v1/status", t.base))
            .send()
            .await
            .unwrap();
        let s: Value = res.json().await.unwrap();
        if database_state(&s) == "operational" {
            let res = c
                .post(format!("{}/api/v1/recovery/password/start", t.base))
                .json(&json!({"user_id": "nobody.at.all"}))
                .send()
                .await
                .unwrap();
            if res.status() == 200 {
                break;
            }
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "the service did not recover without a restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_after = back.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let checked = check_acknowledged(&t, &ledger).await;
    check_database(&pg.url(), Backend::Postgres).await;
    eprintln!(
        "outage: database shown down after {degraded_after:?}; answers during it {outage_answers:?}; \
         recovered {recovered_after:?} after the restart of PostgreSQL; {checked} acknowledged facts checked"
    );
    assert!(checked > 5);
    drop(server);
}
