//! `portcullis accounts import FILE` (issue 17): accounts from an earlier login system, with
//! password hashes made in the test by independent libraries (Python's bcrypt, passlib,
//! Django's make_password, argon2-cffi, from the repo's .venv): each signs in, is upgraded
//! to argon2id at that sign-in, keeps working after, and a wrong password never works; an
//! over-cost hash and a bad line are refused with their line, and then nothing is imported.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use portcullis_core::ports::AccountReads;
use portcullis_testkit::smtp::skip_without_venv;
use portcullis_testkit::{spawn_app, spawn_app_on, spawn_app_with, Backend, TestApp};
use serde_json::{json, Value};

const PASSWORD: &str = "Old-System-Pass 7ü";
const WRONG: &str = "Old-System-Pass 7u";

/// The project's venv Python when it has the hash libraries; `None` (loudly) otherwise.
fn venv_python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let ok = python.exists()
        && Command::new(&python)
            .args(["-c", "import passlib, bcrypt, django, argon2"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        skip_without_venv("the accounts-import tests (passlib, bcrypt, Django, argon2-cffi)");
    }
    ok.then_some(python)
}

/// Hashes of `password` made by the Python libraries, as `[label, hash]` pairs.
const MAKE_HASHES: &str = r#"
import json, sys, warnings
warnings.filterwarnings("ignore")
password = sys.argv[1]
bcrypt_cost = int(sys.argv[2])
import bcrypt
from passlib.hash import pbkdf2_sha256, pbkdf2_sha512, scrypt
import django
from django.conf import settings
settings.configure(PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"])
django.setup()
from django.contrib.auth.hashers import make_password
from argon2 import PasswordHasher, Type
b = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=bcrypt_cost)).decode()
out = [
    ["bcrypt $2b$", b],
    ["bcrypt $2a$", bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4, prefix=b"2a")).decode()],
    # PHP's $2y$ is the same algorithm under another name: the bytes after it are bcrypt's.
    ["bcrypt $2y$", "$2y$" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()[4:]],
    ["passlib pbkdf2-sha256", pbkdf2_sha256.using(rounds=2000).hash(password)],
    ["passlib pbkdf2-sha512", pbkdf2_sha512.using(rounds=2000).hash(password)],
    ["passlib scrypt", scrypt.using(rounds=6).hash(password)],
    ["django pbkdf2_sha256", make_password(password)],
    ["argon2-cffi argon2id", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=2).hash(password)],
    ["argon2-cffi argon2i", PasswordHasher(time_cost=1, memory_cost=256, parallelism=1, hash_len=24, type=Type.I).hash(password)],
]
print(json.dumps(out))
"#;

