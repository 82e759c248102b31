//! Throttling per client address: slows the spraying of many User IDs (or card numbers)
//! from one place, where the per-account lockout cannot see it.
//!
//! Each action has a bucket per address: a fixed window opened by the first attempt. An
//! attempt *claims* a place in the bucket before it is evaluated (atomically in the store, so
//! parallel requests cannot slip past the limit) and gives it back when it succeeds, so only
//! failures fill the bucket. When the bucket is full the answer is 429 with `Retry-After`
//! until the window closes.

/// What is being throttled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleAction {
    SignIn,
    CardCheck,
    Recovery,
}

impl ThrottleAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "signin",
            Self::CardCheck => "card",
            Self::Recovery => "recovery",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ThrottlePolicy {
    /// Off only for benchmarks that measure the service, not the limiter.
    pub enabled: bool,
    /// Failed attempts allowed per address per window (default 100).
    pub failures_per_window: u32,
    /// The window (default 10 minutes).
    pub window_secs: i64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            failures_per_window: 100,
            window_secs: 600,
        }
    }
}

/// The bucket key for an action from an address.
pub fn bucket(action: ThrottleAction, client_ip: &str) -> String {
    format!("{}:{}", action.as_str(), client_ip)
}

/// Seconds until a window that opened at `window_start` closes.
pub fn retry_after(window_start: i64, window_secs: i64, now: i64) -> u64 {
    u64::try_from(window_start.saturating_add(window_secs).saturating_sub(now))
        .unwrap_or(0)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_per_action_and_address() {
        assert_eq!(
            bucket(ThrottleAction::SignIn, "203.0.113.9"),
            "signin:203.0.113.9"
        );
        assert_ne!(
            bucket(ThrottleAction::SignIn, "a"),
            bucket(ThrottleAction::CardCheck, "a")
        );
    }

    #[test]
    fn retry_after_counts_down_to_at_least_one() {
        assert_eq!(retry_after(1000, 600, 1000), 600);
        assert_eq!(retry_after(1000, 600, 1599), 1);
        assert_eq!(retry_after(1000, 600, 2000), 1);
    }
}
