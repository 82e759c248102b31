//! The load client of the high-availability tests (issue 16: `failover`, `outage`,
//! `rolling`): workers that register cards, sign in and change passwords on several real
//! nodes, tallying every answer, and the checks afterwards that nothing acknowledged was
//! lost.
//!
//! Acceptable answers are 200/201/204 and 503 with `Retry-After`; anything else, a timeout
//! (the client gives up after [`CLIENT_TIMEOUT`], past the server's 10 s request deadline)
//! and a connection dropped once a request was sent are recorded as bad.
//!
//! With [`Load::reroute_refused`] the client acts as a load balancer in front of the nodes:
//! a connection refused — nothing was sent, so nothing can have happened — is sent to the
//! next node instead (counted in [`Tally::rerouted`]). A connection that breaks after the
//! request went out is never retried: it is a failure.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use portcullis_testkit::{TestApp, PASSWORD};
use serde_json::{json, Value};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// A Luhn-valid 16-digit card number for `i`.
pub fn card_number(i: usize) -> String {
    portcullis_core::card::with_luhn_check_digit(&format!("400016{i:09}"))
}

pub const CARDS: usize = 3000;

/// How long the client waits for an answer: the server's request deadline (10 s) and
/// room for a slow machine. Past it the request counts as hung.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

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

/// Imports the [`CARDS`] cards into the database at `url` with the real binary (which also
/// migrates it), with the keyring in `secrets`.
pub fn import_registry(dir: &Path, url: &str, secrets: &str) {
    import_registry_with(bin(), dir, url, secrets);
}

/// [`import_registry`] with the binary `bin` (the previous release's, in the upgrade test).
pub fn import_registry_with(bin: &str, dir: &Path, url: &str, secrets: &str) {
    crate::crash::import_with(bin, url, Path::new(secrets), &registry_csv(dir));
}

/// The environment of a node on `url` with the keyring in `secrets`: cheap hashing, no
/// limits (the load comes from one address), development mode.
pub fn node_env(url: &str, secrets: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PORTCULLIS_DATABASE_URL", url.to_owned()),
        ("PORTCULLIS_SECRETS_DIR", secrets.to_owned()),
        ("PORTCULLIS_HASHING_MEMORY_KIB", "64".into()),
        ("PORTCULLIS_HASHING_ITERATIONS", "1".into()),
        ("PORTCULLIS_LIMITS_ENABLED", "false".into()),
        ("PORTCULLIS_RISK_NEW_DEVICE_STEP_UP", "false".into()),
        ("PORTCULLIS_MODE", "development".into()),
        ("RUST_LOG", "info,sqlx=warn".into()),
    ]
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .unwrap()
}

/// What the load saw.
#[derive(Default)]
pub struct Tally {
    /// Registrations answered 201: (user id, when).
    pub acknowledged: Vec<(String, Instant)>,
    /// Acknowledged users the sign-in load uses (their password never changes).
    pub stable: Vec<String>,
    /// Acknowledged users waiting for a password change.
    pub to_change: Vec<String>,
    /// Password changes answered 204.
    pub changed: Vec<String>,
    /// Password changes answered 503: either password may hold, never neither.
    pub uncertain: Vec<String>,
    /// Answers that are neither 200/201/204 nor 503 + `Retry-After`, and dropped connections.
    pub bad: Vec<String>,
    pub ok: usize,
    pub unavailable: usize,
    /// Requests whose connection was refused (nothing sent) and went to another node.
    pub rerouted: usize,
}

impl Tally {
    /// One line for the test's output.
    pub fn summary(&self) -> String {
        format!(
            "{} ok, {} answered 503 + Retry-After, {} refused connections sent to another node, \
             {} registrations acknowledged, {} password changes acknowledged, {} password changes answered 503 (either password may hold)",
            self.ok,
            self.unavailable,
            self.rerouted,
            self.acknowledged.len(),
            self.changed.len(),
            self.uncertain.len()
        )
    }

    /// Asserts that every answer was acceptable.
    pub fn assert_no_bad(&self, when: &str) {
        assert!(
            self.bad.is_empty(),
            "{when}: answers other than 200/201/204 or 503 + Retry-After, or dropped \
             connections:\n{}",
            self.bad.join("\n")
        );
    }
}

pub struct Load {
    bases: RwLock<Vec<String>>,
    /// Refused connections go to the next node (a load balancer's behaviour).
    reroute_refused: bool,
    next_card: AtomicUsize,
    stop: AtomicBool,
    pub tally: Mutex<Tally>,
}

