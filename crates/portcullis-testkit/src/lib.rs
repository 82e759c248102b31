//! Test support: [`spawn_app`] starts the real application (the same wiring as the binary)
//! on a random port, with a fresh database (a temporary SQLite file, or a new PostgreSQL
//! database on the server `PORTCULLIS_TEST_POSTGRES` names), a fake clock, cheap hashing
//! parameters and an outbox file that captures every notification.
//!
//! [`both!`] decides what runs: a test written once runs on SQLite, and on PostgreSQL when
//! `PORTCULLIS_TEST_POSTGRES` was set when the tests were built; otherwise the PostgreSQL
//! variant is compiled `#[ignore]`d, so nextest reports it as skipped and `cargo test` as
//! ignored — never as passed. Each crate that uses `both!` has a `build.rs` that sets the
//! `portcullis_postgres` cfg from the variable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod db;
pub mod smtp;

pub use db::{postgres_url, require_postgres_url, Backend, TestDb};

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

/// The running application.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    /// The management listener (`/metrics`, `/healthz`, `/readyz`).
    pub management: SocketAddr,
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

/// Starts the app on `backend` (PostgreSQL needs `PORTCULLIS_TEST_POSTGRES`; see
/// [`TestDb::new`]).
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// [`spawn_app`] with the configuration adjusted by `tweak` first.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&db, &dir);
    tweak(&mut config);
    let clock = FakeClock::new(SystemClock.now().0);
    let built = app::build(&config, Arc::new(clock.clone()), true)
        .await
        .expect("building the app");
    let ring = portcullis_crypto::keyring::load_or_create_ring(
        &config.secrets_dir,
        portcullis::app::REGISTRY_KEY,
    )
    .expect("reading the registry key");
    portcullis::demo::load(
        built.store.as_ref(),
        &ring,
        &built.app.audit_keys().current(),
        clock.now(),
    )
    .await
    .expect("loading demo cards");
    let delivery = built.delivery.spawn();
    let (addr, management, tx, server) = start_serving(&config, &built).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        addr,
        base: format!("http://{addr}"),
        management,
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

/// Binds both listeners on port 0 and serves `built` as `serve` does, until the sender is
/// used or dropped.
async fn start_serving(
    config: &Config,
    built: &Built,
) -> (
    SocketAddr,
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listeners = app::Listeners {
        public: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        management: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let addr = listeners.public.local_addr().unwrap();
    let management = listeners.management.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let state = built.state.clone();
    let limits = config.server.connection_limits();
    let server = tokio::spawn(async move {
        app::serve(listeners, state, limits, None, async {
            let _ = rx.await;
        })
        .await
        .expect("server failed");
    });
    (addr, management, tx, server)
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

    /// A URL on the management listener (`/metrics`, `/healthz`, `/readyz`).
    pub fn management_url(&self, path: &str) -> String {
        format!("http://{}{}", self.management, path)
    }

    /// The management listener's `/metrics` document (asserted answered 200).
    pub async fn metrics_text(&self) -> String {
        let res = self
            .client
            .get(self.management_url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "/metrics");
        res.text().await.unwrap()
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
        self.register_number(
            card.account_type,
            card.number,
            card.verification,
            user_id,
            password,
        )
        .await;
    }

    /// Registers the registry's card `number` (card ID `verification`) with `user_id`;
    /// panics unless it succeeds.
    pub async fn register_number(
        &self,
        account_type: &str,
        number: &str,
        verification: &str,
        user_id: &str,
        password: &str,
    ) {
        let res = self
            .post_json(
                "/api/v1/registration/verify-card",
                &json!({"account_type": account_type, "number": number, "verification": verification}),
            )
            .await;
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
            use portcullis_core::ports::OutboxReads;
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

/// Runs a test body on both databases: `both!(name, body)` makes `name::sqlite` and
/// `name::postgres`, where `body` is an `async fn(Backend)`. The PostgreSQL variant is
/// ignored (reported as skipped, never as passed) unless the crate was built with the
/// `portcullis_postgres` cfg, which its `build.rs` sets when `PORTCULLIS_TEST_POSTGRES` is
/// set (`crates/portcullis-store/build.rs` is the model: it also declares the cfg and asks
/// to be rerun when the variable changes).
#[macro_export]
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$body($crate::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(
                not(portcullis_postgres),
                ignore = "PostgreSQL: PORTCULLIS_TEST_POSTGRES was not set when the tests were built"
            )]
            async fn postgres() {
                super::$body($crate::Backend::Postgres).await;
            }
        }
    };
}

/// The real `portcullis` binary, started as a child process (for tests of logs, memory and
/// signals). Stdout and stderr go to files in its temporary folder.
pub struct RealServer {
    pub child: std::process::Child,
    pub base: String,
    /// The management listener's base URL (`/metrics`, `/healthz`, `/readyz`).
    pub management: String,
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
            .env("PORTCULLIS_MANAGEMENT_LISTEN", "127.0.0.1:0")
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
        let (base, management) = loop {
            let out = std::fs::read_to_string(&stdout).unwrap_or_default();
            let line_after = |prefix: &str| {
                out.lines().find(|l| l.starts_with(prefix)).map(|l| {
                    l.trim_start_matches(prefix)
                        .trim_end_matches('/')
                        .to_owned()
                })
            };
            if let (Some(base), Some(management)) = (
                line_after("Portcullis is running at "),
                line_after("Management (metrics, health) at "),
            ) {
                break (base, management);
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
            management,
            dir,
            stdout,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A URL on the management listener (`/metrics`, `/healthz`, `/readyz`).
    pub fn management_url(&self, path: &str) -> String {
        format!("{}{}", self.management, path)
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
    let db = first.db.shared();
    let mut config = test_config(&db, &dir);
    config.secrets_dir = first.config.secrets_dir.clone();
    tweak(&mut config);
    let clock = FakeClock::new(SystemClock.now().0);
    let built = app::build(&config, Arc::new(clock.clone()), true)
        .await
        .expect("building the second node");
    let delivery = built.delivery.spawn();
    let (addr, management, tx, server) = start_serving(&config, &built).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestApp {
        addr,
        base: format!("http://{addr}"),
        management,
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

/// Decodes an authenticator app's base32 secret (RFC 4648, as `otpauth://` URIs carry it).
pub fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .unwrap() as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

/// The authenticator app's code for a base32 `secret` at the app's (fake) clock now, as a
/// phone set to the same time would show it (the second-factor tests that are not about
/// TOTP itself; `tests/api/mfa.rs` checks the codes against pyotp).
pub fn totp_now(app: &TestApp, secret: &str) -> String {
    use secrecy::ExposeSecret;
    let step = u64::try_from(app.clock.now().0).unwrap_or(0) / 30;
    portcullis_crypto::totp::code_at_step(&base32_decode(secret), step, 6)
        .expect("a valid TOTP secret")
        .expose_secret()
        .to_owned()
}
