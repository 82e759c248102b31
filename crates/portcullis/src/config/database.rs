//! The `[database]`, `[status]` and `[theme]` sections.

use anyhow::bail;
use portcullis_web::theme::{Colour, Theme};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    /// PostgreSQL, set on every connection: the longest one statement may run.
    pub statement_timeout_secs: f64,
    /// PostgreSQL: the longest a statement waits for a lock.
    pub lock_timeout_secs: f64,
    /// PostgreSQL: the longest a transaction may sit idle (a stalled node's locks go).
    pub idle_in_transaction_timeout_secs: f64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout_secs: 3,
            statement_timeout_secs: 5.0,
            lock_timeout_secs: 3.0,
            idle_in_transaction_timeout_secs: 10.0,
        }
    }
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        for (key, v) in [
            ("statement_timeout_secs", self.statement_timeout_secs),
            ("lock_timeout_secs", self.lock_timeout_secs),
            (
                "idle_in_transaction_timeout_secs",
                self.idle_in_transaction_timeout_secs,
            ),
        ] {
            if !(v.is_finite() && (0.001..=3600.0).contains(&v)) {
                bail!("database.{key} must be between 0.001 and 3600");
            }
        }
        Ok(())
    }

    /// The PostgreSQL session timeouts, in milliseconds.
    pub fn session_timeouts(&self) -> portcullis_store::SessionTimeouts {
        let ms = |v: f64| (v * 1000.0).round().max(1.0) as u64;
        portcullis_store::SessionTimeouts {
            statement_ms: ms(self.statement_timeout_secs),
            lock_ms: ms(self.lock_timeout_secs),
            idle_in_transaction_ms: ms(self.idle_in_transaction_timeout_secs),
        }
    }
}

/// The service status prober.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// Seconds between two background probes of each part.
    pub probe_secs: f64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self { probe_secs: 15.0 }
    }
}

/// The re-seal job (docs/design/keys.md, "Sealed values"): how often a serving node tries
/// to take its lease, and how many values one statement reads.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    pub reseal_interval_secs: u64,
    pub reseal_batch: u32,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            reseal_interval_secs: 60,
            reseal_batch: 100,
        }
    }
}

impl KeysConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=86_400).contains(&self.reseal_interval_secs) {
            anyhow::bail!("keys.reseal_interval_secs must be between 1 and 86400");
        }
        if !(1..=10_000).contains(&self.reseal_batch) {
            anyhow::bail!("keys.reseal_batch must be between 1 and 10000");
        }
        Ok(())
    }

    /// How often the job runs.
    pub fn reseal_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.reseal_interval_secs)
    }
}

/// The issuer's colours on the pages, each `#rrggbb`. The defaults are the stylesheet's own.
/// A scheme whose text would be hard to read (below 4.5:1) is refused at start-up.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThemeConfig {
    /// The brand colour: the header, main buttons and links (light mode).
    pub brand: String,
    /// Text on the brand colour (light mode).
    pub brand_ink: String,
    /// The brand colour in dark mode.
    pub brand_dark: String,
    /// Text on the brand colour in dark mode.
    pub brand_ink_dark: String,
}

impl Default for ThemeConfig {
    fn default() -> Self {
        let t = Theme::default();
        Self {
            brand: t.brand.to_string(),
            brand_ink: t.brand_ink.to_string(),
            brand_dark: t.brand_dark.to_string(),
            brand_ink_dark: t.brand_ink_dark.to_string(),
        }
    }
}

impl ThemeConfig {
    /// The colours, parsed and checked for contrast.
    pub fn theme(&self) -> anyhow::Result<Theme> {
        let colour = |key: &str, value: &str| {
            Colour::parse(value).map_err(|e| anyhow::anyhow!("theme.{key}: {e}"))
        };
        let theme = Theme {
            brand: colour("brand", &self.brand)?,
            brand_ink: colour("brand_ink", &self.brand_ink)?,
            brand_dark: colour("brand_dark", &self.brand_dark)?,
            brand_ink_dark: colour("brand_ink_dark", &self.brand_ink_dark)?,
        };
        let problems = theme.contrast_problems();
        if !problems.is_empty() {
            bail!(
                "the theme colours would be hard to read:\n  - {}",
                problems.join("\n  - ")
            );
        }
        Ok(theme)
    }
}
