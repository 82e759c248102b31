//! `portcullis validate-config`: everything that would stop a restart, found before it.
//!
//! The configuration has already parsed (unknown keys and bad values fail earlier). This
//! adds what only the host can tell: production mode's refusals, the secrets folder, the
//! files the configuration names (the TLS certificate and key: they exist, parse and match),
//! and the database (reachable, and its schema against this binary's migrations). Nothing
//! is created or changed.

use std::process::ExitCode;

use portcullis_crypto::secrets::load_existing_key;
use portcullis_store::{SqlStore, StoreOptions};

use crate::app::{redact_url, CSRF_KEY, FACTOR_KEY, KEYS_THE_DATA_NEEDS, OUTBOX_KEY, REGISTRY_KEY};
use crate::config::{Config, Mode};
use crate::db::sqlite_path;
use crate::mode;

/// What was found: problems stop a start; notes are advice.
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

/// Checks `config` as `serve` would run it (without `--demo`).
pub async fn findings(config: &Config) -> Findings {
    let mut f = Findings::default();
    let mode = match mode::effective(config, false) {
        Ok(m) => m,
        Err(e) => {
            f.problems.push(e.to_string());
            return f;
        }
    };
    if mode == Mode::Production {
        f.problems.extend(mode::production_problems(config));
        f.notes.extend(mode::production_notes(config));
    }
    if config.telemetry.otlp_endpoint.is_some() && !crate::telemetry::TRACES_BUILT_IN {
        f.problems.push(
            "telemetry.otlp_endpoint is set, but this build has no OpenTelemetry support \
             (build with --features otel, or unset it)"
                .into(),
        );
    }
    let listen_ok = config.listen.parse::<std::net::SocketAddr>().is_ok()
        || config
            .listen
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !listen_ok {
        f.problems.push(format!(
            "listen = {:?} is not an address and port such as 127.0.0.1:8080",
            config.listen
        ));
    }
    for (key, path) in [
        (
            "notify.smtp_password_file",
            &config.notify.smtp_password_file,
        ),
        (
            "notify.sms_auth_header_file",
            &config.notify.sms_auth_header_file,
        ),
    ] {
        if let Some(path) = path {
            if let Err(e) = std::fs::read(path) {
                f.problems
                    .push(format!("{key} = {:?} cannot be read: {e}", path.display()));
            }
        }
    }
    if let Some((cert, key)) = config.tls.files() {
        // Exists, parses, and the key is the certificate's: what `serve` would refuse.
        if let Err(e) = crate::tls::load_pair(cert, key) {
            f.problems.push(format!("{e:#}"));
        }
    }
    let mut missing_keys = Vec::new();
    for name in [REGISTRY_KEY, FACTOR_KEY, OUTBOX_KEY, CSRF_KEY] {
        match load_existing_key(&config.secrets_dir, name) {
            Ok(Some(_)) => {}
            Ok(None) => missing_keys.push(name),
            Err(e) => f.problems.push(e.to_string()),
        }
    }
    let holds_data = database(config, &mut f).await;
    let needed: Vec<&str> = KEYS_THE_DATA_NEEDS
        .into_iter()
        .filter(|k| missing_keys.contains(k))
        .collect();
    if holds_data && !needed.is_empty() {
        f.problems.push(format!(
            "secrets_dir {:?} has no {}, but the database holds data written under it: \
             restore the secrets folder from the backup that goes with the database \
             (serve refuses to start without it)",
            config.secrets_dir.display(),
            needed.join(" or ")
        ));
    } else if !missing_keys.is_empty() {
        f.notes.push(format!(
            "secrets_dir {:?} has no {}: the first start creates {} (owner-only). Every node \
             of a deployment needs the same files.",
            config.secrets_dir.display(),
            missing_keys.join(", "),
            if missing_keys.len() == 1 {
                "it"
            } else {
                "them"
            }
        ));
    }
    f
}

