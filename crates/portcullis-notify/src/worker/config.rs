//! How a node's delivery workers pace themselves.

use std::time::Duration;

use crate::breaker::BreakerPolicy;
use crate::sms::SmsPolicy;

/// How the worker paces itself.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// How often to look for due rows when nothing wakes the worker (retries, and messages
    /// queued by other nodes or by store transactions).
    pub poll_interval: Duration,
    /// How long a claim holds a row.
    pub lease_secs: i64,
    /// Rows claimed at once.
    pub batch_size: u32,
    /// The longest one send may take (each transport is built with it).
    pub send_timeout: Duration,
    /// The first retry waits this long; each later one twice the one before.
    pub backoff_base_secs: i64,
    pub backoff_max_secs: i64,
    /// A message still unsent this long after it was queued is given up …
    pub give_up_after_secs: i64,
    /// … once at least this many attempts were made (so a jump of the clock, or a short
    /// outage, never gives a message up after an attempt or two).
    pub min_attempts: u32,
    /// Each provider's circuit breaker.
    pub breaker: BreakerPolicy,
    /// Time retries, leases and give-up decisions with a steady clock (the database's on
    /// PostgreSQL) instead of the injected one. On in `serve`; tests that drive a fake clock
    /// leave it off.
    pub steady_time: bool,
    pub sms: SmsPolicy,
    /// The start of this node's id (a random part is added per worker started).
    pub node_name: String,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            lease_secs: 60,
            batch_size: 10,
            send_timeout: Duration::from_secs(15),
            backoff_base_secs: 5,
            backoff_max_secs: 3600,
            give_up_after_secs: 24 * 3600,
            min_attempts: 5,
            breaker: BreakerPolicy::default(),
            steady_time: false,
            sms: SmsPolicy::default(),
            node_name: default_node_name(),
        }
    }
}

/// The host's name, or `node`.
pub fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}
