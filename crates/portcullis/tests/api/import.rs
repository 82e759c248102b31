//! `portcullis registry import FILE` on the real binary, against the database a running
//! server uses: what it imports, the server can verify at once; a bad file imports nothing.

use portcullis_testkit::{spawn_app, Backend, TestApp};
use serde_json::json;

const HEADER: &str = "account_type,number,verification,expiry,holder_name,email,phone,product,balance,credit_limit,payment_due_date,minimum_due";

fn import(app: &TestApp, file: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["registry", "import"])
        .arg(file)
        .env("PORTCULLIS_DATABASE_URL", &app.db.url)
        .env("PORTCULLIS_SECRETS_DIR", &app.config.secrets_dir)
        .output()
        .unwrap()
}

async fn verify(app: &TestApp, number: &str, cid: &str) -> u16 {
    app.post_json(
        "/api/v1/registration/verify-card",
        &json!({"account_type": "personal", "number": number, "verification": cid}),
    )
    .await
    .status()
    .as_u16()
}

async fn cli_import(backend: Backend) {
    let app = spawn_app(backend).await;
    let good = app.dir.path().join("cards.csv");
    std::fs::write(
        &good,
        format!("{HEADER}\npersonal,4111111111111111,321,2030-04,Dana Doe,dana@example.com,+15550100199,Blue Card,12.00,5000,2026-12-01,5.00\n"),
    )
    .unwrap();
    let out = import(&app, &good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 1 records"));
    assert_eq!(verify(&app, "4111111111111111", "321").await, 200);

    // A file with a bad line imports nothing, and says which line and column.
    let bad = app.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "{HEADER}\npersonal,5555555555554444,456,2030-04,Eve Doe,eve@example.com,,Green Card,,,,\npersonal,4012888888881881,789,2030-13,Finn Doe,finn@example.com,,Green Card,,,,\n"
        ),
    )
    .unwrap();
    let out = import(&app, &bad);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("expiry"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("4012888888881881"),
        "no card number in errors"
    );
    assert_eq!(
        verify(&app, "5555555555554444", "456").await,
        400,
        "the good line was not imported either"
    );
}
portcullis_testkit::both!(
    registry_import_from_the_command_line_is_all_or_nothing,
    cli_import
);
