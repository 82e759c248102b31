//! Configuration: defaults → TOML file → `PORTCULLIS_*` environment → command-line flags.
//! Unknown keys are refused. Every key below has an environment variable
//! `PORTCULLIS_<SECTION>_<KEY>` (top-level keys: `PORTCULLIS_<KEY>`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use portcullis_core::card_guard::CardGuardPolicy;
use portcullis_core::config::Policies;
use portcullis_core::inactivity::InactivityPolicy;
use portcullis_core::lockout::LockoutPolicy;
use portcullis_core::password::{PasswordPolicy, PasswordProfile};
use portcullis_core::session::SessionPolicy;
use portcullis_core::throttle::ThrottlePolicy;
use portcullis_crypto::HashParams;
use serde::Deserialize;

mod accounts_import;
mod cards;
mod database;
mod env;
mod notify;
mod oidc;
mod risk;
mod webhooks;

pub use accounts_import::AccountsImportConfig;
pub use database::{DatabaseConfig, KeysConfig, StatusConfig, ThemeConfig};
pub use env::env_name;
use env::overlay_env;
pub use notify::NotifyConfig;
pub use oidc::OidcConfig;
pub use risk::RiskConfig;
pub use webhooks::WebhooksConfig;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database_url: String,
    /// PostgreSQL: a replica for reads that may be a little stale (status history, admin
    /// views); unset, every read goes to `database_url`.
    pub database_read_url: Option<String>,
    pub secrets_dir: PathBuf,
    pub listen: String,
    /// The management listener: `/metrics`, `/healthz`, `/readyz` (never on the public one).
    pub management_listen: String,
    /// The address people reach the service at, for links in messages (default:
    /// `http://` + `listen`, `https://` with `[tls]`).
    pub public_url: Option<String>,
    pub issuer_name: String,
    pub support_phone: String,
    /// Whether cookies carry `Secure` and the `__Host-` prefix. Only a local demo over
    /// plain HTTP on a non-localhost name would turn this off.
    pub secure_cookies: bool,
    pub hashing: HashingConfig,
    pub password: PasswordConfig,
    pub lockout: LockoutConfig,
    pub session: SessionConfig,
    pub registration: RegistrationConfig,
    pub notify: NotifyConfig,
    pub risk: RiskConfig,
    pub limits: LimitsConfig,
    pub database: DatabaseConfig,
    pub status: StatusConfig,
    /// The re-seal job after a key rotation.
    pub keys: KeysConfig,
    pub inactivity: InactivityConfig,
    pub cards: cards::CardsConfig,
    pub theme: ThemeConfig,
    pub server: ServerConfig,
    // Operating it (issue 18): the mode's start-up checks and the log format.
    /// `production` (the default without `--demo`), `development` or `demo` (what `--demo`
    /// turns on); unset means "production, or demo with `--demo`". See [`crate::mode`].
    pub mode: Option<Mode>,
    pub log: LogConfig,
    pub telemetry: TelemetryConfig,
    /// HTTPS on both listeners when `cert_file` and `key_file` are set ([`crate::tls`]).
    pub tls: crate::tls::TlsConfig,
    /// Ceilings on imported password hashes (`portcullis accounts import`).
    pub accounts_import: AccountsImportConfig,
    /// Delivery of security events to webhook subscribers.
    pub webhooks: WebhooksConfig,
    /// The OpenID Connect provider.
    pub oidc: OidcConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://./portcullis-data/portcullis.db".into(),
            database_read_url: None,
            secrets_dir: PathBuf::from("./portcullis-data/secrets/"),
            listen: "127.0.0.1:8080".into(),
            management_listen: "127.0.0.1:9464".into(),
            public_url: None,
            issuer_name: "Portcullis Bank".into(),
            support_phone: "1-800-555-0199".into(),
            secure_cookies: true,
            hashing: HashingConfig::default(),
            password: PasswordConfig::default(),
            lockout: LockoutConfig::default(),
            session: SessionConfig::default(),
            registration: RegistrationConfig::default(),
            notify: NotifyConfig::default(),
            risk: RiskConfig::default(),
            limits: LimitsConfig::default(),
            database: DatabaseConfig::default(),
            status: StatusConfig::default(),
            keys: KeysConfig::default(),
            inactivity: InactivityConfig::default(),
            cards: cards::CardsConfig::default(),
            theme: ThemeConfig::default(),
            server: ServerConfig::default(),
            mode: None,
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            tls: crate::tls::TlsConfig::default(),
            accounts_import: AccountsImportConfig::default(),
            webhooks: WebhooksConfig::default(),
            oidc: OidcConfig::default(),
        }
    }
}

