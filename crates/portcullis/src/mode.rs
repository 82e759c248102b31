//! The mode the service runs in, and what production mode refuses.
//!
//! `production` is the default without `--demo`. It refuses to start with a setting that is
//! only safe in a demo or on a developer's machine: passwords over plain HTTP on a public
//! address (TLS on the listener, or a TLS-terminating proxy in front, is required), messages written to a file instead of sent, throttling off, cookies without
//! `Secure`, hashing weaker than OWASP's minimum, no email transport, no public URL. `demo`
//! is what `--demo` turns on (demo registry, outbox, `/demo/outbox`); `development` checks
//! nothing and changes nothing else (tests, benchmarks, a staging copy).
//!
//! The same list is what `portcullis validate-config` prints, so an operator sees every
//! problem of a configuration before a restart rather than one at a time.

use std::net::{IpAddr, SocketAddr};

use crate::config::{Config, Mode};

/// The mode a command runs in: the configuration's `mode`, or production, or demo with
/// `--demo`. `--demo` under an explicit `mode = "production"` is refused.
pub fn effective(config: &Config, demo_flag: bool) -> anyhow::Result<Mode> {
    match (config.mode, demo_flag) {
        (Some(Mode::Production), true) => anyhow::bail!(
            "--demo cannot run in production mode (the configuration sets mode = \"production\")"
        ),
        (_, true) | (Some(Mode::Demo), false) => Ok(Mode::Demo),
        (Some(Mode::Development), false) => Ok(Mode::Development),
        (None | Some(Mode::Production), false) => Ok(Mode::Production),
    }
}

/// Whether `listen` (`host:port`) only accepts connections from this machine.
pub fn is_loopback_listen(listen: &str) -> bool {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return addr.ip().is_loopback();
    }
    // `localhost:8080`; any other name could resolve to anything, so it counts as public.
    listen
        .rsplit_once(':')
        .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}

/// Whether `url`'s host is this machine (`localhost`, `127.0.0.1`, `[::1]`).
fn is_local_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// OWASP's argon2id settings of equal strength (memory KiB, iterations; one lane): a
/// configuration must reach one of them (`shared/standards.md`, OWASP Password Storage).
const ARGON2ID_MINIMUMS: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

/// Every reason production mode refuses `config`, each a sentence naming the key and what
/// to do; empty when it may start.
pub fn production_problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let public_listener = !is_loopback_listen(&config.listen);
    if public_listener && config.limits.trusted_proxies.is_empty() && !config.tls.enabled() {
        problems.push(format!(
            "listen = {:?} is not a loopback address, without TLS (tls.cert_file and \
             tls.key_file) and without a TLS-terminating proxy: passwords would cross the \
             network in clear. Set tls.cert_file and tls.key_file, or listen on 127.0.0.1 \
             behind a reverse proxy that terminates TLS and name it in \
             limits.trusted_proxies.",
            config.listen
        ));
    }
    match config.public_url.as_deref() {
        None => problems.push(
            "public_url is not set: it is the address people reach the service at, the base \
             of every link in messages and the passkey relying party. Set it to the HTTPS \
             address, e.g. public_url = \"https://login.bank.example\"."
                .into(),
        ),
        Some(url) if !url.starts_with("https://") && !is_local_url(url) => {
            problems.push(format!(
                "public_url = {url:?} is not an https:// address: people would send their \
                 passwords over plain HTTP. Serve it over HTTPS (a reverse proxy that \
                 terminates TLS) and set the https:// address."
            ));
        }
        Some(_) => {}
    }
    if let Some(file) = &config.notify.outbox_file {
        problems.push(format!(
            "notify.outbox_file = {:?} is set: every email and text message, one-time codes \
             included, would be written to that file instead of being sent. It is for demos \
             and tests; configure notify.smtp_url or notify.smtp_host (and notify.sms_url).",
            file.display()
        ));
    } else if config.notify.smtp_url.is_none() && config.notify.smtp_host.is_none() {
        problems.push(
            "no email transport (notify.smtp_url or notify.smtp_host): registration \
             messages, one-time codes and security notices would never be sent."
                .into(),
        );
    }
    if !config.secure_cookies {
        problems.push(
            "secure_cookies = false: session cookies would travel over plain HTTP and lose \
             the __Host- prefix. Remove the setting."
                .into(),
        );
    }
    if !config.limits.enabled {
        problems.push(
            "limits.enabled = false: per-address throttling of password, card and code \
             guesses is off (a benchmark setting). Remove the setting."
                .into(),
        );
    }
    let h = &config.hashing;
    let strong = ARGON2ID_MINIMUMS
        .iter()
        .any(|&(memory, iterations)| h.memory_kib >= memory && h.iterations >= iterations);
    if !strong {
        problems.push(format!(
            "hashing.memory_kib = {} with hashing.iterations = {} is weaker than OWASP's \
             argon2id minimum (19456 KiB with 2 iterations, or an equivalent pair): \
             stolen password hashes would be cheap to crack. Remove both settings to use \
             the default.",
            h.memory_kib, h.iterations
        ));
    }
    problems
}