impl Load {
    /// Records an answer; `Some(body)` for 200, 201 and 204.
    async fn answer(&self, what: &str, res: reqwest::Result<reqwest::Response>) -> Option<Value> {
        let res = match res {
            Ok(r) => r,
            Err(e) => {
                self.tally
                    .lock()
                    .unwrap()
                    .bad
                    .push(format!("{what}: {e:?}"));
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

    /// Sends with `send` to node `pick` (modulo the nodes); with `reroute_refused`, a
    /// refused connection goes to the next node, and round the nodes again after a pause
    /// (all may be refusing for a moment), for at most 10 s.
    async fn send<F, Fut>(&self, pick: usize, send: F) -> reqwest::Result<reqwest::Response>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = reqwest::Result<reqwest::Response>>,
    {
        let started = Instant::now();
        let mut attempt = 0usize;
        loop {
            let base = {
                let bases = self.bases.read().unwrap();
                bases[(pick + attempt) % bases.len()].clone()
            };
            let res = send(base).await;
            let refused = matches!(&res, Err(e) if e.is_connect());
            if !(self.reroute_refused && refused) || started.elapsed() > Duration::from_secs(10) {
                return res;
            }
            self.tally.lock().unwrap().rerouted += 1;
            attempt += 1;
            if attempt.is_multiple_of(self.bases.read().unwrap().len()) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// A sign-in of `user` with the first password, on node `pick` (or the next).
    async fn sign_in(&self, pick: usize, user: &str) -> reqwest::Result<reqwest::Response> {
        self.send(
            pick,
            |base| async move { sign_in(&base, user, PASSWORD).await },
        )
        .await
    }

    /// One registration: verify the card, then complete.
    async fn register(&self, pick: usize, i: usize) {
        let res = self
            .send(pick, |base| {
                client()
                    .post(format!("{base}/api/v1/registration/verify-card"))
                    .json(&json!({"account_type": "personal", "number": card_number(i), "verification": "123"}))
                    .send()
            })
            .await;
        let Some(body) = self.answer("verify-card", res).await else {
            return;
        };
        let token = body["registration_token"].as_str().unwrap_or_default();
        let user = format!("failover{i:05}");
        let res = self
            .send(pick + 1, |base| {
                client()
                    .post(format!("{base}/api/v1/registration/complete"))
                    .json(&json!({
                        "registration_token": token,
                        "user_id": user,
                        "password": PASSWORD,
                        "security_answers": TestApp::answers(),
                        "code_channel": "email"
                    }))
                    .send()
            })
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
    async fn change_password(&self, pick: usize, user: String) {
        let res = self.sign_in(pick, &user).await;
        let Some(body) = self.answer("sessions (before a change)", res).await else {
            // Not signed in: nothing changed; back in the queue.
            self.tally.lock().unwrap().to_change.push(user);
            return;
        };
        let token = body["session_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let res = self
            .send(pick + 1, |base| {
                client()
                    .post(format!("{base}/api/v1/me/password"))
                    .bearer_auth(&token)
                    .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
                    .send()
            })
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
            let pick = n + round;
            let change = (round % 6 == 5)
                .then(|| self.tally.lock().unwrap().to_change.pop())
                .flatten();
            if let Some(user) = change {
                self.change_password(pick, user).await;
            } else if round.is_multiple_of(2) {
                let i = self.next_card.fetch_add(1, Ordering::SeqCst);
                if i >= CARDS {
                    return;
                }
                self.register(pick, i).await;
            } else {
                let user = {
                    let t = self.tally.lock().unwrap();
                    let len = t.stable.len();
                    (len > 0).then(|| t.stable[(n * 7 + round) % len].clone())
                };
                if let Some(user) = user {
                    let res = self.sign_in(pick, &user).await;
                    self.answer("sessions", res).await;
                }
            }
        }
    }

    /// Replaces node `old` by `new` in the list the load spreads over (a node restarted
    /// on another port).
    pub fn replace_node(&self, old: &str, new: &str) {
        for b in self.bases.write().unwrap().iter_mut() {
            if b == old {
                *b = new.to_owned();
            }
        }
    }

    /// Cards used so far (the next load starts after them).
    pub fn cards_used(&self) -> usize {
        self.next_card.load(Ordering::SeqCst).min(CARDS)
    }

    /// When the first registration acknowledged after `since` was, if there was one.
    fn first_registration_after(&self, since: Instant) -> Option<Instant> {
        self.tally
            .lock()
            .unwrap()
            .acknowledged
            .iter()
            .find(|(_, at)| *at > since)
            .map(|(_, at)| *at)
    }

    /// Waits for the first registration acknowledged after `since`, at most 30 s from now;
    /// when it was. `after` names `since` in the failure.
    pub async fn registration_after(&self, since: Instant, after: &str) -> Instant {
        let started = Instant::now();
        loop {
            if let Some(at) = self.first_registration_after(since) {
                return at;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no registration acknowledged within 30 s of {after}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub const NEW_PASSWORD: &str = "Battery-Staple-77";

pub async fn sign_in(base: &str, user: &str, password: &str) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{base}/api/v1/sessions"))
        .json(&json!({"user_id": user, "password": password, "account_type": "personal", "remember_me": false}))
        .send()
        .await
}

/// Six workers spreading the load over `bases`, registering from card `next_card` on.
pub fn start_load(
    bases: &[String],
    next_card: usize,
    reroute_refused: bool,
) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load {
        bases: RwLock::new(bases.to_vec()),
        reroute_refused,
        next_card: AtomicUsize::new(next_card),
        stop: AtomicBool::new(false),
        tally: Mutex::new(Tally::default()),
    });
    let workers = (0..6)
        .map(|n| tokio::spawn(load.clone().worker(n)))
        .collect();
    (load, workers)
}

pub async fn stop_load(load: &Arc<Load>, workers: Vec<tokio::task::JoinHandle<()>>) {
    load.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
}

/// Stops the load, prints what it saw after `what`, asserts that every answer was
/// acceptable, and adds what it acknowledged to `accounts`.
pub async fn finish_load(
    load: &Arc<Load>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    what: &str,
    accounts: &mut Accounts,
) {
    stop_load(load, workers).await;
    let t = load.tally.lock().unwrap();
    eprintln!("{what}: {}", t.summary());
    t.assert_no_bad(what);
    accounts.absorb(&t);
}

/// The status a sign-in of `user` with `password` gets (201 or 401 expected).
async fn sign_in_status(base: &str, user: &str, password: &str) -> u16 {
    sign_in(base, user, password)
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The accounts of every round so far, by what their password should be.
#[derive(Default)]
pub struct Accounts {
    pub stable: Vec<String>,
    pub changed: Vec<String>,
    pub uncertain: Vec<String>,
}

impl Accounts {
    /// Adds what a load acknowledged.
    pub fn absorb(&mut self, t: &Tally) {
        self.stable.extend(t.stable.iter().cloned());
        // Waiting for a change that never came: the password is still the first.
        self.stable.extend(t.to_change.iter().cloned());
        self.changed.extend(t.changed.iter().cloned());
        self.uncertain.extend(t.uncertain.iter().cloned());
    }
}

/// Every acknowledged registration signs in, on any node, with the password it has:
/// the new one after an acknowledged change (and the old one no more), one of the two
/// after a change whose answer was 503. Eight accounts are checked at a time.
pub async fn all_sign_in(bases: &[String], accounts: &Accounts) {
    #[derive(Clone, Copy)]
    enum Expect {
        First,
        Changed,
        Either,
    }
    let all = accounts
        .stable
        .iter()
        .map(|u| (u, Expect::First))
        .chain(accounts.changed.iter().map(|u| (u, Expect::Changed)))
        .chain(accounts.uncertain.iter().map(|u| (u, Expect::Either)));
    let mut checks = tokio::task::JoinSet::new();
    for (k, (user, expect)) in all.enumerate() {
        if checks.len() >= 8 {
            checks.join_next().await.unwrap().unwrap();
        }
        let base = bases[k % bases.len()].clone();
        let user = user.clone();
        checks.spawn(async move {
            match expect {
                Expect::First => {
                    let status = sign_in_status(&base, &user, PASSWORD).await;
                    assert_eq!(status, 201, "{user}, acknowledged, does not sign in");
                }
                Expect::Changed => {
                    assert_eq!(
                        sign_in_status(&base, &user, NEW_PASSWORD).await,
                        201,
                        "{user}: the acknowledged password change did not hold"
                    );
                    assert_eq!(
                        sign_in_status(&base, &user, PASSWORD).await,
                        401,
                        "{user}: the old password still works"
                    );
                }
                Expect::Either => {
                    let new = sign_in_status(&base, &user, NEW_PASSWORD).await;
                    let old = sign_in_status(&base, &user, PASSWORD).await;
                    assert!(
                        (new == 201) != (old == 201),
                        "{user}: after a change answered 503, new password {new}, old {old}"
                    );
                }
            }
        });
    }
    while let Some(done) = checks.join_next().await {
        done.unwrap();
    }
}
