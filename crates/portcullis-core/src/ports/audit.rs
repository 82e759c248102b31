//! Reading the audit chain. Appending is done by a unit of work's commit, last, just before
//! COMMIT (see [`super::UnitOfWork::audit`]).

use async_trait::async_trait;

use super::StoreResult;
use crate::audit::AuditEntry;

#[async_trait]
pub trait AuditReads: Send + Sync {
    /// Entries with `seq > after`, in order, at most `limit`.
    async fn audit_entries(&self, after: i64, limit: i64) -> StoreResult<Vec<AuditEntry>>;
    /// The newest entries for one account, newest first.
    async fn account_audit(&self, account_id: i64, limit: i64) -> StoreResult<Vec<AuditEntry>>;
    /// The chain's head: the last appended `seq` and its hash (`0` and the genesis hash
    /// before the first append).
    async fn audit_head(&self) -> StoreResult<(i64, Vec<u8>)>;
    /// How many entries are under each key id of `audit.key`, by id.
    async fn count_audit_by_key(&self) -> StoreResult<Vec<(i64, i64)>>;
}