/// Connections and requests: every wait bounded, every count capped (see
/// `docs/configuration.md` and the `## Faults` section of `docs/operations.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Seconds a client has to send a whole request head (from connecting, or from the
    /// first byte of a later request on the connection).
    pub header_read_timeout_secs: f64,
    /// Seconds a request body may take before `body_min_bytes_per_sec` applies.
    pub body_read_timeout_secs: f64,
    /// The slowest a body may arrive after that, in bytes per second.
    pub body_min_bytes_per_sec: u64,
    /// The largest request body, pages and API alike (413 beyond it).
    pub body_limit_bytes: usize,
    /// Seconds a connection may sit without a request before it is closed.
    pub idle_timeout_secs: f64,
    /// Open connections on the public listener (lowered to fit the open-files limit).
    pub max_connections: usize,
    /// Requests handled at once (503 with Retry-After beyond it).
    pub max_requests_in_flight: usize,
    /// Seconds a request may take once its body has arrived (503 with Retry-After after it).
    pub request_deadline_secs: f64,
    /// Seconds shutdown waits for requests in flight before closing connections.
    pub drain_secs: f64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10.0,
            body_read_timeout_secs: 10.0,
            body_min_bytes_per_sec: 1024,
            body_limit_bytes: 1024 * 1024,
            idle_timeout_secs: 30.0,
            max_connections: 1024,
            max_requests_in_flight: 256,
            request_deadline_secs: 10.0,
            drain_secs: 20.0,
        }
    }
}

fn secs(v: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(v).unwrap_or(std::time::Duration::from_secs(10))
}

impl ServerConfig {
    fn validate(&self) -> anyhow::Result<()> {
        for (key, v, min, max) in [
            (
                "header_read_timeout_secs",
                self.header_read_timeout_secs,
                0.1,
                300.0,
            ),
            (
                "body_read_timeout_secs",
                self.body_read_timeout_secs,
                0.1,
                600.0,
            ),
            ("idle_timeout_secs", self.idle_timeout_secs, 0.1, 3600.0),
            (
                "request_deadline_secs",
                self.request_deadline_secs,
                0.1,
                600.0,
            ),
            ("drain_secs", self.drain_secs, 0.0, 3600.0),
        ] {
            if !(v.is_finite() && v >= min && v <= max) {
                bail!("server.{key} must be between {min} and {max}");
            }
        }
        if self.body_min_bytes_per_sec == 0 {
            bail!("server.body_min_bytes_per_sec must be at least 1");
        }
        if self.body_limit_bytes < 1024 {
            bail!("server.body_limit_bytes must be at least 1024");
        }
        if self.max_connections == 0 || self.max_requests_in_flight == 0 {
            bail!("server.max_connections and server.max_requests_in_flight must be positive");
        }
        Ok(())
    }

    pub fn request_limits(&self) -> portcullis_web::limits::RequestLimits {
        portcullis_web::limits::RequestLimits {
            body_limit: self.body_limit_bytes,
            body_grace: secs(self.body_read_timeout_secs),
            body_min_bytes_per_sec: self.body_min_bytes_per_sec,
            deadline: secs(self.request_deadline_secs),
            max_in_flight: self.max_requests_in_flight,
        }
    }

    /// The connection limits, with the cap as configured (the serve command lowers it to
    /// fit the open-files limit).
    pub fn connection_limits(&self) -> crate::serve::ConnectionLimits {
        crate::serve::ConnectionLimits {
            header_read_timeout: secs(self.header_read_timeout_secs),
            idle_timeout: secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
            drain: secs(self.drain_secs),
        }
    }
}

/// What the service is run for; production refuses settings that are only safe in a demo
/// or on a developer's machine (see [`crate::mode`]).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Production,
    Development,
    Demo,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Production => "production",
            Self::Development => "development",
            Self::Demo => "demo",
        })
    }
}

/// How log lines are written on standard error.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `auto` (readable lines when standard error is a terminal, JSON lines otherwise),
    /// `json` or `text`. `RUST_LOG` still chooses what is logged.
    pub format: String,
}

