use super::*;
use portcullis_web::theme::Theme;
use std::collections::HashMap;

fn load_with(file: &str, env: &[(&str, &str)]) -> anyhow::Result<Config> {
    let mut table: toml::Table = file.parse()?;
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    overlay_env(&mut table, |n| env.get(n).cloned());
    let c: Config = toml::Value::Table(table).try_into()?;
    c.validate()?;
    Ok(c)
}

#[test]
fn defaults_are_the_contract() {
    let c = load_with("", &[]).unwrap();
    assert_eq!(c.database_url, "sqlite://./portcullis-data/portcullis.db");
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.management_listen, "127.0.0.1:9464");
    assert_eq!(c.server.drain_secs, 20.0);
    assert_eq!(c.database.lock_timeout_secs, 3.0);
    assert_eq!(c.secrets_dir, PathBuf::from("./portcullis-data/secrets/"));
    assert!(c.notify.outbox_file.is_none());
    assert!(c.risk.new_device_step_up);
    assert!(c.limits.enabled);
    assert_eq!(c.lockout.lock_after_failures, 6);
    assert_eq!(c.lockout.lock_for_secs, 7 * 86_400);
    assert_eq!(c.session.idle_secs, 900);
    assert_eq!(c.session.absolute_secs, 43_200);
    assert_eq!(c.inactivity.warn_after_secs, 730 * 86_400);
    assert_eq!(c.inactivity.deactivate_after_secs, 30 * 86_400);
}

#[test]
fn inactivity_durations_are_configurable() {
    let c = load_with(
        "[inactivity]\nwarn_after_secs = 100\n",
        &[("PORTCULLIS_INACTIVITY_DEACTIVATE_AFTER_SECS", "50")],
    )
    .unwrap();
    let p = c.policies().inactivity;
    assert_eq!(p.warn_after_secs, 100);
    assert_eq!(p.deactivate_after_secs, 50);
    assert!(load_with("[inactivity]\nwarn_after_secs = 0", &[]).is_err());
}

#[test]
fn environment_overrides_the_file() {
    let c = load_with(
        "database_url = \"sqlite://a.db\"\n[lockout]\nlock_after_failures = 3\n",
        &[
            ("PORTCULLIS_DATABASE_URL", "postgres://x/y"),
            ("PORTCULLIS_NOTIFY_OUTBOX_FILE", "/tmp/o.jsonl"),
            ("PORTCULLIS_RISK_NEW_DEVICE_STEP_UP", "false"),
            ("PORTCULLIS_LIMITS_ENABLED", "false"),
        ],
    )
    .unwrap();
    assert_eq!(c.database_url, "postgres://x/y");
    assert_eq!(c.lockout.lock_after_failures, 3);
    assert_eq!(c.notify.outbox_file, Some(PathBuf::from("/tmp/o.jsonl")));
    assert!(!c.risk.new_device_step_up);
    assert!(!c.limits.enabled);
}

#[test]
fn theme_colours_read_from_file_and_environment() {
    let c = load_with("", &[]).unwrap();
    assert_eq!(c.theme.theme().unwrap(), Theme::default());
    let c = load_with(
        "[theme]\nbrand = \"#1a4d2e\"\nbrand_ink_dark = \"#000000\"\n",
        &[("PORTCULLIS_THEME_BRAND_DARK", "#8fd6a8")],
    )
    .unwrap();
    let theme = c.theme.theme().unwrap();
    assert_eq!(theme.brand.to_string(), "#1a4d2e");
    assert_eq!(theme.brand_ink.to_string(), "#ffffff");
    assert_eq!(theme.brand_dark.to_string(), "#8fd6a8");
    assert_eq!(theme.brand_ink_dark.to_string(), "#000000");
}

