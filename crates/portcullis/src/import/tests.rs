use std::io::Write as _;

use portcullis_core::card::Credential;
use portcullis_core::ids::AccountType;
use portcullis_core::ports::RegistryReads;
use portcullis_core::registry::credential_hashes;
use portcullis_crypto::secrets::load_or_create_key;
use portcullis_crypto::KeyedHasher;
use portcullis_store::{SqlStore, StoreOptions};

use super::*;

const HEADER: &str = "account_type,number,verification,expiry,holder_name,email,phone,product,balance,credit_limit,payment_due_date,minimum_due";
const ANN: &str = "personal,378282246310005,8642,2029-08,Ann Example,ann@example.com,+15550100100,Gold Card,1234.56,10000,2026-12-20,35";
const BEN: &str =
    "corporate,371449635398431,7531,2030-01,Ben Sample,ben@example.com,,Corporate Green,0,5000,,";
const SHOP: &str = "merchant,1234567890,AB12CD,,Corner Shop,shop@example.com,,,,,,";

struct Fixture {
    dir: tempfile::TempDir,
    store: SqlStore,
    keys: KeyRing,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("registry.db").display());
        let store = SqlStore::connect(&url, StoreOptions::default())
            .await
            .unwrap();
        let key = load_or_create_key(&dir.path().join("secrets"), "registry.key").unwrap();
        Self {
            dir,
            store,
            keys: KeyRing::single(key),
        }
    }

    fn file(&self, name: &str, lines: &[&str]) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut f = File::create(&path).unwrap();
        for line in lines {
            writeln!(f, "{line}").unwrap();
        }
        path
    }

    /// The audit chain's key as a server without `audit.key` has it: key 1, derived.
    fn audit_key(&self) -> portcullis_core::audit::ChainKey {
        portcullis_core::audit::audit_key(&KeyedHasher::new(self.keys.first().clone())).into()
    }

    async fn import(&self, path: &Path) -> Result<ImportReport, ImportError> {
        let policies = portcullis_core::config::Policies::default();
        let audit = self.audit_key();
        let ctx = ImportContext {
            store: &self.store,
            keys: &self.keys,
            audit: &audit,
            policies: &policies,
            actor: "cli:test",
            now: portcullis_core::clock::UnixTime(1_700_000_000),
        };
        import_file(&ctx, path).await
    }

    async fn count(&self) -> i64 {
        self.store.count_records().await.unwrap()
    }

    async fn product_of(
        &self,
        kind: AccountType,
        number: &str,
        verification: &str,
    ) -> Option<String> {
        let credential = Credential::parse(kind, number, verification).unwrap();
        let current = KeyedHasher::new(self.keys.current().clone());
        let (number_hash, _) = credential_hashes(&current, &credential);
        self.store
            .find_record(i64::from(self.keys.current_id()), &number_hash)
            .await
            .unwrap()
            .map(|r| r.product)
    }
}

