//! The audit chain. A unit of work appends its events last, just before COMMIT: one
//! `UPDATE audit_head … RETURNING` takes the head row's lock on PostgreSQL (SQLite's
//! transaction already holds the write lock) and reserves the events' sequence numbers, so
//! two units of work never share a `seq` or a previous hash, and the head is held for the
//! few statements that follow.

use async_trait::async_trait;
use portcullis_core::audit::{chain_hash, AuditEntry, AuditEvent, ChainInput};
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{AuditReads, StoreResult};
use portcullis_crypto::KeyedHasher;
use sqlx::AnyConnection;

use crate::sql::statements;
use crate::{db_err, SqlStore};

macro_rules! entry_select {
    () => {
        "SELECT seq, at, kind, account_id, actor, client_ip, detail, prev_hash, hash FROM audit_log"
    };
}

statements! {
    AUDIT_ENTRIES = concat!(entry_select!(), " WHERE seq > $1 ORDER BY seq LIMIT $2");
    ACCOUNT_AUDIT = concat!(entry_select!(), " WHERE account_id = $1 ORDER BY seq DESC LIMIT $2");
    AUDIT_HEAD = "SELECT seq, hash FROM audit_head WHERE id = 1";
    /// Reserves `$1` sequence numbers: the head's new `seq` is the last of them.
    RESERVE = "UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash";
    APPEND = "INSERT INTO audit_log (seq, at, kind, account_id, actor, client_ip, detail, \
        prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    SET_HEAD_HASH = "UPDATE audit_head SET hash = $1 WHERE id = 1";
}

#[derive(sqlx::FromRow)]
struct EntryRecord {
    seq: i64,
    at: i64,
    kind: String,
    account_id: Option<i64>,
    actor: String,
    client_ip: Option<String>,
    detail: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl From<EntryRecord> for AuditEntry {
    fn from(r: EntryRecord) -> Self {
        AuditEntry {
            seq: r.seq,
            at: UnixTime(r.at),
            kind: r.kind,
            account_id: r.account_id,
            actor: r.actor,
            client_ip: r.client_ip,
            detail: r.detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// Appends `events`, in order, to the chain inside the caller's transaction.
pub(crate) async fn append(
    conn: &mut AnyConnection,
    events: &[AuditEvent],
    now: UnixTime,
    key: &KeyedHasher,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let (last, mut prev): (i64, Vec<u8>) = sqlx::query_as(RESERVE)
        .bind(count)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    let mut seq = last - count;
    for event in events {
        seq += 1;
        let kind = event.kind.as_str();
        let hash = chain_hash(
            key,
            &ChainInput {
                prev: &prev,
                seq,
                at: now,
                kind,
                account_id: event.account_id,
                actor: &event.actor,
                client_ip: event.client_ip.as_deref(),
                detail: &event.detail,
            },
        );
        sqlx::query(APPEND)
            .bind(seq)
            .bind(now.0)
            .bind(kind)
            .bind(event.account_id)
            .bind(event.actor.as_str())
            .bind(event.client_ip.as_deref())
            .bind(event.detail.as_str())
            .bind(prev)
            .bind(hash.to_vec())
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        prev = hash.to_vec();
    }
    sqlx::query(SET_HEAD_HASH)
        .bind(prev)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl AuditReads for SqlStore {
    async fn audit_entries(&self, after: i64, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<EntryRecord> = sqlx::query_as(AUDIT_ENTRIES)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    async fn account_audit(&self, account_id: i64, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<EntryRecord> = sqlx::query_as(ACCOUNT_AUDIT)
            .bind(account_id)
            .bind(limit)
            .fetch_all(self.reads())
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    async fn audit_head(&self) -> StoreResult<(i64, Vec<u8>)> {
        sqlx::query_as(AUDIT_HEAD)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }
}
