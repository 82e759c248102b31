//! Flow 10, the rule: an online account with no sign-in for `warn_after_secs` (24 months by
//! default) is warned on its channel; `deactivate_after_secs` (30 days) after the warning,
//! still without a sign-in, it is deactivated. A sign-in clears the warning. A deactivated
//! account cannot sign in until support or card verification (the registration path)
//! reactivates it; inactivity then counts from the reactivation.
//!
//! ```text
//!   active ──(inactive ≥ warn_after)──► warned ──(warned ≥ deactivate_after)──► deactivated
//!     ▲                                   │                                        │
//!     └────────────── sign-in ────────────┘                                        │
//!     └──────────────── support, or card number + card ID + new details ───────────┘
//! ```

use crate::clock::UnixTime;

/// 24 months, counted as 730 days.
pub const DEFAULT_WARN_AFTER_SECS: i64 = 730 * 86_400;
pub const DEFAULT_DEACTIVATE_AFTER_SECS: i64 = 30 * 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InactivityPolicy {
    /// No sign-in this long earns a warning.
    pub warn_after_secs: i64,
    /// This long after the warning, still without a sign-in, the account is deactivated.
    pub deactivate_after_secs: i64,
    /// An account whose every card is closed signs in read-only this long after its last
    /// card closed, then is deactivated (issue 17, `cards.closed_read_only_days`).
    pub closed_read_only_secs: i64,
}

/// 90 days of statements after the last card closes.
pub const DEFAULT_CLOSED_READ_ONLY_SECS: i64 = 90 * 86_400;

impl Default for InactivityPolicy {
    fn default() -> Self {
        Self {
            warn_after_secs: DEFAULT_WARN_AFTER_SECS,
            deactivate_after_secs: DEFAULT_DEACTIVATE_AFTER_SECS,
            closed_read_only_secs: DEFAULT_CLOSED_READ_ONLY_SECS,
        }
    }
}

impl InactivityPolicy {
    /// Accounts last active at or before this are due a warning at `now`.
    pub fn warn_cutoff(&self, now: UnixTime) -> UnixTime {
        now.plus_secs(-self.warn_after_secs)
    }

    /// Accounts whose every card closed at or before this are due deactivation at `now`.
    pub fn closed_cutoff(&self, now: UnixTime) -> UnixTime {
        now.plus_secs(-self.closed_read_only_secs)
    }

    /// Accounts warned at or before this are due deactivation at `now`.
    pub fn deactivate_cutoff(&self, now: UnixTime) -> UnixTime {
        now.plus_secs(-self.deactivate_after_secs)
    }

    /// Whether an account last active at `last_active` and warned at `warned` is due a
    /// warning (`Some(false)`), deactivation (`Some(true)`), or nothing (`None`) at `now`.
    pub fn due(
        &self,
        last_active: UnixTime,
        warned: Option<UnixTime>,
        now: UnixTime,
    ) -> Option<bool> {
        match warned {
            Some(w) if w <= self.deactivate_cutoff(now) => Some(true),
            Some(_) => None,
            None if last_active <= self.warn_cutoff(now) => Some(false),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn a_recent_sign_in_is_left_alone() {
        let p = InactivityPolicy::default();
        let now = UnixTime(1_000 * DAY);
        assert_eq!(p.due(UnixTime(now.0 - 729 * DAY), None, now), None);
    }

    #[test]
    fn twenty_four_months_earn_a_warning() {
        let p = InactivityPolicy::default();
        let now = UnixTime(1_000 * DAY);
        assert_eq!(p.due(UnixTime(now.0 - 730 * DAY), None, now), Some(false));
    }

    #[test]
    fn thirty_days_after_the_warning_the_account_is_deactivated() {
        let p = InactivityPolicy::default();
        let now = UnixTime(1_000 * DAY);
        let last = UnixTime(0);
        assert_eq!(p.due(last, Some(UnixTime(now.0 - 29 * DAY)), now), None);
        assert_eq!(
            p.due(last, Some(UnixTime(now.0 - 30 * DAY)), now),
            Some(true)
        );
    }

    #[test]
    fn durations_are_configurable() {
        let p = InactivityPolicy {
            warn_after_secs: 10,
            deactivate_after_secs: 5,
            closed_read_only_secs: 20,
        };
        let now = UnixTime(100);
        assert_eq!(p.closed_cutoff(now), UnixTime(80));
        assert_eq!(p.due(UnixTime(90), None, now), Some(false));
        assert_eq!(p.due(UnixTime(91), None, now), None);
        assert_eq!(p.due(UnixTime(0), Some(UnixTime(95)), now), Some(true));
    }
}
