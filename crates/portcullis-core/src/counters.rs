//! Counts of security events as they happen on this node, for `/metrics`: locks set and
//! one-time codes issued, by channel. Atomics, shared by clones of the application; each
//! node counts its own (Prometheus sums them).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::contact::CodeChannel;

#[derive(Debug, Default)]
pub struct EventCounters {
    account_locks: AtomicU64,
    device_locks: AtomicU64,
    codes_email: AtomicU64,
    codes_sms: AtomicU64,
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Accounts locked after failed sign-ins.
    pub account_locks: u64,
    /// Known devices locked out of an account after their own failures.
    pub device_locks: u64,
    /// One-time codes issued (queued with their message) by email.
    pub codes_email: u64,
    /// … and by text message.
    pub codes_sms: u64,
}

/// One event to count, recorded when the unit of work that caused it commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountedEvent {
    AccountLocked,
    DeviceLocked,
    CodeSent(CodeChannel),
}

impl EventCounters {
    pub fn record(&self, event: CountedEvent) {
        match event {
            CountedEvent::AccountLocked => self.account_locked(),
            CountedEvent::DeviceLocked => self.device_locked(),
            CountedEvent::CodeSent(channel) => self.code_sent(channel),
        }
    }

    pub fn account_locked(&self) {
        self.account_locks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn device_locked(&self) {
        self.device_locks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn code_sent(&self, channel: CodeChannel) {
        match channel {
            CodeChannel::Email => &self.codes_email,
            CodeChannel::Sms => &self.codes_sms,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            account_locks: self.account_locks.load(Ordering::Relaxed),
            device_locks: self.device_locks.load(Ordering::Relaxed),
            codes_email: self.codes_email.load(Ordering::Relaxed),
            codes_sms: self.codes_sms.load(Ordering::Relaxed),
        }
    }
}