/// OpenTelemetry traces (builds with the `otel` feature; see [`crate::telemetry`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Where spans go, over OTLP/HTTP (protobuf), e.g. `http://127.0.0.1:4318/v1/traces`
    /// (a collector on the host); unset: no traces.
    pub otlp_endpoint: Option<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "auto".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashing threads; 0 means one per core.
    pub workers: usize,
    /// Jobs that may wait per worker before requests are refused with 503.
    pub queue_per_worker: usize,
    /// Scheduling niceness of the hashing threads (0–19; Linux). Request handling keeps
    /// normal priority, so it gets a core first while hashing uses every idle cycle.
    pub nice: i32,
}

impl Default for HashingConfig {
    fn default() -> Self {
        let p = HashParams::default();
        Self {
            memory_kib: p.memory_kib,
            iterations: p.iterations,
            parallelism: p.parallelism,
            workers: 0,
            queue_per_worker: 4,
            nice: 5,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// `issuer`, `nist-800-63b` or `pci-dss-4`.
    pub profile: String,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            profile: "issuer".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    pub lock_after_failures: u32,
    pub lock_for_secs: i64,
    /// A known device's own failure allowance.
    pub device_allowance: u32,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        let p = LockoutPolicy::default();
        Self {
            lock_after_failures: p.lock_after_failures,
            lock_for_secs: p.lock_for_secs,
            device_allowance: p.device_allowance,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    pub idle_secs: i64,
    pub absolute_secs: i64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        let p = SessionPolicy::default();
        Self {
            idle_secs: p.idle_secs,
            absolute_secs: p.absolute_secs,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    pub step_secs: i64,
    pub security_questions: bool,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            step_secs: 20 * 60,
            security_questions: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Throttling per client address (lockout stays on regardless).
    pub enabled: bool,
    /// Failed attempts allowed from one address per window, per action.
    pub failures_per_window: u32,
    pub window_secs: i64,
    /// Reverse proxies whose `X-Forwarded-For` is believed: addresses or CIDR ranges.
    pub trusted_proxies: Vec<String>,
    /// Wrong card IDs per card, from anywhere, before the card stops accepting card IDs
    /// online (on even when `enabled` is off: it is a lockout, not a throttle).
    pub card_id_failures: u32,
    /// The window those wrong card IDs are counted in.
    pub card_id_window_secs: i64,
    /// The prefix length an IPv6 client is limited by (one subscriber holds a /64).
    pub ipv6_prefix: u8,
    /// Messages anonymous requests may cause to one phone or email address per hour...
    pub per_destination_per_hour: u32,
    /// ... and per day (below `notify.sms_per_number_per_day`).
    pub per_destination_per_day: u32,
    /// Texts anonymous requests may cause to one country prefix per day (below
    /// `notify.sms_per_prefix_per_day`).
    pub texts_per_prefix_per_day: u32,
    /// Texts anonymous requests may cause in all per day (below `notify.sms_per_day`).
    pub anonymous_texts_per_day: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let p = ThrottlePolicy::default();
        let card = CardGuardPolicy::default();
        Self {
            enabled: p.enabled,
            failures_per_window: p.failures_per_window,
            window_secs: p.window_secs,
            trusted_proxies: Vec::new(),
            card_id_failures: card.failures,
            card_id_window_secs: card.window_secs,
            ipv6_prefix: 64,
            per_destination_per_hour: p.per_destination_per_hour,
            per_destination_per_day: p.per_destination_per_day,
            texts_per_prefix_per_day: p.texts_per_prefix_per_day,
            anonymous_texts_per_day: p.anonymous_texts_per_day,
        }
    }
}

/// Flow 10: the inactivity job.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InactivityConfig {
    /// Whether `serve` runs the job (every node may; a lease row lets one run per interval).
    pub enabled: bool,
    /// No sign-in this long earns a warning (default 730 days: 24 months).
    pub warn_after_secs: i64,
    /// This long after the warning, still without a sign-in, the account is deactivated.
    pub deactivate_after_secs: i64,
    /// How often the job runs (across all nodes).
    pub interval_secs: i64,
}

impl Default for InactivityConfig {
    fn default() -> Self {
        let p = InactivityPolicy::default();
        Self {
            enabled: true,
            warn_after_secs: p.warn_after_secs,
            deactivate_after_secs: p.deactivate_after_secs,
            interval_secs: 3600,
        }
    }
}

/// Every key, as (section, key); "" for top-level keys. The environment overlay and the
/// reference in `docs/configuration.md` follow this list.
pub const KEYS: &[(&str, &str)] = &[
    ("", "database_url"),
    ("", "database_read_url"),
    ("", "secrets_dir"),
    ("", "listen"),
    ("", "management_listen"),
    ("", "public_url"),
    ("", "issuer_name"),
    ("", "support_phone"),
    ("", "secure_cookies"),
    ("hashing", "memory_kib"),
    ("hashing", "iterations"),
    ("hashing", "parallelism"),
    ("hashing", "workers"),
    ("hashing", "queue_per_worker"),
    ("hashing", "nice"),
    ("password", "profile"),
    ("lockout", "lock_after_failures"),
    ("lockout", "lock_for_secs"),
    ("lockout", "device_allowance"),
    ("session", "idle_secs"),
    ("session", "absolute_secs"),
    ("registration", "step_secs"),
    ("registration", "security_questions"),
    ("notify", "outbox_file"),
    ("notify", "from"),
    ("notify", "smtp_url"),
    ("notify", "smtp_host"),
    ("notify", "smtp_port"),
    ("notify", "smtp_mode"),
    ("notify", "smtp_username"),
    ("notify", "smtp_password_file"),
    ("notify", "sms_url"),
    ("notify", "sms_auth_header_file"),
    ("notify", "sms_format"),
    ("notify", "sms_json_template"),
    ("notify", "sms_from"),
    ("notify", "sms_allowed_prefixes"),
    ("notify", "sms_per_number_per_day"),
    ("notify", "sms_per_prefix_per_day"),
    ("notify", "sms_per_day"),
    ("notify", "poll_secs"),
    ("notify", "lease_secs"),
    ("risk", "new_device_step_up"),
    ("risk", "trust_device_days"),
    ("risk", "reauth_secs"),
    ("limits", "enabled"),
    ("limits", "failures_per_window"),
    ("limits", "window_secs"),
    ("limits", "trusted_proxies"),
    ("limits", "card_id_failures"),
    ("limits", "card_id_window_secs"),
    ("limits", "ipv6_prefix"),
    ("limits", "per_destination_per_hour"),
    ("limits", "per_destination_per_day"),
    ("limits", "texts_per_prefix_per_day"),
    ("limits", "anonymous_texts_per_day"),
    ("database", "max_connections"),
    ("database", "acquire_timeout_secs"),
    ("database", "statement_timeout_secs"),
    ("database", "lock_timeout_secs"),
    ("database", "idle_in_transaction_timeout_secs"),
    ("status", "probe_secs"),
    ("keys", "reseal_interval_secs"),
    ("keys", "reseal_batch"),
    ("inactivity", "enabled"),
    ("inactivity", "warn_after_secs"),
    ("inactivity", "deactivate_after_secs"),
    ("inactivity", "interval_secs"),
    ("cards", "closed_read_only_days"),
    ("theme", "brand"),
    ("theme", "brand_ink"),
    ("theme", "brand_dark"),
    ("theme", "brand_ink_dark"),
    ("server", "header_read_timeout_secs"),
    ("server", "body_read_timeout_secs"),
    ("server", "body_min_bytes_per_sec"),
    ("server", "body_limit_bytes"),
    ("server", "idle_timeout_secs"),
    ("server", "max_connections"),
    ("server", "max_requests_in_flight"),
    ("server", "request_deadline_secs"),
    ("server", "drain_secs"),
    ("", "mode"),
    ("log", "format"),
    ("telemetry", "otlp_endpoint"),
    ("tls", "cert_file"),
    ("tls", "key_file"),
    ("tls", "reload_interval_secs"),
    ("accounts_import", "max_bcrypt_cost"),
    ("accounts_import", "max_pbkdf2_iterations"),
    ("accounts_import", "max_scrypt_log_n"),
    ("accounts_import", "max_argon2_memory_kib"),
    ("accounts_import", "max_argon2_iterations"),
    ("oidc", "dpop_nonce"),
    ("oidc", "jwks_ttl_secs"),
    ("oidc", "jwks_refetch_interval_secs"),
    ("oidc", "jwks_max_age_secs"),
    ("oidc", "jwks_timeout_ms"),
    ("oidc", "jwks_allow_http_loopback"),
    ("webhooks", "allow_http"),
    ("webhooks", "allow_loopback"),
    ("webhooks", "timeout_secs"),
    ("webhooks", "poll_secs"),
    ("webhooks", "lease_secs"),
    ("webhooks", "backoff_base_secs"),
    ("webhooks", "backoff_max_secs"),
    ("webhooks", "give_up_after_secs"),
    ("webhooks", "min_attempts"),
];

impl Config {
    /// Loads the file (if any) and the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        overlay_env(&mut table, |name| std::env::var(name).ok());
        let config: Config = toml::Value::Table(table)
            .try_into()
            .context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.status.probe_secs.is_finite()
            && self.status.probe_secs >= 0.05
            && self.status.probe_secs <= 3600.0)
        {
            bail!("status.probe_secs must be between 0.05 and 3600");
        }
        if PasswordProfile::parse(&self.password.profile).is_none() {
            bail!(
                "password.profile must be issuer, nist-800-63b or pci-dss-4, not {:?}",
                self.password.profile
            );
        }
        let pg = |u: &str| u.starts_with("postgres:") || u.starts_with("postgresql:");
        if let Some(read) = &self.database_read_url {
            if !pg(read) || !pg(&self.database_url) {
                bail!("database_read_url is for PostgreSQL only: a postgres:// URL, with a postgres:// database_url");
            }
        }
        if self.lockout.lock_after_failures == 0 || self.lockout.lock_after_failures > 100 {
            bail!("lockout.lock_after_failures must be 1 to 100 (NIST SP 800-63B §3.2.2)");
        }
        if self.lockout.device_allowance == 0 || self.lockout.device_allowance > 100 {
            bail!("lockout.device_allowance must be 1 to 100");
        }
        if self.limits.failures_per_window == 0 || self.limits.window_secs < 1 {
            bail!("limits.failures_per_window and limits.window_secs must be positive");
        }
        if self.limits.card_id_failures == 0 || self.limits.card_id_failures > 100 {
            bail!("limits.card_id_failures must be 1 to 100");
        }
        if self.limits.card_id_window_secs < 60 {
            bail!("limits.card_id_window_secs must be at least 60");
        }
        for proxy in &self.limits.trusted_proxies {
            if let Err(e) = portcullis_web::client::parse_proxy(proxy) {
                bail!("limits.trusted_proxies: {e}");
            }
        }
        if !(32..=128).contains(&self.limits.ipv6_prefix) {
            bail!("limits.ipv6_prefix must be between 32 and 128");
        }
        self.validate_destination_limits()?;
        if self.lockout.lock_for_secs < 1 {
            bail!("lockout.lock_for_secs must be positive");
        }
        if self.session.idle_secs < 1 || self.session.absolute_secs < self.session.idle_secs {
            bail!("session.idle_secs must be positive and at most session.absolute_secs");
        }
        if self.hashing.memory_kib < 8
            || self.hashing.iterations < 1
            || self.hashing.parallelism < 1
        {
            bail!("hashing parameters are out of range");
        }
        if self.hashing.queue_per_worker == 0 {
            bail!("hashing.queue_per_worker must be at least 1");
        }
        if !(0..=19).contains(&self.hashing.nice) {
            bail!("hashing.nice must be between 0 and 19");
        }
        if self.inactivity.warn_after_secs < 1 || self.inactivity.deactivate_after_secs < 1 {
            bail!(
                "inactivity.warn_after_secs and inactivity.deactivate_after_secs must be positive"
            );
        }
        if self.inactivity.interval_secs < 1 {
            bail!("inactivity.interval_secs must be positive");
        }
        self.notify.validate()?;
        self.server.validate()?;
        self.database.validate()?;
        self.keys.validate()?;
        self.cards.validate()?;
        self.tls.validate()?;
        self.accounts_import.validate()?;
        self.webhooks.validate()?;
        self.theme.theme()?;
        if let Some(url) = &self.telemetry.otlp_endpoint {
            if !url.starts_with("http://") {
                bail!(
                    "telemetry.otlp_endpoint must be an http:// address of a collector on this \
                     host or network (OTLP over HTTP; the collector forwards with TLS), not {url:?}"
                );
            }
        }
        if !matches!(self.log.format.as_str(), "auto" | "json" | "text") {
            bail!(
                "log.format must be auto, json or text, not {:?}",
                self.log.format
            );
        }
        Ok(())
    }

