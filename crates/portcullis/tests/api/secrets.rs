//! Secret hygiene: after a full flow on the real binary, neither the database files, nor
//! the logs, nor the outbox hold a card number, a card ID, a password, a security answer or
//! a token in clear.

use portcullis_testkit::{input_value, Jar, RealServer};
use serde_json::{json, Value};

// The demo's second personal card (Ben's): loaded by --demo but, unlike the first card of
// each account type, not printed.
const PAN: &str = "371449635398431";
const CID: &str = "5678";
const PASSWORD: &str = "Unusual-Pass-913";
const ANSWER: &str = "Quokka Reginald";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_clear_in_database_logs_or_outbox() {
    let mut server = RealServer::start(
        bin(),
        &[
            ("RUST_LOG", "debug".into()),
            ("PORTCULLIS_HASHING_MEMORY_KIB", "64".into()),
            ("PORTCULLIS_HASHING_ITERATIONS", "1".into()),
        ],
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |path: &str, body: Value| client.post(server.url(path)).json(&body).send();

    // Register and use the account through the API...
    let res = post(
        "/api/v1/registration/verify-card",
        json!({"account_type": "personal", "number": PAN, "verification": CID}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let reg_token = res.json::<Value>().await.unwrap()["registration_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = post(
        "/api/v1/registration/complete",
        json!({"registration_token": reg_token, "user_id": "ben.sample", "password": PASSWORD,
               "security_answers": [{"question_id": 1, "answer": ANSWER}, {"question_id": 2, "answer": "Trabant 601"}, {"question_id": 3, "answer": "Hieronymus"}],
               "code_channel": "email"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let res = post(
        "/api/v1/sessions",
        json!({"user_id": "ben.sample", "password": PASSWORD, "account_type": "personal"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let signed_in = res.json::<Value>().await.unwrap();
    let session = signed_in["session_token"].as_str().unwrap().to_owned();
    // The same device signs in on the pages below (a new one would be asked for a code).
    let device = signed_in["device_token"].as_str().unwrap().to_owned();
    // An authenticator secret and recovery codes are shown once and kept only sealed or hashed.
    let enrol: Value = client
        .post(server.url("/api/v1/me/factors/totp"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let totp_secret = enrol["secret"].as_str().unwrap().to_owned();
    let codes: Value = client
        .post(server.url("/api/v1/me/factors/recovery-codes"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recovery_code = codes["codes"][0].as_str().unwrap().replace('-', "");
    assert_eq!(
        client
            .get(server.url("/api/v1/me"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // ...with failures and bad input on the way...
    for _ in 0..3 {
        post("/api/v1/sessions", json!({"user_id": "ben.sample", "password": format!("{PASSWORD}x"), "account_type": "personal"})).await.unwrap();
    }
    post(
        "/api/v1/registration/verify-card",
        json!({"account_type": "personal", "number": PAN, "verification": "0000"}),
    )
    .await
    .unwrap();
    client
        .post(server.url("/api/v1/registration/verify-card"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"account_type":"personal","number":{PAN},"verification":{CID}}}"#
        ))
        .send()
        .await
        .unwrap();
    // ...and through the pages, with a cookie session.
    let mut jar = Jar(vec![("__Host-portcullis_device".into(), device.clone())]);
    let res = client.get(server.url("/")).send().await.unwrap();
    jar.absorb(&res);
    let csrf = input_value(&res.text().await.unwrap(), "csrf").unwrap();
    let res = client
        .post(server.url("/"))
        .header("cookie", jar.header())
        .form(&[
            ("csrf", csrf.as_str()),
            ("user_id", "ben.sample"),
            ("password", PASSWORD),
            ("account_type", "personal"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    jar.absorb(&res);
    let cookie_token = jar.get("__Host-portcullis_session").unwrap().to_owned();
    assert_eq!(
        client
            .get(server.url("/account"))
            .header("cookie", jar.header())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .delete(server.url("/api/v1/sessions/current"))
            .bearer_auth(&session)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    server.stop();

    let secrets = [
        PAN,
        PASSWORD,
        ANSWER,
        &ANSWER.to_lowercase(),
        &session,
        &cookie_token,
        &reg_token,
        &device,
        &totp_secret,
        &recovery_code,
    ];
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(server.dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(server.stdout.clone());
    files.push(server.stderr.clone());
    files.push(server.dir.path().join("outbox.jsonl"));
    assert!(files.len() >= 4, "{files:?}");
    let logs = std::fs::read_to_string(&server.stderr).unwrap();
    assert!(logs.lines().count() > 10, "the server logged the flow");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{} holds a secret in clear",
                file.display()
            );
        }
    }
    // The card ID is only four digits, so look for it as a value: in no database column
    // and in no log field.
    let db = server.dir.path().join("data/portcullis.db");
    let conn_url = format!("sqlite://{}?mode=ro", db.display());
    use sqlx::{Connection, Row};
    let mut conn = sqlx::SqliteConnection::connect(&conn_url).await.unwrap();
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("name"))
        .collect();
    for table in tables {
        let columns: Vec<String> =
            sqlx::query(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("name"))
                .collect();
        for column in columns {
            let n: i64 = sqlx::query(&format!(
                "SELECT COUNT(*) AS n FROM \"{table}\" WHERE CAST(\"{column}\" AS TEXT) = ?1 OR CAST(\"{column}\" AS TEXT) LIKE ?2"
            ))
            .bind(CID)
            .bind(format!("%{PAN}%"))
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get("n");
            assert_eq!(n, 0, "{table}.{column} holds the card ID or number");
        }
    }
    for line in logs.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        let mut strings = Vec::new();
        collect_strings(&v, &mut strings);
        assert!(
            !strings.iter().any(|s| s == CID
                || s.contains(&format!(" {CID} "))
                || s.contains(&format!("={CID}"))),
            "log line holds the card ID: {line}"
        );
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}
