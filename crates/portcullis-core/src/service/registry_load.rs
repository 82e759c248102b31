//! Registry loads (issue 17): the file import and the registry API push go through the
//! same steps — upsert the records in one transaction of their own, then
//! [`finish_load`]: apply their effects on online accounts (a replaced card's account
//! moves to the new card), tell each person whose card was replaced, audit every reissue
//! and every status change of a linked card, and commit it all together. The rules and
//! their reasons are in docs/design/cards.md.

use super::Portcullis;
use crate::audit::{AuditEvent, AuditKind};
use crate::config::Policies;
use crate::ports::{PushKey, RegistryImport, StoreResult};
use crate::registry::{CardStatus, HashedRecord, RawRecord, RecordKeys, RegistryRecord};
use crate::support::{SupportAuthority, SupportScope};
use crate::{FieldError, ServiceError};

/// The most records one push may carry.
pub const MAX_PUSH_RECORDS: usize = 10_000;

/// What a committed load did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub records: u64,
    /// Online accounts moved to a reissued card.
    pub reissues: usize,
    /// Linked cards whose status changed.
    pub status_changes: usize,
}

/// One bad record of a push: its index in the array and the field's error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// What a push answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Applied now: the answer's body (`{"records":N}`), stored with its key.
    Applied(String),
    /// A retry of a push already applied with this key: the same answer, nothing applied.
    Replayed(String),
    /// The key was used with another body: nothing applied.
    KeyConflict,
    /// Bad records (or too many): nothing applied.
    Rejected(Vec<RecordError>),
}

/// Applies a load's effects on online accounts, queues their notices and audit events,
/// and commits them with the load's records. `actor` names who loaded (`cli:<user>`,
/// `support:<token>`); `source` says how ("file registry.csv", "push").
pub async fn finish_load(
    mut import: Box<dyn RegistryImport>,
    policies: &Policies,
    audit_key: &crate::audit::ChainKey,
    actor: &str,
    source: &str,
    records: u64,
) -> StoreResult<(LoadReport, usize)> {
    let settled = import.settle().await?;
    let issuer = &policies.issuer_name;
    for change in &settled.status_changes {
        import.audit(
            AuditEvent::new(AuditKind::CardStatusChanged, Some(change.account.id))
                .actor(actor)
                .detail(format!(
                    "card ••••{} is now {} at the issuer ({source})",
                    change.last4,
                    change.status.as_str()
                )),
        );
        if change.status != CardStatus::Active {
            if let Some(notice) = change.account.notice(
                format!("Your {issuer} card ending {} changed", change.last4),
                format!(
                    "Your card ending {} is now {} at {issuer}, so it can no longer be used \
                     to sign up, link or recover your online account {}. If you did not \
                     expect this, call {}.",
                    change.last4,
                    status_words(change.status),
                    change.account.user_id,
                    policies.support_phone
                ),
            ) {
                import.send(notice);
            }
        }
    }
    for reissue in &settled.reissues {
        import.audit(
            AuditEvent::new(AuditKind::CardReissued, Some(reissue.account.id))
                .actor(actor)
                .detail(format!(
                    "card ••••{} replaced by card ••••{} ({source}); the old number proves \
                     nothing any more",
                    reissue.old_last4, reissue.new_last4
                )),
        );
        if let Some(notice) = reissue.account.notice(
            format!("Your new {issuer} card is in your online account"),
            format!(
                "Your new card ending {} replaces the card ending {} in your online account \
                 {}. The old card's number no longer works online. If you did not expect a \
                 new card, call {}.",
                reissue.new_last4,
                reissue.old_last4,
                reissue.account.user_id,
                policies.support_phone
            ),
        ) {
            import.send(notice);
        }
    }
    let report = LoadReport {
        records,
        reissues: settled.reissues.len(),
        status_changes: settled.status_changes.len(),
    };
    import.audit(
        AuditEvent::new(AuditKind::RegistryLoaded, None)
            .actor(actor)
            .detail(format!(
                "{source}: {records} records, {} reissues moved, {} status changes of linked cards",
                report.reissues, report.status_changes
            )),
    );
    let committed = import.commit(audit_key).await?;
    Ok((report, committed.messages))
}

