//! Test support: [`spawn_app`] starts the real application (the same wiring as the binary)
//! on a random port, with a fresh database (a temporary SQLite file, or a new PostgreSQL
//! database when `PORTCULLIS_TEST_POSTGRES` is set), a fake clock, cheap hashing parameters
//! and an outbox file that captures every notification.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod smtp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use portcullis::app::{self, Built};
use portcullis::config::Config;
use portcullis_core::clock::{Clock, FakeClock, SystemClock};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

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

impl TestDb {
    /// `None` (with a message) when the backend is not available on this machine.
    pub async fn new(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join("portcullis.db");
                Some(Self {
                    url: format!("sqlite://{}", path.display()),
                    backend,
                    pg_name: None,
                    sqlite_path: Some(path),
                    _dir: dir,
                })
            }
            Backend::Postgres => {
                let Some(server) = postgres_url() else {
                    eprintln!("SKIPPED on PostgreSQL: PORTCULLIS_TEST_POSTGRES is not set");
                    return None;
                };
                let name = format!(
                    "pc_test_{}_{}",
                    SystemClock.now().0,
                    hex(&portcullis_crypto::token::random_bytes::<6>())
                );
                let mut conn = connect_pg(&server).await;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("creating a test database");
                drop_stale_databases(&mut conn).await;
                Some(Self {
                    url: replace_db(&server, &name),
                    backend,
                    pg_name: Some((server, name)),
                    sqlite_path: None,
                    _dir: dir,
                })
            }
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

/// Test databases older than an hour are leftovers of killed runs.
async fn drop_stale_databases(conn: &mut sqlx::PgConnection) {
    use sqlx::Row;
    let cutoff = SystemClock.now().0 - 3600;
    let rows = sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'pc_test_%'")
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

/// The running application.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub clock: FakeClock,
    pub outbox: PathBuf,
    pub config: Config,
    pub built: Built,
    pub dir: TempDir,
    /// This app's delivery worker (one node), started like `serve` starts it.
    pub delivery: Option<portcullis_notify::DeliveryHandle>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// A test configuration: cheap hashing, temporary secrets and outbox.
pub fn test_config(db: &TestDb, dir: &TempDir) -> Config {
    let mut config = Config {
        database_url: db.url.clone(),
        secrets_dir: dir.path().join("secrets"),
        ..Config::default()
    };
    config.notify.outbox_file = Some(dir.path().join("outbox.jsonl"));
    let cheap = portcullis_crypto::HashParams::insecure_for_tests();
    config.hashing.memory_kib = cheap.memory_kib;
    config.hashing.iterations = cheap.iterations;
    config.hashing.parallelism = cheap.parallelism;
    config.database.max_connections = 8;
    // Logic tests, not overload tests: room for every request a test fires at once.
    config.hashing.queue_per_worker = 64;
    // The worker is woken as soon as a message is queued; polling only paces retries.
    config.notify.poll_secs = 0.05;
    // Most tests sign in from many fresh clients; the step-up tests (tests/api/mfa.rs) turn
    // it back on, as it is by default.
    config.risk.new_device_step_up = false;
    config
}

/// Starts the app on `backend`; `None` when the backend is not available here.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let db = TestDb::new(backend).await?;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&db, &dir);
    tweak(&mut config);
    let clock = FakeClock::new(SystemClock.now().0);
    let built = app::build(&config, Arc::new(clock.clone()), true)
        .await
        .expect("building the app");
    portcullis::demo::load(built.store.as_ref(), built.app.keys())
        .await
        .expect("loading demo cards");
    let delivery = built.delivery.spawn();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let state = built.state.clone();
    let server = tokio::spawn(async move {
        app::serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .expect("server failed");
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Some(TestApp {
        addr,
        base: format!("http://{addr}"),
        client,
        outbox: config.notify.outbox_file.clone().unwrap_or_default(),
        db,
        clock,
        config,
        built,
        dir,
        delivery: Some(delivery),
        shutdown: Some(tx),
        server: Some(server),
    })
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(delivery) = self.delivery.take() {
            delivery.abort();
        }
    }
}

/// A demo card (see `portcullis::demo::DEMO_CARDS`).
pub struct Card {
    pub account_type: &'static str,
    pub number: &'static str,
    pub verification: &'static str,
}

pub const ANN: Card = Card {
    account_type: "personal",
    number: "378282246310005",
    verification: "1234",
};
pub const BEN: Card = Card {
    account_type: "personal",
    number: "371449635398431",
    verification: "5678",
};
pub const CARA: Card = Card {
    account_type: "corporate",
    number: "378734493671000",
    verification: "2468",
};
pub const SHOP: Card = Card {
    account_type: "merchant",
    number: "1234567890",
    verification: "SHOP42",
};

/// Ann's second card (same holder as [`ANN`]), for linking.
pub const ANN_BLUE: Card = Card {
    account_type: "personal",
    number: "5555555555554444",
    verification: "321",
};

pub const PASSWORD: &str = "Correct-Horse-42";

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn verify_card(&self, card: &Card) -> reqwest::Response {
        self.post_json(
            "/api/v1/registration/verify-card",
            &json!({"account_type": card.account_type, "number": card.number, "verification": card.verification}),
        )
        .await
    }

    pub fn answers() -> Value {
        json!([
            {"question_id": 1, "answer": "Rex"},
            {"question_id": 4, "answer": "Hill Street Primary"},
            {"question_id": 6, "answer": "Sparky"}
        ])
    }

    /// Registers `card` with `user_id`; panics unless it succeeds.
    pub async fn register(&self, card: &Card, user_id: &str, password: &str) {
        let res = self.verify_card(card).await;
        assert_eq!(
            res.status(),
            200,
            "verify-card: {}",
            res.text().await.unwrap()
        );
        let token = res.json::<Value>().await.unwrap()["registration_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let res = self
            .post_json(
                "/api/v1/registration/complete",
                &json!({
                    "registration_token": token,
                    "user_id": user_id,
                    "password": password,
                    "security_answers": Self::answers(),
                    "code_channel": "email"
                }),
            )
            .await;
        assert_eq!(res.status(), 201, "complete: {}", res.text().await.unwrap());
    }

    pub async fn sign_in(
        &self,
        user_id: &str,
        password: &str,
        account_type: &str,
    ) -> reqwest::Response {
        self.post_json(
            "/api/v1/sessions",
            &json!({"user_id": user_id, "password": password, "account_type": account_type}),
        )
        .await
    }

    /// Signs in and returns the bearer token; panics unless it succeeds.
    pub async fn token(&self, user_id: &str, password: &str, account_type: &str) -> String {
        let res = self.sign_in(user_id, password, account_type).await;
        assert_eq!(res.status(), 201, "sign-in: {}", res.text().await.unwrap());
        res.json::<Value>().await.unwrap()["session_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Every message in the outbox file so far, once the delivery worker has settled every
    /// message this app queued (up to 10 s). Waiting needs a multi-threaded runtime (as
    /// `both!` gives); on a current-thread runtime use [`Self::wait_for_messages`].
    pub fn outbox_messages(&self) -> Vec<Value> {
        self.settle_delivery(std::time::Duration::from_secs(10));
        self.read_outbox()
    }

    /// Waits (up to 10 s) until the outbox file holds at least `n` messages, and returns all.
    pub async fn wait_for_messages(&self, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let all = self.read_outbox();
            if all.len() >= n || std::time::Instant::now() >= deadline {
                return all;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Blocks until every message this app queued was sent or given up on.
    #[allow(clippy::disallowed_methods)] // test support: a short poll
    fn settle_delivery(&self, timeout: std::time::Duration) {
        if self.delivery.is_none() {
            return;
        }
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        assert!(
            multi_thread,
            "outbox_messages() waits for the delivery worker, which needs a multi-threaded \
             runtime: use #[tokio::test(flavor = \"multi_thread\")] or wait_for_messages(n)"
        );
        // Messages are queued by store transactions as well as through the notifier, so the
        // outbox table, not the worker's counters, says when everything was handled.
        let store = self.built.store.clone();
        let clock = self.clock.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            use portcullis_core::clock::Clock;
            use portcullis_core::ports::OutboxStore;
            let deadline = std::time::Instant::now() + timeout;
            while std::time::Instant::now() < deadline {
                let pending = handle
                    .block_on(store.outbox_stats(clock.now()))
                    .map(|s| s.pending)
                    .unwrap_or(0);
                if pending == 0 {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
    }

    fn read_outbox(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.outbox)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Whether a response is problem+json.
pub fn is_problem(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"))
}

/// Runs a test body on SQLite and, when configured, PostgreSQL: `both!(name, body)` makes
/// `name_sqlite` and `name_postgres`, where `body` is an `async fn(Backend)`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$body($crate::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if $crate::postgres_url().is_none() {
                    eprintln!(
                        "SKIPPED {} on PostgreSQL: PORTCULLIS_TEST_POSTGRES is not set",
                        stringify!($name)
                    );
                    return;
                }
                super::$body($crate::Backend::Postgres).await;
            }
        }
    };
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

/// The real `portcullis` binary, started as a child process (for tests of logs, memory and
/// signals). Stdout and stderr go to files in its temporary folder.
pub struct RealServer {
    pub child: std::process::Child,
    pub base: String,
    pub dir: TempDir,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl RealServer {
    /// Starts `bin serve --demo --listen 127.0.0.1:0` with a database, secrets and outbox in
    /// a fresh folder, plus `env`.
    pub fn start(bin: &str, env: &[(&str, String)]) -> RealServer {
        Self::launch(bin, true, env)
    }

    /// Starts `bin serve --listen 127.0.0.1:0` without `--demo` and without an outbox file
    /// (so notifications go to the transports `env` configures), with a database and secrets
    /// in a fresh folder unless `env` names others.
    pub fn start_plain(bin: &str, env: &[(&str, String)]) -> RealServer {
        Self::launch(bin, false, env)
    }

    #[allow(clippy::disallowed_methods)] // test support: polls the child's output
    fn launch(bin: &str, demo: bool, env: &[(&str, String)]) -> RealServer {
        let dir = tempfile::tempdir().unwrap();
        let stdout = dir.path().join("stdout.log");
        let stderr = dir.path().join("stderr.log");
        let mut cmd = std::process::Command::new(bin);
        let args: &[&str] = if demo {
            &["serve", "--demo", "--listen", "127.0.0.1:0"]
        } else {
            &["serve", "--listen", "127.0.0.1:0"]
        };
        cmd.args(args)
            .current_dir(dir.path())
            .env(
                "PORTCULLIS_DATABASE_URL",
                format!(
                    "sqlite://{}",
                    dir.path().join("data/portcullis.db").display()
                ),
            )
            .env("PORTCULLIS_SECRETS_DIR", dir.path().join("secrets"))
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if demo {
            cmd.env(
                "PORTCULLIS_NOTIFY_OUTBOX_FILE",
                dir.path().join("outbox.jsonl"),
            );
        } else {
            // Production mode (the default without --demo) needs a public URL.
            cmd.env_remove("PORTCULLIS_NOTIFY_OUTBOX_FILE")
                .env("PORTCULLIS_PUBLIC_URL", "http://localhost");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting the portcullis binary");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let base = loop {
            let out = std::fs::read_to_string(&stdout).unwrap_or_default();
            if let Some(line) = out
                .lines()
                .find(|l| l.starts_with("Portcullis is running at "))
            {
                break line
                    .trim_start_matches("Portcullis is running at ")
                    .trim_end_matches('/')
                    .to_owned();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not start: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        RealServer {
            child,
            base,
            dir,
            stdout,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Asks the server to stop (SIGTERM) and waits for it.
    #[allow(clippy::disallowed_methods)] // test support: polls the child
    pub fn stop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `value` of the first `<input name="NAME" … value="…">` in an HTML page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\"");
    let at = html.find(&needle)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    let end = tag[v..].find('"')?;
    Some(tag[v..v + end].replace("&#x2f;", "/").replace("&#43;", "+"))
}

/// The cookie pairs (`name=value`) a response sets, for sending back.
pub fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// A tiny cookie jar that keeps `name=value` pairs as the server sets and deletes them.
#[derive(Default, Clone)]
pub struct Jar(pub Vec<(String, String)>);

impl Jar {
    pub fn absorb(&mut self, res: &reqwest::Response) {
        for line in set_cookies(res) {
            let pair = line.split(';').next().unwrap_or("");
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() && !line.contains("Max-Age=0") {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

// ---------------------------------------------------------------------------------------
// A second node on the same database (service status: maintenance mode across nodes).

/// Starts another app (a second node) on `first`'s database and secrets, with its own
/// port, clock, outbox and delivery worker; `tweak` adjusts its configuration.
pub async fn spawn_app_on(first: &TestApp, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb {
        url: first.db.url.clone(),
        backend: first.db.backend,
        // The first node owns the database and drops it.
        pg_name: None,
        sqlite_path: first.db.sqlite_path.clone(),
        _dir: tempfile::tempdir().unwrap(),
    };
    let mut config = test_config(&db, &dir);
    config.secrets_dir = first.config.secrets_dir.clone();
    tweak(&mut config);
    let clock = FakeClock::new(SystemClock.now().0);
    let built = app::build(&config, Arc::new(clock.clone()), true)
        .await
        .expect("building the second node");
    let delivery = built.delivery.spawn();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let state = built.state.clone();
    let server = tokio::spawn(async move {
        app::serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .expect("server failed");
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client,
        outbox: config.notify.outbox_file.clone().unwrap_or_default(),
        db,
        clock,
        config,
        built,
        dir,
        delivery: Some(delivery),
        shutdown: Some(tx),
        server: Some(server),
    }
}
