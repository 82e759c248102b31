//! Operating it (issue 18), through the real binary: the demo as a newcomer first sees it,
//! text logs on request, production mode's refusals and `validate-config`. (The backup under
//! load is in `backup.rs`; traces are in `tests/otel.rs`.)

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::binary::{base_of, terminate, wait_for};
pub(crate) use crate::binary::{clean, client};

pub(crate) async fn post(c: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let res = c.post(url).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(crate) fn answers() -> Value {
    json!([
        {"question_id": 1, "answer": "Rex"},
        {"question_id": 4, "answer": "Hill Street Primary"},
        {"question_id": 6, "answer": "Sparky"}
    ])
}

/// A demo card as `serve --demo` printed it.
#[derive(Debug)]
pub(crate) struct PrintedCard {
    pub(crate) account_type: String,
    pub(crate) number: String,
    pub(crate) verification: String,
    pub(crate) holder: String,
}

/// Reads `  Merchant Account  (merchant)   merchant number 1234567890  verification code
/// SHOP42  (Corner Coffee Ltd, Merchant Services)`.
pub(crate) fn parse_card(line: &str) -> Option<PrintedCard> {
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
    let base = base_of(&banner);
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
    let base = base_of(&banner);
    // Serving (so SIGTERM is a graceful stop, not the default kill).
    let res = client().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(terminate(&mut child).success());
    let logs = std::fs::read_to_string(&err).unwrap();
    // Every line is text, not JSON, and the start's INFO lines are among them; which line
    // comes first is not this test's business (it failed once, beside a release build,
    // when it read only the first line; twelve runs after could not repeat it).
    assert!(logs.lines().next().is_some(), "no log lines");
    for line in logs.lines() {
        assert!(serde_json::from_str::<Value>(line).is_err(), "{line}");
    }
    assert!(logs.lines().any(|l| l.contains(" INFO ")), "{logs}");
}

pub(crate) fn run(mut cmd: std::process::Command) -> (i32, String, String) {
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
    let base = base_of(&banner);
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
