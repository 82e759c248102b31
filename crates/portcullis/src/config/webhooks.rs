//! The `[webhooks]` section: how security events are delivered to subscribers
//! (docs/design/webhooks.md). Subscriptions themselves are data (`portcullis webhooks add`,
//! `/api/v1/admin/webhooks`), not configuration.

use anyhow::bail;
use portcullis_core::webhooks::UrlRules;
use portcullis_notify::WebhookConfig;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Allows `http://` endpoints that are not loopback (tests and demos only).
    pub allow_http: bool,
    /// Allows loopback endpoints (`127.0.0.0/8`, `::1`, `localhost`): tests, a receiver on
    /// the same machine. Off by default (SSRF).
    pub allow_loopback: bool,
    /// The longest one POST may take, in seconds (fractions allowed).
    pub timeout_secs: f64,
    /// How often each node looks for due deliveries, in seconds (fractions allowed).
    pub poll_secs: f64,
    /// How long a node's claim on a delivery lasts (a dead node's are sent by another after).
    pub lease_secs: i64,
    /// The first retry waits this long; each later one twice the one before (plus up to a
    /// quarter at random), up to `backoff_max_secs`.
    pub backoff_base_secs: i64,
    pub backoff_max_secs: i64,
    /// A delivery still not accepted this long after its event, with at least
    /// `min_attempts` made, is given up (`failed`, shown by `portcullis webhooks list`).
    pub give_up_after_secs: i64,
    pub min_attempts: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        let d = WebhookConfig::default();
        Self {
            allow_http: false,
            allow_loopback: false,
            timeout_secs: d.timeout.as_secs_f64(),
            poll_secs: d.poll_interval.as_secs_f64(),
            lease_secs: d.lease_secs,
            backoff_base_secs: d.backoff_base_secs,
            backoff_max_secs: d.backoff_max_secs,
            give_up_after_secs: d.give_up_after_secs,
            min_attempts: d.min_attempts,
        }
    }
}

impl WebhooksConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.timeout_secs > 0.0 && self.timeout_secs <= 120.0) {
            bail!("webhooks.timeout_secs must be more than 0 and at most 120");
        }
        if !(self.poll_secs > 0.0 && self.poll_secs <= 3600.0) {
            bail!("webhooks.poll_secs must be more than 0 and at most 3600");
        }
        if (self.lease_secs as f64) < self.timeout_secs + 5.0 {
            bail!("webhooks.lease_secs must exceed webhooks.timeout_secs by at least 5");
        }
        if self.backoff_base_secs < 1 || self.backoff_max_secs < self.backoff_base_secs {
            bail!("webhooks.backoff_base_secs must be at least 1 and at most backoff_max_secs");
        }
        if self.give_up_after_secs < 1 || self.min_attempts < 1 {
            bail!("webhooks.give_up_after_secs and webhooks.min_attempts must be positive");
        }
        Ok(())
    }

    /// The delivery worker's pacing.
    pub fn sender_config(&self) -> WebhookConfig {
        let secs = |s: f64, default| {
            std::time::Duration::try_from_secs_f64(s)
                .unwrap_or(std::time::Duration::from_secs(default))
        };
        WebhookConfig {
            poll_interval: secs(self.poll_secs, 1),
            lease_secs: self.lease_secs,
            timeout: secs(self.timeout_secs, 10),
            backoff_base_secs: self.backoff_base_secs,
            backoff_max_secs: self.backoff_max_secs,
            give_up_after_secs: self.give_up_after_secs,
            min_attempts: self.min_attempts,
            rules: UrlRules {
                allow_http: self.allow_http,
                allow_loopback: self.allow_loopback,
            },
            ..WebhookConfig::default()
        }
    }
}