fn invalid(result: Result<ImportReport, ImportError>) -> Vec<LineError> {
    match result {
        Err(ImportError::Invalid(errors)) => errors,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn format_error(result: Result<ImportReport, ImportError>) -> (u64, String) {
    match result {
        Err(ImportError::Format { line, message }) => (line, message),
        other => panic!("expected Format, got {other:?}"),
    }
}

#[tokio::test]
async fn a_good_csv_file_is_imported_and_counted() {
    let fx = Fixture::new().await;
    let path = fx.file("registry.csv", &[HEADER, ANN, BEN, SHOP]);
    let report = fx.import(&path).await.unwrap();
    assert_eq!(report.records, 3);
    assert_eq!(fx.count().await, 3);
    assert_eq!(
        fx.product_of(AccountType::Personal, "378282246310005", "8642")
            .await
            .as_deref(),
        Some("Gold Card")
    );
}

#[tokio::test]
async fn header_columns_may_come_in_any_order_with_spaces_and_quotes() {
    let fx = Fixture::new().await;
    let path = fx.file(
        "registry.csv",
        &[
            " number , Account_Type ,verification,expiry,holder_name,email,phone,product,balance,credit_limit,payment_due_date,minimum_due",
            "\"3782 822463 10005\", personal ,8642,2029-08,\"Example, Ann\",ann@example.com,,Gold Card,,,,",
        ],
    );
    assert_eq!(fx.import(&path).await.unwrap().records, 1);
    assert_eq!(fx.count().await, 1);
}

#[tokio::test]
async fn json_lines_are_imported_with_numbers_nulls_and_missing_keys() {
    let fx = Fixture::new().await;
    let path = fx.file(
        "registry.jsonl",
        &[
            r#"{"account_type":"personal","number":378282246310005,"verification":8642,"expiry":"2029-08","holder_name":"Ann Example","email":"ann@example.com","phone":null,"product":"Gold Card","balance":1234.5,"credit_limit":10000}"#,
            "",
            r#"{"account_type":"merchant","number":"1234567890","verification":"AB12CD","holder_name":"Corner Shop","email":"shop@example.com"}"#,
        ],
    );
    assert_eq!(fx.import(&path).await.unwrap().records, 2);
    assert_eq!(fx.count().await, 2);
    assert_eq!(
        fx.product_of(AccountType::Merchant, "1234567890", "AB12CD")
            .await
            .as_deref(),
        Some("")
    );
}

#[tokio::test]
async fn ndjson_is_json_lines_too() {
    let fx = Fixture::new().await;
    let path = fx.file(
        "registry.NDJSON",
        &[r#"{"account_type":"merchant","number":"1234567890","verification":"AB12CD","holder_name":"Corner Shop","email":"shop@example.com"}"#],
    );
    assert_eq!(fx.import(&path).await.unwrap().records, 1);
}

#[tokio::test]
async fn a_byte_order_mark_and_windows_line_ends_are_accepted() {
    let fx = Fixture::new().await;
    let csv = fx.dir.path().join("excel.csv");
    let bad = BEN.replace("2030-01", "2030-1");
    std::fs::write(&csv, format!("\u{feff}{HEADER}\r\n{ANN}\r\n{bad}\r\n")).unwrap();
    let errors = invalid(fx.import(&csv).await);
    assert_eq!((errors[0].line, errors[0].column.as_str()), (3, "expiry"));
    std::fs::write(&csv, format!("\u{feff}{HEADER}\r\n{ANN}\r\n{BEN}\r\n")).unwrap();
    assert_eq!(fx.import(&csv).await.unwrap().records, 2);

    let jsonl = fx.dir.path().join("export.jsonl");
    let row = r#"{"account_type":"merchant","number":"1234567890","verification":"AB12CD","holder_name":"Corner Shop","email":"shop@example.com"}"#;
    std::fs::write(&jsonl, format!("\u{feff}{row}\r\n")).unwrap();
    assert_eq!(fx.import(&jsonl).await.unwrap().records, 1);
    assert_eq!(fx.count().await, 3);
}

#[tokio::test]
async fn line_numbers_count_blank_lines_and_line_breaks_inside_quotes() {
    let fx = Fixture::new().await;
    let quoted = ANN.replace("Ann Example", "\"Ann\nExample\"");
    let bad = BEN.replace("2030-01", "2030-1");
    let path = fx.file("registry.csv", &["", HEADER, "", &quoted, "", "", &bad]);
    let errors = invalid(fx.import(&path).await);
    assert_eq!((errors[0].line, errors[0].column.as_str()), (8, "expiry"));
}

#[tokio::test]
async fn reimporting_updates_a_record_in_place() {
    let fx = Fixture::new().await;
    fx.import(&fx.file("first.csv", &[HEADER, ANN, BEN]))
        .await
        .unwrap();
    let changed = ANN.replace("Gold Card", "Platinum Card");
    fx.import(&fx.file("second.csv", &[HEADER, &changed]))
        .await
        .unwrap();
    assert_eq!(fx.count().await, 2);
    assert_eq!(
        fx.product_of(AccountType::Personal, "378282246310005", "8642")
            .await
            .as_deref(),
        Some("Platinum Card")
    );
}

#[tokio::test]
async fn one_bad_line_imports_nothing_and_is_named() {
    let fx = Fixture::new().await;
    let bad = BEN.replace("2030-01", "2030-13");
    let errors = invalid(
        fx.import(&fx.file("registry.csv", &[HEADER, ANN, &bad, SHOP]))
            .await,
    );
    assert_eq!(
        errors,
        [LineError {
            line: 3,
            column: "expiry".into(),
            message: "must be YYYY-MM".into()
        }]
    );
    assert_eq!(
        errors[0].to_string(),
        "line 3, column expiry: must be YYYY-MM"
    );
    assert_eq!(fx.count().await, 0);
}

#[tokio::test]
async fn every_bad_line_is_reported_not_just_the_first() {
    let fx = Fixture::new().await;
    let bad_expiry = ANN.replace("2029-08", "08/29");
    let bad_type = BEN.replace("corporate", "premium");
    let errors = invalid(
        fx.import(&fx.file("registry.csv", &[HEADER, &bad_expiry, SHOP, &bad_type]))
            .await,
    );
    let named: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.column.as_str())).collect();
    assert_eq!(named, [(2, "expiry"), (4, "account_type")]);
}

#[tokio::test]
async fn a_bad_line_after_several_batches_rolls_back_the_written_ones() {
    let fx = Fixture::new().await;
    let path = fx.dir.path().join("big.csv");
    crate::gen::write_demo_registry(&path, 2_500, 5).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(f, "{}", ANN.replace("ann@example.com", "not-an-email")).unwrap();
    drop(f);
    let errors = invalid(fx.import(&path).await);
    assert_eq!(
        (errors[0].line, errors[0].column.as_str()),
        (2_502, "email")
    );
    assert_eq!(fx.count().await, 0);

    crate::gen::write_demo_registry(&path, 2_500, 5).unwrap();
    assert_eq!(fx.import(&path).await.unwrap().records, 2_500);
    assert_eq!(fx.count().await, 2_500);
}

#[tokio::test]
async fn errors_stop_at_the_cap() {
    let fx = Fixture::new().await;
    let bad = ANN.replace("2029-08", "soon");
    let mut lines = vec![HEADER];
    lines.extend(std::iter::repeat_n(bad.as_str(), MAX_ERRORS + 50));
    let errors = invalid(fx.import(&fx.file("registry.csv", &lines)).await);
    assert_eq!(errors.len(), MAX_ERRORS);
    let text = ImportError::Invalid(errors).to_string();
    assert!(text.starts_with("100 errors in the file; nothing was imported\nline 2, column expiry"));
    assert!(text.ends_with("(the list stops at 100 errors)"));
}

#[tokio::test]
async fn an_unknown_csv_column_is_refused() {
    let fx = Fixture::new().await;
    let header = format!("{HEADER},nickname");
    let row = format!("{ANN},Annie");
    let (line, message) = format_error(fx.import(&fx.file("registry.csv", &[&header, &row])).await);
    assert_eq!(line, 1);
    assert!(message.contains("unknown column \"nickname\""), "{message}");
    assert_eq!(fx.count().await, 0);
}

#[tokio::test]
async fn a_missing_or_repeated_csv_column_is_refused() {
    let fx = Fixture::new().await;
    let header = HEADER
        .replace(",phone", "")
        .replace("minimum_due", "balance");
    let (line, message) = format_error(fx.import(&fx.file("registry.csv", &[&header])).await);
    assert_eq!(line, 1);
    assert!(
        message.contains("column balance appears twice"),
        "{message}"
    );
    assert!(
        message.contains("missing columns phone, minimum_due"),
        "{message}"
    );
}

#[tokio::test]
async fn a_row_with_the_wrong_number_of_cells_names_its_line() {
    let fx = Fixture::new().await;
    let short = "personal,378282246310005,8642";
    let (line, message) = format_error(
        fx.import(&fx.file("registry.csv", &[HEADER, ANN, short]))
            .await,
    );
    assert_eq!(
        (line, message.as_str()),
        (3, "has 3 cells but the header row has 12")
    );
    assert_eq!(fx.count().await, 0);
}

#[tokio::test]
async fn an_unknown_jsonl_key_names_the_line_and_the_key() {
    let fx = Fixture::new().await;
    let path = fx.file(
        "registry.jsonl",
        &[
            r#"{"account_type":"merchant","number":"1234567890","verification":"AB12CD","holder_name":"Corner Shop","email":"shop@example.com"}"#,
            r#"{"account_type":"merchant","number":"1234567891","verification":"AB12CD","holder_name":"Corner Shop","email":"shop@example.com","nickname":"x"}"#,
        ],
    );
    let errors = invalid(fx.import(&path).await);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 2);
    assert!(
        errors[0]
            .to_string()
            .starts_with("line 2: unknown key \"nickname\""),
        "{}",
        errors[0]
    );
    assert_eq!(fx.count().await, 0);
}

