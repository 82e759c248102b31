//! Keys from the environment (docs/configuration.md, "Keys from the environment"): with
//! `PORTCULLIS_KEY_REGISTRY` (a keyring's text) and `PORTCULLIS_KEY_FACTOR` (one base64 key)
//! set and no such files, the real server registers and signs in, writes neither file,
//! never logs the keys, and `keys rotate` refuses naming the variable.

use base64::Engine;
use portcullis_testkit::{both, Backend, RealServer, TestDb};
use serde_json::json;

use crate::operations::{answers, clean, client, parse_card, post, run};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

async fn keys_from_the_environment(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (one, two) = ("1f".repeat(32), "2e".repeat(32));
    let registry = format!("current 2\nkey 1 {one}\nkey 2 {two}\n");
    let factor = base64::engine::general_purpose::STANDARD.encode([0x5a; 32]);
    let env = vec![
        ("PORTCULLIS_DATABASE_URL", db.url.clone()),
        ("PORTCULLIS_KEY_REGISTRY", registry.clone()),
        ("PORTCULLIS_KEY_FACTOR", factor.clone()),
        ("PORTCULLIS_HASHING_MEMORY_KIB", "64".into()),
        ("PORTCULLIS_HASHING_ITERATIONS", "1".into()),
        ("PORTCULLIS_RISK_NEW_DEVICE_STEP_UP", "false".into()),
        ("RUST_LOG", "debug,sqlx=warn".into()),
    ];
    let mut server = RealServer::start(bin(), &env);
    let secrets = server.dir.path().join("secrets");
    for name in ["registry.key", "factor.key"] {
        assert!(!secrets.join(name).exists(), "{name} written to a file");
    }
    assert!(
        secrets.join("csrf.key").exists(),
        "the other keys are files"
    );

    // A demo card (loaded under the environment's current registry key) registers, and the
    // new account signs in.
    let banner = std::fs::read_to_string(&server.stdout).unwrap();
    let card = banner
        .lines()
        .filter_map(parse_card)
        .find(|c| c.account_type == "personal")
        .expect("a personal demo card");
    let c = client();
    let (status, body) = post(
        &c,
        server.url("/api/v1/registration/verify-card"),
        json!({"account_type": "personal", "number": card.number,
               "verification": card.verification}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let password = "Harbour-Lantern-42!";
    let (status, body) = post(
        &c,
        server.url("/api/v1/registration/complete"),
        json!({"registration_token": body["registration_token"], "user_id": "env.keys",
               "password": password, "security_answers": answers(), "code_channel": "email"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &c,
        server.url("/api/v1/sessions"),
        json!({"user_id": "env.keys", "password": password, "account_type": "personal"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Rotation is refused, naming the variable; so is retiring.
    let command = |args: &[&str]| {
        let mut cmd = clean(server.dir.path());
        cmd.args(args)
            .env("PORTCULLIS_DATABASE_URL", &db.url)
            .env("PORTCULLIS_SECRETS_DIR", &secrets)
            .env("PORTCULLIS_KEY_REGISTRY", &registry)
            .env("PORTCULLIS_KEY_FACTOR", &factor);
        cmd
    };
    let (code, out, err) = run(command(&["keys", "rotate", "registry.key"]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("registry.key comes from the environment variable PORTCULLIS_KEY_REGISTRY"),
        "{err}"
    );
    let (code, _, err) = run(command(&["keys", "retire", "registry.key", "1"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the environment variable PORTCULLIS_KEY_REGISTRY"),
        "{err}"
    );
    assert!(!secrets.join("registry.key").exists());
    // `keys status` and `db check` read the same keys.
    let (code, out, err) = run(command(&["keys", "status"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("registry.key") && l.contains("current 2")),
        "{out}"
    );
    let (code, out, err) = run(command(&["db", "check"]));
    assert_eq!(code, 0, "{out}{err}");
    // A malformed value stops a command, naming the variable only.
    let mut malformed = command(&["keys", "status"]);
    malformed.env("PORTCULLIS_KEY_FACTOR", "not-a-key-0123456789");
    let (code, out, err) = run(malformed);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("PORTCULLIS_KEY_FACTOR"), "{err}");
    assert!(!err.contains("not-a-key-0123456789"), "{err}");
    // So does a value that is not UTF-8 (it is set: never ignored for the file).
    let mut not_utf8 = command(&["keys", "status"]);
    not_utf8.env(
        "PORTCULLIS_KEY_FACTOR",
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff\xfekey"),
    );
    let (code, out, err) = run(not_utf8);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("PORTCULLIS_KEY_FACTOR"), "{err}");

    server.stop();
    let logs = std::fs::read_to_string(&server.stderr).unwrap();
    for secret in [&one, &two, &factor] {
        assert!(!logs.contains(secret.as_str()), "a key was logged");
    }
    assert!(!banner.contains(&two), "a key was printed");
}
both!(
    keys_from_the_environment_serve_without_files_and_refuse_rotation,
    keys_from_the_environment
);
