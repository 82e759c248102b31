//! The audit chain. A unit of work appends its events last, just before COMMIT, in two
//! statements whatever their number:
//!
//! 1. `UPDATE audit_head … RETURNING` (RESERVE) takes the head row's lock on PostgreSQL
//!    (SQLite's transaction already holds the write lock), reserves the events' sequence
//!    numbers and returns the previous hash, so two units of work never share a `seq` or a
//!    previous hash;
//! 2. one multi-row `INSERT` of every event, each hashed over the one before it (see
//!    [`append_sql`]; a chunk per [`APPEND_CHUNK`] events, so only a registry load with
//!    thousands of events takes more than one).
//!
//! The head's hash follows the log by itself: the `AFTER INSERT` trigger of migration 0039
//! copies the hash of the row whose `seq` is the head's (the last reserved) into the head,
//! in the same statement and transaction. Earlier releases set it with a third statement;
//! one running during a rolling upgrade writes the same value again, harmlessly.

use async_trait::async_trait;
use portcullis_core::audit::{chain_hash, AuditEntry, AuditEvent, ChainInput, ChainKey};
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{AuditReads, StoreResult};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection};

use crate::sql::{push_rows, statements};
use crate::{db_err, Backend, SqlStore};

/// Bound parameters per event row.
const COLUMNS: usize = 10;
/// Events per `INSERT`: far under both backends' bound-parameter limits.
pub(crate) const APPEND_CHUNK: usize = 1_000;

macro_rules! entry_select {
    () => {
        "SELECT seq, at, kind, account_id, actor, client_ip, detail, prev_hash, hash, key_id \
         FROM audit_log"
    };
}

statements! {
    AUDIT_ENTRIES = concat!(entry_select!(), " WHERE seq > $1 ORDER BY seq LIMIT $2");
    ACCOUNT_AUDIT = concat!(entry_select!(), " WHERE account_id = $1 ORDER BY seq DESC LIMIT $2");
    AUDIT_HEAD = "SELECT seq, hash FROM audit_head WHERE id = 1";
    /// Reserves `$1` sequence numbers: the head's new `seq` is the last of them.
    RESERVE = "UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash";
    /// SQLite, with the head read at `BEGIN IMMEDIATE`: the head's number after the entries
    /// appended with it (`append_then_commit`).
    SET_HEAD_SEQ: sqlite = "UPDATE audit_head SET seq = ? WHERE id = 1";
    COUNT_BY_KEY = "SELECT key_id, COUNT(*) FROM audit_log GROUP BY key_id ORDER BY key_id";
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
    key_id: i64,
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
            key_id: r.key_id,
        }
    }
}

/// The multi-row `INSERT` of `rows` audit entries (the one audit statement built at run
/// time, by its row count; the conformance suite prepares it at several sizes).
pub(crate) fn append_sql(rows: usize, backend: Backend) -> String {
    let mut sql = String::with_capacity(120 + rows * 40);
    sql.push_str(
        "INSERT INTO audit_log (seq, at, kind, account_id, actor, client_ip, detail, \
         prev_hash, hash, key_id) VALUES ",
    );
    push_rows(&mut sql, rows, COLUMNS, backend, "(");
    sql
}

/// Appends `events`, in order, to the chain inside the caller's transaction: RESERVE, then
/// one `INSERT` (per [`APPEND_CHUNK`] events); the trigger moves the head's hash.
pub(crate) async fn append(
    conn: &mut AnyConnection,
    backend: Backend,
    events: &[AuditEvent],
    now: UnixTime,
    key: &ChainKey,
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
    for chunk in events.chunks(APPEND_CHUNK) {
        let statement = append_sql(chunk.len(), backend);
        let q = bind_entries(
            sqlx::query(&statement),
            chunk,
            (&mut seq, &mut prev),
            now,
            key,
        );
        q.execute(&mut *conn).await.map_err(db_err)?;
    }
    Ok(())
}

/// SQLite, inside a transaction that read the chain's `head` (sequence number, hash) at its
/// `BEGIN IMMEDIATE` and has held the one writer since: `events` (at most
/// [`APPEND_CHUNK`]) appended after it, the head's sequence number moved past them, and the
/// `COMMIT`, in one statement list and so one hand-off to the connection's thread. The head's
/// number moves first, so the trigger gives the head the last entry's hash. A statement that
/// fails stops the list before its `COMMIT`. The head the commit left.
pub(crate) async fn append_then_commit(
    conn: &mut AnyConnection,
    head: (i64, Vec<u8>),
    events: &[AuditEvent],
    now: UnixTime,
    key: &ChainKey,
) -> Result<(i64, Vec<u8>), sqlx::Error> {
    let (mut seq, mut prev) = head;
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let statement = append_commit_sql(events.len());
    let q = sqlx::query(&statement).bind(seq.saturating_add(count));
    let q = bind_entries(q, events, (&mut seq, &mut prev), now, key);
    q.execute(conn).await?;
    Ok((seq, prev))
}

/// Binds `events` as consecutive entries after `seq` and `prev` (the last entry's number and
/// hash, moved past them), each hashed over the one before it.
pub(crate) fn bind_entries<'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    events: &'q [AuditEvent],
    (seq, prev): (&mut i64, &mut Vec<u8>),
    now: UnixTime,
    key: &ChainKey,
) -> Query<'q, Any, AnyArguments<'q>> {
    let key_id = i64::from(key.id);
    for event in events {
        *seq += 1;
        let kind = event.kind.as_str();
        let hash = chain_hash(
            &key.key,
            &ChainInput {
                prev,
                seq: *seq,
                at: now,
                kind,
                account_id: event.account_id,
                actor: &event.actor,
                client_ip: event.client_ip.as_deref(),
                detail: &event.detail,
            },
        )
        .to_vec();
        q = q
            .bind(*seq)
            .bind(now.0)
            .bind(kind)
            .bind(event.account_id)
            .bind(event.actor.as_str())
            .bind(event.client_ip.as_deref())
            .bind(event.detail.as_str())
            .bind(std::mem::replace(prev, hash.clone()))
            .bind(hash)
            .bind(key_id);
    }
    q
}

/// The statement list of [`append_then_commit`] for `rows` entries (SQLite's anonymous
/// parameters: the head's new number first, then the rows).
pub(crate) fn append_commit_sql(rows: usize) -> String {
    format!(
        "{SET_HEAD_SEQ}; {}; {}",
        append_sql(rows, Backend::Sqlite),
        crate::tx::COMMIT
    )
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

    async fn count_audit_by_key(&self) -> StoreResult<Vec<(i64, i64)>> {
        sqlx::query_as(COUNT_BY_KEY)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }
}
