//! Issue 17, security events out: signed webhooks. A receiver in the test (an axum server on
//! a random port) checks every signature itself (HMAC-SHA-256 with the `hmac` crate over
//! `id.timestamp.body`, with the secret's decoded bytes), gets every event of a scripted
//! session exactly once after de-duplication by `webhook-id`, and still gets them after it
//! was down for a minute (by the node's clock, which the test moves; retries back off with
//! a short `webhooks.backoff_max_secs`) and after the node delivering them was killed
//! mid-delivery (its lease runs out and a second node on the same database sends again).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use portcullis_core::clock::Clock;
use portcullis_core::ports::AuditReads;
use portcullis_core::webhooks::event_type;
use portcullis_testkit::{both, spawn_app_on, Backend, TestApp, ANN, ANN_BLUE, PASSWORD};
use serde_json::{json, Value};

use crate::not_me::{app_with_addresses, message, post, send, sign_in_from};
use crate::support::{admin_token, cli, cli_with};

const OWNER_IP: &str = "198.51.100.7";
const NEW_IP: &str = "203.0.113.66";
const CHANGED_PASSWORD: &str = "Changed-Horse-77";
const RESET_PASSWORD: &str = "Brand-New-Day-9";

const ACCEPT: u8 = 0;
const DOWN: u8 = 1;
const HANG: u8 = 2;

/// One request the receiver took.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

#[derive(Clone, Default)]
struct Inbox {
    got: Arc<Mutex<Vec<Got>>>,
    mode: Arc<AtomicU8>,
    /// Every request, answered or not.
    hits: Arc<AtomicUsize>,
}

struct Receiver {
    port: u16,
    inbox: Inbox,
}

impl Receiver {
    async fn start() -> Self {
        let inbox = Inbox::default();
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(take))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { port, inbox }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn set(&self, mode: u8) {
        self.inbox.mode.store(mode, Ordering::SeqCst);
    }

    fn hits(&self) -> usize {
        self.inbox.hits.load(Ordering::SeqCst)
    }

    /// What reached `path`, de-duplicated by `webhook-id` (the first copy of each).
    fn unique(&self, path: &str) -> BTreeMap<String, Got> {
        let mut out = BTreeMap::new();
        for g in self.inbox.got.lock().unwrap().iter() {
            if g.path == path {
                out.entry(g.id.clone()).or_insert_with(|| g.clone());
            }
        }
        out
    }

    fn all(&self, path: &str) -> Vec<Got> {
        let got = self.inbox.got.lock().unwrap();
        got.iter().filter(|g| g.path == path).cloned().collect()
    }

