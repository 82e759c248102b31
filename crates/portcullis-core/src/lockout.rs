//! The lockout rule: after `lock_after_failures` consecutive failed password attempts an
//! account is locked for `lock_for_secs`.
//!
//! ```text
//!                 claim (count < N)              failure with claimed count = N
//!   ┌──────────┐ ───────────────────► evaluating ─────────────────────────────► ┌────────┐
//!   │ Open(n)  │ ◄─── success: n := 0 ───┘  │                                   │ Locked │
//!   └──────────┘ ◄── failure: n stays ──────┘                                   └────────┘
//!        ▲   claim (count = N, lock not yet set): refused, answered as a failure     │
//!        └──────────────────── lock expires (next claim starts at n = 1) ◄───────────┘
//! ```
//!
//! The count is *claimed before* the password is evaluated: each attempt atomically takes a
//! slot (`count + 1`, only while `count < N`) and gives it back on success by resetting to 0.
//! So however many attempts arrive in parallel, at most `N` passwords are evaluated before
//! the lock; the rest are refused without evaluation. The store performs each transition as
//! one atomic statement; this module is the same machine as pure functions, for the tests
//! and for the reader.
//!
//! While locked, a request that presents the correct password learns that the account is
//! locked and how to unlock it (HTTP 423); any other request gets the ordinary failure, so
//! the lock tells a stranger nothing.

use crate::clock::UnixTime;

/// Wrong security answers an account allows, across every recovery step (not per step),
/// before answers are refused for `lock_for_secs` and the owner is told. The same machine as
/// the password's count, on a counter of its own (`Counter::Answers`).
pub const ANSWER_FAILURES: u32 = 5;

#[derive(Clone, Copy, Debug)]
pub struct LockoutPolicy {
    pub lock_after_failures: u32,
    pub lock_for_secs: i64,
    /// A known device's own allowance: failures from it count here, not on the account, and
    /// at this many it is locked out itself (for `lock_for_secs`).
    pub device_allowance: u32,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            lock_after_failures: 6,
            lock_for_secs: 7 * 24 * 60 * 60,
            device_allowance: 4,
        }
    }
}

/// The lockout fields of one account (or one known device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LockState {
    pub failed_count: u32,
    pub locked_until: Option<UnixTime>,
}

/// What a claim returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The attempt may be evaluated; it is the `n`th consecutive one.
    Granted(u32),
    /// Locked until the given time.
    Locked(UnixTime),
    /// `N` attempts are already being evaluated; this one is refused.
    Exhausted,
}

impl LockState {
    pub fn is_locked(&self, now: UnixTime) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }

    /// Takes an attempt slot.
    pub fn claim(&mut self, policy: &LockoutPolicy, now: UnixTime) -> Claim {
        match self.locked_until {
            Some(until) if until > now => return Claim::Locked(until),
            Some(_) => {
                // The lock has run out: start afresh.
                *self = LockState::default();
            }
            None => {}
        }
        if self.failed_count >= policy.lock_after_failures {
            return Claim::Exhausted;
        }
        self.failed_count += 1;
        Claim::Granted(self.failed_count)
    }

    /// The evaluated attempt failed; returns whether this failure locked the account.
    pub fn fail(&mut self, policy: &LockoutPolicy, claimed: u32, now: UnixTime) -> bool {
        if claimed >= policy.lock_after_failures && self.locked_until.is_none() {
            self.locked_until = Some(now.plus_secs(policy.lock_for_secs));
            true
        } else {
            false
        }
    }

    /// The evaluated attempt succeeded.
    pub fn succeed(&mut self) {
        self.failed_count = 0;
    }

    /// The attempt was not a password failure after all (the right password with the wrong
    /// account type): give the slot back.
    pub fn release(&mut self) {
        self.failed_count = self.failed_count.saturating_sub(1);
    }

    /// Support or self-service unlock.
    pub fn unlock(&mut self) {
        *self = LockState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy::default()
    }

    const T: UnixTime = UnixTime(1_000);

    #[test]
    fn six_failures_lock_for_seven_days() {
        let p = policy();
        let mut s = LockState::default();
        for n in 1..=5 {
            assert_eq!(s.claim(&p, T), Claim::Granted(n));
            assert!(!s.fail(&p, n, T));
        }
        assert_eq!(s.claim(&p, T), Claim::Granted(6));
        assert!(s.fail(&p, 6, T));
        let until = T.plus_secs(7 * 86_400);
        assert_eq!(s.claim(&p, T.plus_secs(1)), Claim::Locked(until));
        assert!(s.is_locked(until.plus_secs(-1)));
        assert!(!s.is_locked(until));
    }

    #[test]
    fn success_resets_the_count() {
        let p = policy();
        let mut s = LockState::default();
        for n in 1..=5 {
            s.claim(&p, T);
            s.fail(&p, n, T);
        }
        assert_eq!(s.claim(&p, T), Claim::Granted(6));
        s.succeed();
        assert_eq!(s.claim(&p, T), Claim::Granted(1));
    }

    #[test]
    fn parallel_claims_never_exceed_the_threshold() {
        // 40 attempts claim before any is evaluated: only 6 are granted.
        let p = policy();
        let mut s = LockState::default();
        let granted = (0..40)
            .filter(|_| matches!(s.claim(&p, T), Claim::Granted(_)))
            .count();
        assert_eq!(granted, 6);
    }

    #[test]
    fn an_expired_lock_starts_afresh() {
        let p = policy();
        let mut s = LockState {
            failed_count: 6,
            locked_until: Some(T),
        };
        assert_eq!(s.claim(&p, T), Claim::Granted(1));
        assert_eq!(s.locked_until, None);
    }

    #[test]
    fn release_gives_the_slot_back() {
        let p = policy();
        let mut s = LockState::default();
        assert_eq!(s.claim(&p, T), Claim::Granted(1));
        s.release();
        assert_eq!(s, LockState::default());
    }

    #[test]
    fn unlock_clears_everything() {
        let mut s = LockState {
            failed_count: 6,
            locked_until: Some(T.plus_secs(100)),
        };
        s.unlock();
        assert!(!s.is_locked(T));
        assert_eq!(s.failed_count, 0);
    }
}
