//! The claims (see `portcullis_core::ports::Claims`): each its own short statement on the
//! pool, committed at once, never inside a unit of work. The SQL of each is in its area's
//! module; this gathers them behind the one trait.

use async_trait::async_trait;
use portcullis_core::card_guard::{CardGuardPolicy, GuardClaim};
use portcullis_core::clock::UnixTime;
use portcullis_core::lockout::Claim;
use portcullis_core::ports::{
    CardGuardClaims, Claims, CodeAttempt, Counter, StoreResult, SweepCutoffs, Swept,
};
use portcullis_core::steps::StepKind;

use crate::{card_guard, codes, jobs, lockout, steps, sweep, throttle, SqlStore};

#[async_trait]
impl Claims for SqlStore {
    async fn throttle_claim(
        &self,
        bucket: &str,
        now: UnixTime,
        window_secs: i64,
        limit: u32,
    ) -> StoreResult<Option<i64>> {
        throttle::claim(&self.pool, bucket, now, window_secs, limit).await
    }

    async fn throttle_release(&self, bucket: &str) -> StoreResult<()> {
        throttle::release(&self.pool, bucket).await
    }

    async fn claim_attempt(
        &self,
        counter: Counter,
        now: UnixTime,
        limit: u32,
    ) -> StoreResult<Claim> {
        lockout::claim(&self.pool, counter, now, limit).await
    }

    async fn release_attempt(&self, counter: Counter) -> StoreResult<()> {
        lockout::release(&self.pool, counter).await
    }

    async fn step_attempt(
        &self,
        token_hash: &[u8; 32],
        kind: StepKind,
        max: u32,
    ) -> StoreResult<Option<u32>> {
        steps::attempt(&self.pool, token_hash, kind, max).await
    }

    async fn try_code(
        &self,
        step_hash: &[u8; 32],
        now: UnixTime,
        max_tries: u32,
    ) -> StoreResult<Option<CodeAttempt>> {
        codes::try_code(&self.pool, step_hash, now, max_tries).await
    }

    async fn claim_job(
        &self,
        job: &str,
        node: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> StoreResult<bool> {
        jobs::claim(&self.pool, job, node, now, until).await
    }

    async fn release_job(&self, job: &str, node: &str) -> StoreResult<bool> {
        jobs::release(&self.pool, job, node).await
    }

    async fn sweep_expired(&self, cutoffs: SweepCutoffs) -> StoreResult<Swept> {
        sweep::sweep(&self.pool, cutoffs).await
    }
}

#[async_trait]
impl CardGuardClaims for SqlStore {
    async fn card_guard_claim(
        &self,
        record_id: i64,
        now: UnixTime,
        policy: CardGuardPolicy,
    ) -> StoreResult<GuardClaim> {
        card_guard::claim(&self.pool, record_id, now, policy).await
    }

    async fn card_guard_release(&self, record_id: i64) -> StoreResult<()> {
        card_guard::release(&self.pool, record_id).await
    }

    async fn card_unpause_claim(
        &self,
        record_id: i64,
        policy: CardGuardPolicy,
    ) -> StoreResult<Option<u32>> {
        card_guard::unpause_claim(&self.pool, record_id, policy).await
    }
}
