//! Delivery counters for `/metrics`: cheap atomics shared by the notifier and the worker of
//! one node (each node counts its own; the outbox table holds the truth for all of them).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use portcullis_core::contact::CodeChannel;

/// Why the SMS cost controls refused a text message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsBlock {
    /// The number's country prefix is not in `sms_allowed_prefixes`.
    PrefixNotAllowed,
    /// `sms_per_number_per_day` reached for this number.
    NumberQuota,
    /// `sms_per_prefix_per_day` reached for this number's country prefix.
    PrefixQuota,
    /// `sms_per_day` reached for the whole service.
    DailyQuota,
}

impl SmsBlock {
    pub const ALL: [SmsBlock; 4] = [
        Self::PrefixNotAllowed,
        Self::NumberQuota,
        Self::PrefixQuota,
        Self::DailyQuota,
    ];

    /// The `reason` label on `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrefixNotAllowed => "prefix_not_allowed",
            Self::NumberQuota => "number_quota",
            Self::PrefixQuota => "prefix_quota",
            Self::DailyQuota => "daily_quota",
        }
    }

    /// For the outbox row's `last_error` and the logs.
    pub fn describe(self) -> &'static str {
        match self {
            Self::PrefixNotAllowed => "SMS refused: the number's country prefix is not allowed",
            Self::NumberQuota => "SMS refused: daily quota for this number reached",
            Self::PrefixQuota => "SMS refused: daily quota for this country prefix reached",
            Self::DailyQuota => "SMS refused: the service's daily SMS quota reached",
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    enqueued: AtomicU64,
    sent_email: AtomicU64,
    sent_sms: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    blocked: [AtomicU64; 4],
    fallbacks: AtomicU64,
    failures_email: AtomicU64,
    failures_sms: AtomicU64,
    breaker_email: AtomicBool,
    breaker_sms: AtomicBool,
    breaker_trips: AtomicU64,
    code_fallbacks: AtomicU64,
}

/// The counters; clones share them.
#[derive(Clone, Debug, Default)]
pub struct Stats(Arc<Counters>);

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Committed to the outbox by this node's units of work.
    pub enqueued: u64,
    pub sent_email: u64,
    pub sent_sms: u64,
    /// Attempts that failed and were put back for later.
    pub retried: u64,
    /// Messages given up on.
    pub failed: u64,
    /// Text messages refused by the cost controls, by [`SmsBlock::ALL`] order.
    pub sms_blocked: [u64; 4],
    /// Refused text messages sent by email instead.
    pub sms_fallbacks: u64,
    /// Failed attempts (retried or given up), by channel.
    pub failures_email: u64,
    pub failures_sms: u64,
    /// Whether each provider's circuit breaker is open now.
    pub email_provider_down: bool,
    pub sms_provider_down: bool,
    /// Times a breaker opened.
    pub breaker_trips: u64,
    /// One-time codes moved to the other channel because theirs could not deliver in time.
    pub code_fallbacks: u64,
}

impl StatsSnapshot {
    pub fn sent(&self, channel: CodeChannel) -> u64 {
        match channel {
            CodeChannel::Email => self.sent_email,
            CodeChannel::Sms => self.sent_sms,
        }
    }

    pub fn blocked(&self, reason: SmsBlock) -> u64 {
        self.sms_blocked
            .get(block_index(reason))
            .copied()
            .unwrap_or(0)
    }

    /// Messages this node settled (sent or given up on).
    pub fn settled(&self) -> u64 {
        self.sent_email + self.sent_sms + self.failed
    }
}

fn block_index(reason: SmsBlock) -> usize {
    match reason {
        SmsBlock::PrefixNotAllowed => 0,
        SmsBlock::NumberQuota => 1,
        SmsBlock::PrefixQuota => 2,
        SmsBlock::DailyQuota => 3,
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = &self.0;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            enqueued: load(&c.enqueued),
            sent_email: load(&c.sent_email),
            sent_sms: load(&c.sent_sms),
            retried: load(&c.retried),
            failed: load(&c.failed),
            sms_blocked: [
                load(&c.blocked[0]),
                load(&c.blocked[1]),
                load(&c.blocked[2]),
                load(&c.blocked[3]),
            ],
            sms_fallbacks: load(&c.fallbacks),
            failures_email: load(&c.failures_email),
            failures_sms: load(&c.failures_sms),
            email_provider_down: c.breaker_email.load(Ordering::Relaxed),
            sms_provider_down: c.breaker_sms.load(Ordering::Relaxed),
            breaker_trips: load(&c.breaker_trips),
            code_fallbacks: load(&c.code_fallbacks),
        }
    }

    pub(crate) fn enqueued(&self, n: usize) {
        self.0
            .enqueued
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, channel: CodeChannel) {
        match channel {
            CodeChannel::Email => bump(&self.0.sent_email),
            CodeChannel::Sms => bump(&self.0.sent_sms),
        }
    }

    pub(crate) fn retried(&self, channel: CodeChannel) {
        bump(&self.0.retried);
        self.failure(channel);
    }

    pub(crate) fn failed(&self, channel: CodeChannel) {
        bump(&self.0.failed);
        self.failure(channel);
    }

    fn failure(&self, channel: CodeChannel) {
        match channel {
            CodeChannel::Email => bump(&self.0.failures_email),
            CodeChannel::Sms => bump(&self.0.failures_sms),
        }
    }

    /// A provider's breaker opened (`true`) or closed.
    pub(crate) fn breaker(&self, channel: CodeChannel, open: bool) {
        let flag = match channel {
            CodeChannel::Email => &self.0.breaker_email,
            CodeChannel::Sms => &self.0.breaker_sms,
        };
        if open && !flag.swap(true, Ordering::Relaxed) {
            bump(&self.0.breaker_trips);
        } else if !open {
            flag.store(false, Ordering::Relaxed);
        }
    }

    pub(crate) fn code_fallback(&self) {
        bump(&self.0.code_fallbacks);
    }

    pub(crate) fn blocked(&self, reason: SmsBlock) {
        if let Some(c) = self.0.blocked.get(block_index(reason)) {
            bump(c);
        }
    }

    pub(crate) fn fallback(&self) {
        bump(&self.0.fallbacks);
    }
}
