//! A circuit breaker per provider, and the worker's clock.
//!
//! ```text
//!   closed ──N failures in a row──► open ──cooldown passes──► half-open (one trial)
//!     ▲                              ▲                             │
//!     └──────── a send succeeds ─────┼─────────────────────────────┤
//!                                    └── the trial fails (cooldown doubles, to a cap) ◄┘
//! ```
//!
//! While a provider's breaker is open its worker claims nothing (its messages wait,
//! attempts unspent) except one-time codes that can go by the other channel; one trial
//! message is sent when the cooldown has passed. Timed with the runtime's monotonic clock,
//! so a wall-clock jump neither opens nor closes it.

use std::time::Duration;

use portcullis_core::clock::{Clock, UnixTime};
use tokio::time::Instant;

/// The breaker's settings.
#[derive(Clone, Copy, Debug)]
pub struct BreakerPolicy {
    /// Failures in a row that open it.
    pub threshold: u32,
    /// The first cooldown; each failed trial doubles it, up to `max_cooldown`.
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            threshold: 3,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(60),
        }
    }
}

/// One provider's breaker.
#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    failures: u32,
    cooldown: Duration,
    open_until: Option<Instant>,
}

/// What the worker may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Send as usual.
    Closed,
    /// Send one message as a trial.
    Trial,
    /// Leave the provider alone until this moment.
    OpenUntil(Instant),
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            failures: 0,
            cooldown: policy.cooldown,
            open_until: None,
        }
    }

    pub fn gate(&self, now: Instant) -> Gate {
        match self.open_until {
            None => Gate::Closed,
            Some(until) if now >= until => Gate::Trial,
            Some(until) => Gate::OpenUntil(until),
        }
    }

    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }

    /// A send went through: closed again, the cooldown back to its first length.
    pub fn success(&mut self) {
        self.failures = 0;
        self.cooldown = self.policy.cooldown;
        self.open_until = None;
    }

    /// A send failed for the provider's reasons (not the message's). Returns true when this
    /// failure opened the breaker (or kept it open after a trial).
    pub fn failure(&mut self, now: Instant) -> bool {
        self.failures = self.failures.saturating_add(1);
        if let Some(_until) = self.open_until {
            // A failed trial: wait longer before the next.
            self.cooldown = (self.cooldown * 2).min(self.policy.max_cooldown);
            self.open_until = Some(now + self.cooldown);
            return true;
        }
        if self.failures >= self.policy.threshold.max(1) {
            self.open_until = Some(now + self.cooldown);
            return true;
        }
        false
    }
}

/// Wall-clock time that only moves forward with the monotonic clock: read once from a
/// source (the database's clock, or this host's at start), then advanced by `Instant`.
/// Retries, leases and give-up decisions are timed with it, so a wall clock set back or
/// forward neither holds messages nor gives them up early.
pub struct SteadyClock {
    anchor: UnixTime,
    at: Instant,
}

impl SteadyClock {
    pub fn new(anchor: UnixTime) -> Self {
        Self {
            anchor,
            at: Instant::now(),
        }
    }
}

impl Clock for SteadyClock {
    fn now(&self) -> UnixTime {
        let elapsed = i64::try_from(self.at.elapsed().as_secs()).unwrap_or(i64::MAX);
        self.anchor.plus_secs(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_failures_open_it_a_trial_closes_or_doubles_it() {
        let mut b = Breaker::new(BreakerPolicy::default());
        let t0 = Instant::now();
        assert_eq!(b.gate(t0), Gate::Closed);
        assert!(!b.failure(t0));
        assert!(!b.failure(t0));
        assert!(b.failure(t0));
        assert_eq!(b.gate(t0), Gate::OpenUntil(t0 + Duration::from_secs(5)));
        assert_eq!(b.gate(t0 + Duration::from_secs(5)), Gate::Trial);
        // The trial fails: ten seconds now.
        let t1 = t0 + Duration::from_secs(5);
        assert!(b.failure(t1));
        assert_eq!(b.gate(t1), Gate::OpenUntil(t1 + Duration::from_secs(10)));
        // Capped at a minute.
        for _ in 0..10 {
            b.failure(t1);
        }
        assert_eq!(b.gate(t1), Gate::OpenUntil(t1 + Duration::from_secs(60)));
        b.success();
        assert_eq!(b.gate(t1), Gate::Closed);
        assert!(!b.is_open());
        // Back to the first cooldown after a success.
        b.failure(t1);
        b.failure(t1);
        b.failure(t1);
        assert_eq!(b.gate(t1), Gate::OpenUntil(t1 + Duration::from_secs(5)));
    }

    #[test]
    fn steady_time_starts_at_its_anchor() {
        let c = SteadyClock::new(UnixTime(1_000));
        assert!((1_000..1_002).contains(&c.now().0));
    }
}