    /// Waits until `path` has `n` distinct events.
    async fn wait_for(&self, path: &str, n: usize) -> BTreeMap<String, Got> {
        for _ in 0..400 {
            let unique = self.unique(path);
            if unique.len() >= n {
                return unique;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{path}: wanted {n} events, got {:#?}",
            self.unique(path)
                .values()
                .map(|g| &g.body)
                .collect::<Vec<_>>()
        );
    }
}

async fn take(
    State(inbox): State<Inbox>,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    inbox.hits.fetch_add(1, Ordering::SeqCst);
    if path == "gone" {
        return StatusCode::GONE;
    }
    let mode = inbox.mode.load(Ordering::SeqCst);
    if mode == DOWN {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    inbox.got.lock().unwrap().push(Got {
        path,
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
    });
    if mode == HANG {
        // Taken in, never answered: the sender dies waiting.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    StatusCode::NO_CONTENT
}

/// Checks a delivery as a receiver must: the signature, computed here from the secret.
fn verify(secret: &str, got: &Got, app: &TestApp) -> Value {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .unwrap();
    assert!(key.len() >= 24, "the secret has {} bytes", key.len());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", got.id, got.timestamp, got.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert!(
        got.signature.split(' ').any(|s| s == expected),
        "bad signature {:?} on {}",
        got.signature,
        got.body
    );
    assert!(got.id.starts_with("msg_"), "{}", got.id);
    let ts: i64 = got.timestamp.parse().unwrap();
    assert!(
        (ts - app.clock.now().0).abs() < 300,
        "timestamp {ts} is not the sender's now"
    );
    serde_json::from_str(&got.body).unwrap()
}

/// The same checks by the Standard Webhooks reference library (Python `standardwebhooks`,
/// from scripts/test-deps): signature and timestamp of each delivery. How many it accepted;
/// `None` (skipped loudly) without the venv.
fn reference_verifies(secret: &str, got: &[&Got]) -> Option<usize> {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let usable = python.exists()
        && std::process::Command::new(&python)
            .args(["-c", "import standardwebhooks"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !usable {
        portcullis_testkit::smtp::skip_without_venv("the standardwebhooks checks");
        return None;
    }
    let deliveries: Vec<Value> = got
        .iter()
        .map(|g| json!({"id": g.id, "timestamp": g.timestamp, "signature": g.signature, "body": g.body}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deliveries.json");
    std::fs::write(&file, serde_json::to_vec(&deliveries).unwrap()).unwrap();
    let script = concat!(
        "import json, sys\n",
        "from standardwebhooks.webhooks import Webhook\n",
        "wh = Webhook(sys.argv[1])\n",
        "n = 0\n",
        "for d in json.load(open(sys.argv[2])):\n",
        "    headers = {'webhook-id': d['id'], 'webhook-timestamp': d['timestamp'],\n",
        "               'webhook-signature': d['signature']}\n",
        "    wh.verify(d['body'], headers)\n",
        "    n += 1\n",
        "print(n)\n",
    );
    let out = std::process::Command::new(&python)
        .args(["-c", script, secret])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks refused a delivery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    )
}

fn tweak(c: &mut portcullis::config::Config) {
    // The receiver is on the loopback.
    c.webhooks.allow_loopback = true;
    c.webhooks.poll_secs = 0.05;
    c.webhooks.timeout_secs = 2.0;
    c.webhooks.lease_secs = 10;
    c.webhooks.backoff_base_secs = 1;
    c.webhooks.backoff_max_secs = 4;
    c.webhooks.give_up_after_secs = 600;
    c.webhooks.min_attempts = 3;
}

/// `portcullis webhooks list`, one JSON object per subscription.
pub(crate) async fn listed(app: &TestApp) -> Vec<Value> {
    let run = cli(app, &["webhooks", "list"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Subscribes `url` to `events` through the command line: `{"id","secret"}`.
async fn subscribe(app: &TestApp, url: &str, events: &str) -> (i64, String) {
    let run = cli_with(
        app,
        &["webhooks", "add", "--url", url, "--events", events],
        &[("PORTCULLIS_WEBHOOKS_ALLOW_LOOPBACK", "true")],
    )
    .await;
    assert_eq!(run.code, 0, "webhooks add: {}", run.stderr);
    let line: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let secret = line["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (line["id"].as_i64().unwrap(), secret)
}

/// The webhook types of the audit entries (what subscribers to `all` must get).
async fn expected_types(app: &TestApp) -> Vec<String> {
    let entries = app.built.store.audit_entries(0, 10_000).await.unwrap();
    let mut types: Vec<String> = entries
        .iter()
        .filter_map(|e| match e.kind.as_str() {
            "card.reissued" => Some("card.linked".to_owned()),
            k => portcullis_core::webhooks::EVENT_TYPES
                .contains(&k)
                .then(|| k.to_owned()),
        })
        .collect();
    types.sort();
    types
}

/// A six-digit code in a message to `to` not read before (waits for its delivery).
async fn code_to(app: &TestApp, to: &str) -> String {
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    for _ in 0..200 {
        for m in app.outbox_messages().iter().rev().filter(|m| m["to"] == to) {
            let body = m["body"].as_str().unwrap_or_default();
            let code = body
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6);
            if let Some(code) = code {
                let mut seen = SEEN.lock().unwrap();
                if !seen.iter().any(|c| c == code) {
                    seen.push(code.to_owned());
                    return code.to_owned();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no new code to {to}");
}

/// The newest message whose subject has `subject` (waits for its delivery).
async fn wait_message(app: &TestApp, subject: &str) -> Value {
    for _ in 0..200 {
        if app
            .outbox_messages()
            .iter()
            .any(|m| m["subject"].as_str().unwrap_or("").contains(subject))
        {
            return message(app, subject);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no message about {subject}");
}

async fn bearer_post(app: &TestApp, path: &str, token: &str, body: &Value) -> (u16, Value) {
    post(app, OWNER_IP, path, Some(token), body).await
}

async fn scripted_session(backend: Backend) {
    let app = app_with_addresses(backend, tweak).await;
    let receiver = Receiver::start().await;
    // An endpoint must be https (or loopback, allowed here); nothing is stored for a refused one.
    for (url, why) in [
        ("http://hooks.example.com/in", "https"),
        ("https://10.1.2.3/in", "private"),
    ] {
        let run = cli(&app, &["webhooks", "add", "--url", url, "--events", "all"]).await;
        assert_eq!(run.code, 1, "{url}: {}", run.stdout);
        assert!(run.stderr.contains(why), "{}", run.stderr);
    }
    let run = cli(
        &app,
        &[
            "webhooks",
            "add",
            "--url",
            &receiver.url("x"),
            "--events",
            "account.gone",
        ],
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("unknown event type"), "{}", run.stderr);
    let (_, secret) = subscribe(&app, &receiver.url("all"), "all").await;
    // A second endpoint, through the admin API, for lock events only.
    let admin = admin_token(&app, "fraud.feed", &["webhooks:write", "accounts:unlock"]).await;
    let reader = admin_token(&app, "reader", &["accounts:read"]).await;
    let (status, _) = post(
        &app,
        OWNER_IP,
        "/api/v1/admin/webhooks",
        Some(&reader),
        &json!({"url": receiver.url("locks"), "events": "account.locked"}),
    )
    .await;
    assert_eq!(status, 403, "webhooks:write is needed");
    let (status, created) = post(
        &app,
        OWNER_IP,
        "/api/v1/admin/webhooks",
        Some(&admin),
        &json!({"url": receiver.url("locks"), "events": "account.locked"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let locks_secret = created["secret"].as_str().unwrap().to_owned();
    assert_ne!(locks_secret, secret);

    // The session: register, sign in, change the password, add and remove a second
    // factor, change the email address, link a second card.
    app.register(&ANN, "ann.example", PASSWORD).await;
    let (status, owner) = sign_in_from(&app, OWNER_IP, PASSWORD, None).await;
    assert_eq!(status, 201, "{owner}");
    let token = owner["session_token"].as_str().unwrap().to_owned();
    let (status, body) = bearer_post(
        &app,
        "/api/v1/me/password",
        &token,
        &json!({"current_password": PASSWORD, "new_password": CHANGED_PASSWORD}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = bearer_post(
        &app,
        "/api/v1/me/factors/code",
        &token,
        &json!({"channel": "email"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, factors) = send(
        &app,
        OWNER_IP,
        reqwest::Method::GET,
        "/api/v1/me/factors",
        Some(&token),
        None,
    )
    .await;
    let factor = factors["factors"][0]["id"].as_i64().unwrap();
    let (status, body) = send(
        &app,
        OWNER_IP,
        reqwest::Method::DELETE,
        &format!("/api/v1/me/factors/{factor}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, started) = bearer_post(
        &app,
        "/api/v1/me/contact",
        &token,
        &json!({"current_password": CHANGED_PASSWORD, "field": "email",
                "value": "ann.new@example.org"}),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let code = code_to(&app, "ann.new@example.org").await;
    let (status, body) = bearer_post(
        &app,
        "/api/v1/me/contact/confirm",
        &token,
        &json!({"change_token": started["change_token"], "code": code}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = bearer_post(
        &app,
        "/api/v1/me/cards",
        &token,
        &json!({"number": ANN_BLUE.number, "verification": ANN_BLUE.verification}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Wrong passwords lock the account; support unlocks it.
    for _ in 0..6 {
        let (status, _) = sign_in_from(&app, OWNER_IP, "Wrong-Horse-42", None).await;
        assert!(status == 401 || status == 423, "{status}");
    }
    let (status, body) = post(
        &app,
        OWNER_IP,
        "/api/v1/admin/accounts/ann.example/unlock",
        Some(&admin),
        &json!({"reason": "caller verified"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unlocked"], true);

    // A sign-in from a new device; its owner says "not me" and resets the password.
    app.clock.advance(60);
    let (status, intruder) = sign_in_from(&app, NEW_IP, CHANGED_PASSWORD, None).await;
    assert_eq!(status, 201, "{intruder}");
    let notice = wait_message(&app, "New sign-in").await;
    let link = notice["body"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.contains("/not-me/"))
        .unwrap()
        .to_owned();
    let not_me = link.rsplit('/').next().unwrap().to_owned();
    let (status, body) = post(
        &app,
        OWNER_IP,
        "/api/v1/not-me",
        None,
        &json!({"token": not_me}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, start) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/start",
        None,
        &json!({"user_id": "ann.example"}),
    )
    .await;
    let recovery = start["recovery_token"].as_str().unwrap().to_owned();
    let (status, body) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": recovery, "card_id": ANN.verification}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let code = code_to(&app, "ann.new@example.org").await;
    let (status, accepted) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/verify",
        None,
        &json!({"recovery_token": recovery, "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    let (status, body) = post(
        &app,
        OWNER_IP,
        "/api/v1/recovery/password/reset",
        None,
        &json!({"reset_token": accepted["reset_token"], "new_password": RESET_PASSWORD}),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    // Every event of the session, exactly once after de-duplication, each signed.
    let expected = expected_types(&app).await;
    // Every type but the OpenID provider's, which come from sign-ins through a relying
    // party (`tests/oidc/nonce.rs`, `oidc_grants_are_audited_and_expired_rows_swept`).
    for t in portcullis_core::webhooks::EVENT_TYPES
        .iter()
        .filter(|t| !t.starts_with("oidc."))
    {
        assert!(
            expected.iter().any(|e| e == t),
            "the session produced no {t}: {expected:?}"
        );
    }
    let got = receiver.wait_for("all", expected.len()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_again = receiver.unique("all");
    assert_eq!(
        got_again.len(),
        expected.len(),
        "no more than the session's"
    );
    let mut types = Vec::new();
    for g in got.values() {
        let body = verify(&secret, g, &app);
        types.push(body["type"].as_str().unwrap().to_owned());
        let data = &body["data"];
        assert!(
            data["account"].as_str().unwrap().starts_with("acct_"),
            "{body}"
        );
        assert_eq!(data["account_type"], "personal", "{body}");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
        for secret_text in [
            PASSWORD,
            CHANGED_PASSWORD,
            RESET_PASSWORD,
            ANN.number,
            ANN_BLUE.number,
            "ann.new@example.org",
            "ann@example.com",
            code.as_str(),
            not_me.as_str(),
        ] {
            assert!(!g.body.contains(secret_text), "{secret_text} in {}", g.body);
        }
    }
    types.sort();
    assert_eq!(types, expected);
    // And by the reference library; a tampered body is refused by it too.
    let all: Vec<&Got> = got.values().collect();
    if let Some(n) = reference_verifies(&secret, &all) {
        assert_eq!(n, expected.len());
        let mut forged = (*all.first().unwrap()).clone();
        forged.body = forged.body.replace("personal", "corporate");
        let python_refuses = std::panic::catch_unwind(|| reference_verifies(&secret, &[&forged]));
        assert!(python_refuses.is_err(), "a changed body must not verify");
    }
    // One opaque id for the whole session.
    let accounts: std::collections::BTreeSet<String> = got
        .values()
        .map(|g| serde_json::from_str::<Value>(&g.body).unwrap()["data"]["account"].to_string())
        .collect();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    // The lock-only endpoint got the lock events only, under its own secret.
    let locks_expected = expected.iter().filter(|t| *t == "account.locked").count();
    let locks = receiver.wait_for("locks", locks_expected).await;
    assert_eq!(locks.len(), locks_expected);
    for g in locks.values() {
        assert_eq!(verify(&locks_secret, g, &app)["type"], "account.locked");
    }
    // The list shows both, their deliveries sent, never a secret.
    let (status, list) = send(
        &app,
        OWNER_IP,
        reqwest::Method::GET,
        "/api/v1/admin/webhooks",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list[0]["events"], "all");
    assert_eq!(list[0]["sent"], expected.len() as i64, "{list}");
    assert_eq!(list[1]["events"], "account.locked");
    assert!(!list.to_string().contains("whsec_"), "{list}");
    // Only events of the session: no event type for an audit kind that has none.
    assert_eq!(event_type(portcullis_core::audit::AuditKind::SignIn), None);
}
both!(
    webhooks_sign_every_event_of_a_session_once,
    scripted_session
);

async fn pending_and_sent(app: &TestApp, admin: &str, id: i64) -> (i64, i64, i64) {
    let (status, list) = send(
        app,
        OWNER_IP,
        reqwest::Method::GET,
        "/api/v1/admin/webhooks",
        Some(admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let s = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no subscription {id}: {list}"));
    (
        s["pending"].as_i64().unwrap(),
        s["sent"].as_i64().unwrap(),
        s["failed"].as_i64().unwrap(),
    )
}

async fn outages(backend: Backend) {
    let mut app = app_with_addresses(backend, tweak).await;
    let receiver = Receiver::start().await;
    let (id, secret) = subscribe(&app, &receiver.url("in"), "all").await;
    // Nothing listens on port 9 of the loopback: every attempt is refused.
    let (dead, _) = subscribe(&app, "http://127.0.0.1:9/in", "account.created").await;
    // An endpoint that answers 410 Gone is not retried.
    let (answers_410, _) = subscribe(&app, &receiver.url("gone"), "account.created").await;
    let admin = admin_token(&app, "ops", &["webhooks:write"]).await;

    // The receiver is down for a minute of the node's clock while events happen.
    receiver.set(DOWN);
    app.register(&ANN, "ann.example", PASSWORD).await;
    for _ in 0..6 {
        sign_in_from(&app, OWNER_IP, "Wrong-Horse-42", None).await;
    }
    for _ in 0..12 {
        app.clock.advance(5);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        receiver.hits() >= 4,
        "retried while down: {} attempts",
        receiver.hits()
    );
    assert!(receiver.unique("in").is_empty());
    assert_eq!(pending_and_sent(&app, &admin, answers_410).await, (0, 0, 1));
    let expected = expected_types(&app).await;
    assert_eq!(expected, ["account.created", "account.locked"]);
    let (pending, sent, _) = pending_and_sent(&app, &admin, id).await;
    assert_eq!((pending, sent), (2, 0));
    // Back up: the next retry (at most backoff_max_secs away) gets them through.
    receiver.set(ACCEPT);
    app.clock.advance(5);
    let got = receiver.wait_for("in", 2).await;
    let mut types: Vec<String> = got
        .values()
        .map(|g| {
            verify(&secret, g, &app)["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    types.sort();
    assert_eq!(types, ["account.created", "account.locked"]);

    // The node is killed while the receiver holds a delivery: the event still arrives,
    // from another node once the dead node's lease has run out, under the same id.
    receiver.set(HANG);
    let before = receiver.hits();
    app.clock.advance(8 * 86_400);
    let (status, owner) = sign_in_from(&app, OWNER_IP, PASSWORD, None).await;
    assert_eq!(status, 201, "{owner}");
    let token = owner["session_token"].as_str().unwrap().to_owned();
    let (status, body) = bearer_post(
        &app,
        "/api/v1/me/password",
        &token,
        &json!({"current_password": PASSWORD, "new_password": CHANGED_PASSWORD}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    for _ in 0..200 {
        if receiver.hits() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        receiver.hits() > before,
        "the delivery reached the receiver"
    );
    let held = receiver.all("in").last().unwrap().clone();
    assert_eq!(verify(&secret, &held, &app)["type"], "password.changed");
    app.delivery.take().unwrap().abort();
    receiver.set(ACCEPT);
    let second = spawn_app_on(&app, tweak).await;
    // The second node's clock past the dead node's lease.
    let lag = app.clock.now().0 - second.clock.now().0;
    second.clock.advance(lag + 11);
    let expected = expected_types(&app).await;
    let got = receiver.wait_for("in", expected.len()).await;
    let copies_of = |id: &str| -> Vec<Got> {
        receiver
            .all("in")
            .into_iter()
            .filter(|g| g.id == id)
            .collect()
    };
    for _ in 0..200 {
        if copies_of(&held.id).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let copies = copies_of(&held.id);
    assert_eq!(copies.len(), 2, "sent again under the same webhook-id");
    verify(&secret, copies.last().unwrap(), &second);
    assert_eq!(
        got.len(),
        expected.len(),
        "each event once after de-duplication"
    );

    // The endpoint that never answered is given up after give_up_after_secs, and shown so.
    for _ in 0..40 {
        second.clock.advance(120);
        tokio::time::sleep(Duration::from_millis(100)).await;
        if pending_and_sent(&second, &admin, dead).await.2 == 1 {
            break;
        }
    }
    assert_eq!(pending_and_sent(&second, &admin, dead).await, (0, 0, 1));
    let metrics = second.metrics_text().await;
    // Given up: the endpoint that never answered and the one that answered 410.
    assert!(
        metrics.contains("\nportcullis_webhook_deliveries_failed 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nportcullis_webhook_deliveries_pending 0\n"));
    let listed = listed(&second).await;
    let gone = listed.iter().find(|s| s["id"] == dead).unwrap();
    assert_eq!(gone["failed"], 1);
    assert!(
        gone["last_error"].as_str().unwrap().contains("gave up"),
        "{gone}"
    );
    // Removing it: 204, then it is gone (404 the second time).
    for expected in [204, 404] {
        let (status, _) = send(
            &second,
            OWNER_IP,
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/webhooks/{dead}"),
            Some(&admin),
            None,
        )
        .await;
        assert_eq!(status, expected);
    }
    for id in [id, answers_410] {
        let run = cli(&second, &["webhooks", "remove", &id.to_string()]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let run = cli(&second, &["webhooks", "list"]).await;
    assert_eq!(run.stdout.trim(), "");
}
both!(
    webhooks_survive_a_receiver_outage_and_a_killed_node,
    outages
);
