//! The suite calls every method of every storage port: a method added to a port and never
//! exercised here fails this test (the conformance suite once skipped three ports whole).

use std::collections::BTreeSet;

/// The ports the store implements (the notifier is the delivery worker's).
const PORT_FILES: &[&str] = &[
    "account_import.rs",
    "accounts.rs",
    "admin.rs",
    "audit.rs",
    "card_guard.rs",
    "card_lifecycle.rs",
    "claims.rs",
    "devices.rs",
    "factors.rs",
    "keys.rs",
    "lockout.rs",
    "mod.rs",
    "oidc_jwks.rs",
    "outbox.rs",
    "registry.rs",
    "sessions.rs",
    "status.rs",
    "steps.rs",
    "webhooks.rs",
    "work.rs",
];

/// Trait methods that are not storage: the notifier is implemented by the worker, the
/// JWKS fetcher by the HTTP adapter.
const NOT_STORAGE: &[&str] = &["queued", "fetch_jwks"];

/// The methods declared inside `pub trait … { … }` blocks of `src`.
fn trait_methods(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut in_trait = false;
    for line in src.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        if depth == 0 && code.starts_with("pub trait ") {
            in_trait = true;
        }
        if in_trait && depth == 1 {
            for prefix in ["async fn ", "fn "] {
                if let Some(rest) = code.strip_prefix(prefix) {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    out.push(name);
                }
            }
        }
        depth += code.matches('{').count();
        depth = depth.saturating_sub(code.matches('}').count());
        if depth == 0 {
            in_trait = false;
        }
    }
    out
}

#[test]
fn every_port_method_is_exercised() {
    let ports = concat!(env!("CARGO_MANIFEST_DIR"), "/../portcullis-core/src/ports");
    let mut methods = BTreeSet::new();
    for file in PORT_FILES {
        let src = std::fs::read_to_string(format!("{ports}/{file}")).unwrap();
        methods.extend(trait_methods(&src));
    }
    assert!(methods.len() > 90, "{} port methods found", methods.len());
    let suite_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance");
    let mut suite = String::new();
    for entry in std::fs::read_dir(suite_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n != "coverage.rs") {
            suite.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    let missing: Vec<&String> = methods
        .iter()
        .filter(|m| !NOT_STORAGE.contains(&m.as_str()))
        .filter(|m| !suite.contains(&format!(".{m}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "port methods the conformance suite never calls: {missing:?}"
    );
}
