//! Session lifetime: an idle timeout and an absolute lifetime, both pure functions of time.

use crate::clock::UnixTime;

#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    /// A session unused for this long ends (default 15 minutes).
    pub idle_secs: i64,
    /// A session ends this long after sign-in whatever happens (default 12 hours).
    pub absolute_secs: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_secs: 15 * 60,
            absolute_secs: 12 * 60 * 60,
        }
    }
}

/// Last-activity updates are written at most this often per session, so that reading a
/// page does not cost a database write every time. The idle timeout is therefore exact to
/// within this many seconds (a session may end up to this much early, never late).
pub const TOUCH_GRANULARITY_SECS: i64 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    Active,
    IdleExpired,
    Expired,
}

impl SessionPolicy {
    pub fn state(
        &self,
        created_at: UnixTime,
        last_seen_at: UnixTime,
        now: UnixTime,
    ) -> SessionState {
        if now.0 >= created_at.0.saturating_add(self.absolute_secs) {
            SessionState::Expired
        } else if now.0 >= last_seen_at.0.saturating_add(self.idle_secs) {
            SessionState::IdleExpired
        } else {
            SessionState::Active
        }
    }

    /// When the session ends if it is not used again.
    pub fn expires_at(&self, created_at: UnixTime, last_seen_at: UnixTime) -> UnixTime {
        UnixTime(
            created_at
                .0
                .saturating_add(self.absolute_secs)
                .min(last_seen_at.0.saturating_add(self.idle_secs)),
        )
    }

    /// Whether a request at `now` should record activity.
    pub fn needs_touch(&self, last_seen_at: UnixTime, now: UnixTime) -> bool {
        now.0 - last_seen_at.0 >= TOUCH_GRANULARITY_SECS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_then_absolute() {
        let p = SessionPolicy::default();
        let start = UnixTime(1_000_000);
        assert_eq!(
            p.state(start, start, start.plus_secs(899)),
            SessionState::Active
        );
        assert_eq!(
            p.state(start, start, start.plus_secs(900)),
            SessionState::IdleExpired
        );
        // Kept alive by activity every 10 minutes, it still ends at 12 hours.
        let last = start.plus_secs(12 * 3600 - 60);
        assert_eq!(
            p.state(start, last, start.plus_secs(12 * 3600 - 1)),
            SessionState::Active
        );
        assert_eq!(
            p.state(start, last, start.plus_secs(12 * 3600)),
            SessionState::Expired
        );
    }

    #[test]
    fn expiry_is_the_earlier_bound() {
        let p = SessionPolicy::default();
        let start = UnixTime(0);
        assert_eq!(p.expires_at(start, start), UnixTime(900));
        assert_eq!(p.expires_at(start, UnixTime(43_000)), UnixTime(43_200));
    }

    #[test]
    fn touch_granularity() {
        let p = SessionPolicy::default();
        assert!(!p.needs_touch(UnixTime(100), UnixTime(129)));
        assert!(p.needs_touch(UnixTime(100), UnixTime(130)));
    }
}
