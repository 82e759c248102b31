//! Flow steps held by the hash of a random token, and the one-time codes bound to them.

use async_trait::async_trait;

use super::StoreResult;
use crate::clock::UnixTime;
use crate::contact::CodeChannel;
use crate::otp::{CodePolicy, Resend};
use crate::steps::{CodePurpose, StepKind};

/// A live step.
#[derive(Clone, Debug)]
pub struct StepRow {
    pub kind: StepKind,
    pub subject_id: i64,
    pub data: String,
    pub expires_at: UnixTime,
}

/// A one-time code to store. Its message is sent through the same unit of work: no code
/// without its message, no message without its code.
#[derive(Clone, Debug)]
pub struct NewCode {
    pub step_hash: [u8; 32],
    pub account_id: i64,
    pub purpose: CodePurpose,
    pub code_hash: [u8; 32],
    pub channel: CodeChannel,
    pub expires_at: UnixTime,
}

/// An `Idempotency-Key` to keep with its answer in a write's own unit of work (the use
/// cases that take one: registration, status incidents).
#[derive(Clone, Copy, Debug)]
pub struct IdempotencyKeep<'a> {
    pub scope: &'a str,
    pub key: &'a str,
    pub request_hash: &'a [u8; 32],
}

/// An `Idempotency-Key` already used: the hash of the request it came with and the answer
/// that request was given.
#[derive(Clone, Debug)]
pub struct KeptAnswer {
    pub request_hash: Vec<u8>,
    pub response: String,
}

#[async_trait]
pub trait StepReads: Send + Sync {
    /// The answer kept for `key` in `scope` (e.g. `registration`), if any.
    async fn find_idempotency_key(&self, scope: &str, key: &str)
        -> StoreResult<Option<KeptAnswer>>;
    /// The step if it exists, is of `kind` and has not expired at `now`.
    async fn find_step(
        &self,
        token_hash: &[u8; 32],
        kind: StepKind,
        now: UnixTime,
    ) -> StoreResult<Option<StepRow>>;
}

#[async_trait]
pub trait StepWrites: Send {
    async fn create_step(
        &mut self,
        token_hash: &[u8; 32],
        kind: StepKind,
        subject_id: i64,
        data: &str,
        expires_at: UnixTime,
    ) -> StoreResult<()>;
    /// Removes the step; true for the one caller that removed it.
    async fn consume_step(&mut self, token_hash: &[u8; 32], kind: StepKind) -> StoreResult<bool>;
    /// Removes every step of `kind` held for the account (the links a reset makes void).
    async fn drop_account_steps(&mut self, account_id: i64, kind: StepKind) -> StoreResult<u64>;
    /// Keeps `key` in `scope` with the request's hash and its answer, committed with the
    /// write it answers. A key already kept (a parallel request with the same key committed
    /// first) is [`StoreError::Unavailable`](super::StoreError): the caller looks again.
    async fn keep_idempotency_key(
        &mut self,
        scope: &str,
        key: &str,
        request_hash: &[u8; 32],
        response: &str,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait CodeWrites: Send {
    /// Stores a code (replacing an unused one for the same step).
    async fn create_code(&mut self, code: NewCode) -> StoreResult<()>;
    /// Marks the code used; true for the one caller that did.
    async fn use_code(&mut self, step_hash: &[u8; 32]) -> StoreResult<bool>;
    /// Replaces the code with `new_hash` if the last was sent at least
    /// `policy.resend_after_secs` ago and fewer than `policy.max_sends` were sent. Tries
    /// already made still count (NIST: a new code does not reset the failure count). Only
    /// on [`Resend::Sent`] does the caller add the new code's message and commit.
    async fn resend_code(
        &mut self,
        step_hash: &[u8; 32],
        new_hash: &[u8; 32],
        policy: &CodePolicy,
    ) -> StoreResult<Resend>;
}