/// Reaches the database without changing it; whether it holds data.
async fn database(config: &Config, f: &mut Findings) -> bool {
    let url = &config.database_url;
    if let Some(path) = sqlite_path(url) {
        if !path.exists() {
            f.notes.push(format!(
                "there is no database at {} yet: the first start creates it",
                path.display()
            ));
            return false;
        }
    }
    let options = StoreOptions {
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_secs(5),
        ..StoreOptions::default()
    };
    let opened = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        SqlStore::open(url, options),
    )
    .await;
    let store = match opened {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => {
            f.problems.push(format!(
                "the database ({}) cannot be opened: {e}",
                redact_url(url)
            ));
            return false;
        }
        Err(_) => {
            f.problems.push(format!(
                "the database ({}) did not answer within 10 s",
                redact_url(url)
            ));
            return false;
        }
    };
    if let Some(host) = store.chosen_host() {
        f.notes.push(format!(
            "database_url names several hosts (or a session check): the writable one now is {host}"
        ));
    }
    let mut holds_data = false;
    match store.schema_status().await {
        Ok(schema) => {
            f.problems.extend(schema.problems());
            if !schema.pending.is_empty() && !schema.applied.is_empty() {
                f.notes.push(format!(
                    "the database schema is version {}; the next start applies this binary's \
                     migrations up to {} (back up first: docs/operations.md, \"Upgrade\")",
                    schema.version(),
                    schema.latest_known()
                ));
            }
            if schema.unknown.is_empty() && !schema.applied.is_empty() {
                holds_data = store.holdings().await.map_or(true, |h| !h.is_empty());
            }
        }
        Err(e) => f
            .problems
            .push(format!("the database schema cannot be read: {e}")),
    }
    store.close().await;
    holds_data
}

/// Prints the configuration's main settings and the findings; exit status 1 on a problem.
pub async fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let mode = mode::effective(config, false).map_or_else(|_| "?".to_owned(), |m| m.to_string());
    println!("mode = {mode}");
    println!("listen = {}", config.listen);
    println!("management_listen = {}", config.management_listen);
    println!("public_url = {}", config.policies().public_url);
    if let Some((cert, key)) = config.tls.files() {
        println!("tls.cert_file = {}", cert.display());
        println!("tls.key_file = {}", key.display());
    }
    println!("database_url = {}", redact_url(&config.database_url));
    if let Some(read) = &config.database_read_url {
        println!("database_read_url = {}", redact_url(read));
    }
    println!("secrets_dir = {}", config.secrets_dir.display());
    println!("password.profile = {}", config.password.profile);
    let f = findings(config).await;
    for note in &f.notes {
        println!("note: {note}");
    }
    if f.problems.is_empty() {
        println!("configuration is valid");
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in &f.problems {
            println!("problem: {problem}");
        }
        let n = f.problems.len();
        println!(
            "configuration is NOT valid: {n} problem{} (serve would not start)",
            if n == 1 { "" } else { "s" }
        );
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{env_name, Config, KEYS};

    /// The sample configuration the Debian package installs.
    const SAMPLE: &str = include_str!("../../../deploy/portcullis.toml");

    #[test]
    fn the_sample_configuration_documents_every_key_and_loads() {
        let mut section = String::new();
        let mut found = std::collections::BTreeSet::new();
        for raw in SAMPLE.lines() {
            let line = raw.trim_start_matches('#').trim();
            // Sections are never commented out (a commented one is an example).
            if let Some(name) = raw.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
            } else if let Some((key, _)) = line.split_once(" = ") {
                if key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    found.insert((section.clone(), key.to_owned()));
                }
            }
        }
        for (s, k) in KEYS {
            assert!(
                found.contains(&(s.to_string(), k.to_string())),
                "deploy/portcullis.toml does not document {} ({})",
                if s.is_empty() {
                    k.to_string()
                } else {
                    format!("{s}.{k}")
                },
                env_name(s, k)
            );
        }
        let table: toml::Table = SAMPLE.parse().unwrap();
        let config: Config = toml::Value::Table(table).try_into().unwrap();
        config.validate().unwrap();
        assert_eq!(
            config.secrets_dir.to_str(),
            Some("/var/lib/portcullis/secrets")
        );
    }
}