    fn validate_destination_limits(&self) -> anyhow::Result<()> {
        let l = &self.limits;
        if l.per_destination_per_hour == 0
            || l.per_destination_per_day == 0
            || l.texts_per_prefix_per_day == 0
            || l.anonymous_texts_per_day == 0
        {
            bail!(
                "limits.per_destination_per_hour, per_destination_per_day, \
                 texts_per_prefix_per_day and anonymous_texts_per_day must be at least 1"
            );
        }
        Ok(())
    }

    /// The anonymous limits as they apply: each kept below the SMS gateway's matching
    /// quota (a quota of 0 is none), so strangers can never use up what the owner's own
    /// codes need, however the two are configured.
    fn anonymous_limits(&self) -> (u32, u32, u32) {
        let below = |mine: u32, quota: u32| {
            if quota == 0 {
                mine
            } else {
                mine.min(quota - 1)
            }
        };
        let (l, n) = (&self.limits, &self.notify);
        (
            below(l.per_destination_per_day, n.sms_per_number_per_day),
            below(l.texts_per_prefix_per_day, n.sms_per_prefix_per_day),
            below(l.anonymous_texts_per_day, n.sms_per_day),
        )
    }

    /// Whose `X-Forwarded-For` is believed, and the IPv6 prefix limits count on.
    pub fn client_addressing(&self) -> portcullis_web::client::ClientAddressing {
        portcullis_web::client::ClientAddressing {
            trusted_proxies: self
                .limits
                .trusted_proxies
                .iter()
                .filter_map(|p| portcullis_web::client::parse_proxy(p).ok())
                .collect(),
            ipv6_prefix: self.limits.ipv6_prefix,
        }
    }