#[test]
fn unreadable_or_malformed_theme_colours_are_refused() {
    for (file, expected) in [
        (
            "[theme]\nbrand = \"blue\"",
            "theme.brand: \"blue\" is not a colour",
        ),
        (
            "[theme]\nbrand_ink = \"#fff\"",
            "theme.brand_ink: \"#fff\" is not",
        ),
        // Yellow with white text: unreadable, and yellow links on a light page too.
        (
            "[theme]\nbrand = \"#ffd700\"",
            "theme.brand_ink #ffffff on theme.brand #ffd700",
        ),
        // Dark ink on a dark brand colour in dark mode.
        (
            "[theme]\nbrand_dark = \"#1d3557\"",
            "theme.brand_ink_dark #0b1420 on theme.brand_dark #1d3557",
        ),
        // Readable on the header, but a pale link on the page.
        (
            "[theme]\nbrand = \"#7fb8ff\"\nbrand_ink = \"#000000\"",
            "theme.brand #7fb8ff as link text on the page background",
        ),
    ] {
        let err = format!("{:#}", load_with(file, &[]).unwrap_err());
        assert!(err.contains(expected), "{file:?}: {err}");
    }
    let err = load_with("", &[("PORTCULLIS_THEME_BRAND", "#ffd700")]).unwrap_err();
    assert!(format!("{err:#}").contains("hard to read"), "{err:#}");
}

#[test]
fn unknown_keys_are_refused() {
    assert!(load_with("databse_url = \"x\"", &[]).is_err());
    assert!(load_with("[lockout]\nlock_after = 3", &[]).is_err());
}

#[test]
fn bad_values_are_refused() {
    assert!(load_with("[password]\nprofile = \"weak\"", &[]).is_err());
    assert!(load_with("[lockout]\nlock_after_failures = 0", &[]).is_err());
    assert!(load_with("[lockout]\nlock_after_failures = 101", &[]).is_err());
    assert!(load_with("[hashing]\nnice = 20", &[]).is_err());
    assert!(load_with("", &[("PORTCULLIS_HASHING_NICE", "-1")]).is_err());
    assert_eq!(load_with("", &[]).unwrap().hashing.nice, 5);
    assert_eq!(
        load_with("", &[("PORTCULLIS_HASHING_NICE", "0")])
            .unwrap()
            .hashing
            .nice,
        0
    );
}

#[test]
fn every_key_has_an_environment_variable() {
    for (section, key) in KEYS {
        let name = env_name(section, key);
        assert!(name.starts_with("PORTCULLIS_"));
    }
    assert_eq!(
        env_name("notify", "outbox_file"),
        "PORTCULLIS_NOTIFY_OUTBOX_FILE"
    );
    assert_eq!(env_name("", "database_url"), "PORTCULLIS_DATABASE_URL");
}

#[test]
fn notify_keys_read_from_file_and_environment() {
    let c = load_with("", &[]).unwrap();
    assert_eq!(c.notify.smtp_mode, "starttls");
    assert_eq!(c.notify.sms_format, "json");
    assert!(c.notify.sms_allowed_prefixes.is_empty());
    assert_eq!(c.notify.poll_secs, 2.0);
    assert_eq!(c.notify.send_timeout(), std::time::Duration::from_secs(20));
    let c = load_with(
        "[notify]\nfrom = \"Bank <no-reply@bank.example>\"\nsmtp_host = \"mail.example\"\n\
         sms_allowed_prefixes = [\"+1\", \"+44\"]\npoll_secs = 1\n",
        &[
            ("PORTCULLIS_NOTIFY_SMS_FROM", "+15550009999"),
            ("PORTCULLIS_NOTIFY_SMTP_PORT", "2525"),
            ("PORTCULLIS_NOTIFY_SMS_PER_DAY", "50"),
            ("PORTCULLIS_NOTIFY_POLL_SECS", "0.25"),
        ],
    )
    .unwrap();
    assert_eq!(c.notify.sms_allowed_prefixes, ["+1", "+44"]);
    assert_eq!(c.notify.sms_from, "+15550009999");
    assert_eq!(c.notify.smtp_port, Some(2525));
    assert_eq!(c.notify.sms_per_day, 50);
    assert_eq!(c.notify.poll_secs, 0.25);
    // Prefixes from the environment: a list, a comma-separated string, or one bare number.
    for (raw, want) in [
        ("[\"+1\",\"+44\"]", vec!["+1", "+44"]),
        ("+1, +44", vec!["+1", "+44"]),
        ("+44", vec!["+44"]),
    ] {
        let c = load_with("", &[("PORTCULLIS_NOTIFY_SMS_ALLOWED_PREFIXES", raw)]).unwrap();
        assert_eq!(c.notify.sms_allowed_prefixes, want, "{raw}");
    }
}