#[tokio::test]
async fn json_that_does_not_parse_names_the_line() {
    let fx = Fixture::new().await;
    let path = fx.file(
        "registry.jsonl",
        &[
            r#"{"account_type":"merchant","number":"1234567890","verification":"AB12CD","holder_name":"Corner Shop","email":"shop@example.com"}"#,
            r#"{"account_type":"personal","number":"378282246310005""#,
        ],
    );
    let (line, message) = format_error(fx.import(&path).await);
    assert_eq!(line, 2);
    assert!(message.starts_with("is not valid JSON"), "{message}");
    let (line, _) = format_error(fx.import(&fx.file("array.jsonl", &["[1,2]"])).await);
    assert_eq!(line, 1);
}

#[tokio::test]
async fn a_number_twice_in_one_file_names_both_lines() {
    let fx = Fixture::new().await;
    let again = ANN
        .replace("378282246310005", "3782-822463-10005")
        .replace("8642", "1111");
    let errors = invalid(
        fx.import(&fx.file("registry.csv", &[HEADER, ANN, BEN, SHOP, &again]))
            .await,
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "line 5, column number: the same number as line 2"
    );
    assert_eq!(fx.count().await, 0);
}

#[tokio::test]
async fn an_empty_file_or_a_header_alone_imports_nothing() {
    let fx = Fixture::new().await;
    let empty = fx.dir.path().join("empty.csv");
    File::create(&empty).unwrap();
    assert_eq!(fx.import(&empty).await.unwrap().records, 0);
    assert_eq!(
        fx.import(&fx.file("header.csv", &[HEADER]))
            .await
            .unwrap()
            .records,
        0
    );
    assert_eq!(
        fx.import(&fx.file("blank.jsonl", &["", "  "]))
            .await
            .unwrap()
            .records,
        0
    );
    assert_eq!(fx.count().await, 0);
}