fn status_words(status: CardStatus) -> &'static str {
    match status {
        CardStatus::Active => "active",
        CardStatus::Blocked => "blocked",
        CardStatus::LostStolen => "reported lost or stolen",
        CardStatus::Closed => "closed",
    }
}

/// Validates and hashes a push's records on every core, under the registry's current key
/// with the numbers' HMACs under the old ones ([`Portcullis::record_keys`]: rows under an
/// old key are moved); all the bad ones, by index.
pub fn hash_records(
    records: &[RawRecord],
    keys: &RecordKeys,
) -> Result<Vec<HashedRecord>, Vec<RecordError>> {
    let parsed: Vec<Result<HashedRecord, Vec<FieldError>>> = crate::par::map(records, |raw| {
        RegistryRecord::parse(raw).map(|r| r.hashed_with(keys))
    });
    let mut errors = Vec::new();
    let mut hashed = Vec::with_capacity(records.len());
    let mut seen = std::collections::HashMap::with_capacity(records.len());
    for (index, result) in parsed.into_iter().enumerate() {
        match result {
            Ok(h) => {
                if let Some(first) = seen.insert(h.number_hash, index) {
                    errors.push(RecordError {
                        index,
                        field: "number".into(),
                        message: format!("the same number as record {first}"),
                    });
                }
                hashed.push(h);
            }
            Err(fields) => errors.extend(fields.into_iter().map(|f| RecordError {
                index,
                field: f.field,
                message: f.message,
            })),
        }
    }
    if errors.is_empty() {
        Ok(hashed)
    } else {
        Err(errors)
    }
}

impl Portcullis {
    /// Opens a registry load stamped with the clock's time.
    pub async fn begin_registry_load(&self) -> Result<Box<dyn RegistryImport>, ServiceError> {
        Ok(self.ports.imports.begin_import(self.clock.now()).await?)
    }

    /// Finishes a load opened by [`Self::begin_registry_load`] (see [`finish_load`]).
    pub async fn finish_registry_load(
        &self,
        import: Box<dyn RegistryImport>,
        actor: &str,
        source: &str,
        records: u64,
    ) -> Result<LoadReport, ServiceError> {
        let (report, messages) = finish_load(
            import,
            &self.policies,
            &self.audit_keys.current(),
            actor,
            source,
            records,
        )
        .await?;
        if messages > 0 {
            self.notifier.queued(messages);
        }
        Ok(report)
    }

    /// `POST /api/v1/admin/registry/records` (scope `registry:write`): records already
    /// validated and hashed by [`hash_records`] (at most [`MAX_PUSH_RECORDS`]), all or
    /// nothing. With `idempotency_key`, a retry of the same request (`request_hash`, the
    /// body's SHA-256) is answered as the first time and applied once; the same key with
    /// another request is refused.
    pub async fn push_registry(
        &self,
        authority: &SupportAuthority,
        hashed: &[HashedRecord],
        idempotency_key: Option<&str>,
        request_hash: &[u8; 32],
    ) -> Result<PushOutcome, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::RegistryWrite, now)
            .await?;
        if hashed.len() > MAX_PUSH_RECORDS {
            return Ok(PushOutcome::Rejected(vec![too_many(hashed.len())]));
        }
        let response = format!("{{\"records\":{}}}", hashed.len());
        let mut import = self.ports.imports.begin_import(now).await?;
        if let Some(key) = idempotency_key {
            match import.claim_push_key(key, request_hash, &response).await? {
                PushKey::Fresh => {}
                PushKey::Replay(answer) => return Ok(PushOutcome::Replayed(answer)),
                PushKey::Conflict => return Ok(PushOutcome::KeyConflict),
            }
        }
        import.upsert(hashed).await?;
        self.finish_registry_load(import, authority.actor(), "push", hashed.len() as u64)
            .await?;
        Ok(PushOutcome::Applied(response))
    }
}

/// The error of a push over [`MAX_PUSH_RECORDS`] (its index is the first record too many).
pub fn too_many(count: usize) -> RecordError {
    RecordError {
        index: MAX_PUSH_RECORDS,
        field: String::new(),
        message: format!("a push carries at most {MAX_PUSH_RECORDS} records; this one has {count}"),
    }
}
