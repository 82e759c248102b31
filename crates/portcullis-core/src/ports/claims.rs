//! Claims: the limits, each enforced by one short atomic statement of its own, committed at
//! once and taken *before* the slow work (argon2, a code check). A claim either takes a
//! place below the limit or reports the limit reached, so however many requests arrive in
//! parallel, no more than the limit are ever evaluated. They are deliberately outside any
//! unit of work: a claim must count even when the attempt it admits later fails, and it
//! must never wait behind a long transaction.

use async_trait::async_trait;

use super::card_guard::CardGuardClaims;
use super::lockout::Counter;
use super::StoreResult;
use crate::clock::UnixTime;
use crate::lockout::Claim;
use crate::steps::StepKind;

/// A code's state after a try was counted against it.
#[derive(Clone, Debug)]
pub struct CodeAttempt {
    pub code_hash: Vec<u8>,
    pub purpose: String,
    pub account_id: i64,
    pub attempts: u32,
}

/// What the background sweep deletes: each kind of row that has outlived its use before
/// its own cutoff.
#[derive(Clone, Copy, Debug)]
pub struct SweepCutoffs {
    /// Flow steps that expired at or before this.
    pub steps_before: UnixTime,
    /// One-time codes that expired at or before this (later than their step's end, so a
    /// live step never loses its code).
    pub codes_before: UnixTime,
    /// Throttle and destination buckets whose window opened at or before this (the
    /// longest window ago).
    pub throttle_before: UnixTime,
    /// Devices last seen at or before this, and not trusted beyond it.
    pub devices_before: UnixTime,
    /// Replaced contact details kept for "This was not me", changed at or before this (no
    /// "not me" link that old is still valid).
    pub contacts_before: UnixTime,
    /// Registry push `Idempotency-Key`s stored at or before this.
    pub push_keys_before: UnixTime,
    /// API `Idempotency-Key`s (registration) stored at or before this.
    pub idempotency_keys_before: UnixTime,
    /// Webhook deliveries sent at or before this.
    pub webhooks_sent_before: UnixTime,
    /// Webhook deliveries given up (`failed`) whose event is from at or before this.
    pub webhooks_failed_before: UnixTime,
    /// OpenID Connect requests, codes and tokens that expired at or before this; one-time
    /// JWT ids expire at `steps_before`.
    pub oidc_before: UnixTime,
}

/// How many rows one sweep deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub steps: u64,
    pub codes: u64,
    pub throttle: u64,
    pub devices: u64,
    pub contacts: u64,
    pub push_keys: u64,
    pub idempotency_keys: u64,
    pub webhooks_sent: u64,
    pub webhooks_failed: u64,
    /// OpenID Connect requests, codes, tokens and one-time JWT ids.
    pub oidc: u64,
}

#[async_trait]
pub trait Claims: CardGuardClaims + Send + Sync {
    /// Claims a place in `bucket`'s window of `window_secs` holding `limit` places. `None`
    /// when granted; `Some(window_start)` when the bucket is full.
    async fn throttle_claim(
        &self,
        bucket: &str,
        now: UnixTime,
        window_secs: i64,
        limit: u32,
    ) -> StoreResult<Option<i64>>;
    /// Gives a place back (the attempt succeeded).
    async fn throttle_release(&self, bucket: &str) -> StoreResult<()>;
    /// Takes an attempt slot on a lockout counter (see [`crate::lockout::LockState::claim`]).
    async fn claim_attempt(
        &self,
        counter: Counter,
        now: UnixTime,
        limit: u32,
    ) -> StoreResult<Claim>;
    /// Gives back a claimed slot (the attempt was not a password failure after all).
    async fn release_attempt(&self, counter: Counter) -> StoreResult<()>;
    /// Counts a wrong answer on the step: the new count, or `None` when the step is gone or
    /// already has `max` wrong answers.
    async fn step_attempt(
        &self,
        token_hash: &[u8; 32],
        kind: StepKind,
        max: u32,
    ) -> StoreResult<Option<u32>>;
    /// Counts one try against the step's live code, in the statement that reads its hash;
    /// `None` when there is no live code (expired, used, or out of `max_tries`).
    async fn try_code(
        &self,
        step_hash: &[u8; 32],
        now: UnixTime,
        max_tries: u32,
    ) -> StoreResult<Option<CodeAttempt>>;
    /// Claims the lease of the scheduled job `job` for `node` until `until`, if no lease is
    /// live at `now`: one conditional UPDATE, so one node wins.
    async fn claim_job(
        &self,
        job: &str,
        node: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> StoreResult<bool>;
    /// Ends `node`'s lease of `job` at once (a run cut short by a shutdown), so that the
    /// next node to try takes it; false when another node holds it.
    async fn release_job(&self, job: &str, node: &str) -> StoreResult<bool>;
    /// Deletes expired steps, codes, buckets and devices in short batches (each its own
    /// statement, never holding a long transaction).
    async fn sweep_expired(&self, cutoffs: SweepCutoffs) -> StoreResult<Swept>;
}
