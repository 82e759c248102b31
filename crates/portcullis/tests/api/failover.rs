//! A real failover (issue 16): two Portcullis nodes (the real binary) on the multi-host URL
//! of a pg_auto_failover formation (`scripts/formation`), under registration and sign-in
//! load; the primary's keeper and PostgreSQL killed with SIGKILL; then the old primary back
//! as a secondary and a second failover the other way.
//!
//! Ignored by default: `scripts/failover` starts the formation, sets
//! `PORTCULLIS_FAILOVER_URL` and runs it with `--run-ignored only` (a step of `.ci/run`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_testkit::{RealServer, TestApp, PASSWORD};
use serde_json::{json, Value};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

fn formation(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/formation");
    let out = std::process::Command::new(script)
        .args(args)
        .output()
        .expect("running scripts/formation");
    assert!(
        out.status.success(),
        "scripts/formation {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The port of the node the monitor holds primary, once there is exactly one.
fn primary_port() -> Option<u16> {
    formation(&["primary"]).parse().ok()
}

/// A Luhn-valid 16-digit card number for `i`.
fn card_number(i: usize) -> String {
    portcullis_core::card::with_luhn_check_digit(&format!("400016{i:09}"))
}

const CARDS: usize = 3000;

fn registry_csv(dir: &Path) -> PathBuf {
    let mut text = portcullis_core::registry::COLUMNS.join(",");
    text.push('\n');
    for i in 0..CARDS {
        text.push_str(&format!(
            "personal,{},123,2030-12,Holder {i},h{i}@example.com,,Gold Card,1.00,500.00,2030-01-15,1.00\n",
            card_number(i)
        ));
    }
    let path = dir.join("registry.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    /// Registrations answered 201: (user id, when).
    acknowledged: Vec<(String, Instant)>,
    /// Acknowledged users the sign-in load uses (their password never changes).
    stable: Vec<String>,
    /// Acknowledged users waiting for a password change.
    to_change: Vec<String>,
    /// Password changes answered 204.
    changed: Vec<String>,
    /// Password changes answered 503: either password may hold, never neither.
    uncertain: Vec<String>,
    /// Answers that are neither 200/201/204 nor 503 + `Retry-After`, and dropped connections.
    bad: Vec<String>,
    ok: usize,
    unavailable: usize,
}

struct Load {
    bases: Vec<String>,
    next_card: AtomicUsize,
    stop: AtomicBool,
    tally: Mutex<Tally>,
}

impl Load {
    /// Records an answer; `Some(body)` for 200, 201 and 204.
    async fn answer(&self, what: &str, res: reqwest::Result<reqwest::Response>) -> Option<Value> {
        let res = match res {
            Ok(r) => r,
            Err(e) => {
                self.tally.lock().unwrap().bad.push(format!("{what}: {e}"));
                return None;
            }
        };
        let status = res.status().as_u16();
        let retry_after = res.headers().contains_key("retry-after");
        let body = res.text().await.unwrap_or_default();
        let mut t = self.tally.lock().unwrap();
        match status {
            200 | 201 | 204 => {
                t.ok += 1;
                drop(t);
                Some(serde_json::from_str(&body).unwrap_or(Value::Null))
            }
            503 if retry_after => {
                t.unavailable += 1;
                None
            }
            _ => {
                t.bad.push(format!("{what}: {status} {body}"));
                None
            }
        }
    }

    /// One registration on `base`: verify the card, then complete.
    async fn register(&self, base: &str, i: usize) {
        let c = client();
        let res = c
            .post(format!("{base}/api/v1/registration/verify-card"))
            .json(&json!({"account_type": "personal", "number": card_number(i), "verification": "123"}))
            .send()
            .await;
        let Some(body) = self.answer("verify-card", res).await else {
            return;
        };
        let token = body["registration_token"].as_str().unwrap_or_default();
        let user = format!("failover{i:05}");
        let res = c
            .post(format!("{base}/api/v1/registration/complete"))
            .json(&json!({
                "registration_token": token,
                "user_id": user,
                "password": PASSWORD,
                "security_answers": TestApp::answers(),
                "code_channel": "email"
            }))
            .send()
            .await;
        if self.answer("registration/complete", res).await.is_some() {
            let mut t = self.tally.lock().unwrap();
            // One in four changes its password later.
            if t.acknowledged.len() % 4 == 3 {
                t.to_change.push(user.clone());
            } else {
                t.stable.push(user.clone());
            }
            t.acknowledged.push((user, Instant::now()));
        }
    }

    /// Signs `user` in and changes the password to [`NEW_PASSWORD`].
    async fn change_password(&self, base: &str, user: String) {
        let res = sign_in(base, &user, PASSWORD).await;
        let Some(body) = self.answer("sessions (before a change)", res).await else {
            // Not signed in: nothing changed; back in the queue.
            self.tally.lock().unwrap().to_change.push(user);
            return;
        };
        let token = body["session_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let res = client()
            .post(format!("{base}/api/v1/me/password"))
            .bearer_auth(token)
            .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
            .send()
            .await;
        let outcome = match &res {
            Ok(r) => Some(r.status().as_u16()),
            Err(_) => None,
        };
        self.answer("me/password", res).await;
        let mut t = self.tally.lock().unwrap();
        match outcome {
            Some(204) => t.changed.push(user),
            _ => t.uncertain.push(user),
        }
    }

    async fn worker(self: Arc<Self>, n: usize) {
        let mut round = 0usize;
        while !self.stop.load(Ordering::SeqCst) {
            round += 1;
            let base = &self.bases[(n + round) % self.bases.len()];
            let change = (round % 6 == 5)
                .then(|| self.tally.lock().unwrap().to_change.pop())
                .flatten();
            if let Some(user) = change {
                self.change_password(base, user).await;
            } else if round.is_multiple_of(2) {
                let i = self.next_card.fetch_add(1, Ordering::SeqCst);
                if i >= CARDS {
                    return;
                }
                self.register(base, i).await;
            } else {
                let user = {
                    let t = self.tally.lock().unwrap();
                    let len = t.stable.len();
                    (len > 0).then(|| t.stable[(n * 7 + round) % len].clone())
                };
                if let Some(user) = user {
                    let res = sign_in(base, &user, PASSWORD).await;
                    self.answer("sessions", res).await;
                }
            }
        }
    }
}

const NEW_PASSWORD: &str = "Battery-Staple-77";

async fn sign_in(base: &str, user: &str, password: &str) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{base}/api/v1/sessions"))
        .json(&json!({"user_id": user, "password": password, "account_type": "personal", "remember_me": false}))
        .send()
        .await
}

/// Kills the primary under load: which node it was, how long the promotion took after the
/// kill, and how long after the promotion registrations succeeded again.
async fn fail_over(load: &Arc<Load>) -> (String, Duration, Duration) {
    let old = primary_port().expect("a primary before the failover");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = load.tally.lock().unwrap().acknowledged.len();
    assert!(before > 0, "no registration acknowledged before the kill");
    let killed_node = formation(&["kill", "primary"])
        .trim_start_matches("killed node")
        .to_owned();
    let killed = Instant::now();
    let promoted = loop {
        if primary_port().is_some_and(|p| p != old) {
            break Instant::now();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "the secondary was not promoted within 90 s: {}",
            formation(&["status"])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let back = loop {
        let first = load
            .tally
            .lock()
            .unwrap()
            .acknowledged
            .iter()
            .find(|(_, at)| *at > promoted)
            .map(|(_, at)| *at);
        if let Some(at) = first {
            break at;
        }
        assert!(
            promoted.elapsed() < Duration::from_secs(30),
            "no registration succeeded within 30 s of the promotion"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A little more load on the new primary.
    tokio::time::sleep(Duration::from_secs(2)).await;
    (killed_node, promoted - killed, back - promoted)
}

fn start_load(bases: &[String], next_card: usize) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load {
        bases: bases.to_vec(),
        next_card: AtomicUsize::new(next_card),
        stop: AtomicBool::new(false),
        tally: Mutex::new(Tally::default()),
    });
    let workers = (0..6)
        .map(|n| tokio::spawn(load.clone().worker(n)))
        .collect();
    (load, workers)
}

async fn stop_load(load: &Arc<Load>, workers: Vec<tokio::task::JoinHandle<()>>) {
    load.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
}

/// The status a sign-in of `user` with `password` gets (201 or 401 expected).
async fn sign_in_status(base: &str, user: &str, password: &str) -> u16 {
    sign_in(base, user, password)
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every acknowledged registration signs in, on either node, with the password it has:
/// the new one after an acknowledged change (and the old one no more), one of the two
/// after a change whose answer was 503.
async fn all_sign_in(bases: &[String], accounts: &Accounts) {
    for (k, user) in accounts.stable.iter().enumerate() {
        let status = sign_in_status(&bases[k % bases.len()], user, PASSWORD).await;
        assert_eq!(status, 201, "{user}, acknowledged, does not sign in");
    }
    for (k, user) in accounts.changed.iter().enumerate() {
        let base = &bases[k % bases.len()];
        assert_eq!(
            sign_in_status(base, user, NEW_PASSWORD).await,
            201,
            "{user}: the acknowledged password change did not hold"
        );
        assert_eq!(
            sign_in_status(base, user, PASSWORD).await,
            401,
            "{user}: the old password still works"
        );
    }
    for (k, user) in accounts.uncertain.iter().enumerate() {
        let base = &bases[k % bases.len()];
        let new = sign_in_status(base, user, NEW_PASSWORD).await;
        let old = sign_in_status(base, user, PASSWORD).await;
        assert!(
            (new == 201) != (old == 201),
            "{user}: after a change answered 503, new password {new}, old {old}"
        );
    }
}

/// The accounts of every round so far, by what their password should be.
#[derive(Default)]
struct Accounts {
    stable: Vec<String>,
    changed: Vec<String>,
    uncertain: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the pg_auto_failover formation: run scripts/failover"]
async fn failover_under_load_answers_only_success_or_503_and_loses_nothing() {
    let url = std::env::var("PORTCULLIS_FAILOVER_URL")
        .expect("PORTCULLIS_FAILOVER_URL (scripts/failover sets it)");
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets").display().to_string();
    // A command on the multi-host URL: the registry import (it also migrates).
    let out = std::process::Command::new(bin())
        .args(["registry", "import"])
        .arg(registry_csv(dir.path()))
        .env("PORTCULLIS_DATABASE_URL", &url)
        .env("PORTCULLIS_SECRETS_DIR", &secrets)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env: Vec<(&str, String)> = vec![
        ("PORTCULLIS_DATABASE_URL", url.clone()),
        ("PORTCULLIS_SECRETS_DIR", secrets.clone()),
        ("PORTCULLIS_HASHING_MEMORY_KIB", "64".into()),
        ("PORTCULLIS_HASHING_ITERATIONS", "1".into()),
        ("PORTCULLIS_LIMITS_ENABLED", "false".into()),
        ("PORTCULLIS_RISK_NEW_DEVICE_STEP_UP", "false".into()),
        ("PORTCULLIS_MODE", "development".into()),
        ("RUST_LOG", "info,sqlx=warn".into()),
    ];
    let nodes = [
        RealServer::start(bin(), &env),
        RealServer::start(bin(), &env),
    ];
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    let mut accounts = Accounts::default();
    let mut next_card = 0;
    let mut killed = String::new();
    for round in 1..=2 {
        if round == 2 {
            // The old primary back, as a secondary, before the second failover.
            let old = killed.as_str();
            formation(&["revive", old]);
            let since = Instant::now();
            while formation(&["status"])
                .matches(" secondary (goal secondary)")
                .count()
                != 1
                || primary_port().is_none()
            {
                assert!(
                    since.elapsed() < Duration::from_secs(120),
                    "node {old} did not come back as a secondary: {}",
                    formation(&["status"])
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            eprintln!("node {old} back as a secondary after {:?}", since.elapsed());
        }
        let (load, workers) = start_load(&bases, next_card);
        let (node, promotion, writes_back) = fail_over(&load).await;
        killed = node;
        stop_load(&load, workers).await;
        next_card = load.next_card.load(Ordering::SeqCst).min(CARDS);
        {
            let t = load.tally.lock().unwrap();
            eprintln!(
                "failover {round} (node {killed} killed): promoted {promotion:?} after the kill; registrations again \
                 {writes_back:?} after the promotion; {} ok, {} answered 503 + Retry-After, {} \
                 registrations acknowledged, {} password changes acknowledged, {} answered 503",
                t.ok,
                t.unavailable,
                t.acknowledged.len(),
                t.changed.len(),
                t.uncertain.len()
            );
            assert!(
                t.bad.is_empty(),
                "failover {round}: answers other than 200/201/204 or 503 + Retry-After:\n{}",
                t.bad.join("\n")
            );
            assert!(writes_back < Duration::from_secs(30));
            accounts.stable.extend(t.stable.iter().cloned());
            // Waiting for a change that never came: the password is still the first.
            accounts.stable.extend(t.to_change.iter().cloned());
            accounts.changed.extend(t.changed.iter().cloned());
            accounts.uncertain.extend(t.uncertain.iter().cloned());
        }
        all_sign_in(&bases, &accounts).await;
    }
    // A command after two failovers finds today's primary.
    let out = std::process::Command::new(bin())
        .arg("validate-config")
        .env("PORTCULLIS_DATABASE_URL", &url)
        .env("PORTCULLIS_SECRETS_DIR", &secrets)
        .env("PORTCULLIS_MODE", "development")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let primary = primary_port().unwrap();
    assert!(
        text.contains(&format!("the writable one now is 127.0.0.1:{primary}")),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for n in &nodes {
        let log = std::fs::read_to_string(&n.stderr).unwrap_or_default()
            + &std::fs::read_to_string(&n.stdout).unwrap_or_default();
        assert!(
            log.contains("database pool moved to the new primary"),
            "a node never moved its pool: {log}"
        );
    }
}