    pub fn hash_params(&self) -> HashParams {
        HashParams {
            memory_kib: self.hashing.memory_kib,
            iterations: self.hashing.iterations,
            parallelism: self.hashing.parallelism,
        }
    }

    pub fn hash_workers(&self) -> usize {
        if self.hashing.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.hashing.workers
        }
    }

    pub fn policies(&self) -> Policies {
        Policies {
            webhooks_allow_http: self.webhooks.allow_http,
            webhooks_allow_loopback: self.webhooks.allow_loopback,
            issuer_name: self.issuer_name.clone(),
            support_phone: self.support_phone.clone(),
            password: PasswordPolicy::new(
                PasswordProfile::parse(&self.password.profile).unwrap_or(PasswordProfile::Issuer),
            ),
            lockout: LockoutPolicy {
                lock_after_failures: self.lockout.lock_after_failures,
                lock_for_secs: self.lockout.lock_for_secs,
                device_allowance: self.lockout.device_allowance,
            },
            throttle: ThrottlePolicy {
                enabled: self.limits.enabled,
                failures_per_window: self.limits.failures_per_window,
                window_secs: self.limits.window_secs,
                per_destination_per_hour: self.limits.per_destination_per_hour,
                per_destination_per_day: self.anonymous_limits().0,
                texts_per_prefix_per_day: self.anonymous_limits().1,
                anonymous_texts_per_day: self.anonymous_limits().2,
            },
            card_guard: CardGuardPolicy {
                failures: self.limits.card_id_failures,
                window_secs: self.limits.card_id_window_secs,
            },
            session: SessionPolicy {
                idle_secs: self.session.idle_secs,
                absolute_secs: self.session.absolute_secs,
            },
            registration_step_secs: self.registration.step_secs,
            security_questions_enabled: self.registration.security_questions,
            mfa: portcullis_core::config::MfaPolicy {
                step_up_new_devices: self.risk.new_device_step_up,
                trust_device_secs: self.risk.trust_device_days.max(0) * 24 * 3600,
                reauth_secs: self.risk.reauth_secs.max(0),
                ..Default::default()
            },
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("{}://{}", self.tls.scheme(), self.listen))
                .trim_end_matches('/')
                .to_owned(),
            oidc_dpop_nonce: self.oidc.dpop_nonce,
            oidc_jwks: self.oidc.jwks_policy(),
            inactivity: InactivityPolicy {
                warn_after_secs: self.inactivity.warn_after_secs,
                deactivate_after_secs: self.inactivity.deactivate_after_secs,
                closed_read_only_secs: self.cards.closed_read_only_secs(),
            },
        }
    }
}

#[cfg(test)]
mod tests;