#[tokio::test]
async fn a_missing_file_is_an_io_error_naming_it() {
    let fx = Fixture::new().await;
    let path = fx.dir.path().join("nope.csv");
    let err = fx.import(&path).await.unwrap_err();
    assert!(matches!(err, ImportError::Io { .. }));
    assert!(err.to_string().contains("nope.csv"));
}

/// Every way a card number or card ID could end up in the wrong place, and no message
/// that quotes it.
#[tokio::test]
async fn error_messages_never_contain_card_numbers_or_ids() {
    let fx = Fixture::new().await;
    let secrets = [
        "378282246310005",
        "3782822463",
        "378282246310006",
        "8642",
        "AB12CD",
    ];
    let bad_luhn = ANN.replace("378282246310005", "378282246310006");
    let number_as_email = ANN.replace("ann@example.com", "378282246310005");
    let id_as_expiry = ANN.replace("2029-08", "8642");
    let files: Vec<PathBuf> = vec![
        // No header row: the first data row is read as the header.
        fx.file("no-header.csv", &[ANN, BEN]),
        fx.file("no-header-merchant.csv", &[SHOP]),
        fx.file(
            "header-of-numbers.csv",
            &[&HEADER.replace("holder_name", "378282246310005")],
        ),
        fx.file(
            "values.csv",
            &[HEADER, &bad_luhn, &number_as_email, &id_as_expiry],
        ),
        fx.file("dup.csv", &[HEADER, ANN, ANN]),
        fx.file("key.jsonl", &[r#"{"378282246310005":"8642"}"#]),
        fx.file("string.jsonl", &[r#""378282246310005""#]),
        fx.file(
            "broken.jsonl",
            &[r#"{"number":"378282246310005" "verification":"8642"}"#],
        ),
        fx.file(
            "typed.jsonl",
            &[r#"{"number":["378282246310005"],"verification":{"v":"8642"}}"#],
        ),
    ];
    for path in files {
        let message = fx.import(&path).await.unwrap_err().to_string();
        for secret in secrets {
            assert!(
                !message.contains(secret),
                "{} leaks {secret}: {message}",
                path.display()
            );
        }
    }
    assert_eq!(fx.count().await, 0);
}

const LIFECYCLE_HEADER: &str = "account_type,number,verification,expiry,holder_name,email,phone,product,balance,credit_limit,payment_due_date,minimum_due,status,replaces";

impl Fixture {
    async fn record(&self, number: &str) -> portcullis_core::ports::RegistryRow {
        let credential = Credential::parse(AccountType::Personal, number, "8642").unwrap();
        let current = KeyedHasher::new(self.keys.current().clone());
        let (number_hash, _) = credential_hashes(&current, &credential);
        self.store
            .find_record(i64::from(self.keys.current_id()), &number_hash)
            .await
            .unwrap()
            .unwrap()
    }

    /// An online account on the card `number` (already imported), as registration makes it.
    async fn account_on(&self, number: &str) -> i64 {
        use portcullis_core::ports::{NewAccount, Transactions};
        let record = self.record(number).await;
        let now = portcullis_core::clock::UnixTime(1_700_000_000);
        let step = [5u8; 32];
        let mut w = self.store.begin(now);
        w.create_step(
            &step,
            portcullis_core::steps::StepKind::Registration,
            record.id,
            "",
            now.plus_secs(600),
        )
        .await
        .unwrap();
        let id = w
            .create_account(NewAccount {
                user_id: "ann1".into(),
                user_id_canonical: "ann1".into(),
                account_type: AccountType::Personal,
                password_hash: "x".into(),
                security_answers: Vec::new(),
                code_channel: portcullis_core::contact::CodeChannel::Email,
                email: Some("ann@example.com".into()),
                phone: None,
                registry_record_id: record.id,
                step_token_hash: step,
            })
            .await
            .unwrap();
        w.commit(&self.audit_key()).await.unwrap();
        id
    }
}

#[tokio::test]
async fn status_and_replaces_columns_move_the_account_in_the_import() {
    use portcullis_core::ports::{AccountReads, AuditReads, OutboxReads};
    use portcullis_core::registry::CardStatus;
    let fx = Fixture::new().await;
    // Files without the two columns keep working; the card is active.
    let path = fx.file("registry.csv", &[HEADER, ANN]);
    fx.import(&path).await.unwrap();
    assert_eq!(
        fx.record("378282246310005").await.status,
        CardStatus::Active
    );
    let id = fx.account_on("378282246310005").await;
    let now = portcullis_core::clock::UnixTime(1_700_000_000);
    let pending = fx.store.outbox_stats(now).await.unwrap().pending;
    let audited = fx.store.audit_head().await.unwrap().0;

    let path = fx.file(
        "reissue.csv",
        &[
            LIFECYCLE_HEADER,
            "personal,378282246310005,8642,2029-08,Ann Example,ann@example.com,,Gold Card,,,,,lost_stolen,",
            "personal,4111111111111111,8642,2031-08,Ann Example,ann@example.com,,Gold Card,,,,,,3782 8224 6310 005",
        ],
    );
    let report = fx.import(&path).await.unwrap();
    assert_eq!((report.load.reissues, report.load.status_changes), (1, 1));
    let cards = fx.store.cards_for_account(id).await.unwrap();
    assert_eq!(
        cards.iter().map(|c| c.last4.as_str()).collect::<Vec<_>>(),
        ["1111"]
    );
    let old = fx.record("378282246310005").await;
    assert_eq!(
        (old.status, old.replaced, old.account_id),
        (CardStatus::LostStolen, true, None)
    );
    // The notices (lost card, new card) and the audit events (status change, reissue, the
    // load) committed with the records.
    assert_eq!(
        fx.store.outbox_stats(now).await.unwrap().pending,
        pending + 2
    );
    assert_eq!(fx.store.audit_head().await.unwrap().0, audited + 3);
    // Importing the same file again changes nothing more.
    let again = fx.import(&path).await.unwrap();
    assert_eq!((again.load.reissues, again.load.status_changes), (0, 0));
}

#[tokio::test]
async fn a_bad_status_or_replaces_names_its_line_and_column() {
    let fx = Fixture::new().await;
    let path = fx.file(
        "registry.csv",
        &[
            LIFECYCLE_HEADER,
            "personal,378282246310005,8642,2029-08,Ann Example,ann@example.com,,Gold Card,,,,,stolen,",
            "personal,4111111111111111,8642,2031-08,Ann Example,ann@example.com,,Gold Card,,,,,,1234",
        ],
    );
    let errors = invalid(fx.import(&path).await);
    let named: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.column.as_str())).collect();
    assert_eq!(named, [(2, "status"), (3, "replaces")]);
    assert_eq!(fx.count().await, 0);
    let path = fx.file(
        "registry.jsonl",
        &[r#"{"account_type":"personal","number":"378282246310005","verification":"8642","expiry":"2029-08","holder_name":"Ann Example","email":"ann@example.com","status":"closed"}"#],
    );
    fx.import(&path).await.unwrap();
    assert_eq!(
        fx.record("378282246310005").await.status,
        portcullis_core::registry::CardStatus::Closed
    );
}
