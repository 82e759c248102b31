//! `portcullis accounts import FILE`: online accounts from an issuer's earlier login system,
//! one JSON object a line (contract "Accounts import"), all or nothing.
//!
//! This module owns the file side: reading lines, numbering them, and turning each JSON
//! object into an [`AccountImportLine`] with field-named errors. What makes an account valid
//! (and the write, in one unit of work) is the core's `import_accounts`. No value reaches
//! an error message: a JSON syntax error is reported by line and column only, and a field of
//! the wrong type by its name.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use portcullis_core::service::{
    AccountImportError, AccountImportLine, AccountImportReport, ImportLineError, Portcullis,
    MAX_IMPORT_ERRORS,
};
use portcullis_crypto::legacy::Ceilings;
use serde_json::{Map, Value};

/// The fields a line may have; `security_answers` is refused by name with a reason.
const REQUIRED: [&str; 7] = [
    "user_id",
    "account_type",
    "card_number",
    "password_hash",
    "email",
    "phone",
    "created_at",
];
const OPTIONAL: [&str; 1] = ["must_change_password"];

#[derive(Debug, thiserror::Error)]
pub enum AccountsFileError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", summary(.0))]
    Invalid(Vec<ImportLineError>),
    #[error(transparent)]
    Service(#[from] portcullis_core::ServiceError),
}

fn summary(errors: &[ImportLineError]) -> String {
    let mut out = format!(
        "{} error{} in the file; nothing was imported",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        out.push('\n');
        out.push_str(&e.to_string());
    }
    if errors.len() >= MAX_IMPORT_ERRORS {
        out.push_str(&format!("\n(the list stops at {MAX_IMPORT_ERRORS} errors)"));
    }
    out
}

/// Reads the file, then imports every account in it, or none.
pub async fn import_file(
    app: &Portcullis,
    ceilings: &Ceilings,
    path: &Path,
) -> Result<AccountImportReport, AccountsFileError> {
    let lines = read_file(path)?;
    match app.import_accounts(&lines, ceilings).await {
        Ok(report) => {
            tracing::info!(accounts = report.accounts, "accounts imported");
            Ok(report)
        }
        Err(AccountImportError::Invalid(errors)) => Err(AccountsFileError::Invalid(errors)),
        Err(AccountImportError::Service(e)) => Err(e.into()),
    }
}

/// Every non-blank line of the file as an [`AccountImportLine`], or the errors of the bad ones.
pub fn read_file(path: &Path) -> Result<Vec<AccountImportLine>, AccountsFileError> {
    let io = |source| AccountsFileError::Io {
        path: path.to_owned(),
        source,
    };
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for (index, text) in reader.lines().enumerate() {
        let text = text.map_err(io)?;
        let number = index as u64 + 1;
        if text.trim().is_empty() {
            continue;
        }
        match parse_line(number, &text) {
            Ok(line) => lines.push(line),
            Err(mut e) => errors.append(&mut e),
        }
        if errors.len() >= MAX_IMPORT_ERRORS {
            break;
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        errors.truncate(MAX_IMPORT_ERRORS);
        Err(AccountsFileError::Invalid(errors))
    }
}

fn parse_line(line: u64, text: &str) -> Result<AccountImportLine, Vec<ImportLineError>> {
    let error = |field: &str, message: String| ImportLineError {
        line,
        field: field.into(),
        message,
    };
    let object: Map<String, Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err(vec![error("", "not a JSON object".into())]),
        // serde_json's message can quote the text; only its position is shown.
        Err(e) => {
            return Err(vec![error(
                "",
                format!("not valid JSON (at column {})", e.column()),
            )])
        }
    };
    let mut errors = Vec::new();
    for key in object.keys() {
        if key == "security_answers" {
            errors.push(error(
                key,
                "security answers hashed by the earlier system cannot be imported: leave them \
                 out, and the person chooses questions again"
                    .into(),
            ));
        } else if !REQUIRED.contains(&key.as_str()) && !OPTIONAL.contains(&key.as_str()) {
            let shown =
                printable(key).map_or("(name not shown)".to_owned(), |k| format!("\"{k}\""));
            errors.push(error("", format!("unknown field {shown}")));
        }
    }
    let mut text_field = |name: &str, required: bool| -> Option<String> {
        match object.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            // created_at may be given as Unix seconds.
            Some(Value::Number(n)) if name == "created_at" => Some(n.to_string()),
            Some(Value::Null) | None if !required => None,
            None => {
                errors.push(error(name, "missing".into()));
                None
            }
            Some(_) => {
                errors.push(error(name, "must be a string".into()));
                None
            }
        }
    };
    let user_id = text_field("user_id", true);
    let account_type = text_field("account_type", true);
    let card_number = text_field("card_number", true);
    let password_hash = text_field("password_hash", true);
    let email = text_field("email", false);
    let phone = text_field("phone", false);
    let created_at = text_field("created_at", true);
    let must_change_password = match object.get("must_change_password") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(error(
                "must_change_password",
                "must be true or false".into(),
            ));
            false
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(AccountImportLine {
        line,
        user_id: user_id.unwrap_or_default(),
        account_type: account_type.unwrap_or_default(),
        card_number: card_number.unwrap_or_default(),
        password_hash: password_hash.unwrap_or_default(),
        email,
        phone,
        created_at: created_at.unwrap_or_default(),
        must_change_password,
    })
}

/// A key is echoed only when it cannot be a card number or a hash written by mistake.
fn printable(name: &str) -> Option<&str> {
    let word_like = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    let digits = name.chars().filter(char::is_ascii_digit).count();
    (!name.is_empty() && name.len() <= 40 && word_like && digits <= 2).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"user_id":"dana.doe","account_type":"personal","card_number":"4111111111111111","password_hash":"$2b$04$x","email":"dana@example.com","phone":null,"created_at":"2020-01-02T03:04:05Z"}"#;

    #[test]
    fn a_good_line_reads_every_field() {
        let line = parse_line(3, GOOD).unwrap();
        assert_eq!(line.line, 3);
        assert_eq!(line.user_id, "dana.doe");
        assert_eq!(line.phone, None);
        assert!(!line.must_change_password);
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let bad = r#"{"user_id":"dana.doe","account_type":"personal","card_number":4111111111111111,"password_hash":"$2b$04$x","email":"dana@example.com","created_at":"x","must_change_password":"yes","4111111111111111":1}"#;
        let errors = parse_line(7, bad).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"card_number"), "{errors:?}");
        assert!(fields.contains(&"must_change_password"), "{errors:?}");
        for e in &errors {
            assert_eq!(e.line, 7);
            assert!(!e.to_string().contains("4111111111111111"), "{e}");
        }
        let syntax = parse_line(2, r#"{"card_number": "4111111111111111"#).unwrap_err();
        assert!(!syntax[0].message.contains("4111"), "{:?}", syntax);
    }

    #[test]
    fn security_answers_are_refused_by_name() {
        let with = GOOD.replace('}', r#","security_answers":[]}"#);
        let errors = parse_line(1, &with).unwrap_err();
        assert_eq!(errors[0].field, "security_answers");
    }
}
