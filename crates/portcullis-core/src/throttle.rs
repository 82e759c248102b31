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
    /// Forgot-password step 1: writes a step, so every call counts (never given back).
    RecoveryStart,
    /// Passkey sign-in options: writes a step, so every call counts.
    PasskeyOptions,
    /// Registration step 2: four argon2 hashes a call.
    RegistrationComplete,
}

impl ThrottleAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "signin",
            Self::CardCheck => "card",
            Self::Recovery => "recovery",
            Self::RecoveryStart => "recovery-start",
            Self::PasskeyOptions => "passkey-options",
            Self::RegistrationComplete => "registration",
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
    /// Messages an anonymous request may have sent to one phone number or email address
    /// in an hour (default 3) ...
    pub per_destination_per_hour: u32,
    /// ... and in a day (default 3, below the SMS gateway's per-number quota, so strangers
    /// can never use up the owner's own texts).
    pub per_destination_per_day: u32,
    /// Texts an anonymous request may have sent to one country prefix in a day (default
    /// 500, below the gateway's per-prefix quota).
    pub texts_per_prefix_per_day: u32,
    /// Texts anonymous requests may have sent in all in a day (default 2,500, below the
    /// gateway's daily quota).
    pub anonymous_texts_per_day: u32,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            failures_per_window: 100,
            window_secs: 600,
            per_destination_per_hour: 3,
            per_destination_per_day: 3,
            texts_per_prefix_per_day: 500,
            anonymous_texts_per_day: 2500,
        }
    }
}

/// The bucket key for an action from an address.
pub fn bucket(action: ThrottleAction, client_ip: &str) -> String {
    format!("{}:{}", action.as_str(), client_ip)
}

/// One bucket as a pure state machine: the same transitions the store makes in one atomic
/// statement each (`store/src/throttle.rs`), for the reader and for the model-based test
/// that proves the two equal on both databases (`tests/conformance/limits.rs`).
///
/// ```text
///   (none) ──claim──► Open(start = now, count = 1)
///   Open(count < limit) ──claim──► Open(count + 1)
///   Open(count = limit) ──claim──► refused: Some(start)   (answered 429 until start + window)
///   Open(start ≤ now − window) ──claim──► Open(start = now, count = 1)
///   Open(count) ──release──► Open(count − 1, never below 0)
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// `None` before the first claim.
    pub window_start: Option<i64>,
    pub count: u32,
}

impl Bucket {
    /// Claims a place at `now`: `None` when granted, `Some(window_start)` when full.
    pub fn claim(&mut self, now: i64, window_secs: i64, limit: u32) -> Option<i64> {
        match self.window_start {
            Some(start) if start > now - window_secs => {
                if self.count < limit {
                    self.count += 1;
                    None
                } else {
                    Some(start)
                }
            }
            // No window yet, or it has closed: a new one opens with this claim.
            _ => {
                *self = Bucket {
                    window_start: Some(now),
                    count: 1,
                };
                None
            }
        }
    }

    /// Gives a place back (the attempt succeeded).
    pub fn release(&mut self) {
        self.count = self.count.saturating_sub(1);
    }
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
    fn a_bucket_fills_refuses_and_opens_again() {
        let mut b = Bucket::default();
        assert_eq!(b.claim(1000, 600, 2), None);
        assert_eq!(b.claim(1001, 600, 2), None);
        assert_eq!(b.claim(1002, 600, 2), Some(1000), "full");
        b.release();
        assert_eq!(b.claim(1003, 600, 2), None, "a success gave its place back");
        assert_eq!(b.claim(1599, 600, 2), Some(1000));
        assert_eq!(b.claim(1600, 600, 2), None, "the window closed");
        assert_eq!(b.window_start, Some(1600));
        assert_eq!(b.count, 1);
    }

    #[test]
    fn retry_after_counts_down_to_at_least_one() {
        assert_eq!(retry_after(1000, 600, 1000), 600);
        assert_eq!(retry_after(1000, 600, 1599), 1);
        assert_eq!(retry_after(1000, 600, 2000), 1);
    }
}