/// Advice that does not stop a start: shown by `validate-config` and logged by `serve`.
pub fn production_notes(config: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    if config.notify.sms_url.is_none() {
        notes.push(
            "no SMS gateway (notify.sms_url): people who chose text messages for their \
             codes will not receive them."
                .into(),
        );
    }
    if config.database_url.starts_with("sqlite:") {
        notes.push(
            "the database is SQLite: one node only. Back it up with `portcullis db backup` \
             (docs/operations.md); run several nodes on PostgreSQL."
                .into(),
        );
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn production() -> Config {
        let mut c = Config {
            public_url: Some("https://login.bank.example".into()),
            ..Config::default()
        };
        c.notify.smtp_host = Some("mail.bank.example".into());
        c.notify.from = "Bank <no-reply@bank.example>".into();
        c
    }

    #[test]
    fn modes_follow_the_flag_and_the_setting() {
        let mut c = Config::default();
        assert_eq!(effective(&c, false).unwrap(), Mode::Production);
        assert_eq!(effective(&c, true).unwrap(), Mode::Demo);
        c.mode = Some(Mode::Development);
        assert_eq!(effective(&c, false).unwrap(), Mode::Development);
        assert_eq!(effective(&c, true).unwrap(), Mode::Demo);
        c.mode = Some(Mode::Demo);
        assert_eq!(effective(&c, false).unwrap(), Mode::Demo);
        c.mode = Some(Mode::Production);
        assert_eq!(effective(&c, false).unwrap(), Mode::Production);
        let err = effective(&c, true).unwrap_err().to_string();
        assert!(
            err.contains("--demo cannot run in production mode"),
            "{err}"
        );
    }

    #[test]
    fn a_production_configuration_passes() {
        assert_eq!(production_problems(&production()), Vec::<String>::new());
    }

    #[test]
    fn loopback_listeners_are_recognised() {
        for yes in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "localhost:8080",
            "127.9.9.9:1",
        ] {
            assert!(is_loopback_listen(yes), "{yes}");
        }
        for no in [
            "0.0.0.0:8080",
            "[::]:8080",
            "10.0.0.5:8080",
            "bank.example:80",
            "x",
        ] {
            assert!(!is_loopback_listen(no), "{no}");
        }
    }

    #[test]
    fn plain_http_on_a_public_address_is_refused_unless_behind_a_proxy() {
        let mut c = production();
        c.listen = "0.0.0.0:8080".into();
        let problems = production_problems(&c);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("listen = \"0.0.0.0:8080\""),
            "{problems:?}"
        );
        c.limits.trusted_proxies = vec!["10.0.0.2".into()];
        assert!(production_problems(&c).is_empty());
    }

    #[test]
    fn tls_on_the_listener_counts_as_no_plain_http() {
        let mut c = production();
        c.listen = "0.0.0.0:443".into();
        c.tls.cert_file = Some(PathBuf::from("/etc/portcullis/tls/cert.pem"));
        assert_eq!(
            production_problems(&c).len(),
            1,
            "a certificate without its key"
        );
        c.tls.key_file = Some(PathBuf::from("/etc/portcullis/tls/key.pem"));
        assert_eq!(production_problems(&c), Vec::<String>::new());
    }

    #[test]
    fn demo_settings_are_refused_each_by_name() {
        let mut c = production();
        c.notify.outbox_file = Some(PathBuf::from("/tmp/outbox.jsonl"));
        c.secure_cookies = false;
        c.limits.enabled = false;
        c.hashing.memory_kib = 64;
        c.hashing.iterations = 1;
        let problems = production_problems(&c).join("\n");
        for key in [
            "notify.outbox_file",
            "secure_cookies = false",
            "limits.enabled = false",
            "hashing.memory_kib = 64",
        ] {
            assert!(problems.contains(key), "{key} missing from:\n{problems}");
        }
    }

    #[test]
    fn the_public_url_must_be_set_and_https_unless_local() {
        let mut c = production();
        c.public_url = None;
        assert!(production_problems(&c)[0].starts_with("public_url is not set"));
        c.public_url = Some("http://login.bank.example".into());
        assert!(production_problems(&c)[0].contains("is not an https:// address"));
        for local in [
            "http://localhost:8080",
            "http://127.0.0.1:8080/",
            "http://[::1]:80",
        ] {
            c.public_url = Some(local.into());
            assert!(production_problems(&c).is_empty(), "{local}");
        }
    }

    #[test]
    fn argon2id_settings_of_owasp_strength_pass() {
        let mut c = production();
        for (m, t, ok) in [
            (19_456, 2, true),
            (47_104, 1, true),
            (7_168, 5, true),
            (65_536, 3, true),
            (19_455, 2, false),
            (40_000, 1, false),
            (7_168, 4, false),
        ] {
            c.hashing.memory_kib = m;
            c.hashing.iterations = t;
            assert_eq!(production_problems(&c).is_empty(), ok, "m={m} t={t}");
        }
    }

    #[test]
    fn without_an_email_transport_production_refuses() {
        let mut c = production();
        c.notify.smtp_host = None;
        assert!(production_problems(&c)[0].starts_with("no email transport"));
        c.notify.smtp_url = Some("smtps://mail.bank.example".into());
        assert!(production_problems(&c).is_empty());
    }
}