#[test]
fn bad_notify_values_are_refused() {
    assert!(load_with("[notify]\nsmtp_mode = \"ssl\"", &[]).is_err());
    assert!(load_with("[notify]\nsms_format = \"xml\"", &[]).is_err());
    assert!(load_with("[notify]\nsms_allowed_prefixes = [\"44\"]", &[]).is_err());
    assert!(load_with("[notify]\npoll_secs = 0", &[]).is_err());
    assert!(load_with("[notify]\nlease_secs = 1", &[]).is_err());
    // SMTP needs a From address, and one server setting, not two.
    assert!(load_with("[notify]\nsmtp_host = \"mail.example\"", &[]).is_err());
    assert!(load_with(
        "[notify]\nfrom = \"a@b.example\"\nsmtp_host = \"h\"\nsmtp_url = \"smtp://h\"",
        &[]
    )
    .is_err());
    // The password is never a key.
    assert!(load_with("[notify]\nsmtp_password = \"x\"", &[]).is_err());
}

#[test]
fn anonymous_limits_stay_below_the_gateway_quotas() {
    let c = load_with("", &[]).unwrap();
    let t = c.policies().throttle;
    assert_eq!(
        (
            t.per_destination_per_hour,
            t.per_destination_per_day,
            t.texts_per_prefix_per_day,
            t.anonymous_texts_per_day
        ),
        (3, 3, 500, 2500)
    );
    let c = load_with(
        "[notify]\nsms_per_number_per_day = 2\nsms_per_prefix_per_day = 100\nsms_per_day = 50",
        &[],
    )
    .unwrap();
    let t = c.policies().throttle;
    assert_eq!(
        (
            t.per_destination_per_day,
            t.texts_per_prefix_per_day,
            t.anonymous_texts_per_day
        ),
        (1, 99, 49)
    );
    assert!(load_with("[limits]\nper_destination_per_hour = 0", &[]).is_err());
    assert!(load_with("[limits]\nipv6_prefix = 16", &[]).is_err());
    assert!(load_with("[limits]\ntrusted_proxies = [\"10.0.0.1/8\"]", &[]).is_err());
    let c = load_with(
        "[limits]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1/128\", \"127.0.0.1\"]",
        &[],
    )
    .unwrap();
    assert_eq!(c.client_addressing().trusted_proxies.len(), 3);
}

#[test]
fn a_read_replica_is_for_postgresql_only() {
    let pg = "database_url = \"postgres://app@db1/portcullis\"\n";
    let c = load_with(
        pg,
        &[(
            "PORTCULLIS_DATABASE_READ_URL",
            "postgres://reader@replica1/portcullis",
        )],
    )
    .unwrap();
    assert_eq!(
        c.database_read_url.as_deref(),
        Some("postgres://reader@replica1/portcullis")
    );
    assert!(load_with(pg, &[]).unwrap().database_read_url.is_none());
    for (file, read) in [
        ("", "postgres://reader@replica1/portcullis"),
        (pg, "sqlite://./replica.db"),
    ] {
        let e = load_with(file, &[("PORTCULLIS_DATABASE_READ_URL", read)]).unwrap_err();
        assert!(e.to_string().contains("PostgreSQL only"), "{e}");
    }
}