fn python_hashes(python: &Path, password: &str, bcrypt_cost: u32) -> Vec<(String, String)> {
    let out = Command::new(python)
        .args(["-c", MAKE_HASHES, password, &bcrypt_cost.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<(String, String)>>(&out.stdout).unwrap()
}

/// A Luhn-valid 16-digit card number starting with `4000` and ending in `n` before the
/// check digit.
fn card_number(n: u32) -> String {
    portcullis_core::card::with_luhn_check_digit(&format!("4000{n:011}"))
}

fn cli(app: &TestApp, args: &[&str], file: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .args(args)
        .arg(file)
        .env("PORTCULLIS_DATABASE_URL", &app.db.url)
        .env("PORTCULLIS_SECRETS_DIR", &app.config.secrets_dir);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// Puts `count` personal cards (numbers [`card_number`] 0..count) into the registry.
fn registry_cards(app: &TestApp, count: u32) {
    let mut csv = String::from("account_type,number,verification,expiry,holder_name,email,phone,product,balance,credit_limit,payment_due_date,minimum_due\n");
    for n in 0..count {
        csv.push_str(&format!(
            "personal,{},{:03},2031-01,Holder {n},h{n}@example.com,,Classic,,,,\n",
            card_number(n),
            100 + n
        ));
    }
    let file = app.dir.path().join("registry.csv");
    std::fs::write(&file, csv).unwrap();
    let out = cli(app, &["registry", "import"], &file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn line(user_id: &str, card: &str, hash: &str) -> Value {
    json!({
        "user_id": user_id,
        "account_type": "personal",
        "card_number": card,
        "password_hash": hash,
        "email": format!("{user_id}@example.com"),
        "phone": "+15550100123",
        "created_at": "2019-05-06T07:08:09Z",
    })
}

fn write_lines(app: &TestApp, name: &str, lines: &[Value]) -> PathBuf {
    let file = app.dir.path().join(name);
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&file, text.join("\n") + "\n").unwrap();
    file
}

async fn stored_hash(app: &TestApp, user_id: &str) -> Option<String> {
    app.built
        .store
        .find_account(user_id)
        .await
        .unwrap()
        .map(|a| a.password_hash)
}

async fn imported_hashes_sign_in_and_are_upgraded(backend: Backend) {
    let Some(python) = venv_python() else {
        return;
    };
    let hashes = python_hashes(&python, PASSWORD, 4);
    // Many wrong passwords from one address on purpose: throttling off, lockout stays.
    let app = spawn_app_with(backend, |c| c.limits.enabled = false).await;
    registry_cards(&app, hashes.len() as u32);
    let lines: Vec<Value> = hashes
        .iter()
        .enumerate()
        .map(|(i, (_, hash))| line(&format!("legacy{i}"), &card_number(i as u32), hash))
        .collect();
    let file = write_lines(&app, "accounts.jsonl", &lines);
    let out = cli(&app, &["accounts", "import"], &file, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("imported {} accounts", hashes.len())),
        "{stdout}"
    );

    // The same-time rule: a node started after the import checks unknown User IDs against
    // a dummy of the most common imported form (three bcrypt cost-4 hashes here); the node
    // started before it still uses the current argon2id until restarted.
    assert_eq!(app.built.app.hasher().unknown_user_hash(), None);
    let second = spawn_app_on(&app, |c| c.limits.enabled = false).await;
    let dummy = second.built.app.hasher().unknown_user_hash().unwrap();
    assert_eq!(
        portcullis_crypto::legacy::parse(&dummy).unwrap().cost,
        portcullis_crypto::legacy::Cost::BcryptCost(4),
        "{dummy}"
    );
    assert_eq!(
        second
            .sign_in("nobody.here", PASSWORD, "personal")
            .await
            .status(),
        401
    );
    drop(second);

    for (i, (label, hash)) in hashes.iter().enumerate() {
        let user = format!("legacy{i}");
        assert_eq!(
            stored_hash(&app, &user).await.as_deref(),
            Some(hash.as_str()),
            "{label}: kept as it is at import"
        );
        // A wrong password never works, and leaves the old hash where it is.
        let wrong = app.sign_in(&user, WRONG, "personal").await;
        assert_eq!(wrong.status(), 401, "{label}: wrong password");
        assert_eq!(
            stored_hash(&app, &user).await.as_deref(),
            Some(hash.as_str())
        );
        // The right one signs in, and that sign-in replaces the hash with argon2id.
        let res = app.sign_in(&user, PASSWORD, "personal").await;
        assert_eq!(res.status(), 201, "{label}: {}", res.text().await.unwrap());
        let upgraded = stored_hash(&app, &user).await.unwrap();
        assert_ne!(&upgraded, hash, "{label}: the stored hash changed");
        assert!(
            upgraded.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{label}: now argon2id at the current parameters: {upgraded}"
        );
        // The old password still works after, against the new hash; a wrong one still not.
        let again = app.sign_in(&user, PASSWORD, "personal").await;
        assert_eq!(again.status(), 201, "{label}: signs in after the upgrade");
        assert_eq!(
            stored_hash(&app, &user).await.as_deref(),
            Some(upgraded.as_str())
        );
        let wrong = app.sign_in(&user, WRONG, "personal").await;
        assert_eq!(
            wrong.status(),
            401,
            "{label}: wrong password after the upgrade"
        );
        // The old hash itself is no password.
        let hash_as_password = app.sign_in(&user, hash, "personal").await;
        assert_eq!(hash_as_password.status(), 401, "{label}");
    }
}
portcullis_testkit::both!(
    hashes_from_independent_libraries_sign_in_and_are_upgraded_to_argon2id,
    imported_hashes_sign_in_and_are_upgraded
);

async fn over_cost_is_refused(backend: Backend) {
    let Some(python) = venv_python() else {
        return;
    };
    // A bcrypt cost 5 hash and Django's default (1,000,000 PBKDF2 iterations), against
    // ceilings of cost 4 and 500,000 iterations.
    let hashes = python_hashes(&python, PASSWORD, 5);
    let find = |label: &str| hashes.iter().find(|(l, _)| l == label).unwrap().1.clone();
    let app = spawn_app(backend).await;
    registry_cards(&app, 3);
    let lines = [
        line("good.one", &card_number(0), &find("passlib pbkdf2-sha256")),
        line("costly.bcrypt", &card_number(1), &find("bcrypt $2b$")),
        line(
            "costly.django",
            &card_number(2),
            &find("django pbkdf2_sha256"),
        ),
    ];
    let file = write_lines(&app, "costly.jsonl", &lines);
    let ceilings = [
        ("PORTCULLIS_ACCOUNTS_IMPORT_MAX_BCRYPT_COST", "4"),
        ("PORTCULLIS_ACCOUNTS_IMPORT_MAX_PBKDF2_ITERATIONS", "500000"),
    ];
    let out = cli(&app, &["accounts", "import"], &file, &ceilings);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("line 2, field password_hash: bcrypt cost above the configured ceiling of 4"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "line 3, field password_hash: PBKDF2 iteration count above the configured ceiling of 500000"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("line 1"), "{stderr}");
    assert!(!stderr.contains("$2b$"), "no hash in the errors: {stderr}");
    assert_eq!(
        stored_hash(&app, "good.one").await,
        None,
        "nothing imported"
    );
    assert_eq!(
        app.sign_in("good.one", PASSWORD, "personal").await.status(),
        401
    );

    // With the default ceilings the same file imports.
    let out = cli(&app, &["accounts", "import"], &file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        app.sign_in("costly.bcrypt", PASSWORD, "personal")
            .await
            .status(),
        201
    );
}
portcullis_testkit::both!(
    an_over_cost_hash_is_refused_at_import_with_its_line,
    over_cost_is_refused
);

async fn bad_line_imports_nothing(backend: Backend) {
    let Some(python) = venv_python() else {
        return;
    };
    let hashes = python_hashes(&python, PASSWORD, 4);
    let bcrypt = hashes[0].1.clone();
    let app = spawn_app(backend).await;
    registry_cards(&app, 3);
    let mut unknown_type = line("dana.doe", &card_number(2), &bcrypt);
    unknown_type["account_type"] = json!("gold");
    let lines = [
        line("first.good", &card_number(0), &bcrypt),
        // md5-crypt: not a form sign-in can check.
        line(
            "md5.user",
            &card_number(1),
            "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/",
        ),
        unknown_type,
        // A Luhn-valid number that is not in the registry.
        line("nocard.user", &card_number(7), &bcrypt),
        // The same card as line 1.
        line("twice.user", &card_number(0), &bcrypt),
    ];
    let file = write_lines(&app, "bad.jsonl", &lines);
    let out = cli(&app, &["accounts", "import"], &file, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "line 2, field password_hash: not a supported hash form",
        "line 3, field account_type:",
        "line 4, field card_number: not in the registry",
        "line 5, field card_number: the same card as line 1",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert!(
        !stderr.contains(&card_number(7)),
        "no card number: {stderr}"
    );
    assert_eq!(
        stored_hash(&app, "first.good").await,
        None,
        "nothing imported"
    );

    // A syntax error is a line error too.
    let file = app.dir.path().join("syntax.jsonl");
    std::fs::write(
        &file,
        format!(
            "{}\n{{\"user_id\": \"x\"\n",
            line("first.good", &card_number(0), &bcrypt)
        ),
    )
    .unwrap();
    let out = cli(&app, &["accounts", "import"], &file, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: not valid JSON"));
    assert_eq!(stored_hash(&app, "first.good").await, None);

    // Fixed, it imports; imported again, its User IDs and cards are taken.
    let file = write_lines(&app, "good.jsonl", &lines[..1]);
    let out = cli(&app, &["accounts", "import"], &file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&app, &["accounts", "import"], &file, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 1, field card_number: the card already backs an online account")
            && stderr.contains("line 1, field user_id: already taken"),
        "{stderr}"
    );

    // A card reported lost (docs/design/cards.md) proves nothing, so it cannot back a
    // migrated account either.
    let lost = app.dir.path().join("lost.csv");
    std::fs::write(
        &lost,
        format!(
            "account_type,number,verification,expiry,holder_name,email,phone,product,balance,credit_limit,payment_due_date,minimum_due,status,replaces\n\
             personal,{},102,2031-01,Holder 2,h2@example.com,,Classic,,,,,lost_stolen,\n",
            card_number(2)
        ),
    )
    .unwrap();
    let out = cli(&app, &["registry", "import"], &lost, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = write_lines(
        &app,
        "lost.jsonl",
        &[line("lost.card", &card_number(2), &bcrypt)],
    );
    let out = cli(&app, &["accounts", "import"], &file, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 1, field card_number: the card is lost_stolen in the registry"),
        "{stderr}"
    );
    assert_eq!(stored_hash(&app, "lost.card").await, None);
}
portcullis_testkit::both!(a_bad_line_imports_nothing, bad_line_imports_nothing);

async fn must_change_password(backend: Backend) {
    let Some(python) = venv_python() else {
        return;
    };
    let hashes = python_hashes(&python, PASSWORD, 4);
    let app = spawn_app(backend).await;
    registry_cards(&app, 2);
    let mut flagged = line("change.me", &card_number(0), &hashes[3].1);
    flagged["must_change_password"] = json!(true);
    let plain = line("keep.mine", &card_number(1), &hashes[3].1);
    let file = write_lines(&app, "flag.jsonl", &[flagged, plain]);
    let out = cli(&app, &["accounts", "import"], &file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let res = app.sign_in("keep.mine", PASSWORD, "personal").await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("password_change_required").is_none(), "{body}");

    // The sign-in page leads to the security page's password form first.
    let mut jar = portcullis_testkit::Jar::default();
    let (_, html) = crate::pages::get(&app, &mut jar, "/").await;
    let csrf = portcullis_testkit::input_value(&html, "csrf").unwrap();
    let form = [
        ("csrf", csrf.as_str()),
        ("user_id", "change.me"),
        ("password", PASSWORD),
        ("account_type", "personal"),
    ];
    let res = crate::pages::post(&app, &mut jar, "/", &form).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/security");

    let res = app.sign_in("change.me", PASSWORD, "personal").await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["password_change_required"], true, "{body}");
    let token = body["session_token"].as_str().unwrap();
    let changed = app
        .client
        .post(app.url("/api/v1/me/password"))
        .bearer_auth(token)
        .json(&json!({"current_password": PASSWORD, "new_password": "Brand-New-Pass-91"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 204, "{}", changed.text().await.unwrap());
    let res = app
        .sign_in("change.me", "Brand-New-Pass-91", "personal")
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert!(
        body.get("password_change_required").is_none(),
        "cleared: {body}"
    );
    assert_eq!(
        app.sign_in("change.me", PASSWORD, "personal")
            .await
            .status(),
        401
    );
}
portcullis_testkit::both!(
    must_change_password_sends_the_person_to_change_it,
    must_change_password
);

async fn questions_are_chosen_after_sign_in(backend: Backend) {
    let Some(python) = venv_python() else {
        return;
    };
    let hashes = python_hashes(&python, PASSWORD, 4);
    let app = spawn_app(backend).await;
    registry_cards(&app, 1);
    let file = write_lines(
        &app,
        "q.jsonl",
        &[line("no.answers", &card_number(0), &hashes[0].1)],
    );
    let out = cli(&app, &["accounts", "import"], &file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let res = app.sign_in("no.answers", PASSWORD, "personal").await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["security_questions_required"], true, "{body}");
    let token = body["session_token"].as_str().unwrap().to_owned();
    let answers = json!([
        {"question_id": 1, "answer": "Rex"},
        {"question_id": 2, "answer": "Springfield"},
        {"question_id": 3, "answer": "Blue"},
    ]);
    let put = |current: &'static str, answers: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            app.client
                .put(app.url("/api/v1/me/security-answers"))
                .bearer_auth(token)
                .json(&json!({"current_password": current, "security_answers": answers}))
                .send()
                .await
                .unwrap()
        }
    };
    // The current password first; two answers are not three.
    assert_eq!(put(WRONG, answers.clone()).await.status(), 400);
    let two = json!([answers[0].clone(), answers[1].clone()]);
    assert_eq!(put(PASSWORD, two).await.status(), 400);
    let res = put(PASSWORD, answers).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());

    let res = app.sign_in("no.answers", PASSWORD, "personal").await;
    let body: Value = res.json().await.unwrap();
    assert!(body.get("security_questions_required").is_none(), "{body}");
    // Recovery now asks the questions chosen, not decoys.
    let (status, start) = {
        let res = app
            .post_json(
                "/api/v1/recovery/password/start",
                &json!({"user_id": "no.answers"}),
            )
            .await;
        (res.status(), res.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200);
    let mut ids: Vec<i64> = start["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3], "{start}");
}
portcullis_testkit::both!(
    an_account_imported_without_answers_chooses_questions_after_sign_in,
    questions_are_chosen_after_sign_in
);

async fn questions_on_the_security_page(backend: Backend) {
    let Some(python) = venv_python() else {
        return;
    };
    let hashes = python_hashes(&python, PASSWORD, 4);
    let app = spawn_app(backend).await;
    registry_cards(&app, 1);
    let file = write_lines(
        &app,
        "p.jsonl",
        &[line("page.person", &card_number(0), &hashes[4].1)],
    );
    let out = cli(&app, &["accounts", "import"], &file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut jar = portcullis_testkit::Jar::default();
    let (_, html) = crate::pages::get(&app, &mut jar, "/").await;
    let csrf = portcullis_testkit::input_value(&html, "csrf").unwrap();
    let res = crate::pages::post(
        &app,
        &mut jar,
        "/",
        &[
            ("csrf", csrf.as_str()),
            ("user_id", "page.person"),
            ("password", PASSWORD),
            ("account_type", "personal"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/security", "asked first");
    let (status, html) = crate::pages::get(&app, &mut jar, "/security").await;
    assert_eq!(status, 200);
    assert!(html.contains("Choose your security questions"), "{html}");
    let csrf = portcullis_testkit::input_value(&html, "csrf").unwrap();
    let mut form = vec![
        ("csrf", csrf.as_str()),
        ("question_0", "4"),
        ("answer_0", "Lisbon"),
        ("question_1", "5"),
        ("answer_1", "Ms Park"),
        ("question_2", "6"),
        ("answer_2", "Toast"),
        ("current_password", WRONG),
    ];
    let res = crate::pages::post(&app, &mut jar, "/security/answers", &form).await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("That is not your current password."),
        "{html}"
    );
    form.pop();
    form.push(("current_password", PASSWORD));
    let res = crate::pages::post(&app, &mut jar, "/security/answers", &form).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Your security questions are saved."),
        "{html}"
    );
    assert!(
        !html.contains("Choose your security questions"),
        "asked no more"
    );
    let (_, html) = crate::pages::get(&app, &mut jar, "/security").await;
    assert!(
        html.contains("Security questions chosen"),
        "in the activity list"
    );
}
portcullis_testkit::both!(
    the_security_page_asks_an_imported_account_for_questions,
    questions_on_the_security_page
);
