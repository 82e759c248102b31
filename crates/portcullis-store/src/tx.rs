//! Every transaction of the store begins and commits here: the units of work, the registry
//! import, the SMS quota claims. One commit path, so what happens when a COMMIT fails (the
//! connection must be discarded, never returned to the pool inside an open transaction) is
//! decided in one place.
//!
//! SQLite transactions begin `IMMEDIATE`: they take the database's write lock at BEGIN
//! (waiting up to `busy_timeout` for it) instead of at their first write, so a transaction
//! that reads before it writes can never fail with `SQLITE_BUSY` when another writer got in
//! between. PostgreSQL transactions are plain `BEGIN` (READ COMMITTED); the statements that
//! need a row lock take it with their first write (see `accounts.rs`).
//!
//! SQLite has one writer, and a transaction that finds the write lock taken waits in
//! SQLite's busy handler, which *sleeps* (1, 2, 5, 10 … ms) and polls: with a few
//! concurrent writers most of the time went to those sleeps, not to the work, and the
//! lock sat free in between (figure 11: the refresh rate was bound by them with the
//! cores a third idle). So the transactions of one store first queue on its [`WriteGate`]
//! in the process (a fair async queue: the next writer starts the moment the last one
//! commits) and only then `BEGIN IMMEDIATE`; the single writes outside a transaction that
//! run on busy paths (the OpenID Connect requests, codes and proof ids) take their turn
//! the same way. The busy handler remains for writers of other processes and for the other
//! single statements. The gate is held
//! until the transaction commits or is dropped; a writer that waits longer than the
//! busy timeout gets the same `Unavailable` answer SQLite's own timeout gives.
//!
//! Each statement on SQLite is a hand-off to the connection's own thread and back (sqlx's
//! driver), and a write transaction holds the one writer for all of its hand-offs, so
//! SQLite's transactions are written out here rather than through sqlx's `Transaction`:
//! `BEGIN IMMEDIATE` and the read of the audit chain's head are one hand-off, and the
//! audit entries, the head's new sequence number and the `COMMIT` are one more ([`commit`]),
//! where sqlx's transaction and the chain's `RESERVE` took four. A transaction dropped
//! without its commit is rolled back by a task that holds its connection and its turn at the
//! writer until the `ROLLBACK` has answered, and closes the connection if the database is
//! still inside a transaction after it; so no connection goes back to the pool inside one.

use crate::{Db, Lease};
use futures_util::TryStreamExt;
use portcullis_core::audit::{AuditEvent, ChainKey};
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{StoreError, StoreResult};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Either, Executor, Row, Transaction};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::db_err;
use crate::sql::statements;
use crate::Backend;

statements! {
    /// SQLite: take the write lock at once, and read the audit chain's head under it (the
    /// head cannot move before this transaction's commit: it holds the one writer). The
    /// bound `1` keeps the statement prepared (sqlx prepares again a query without binds).
    BEGIN_READ_HEAD: sqlite = "BEGIN IMMEDIATE; SELECT seq, hash FROM audit_head WHERE id = $1";
    /// SQLite: the end of a transaction with no audit entries.
    COMMIT: sqlite = "COMMIT";
    /// SQLite: a dropped transaction's end.
    ROLLBACK: sqlite = "ROLLBACK";
}

/// SQLite: a statement list that begins a transaction as [`BEGIN_READ_HEAD`] does, then runs
/// the unit of work's first statements in the same hand-off ([`begin_with`]).
macro_rules! begin_then {
    ($first:expr) => {
        concat!(
            "BEGIN IMMEDIATE; SELECT seq, hash FROM audit_head WHERE id = 1; ",
            $first
        )
    };
}
pub(crate) use begin_then;

/// How long a SQLite transaction waits for its turn: the connections' `busy_timeout`.
const GATE_TIMEOUT: Duration = Duration::from_millis(sqlite_busy_timeout_ms!());

/// SQLite: the audit chain's head (sequence number, hash) as this store's last audited
/// commit left it, or `None` when not known. Only a hint: another process (a CLI command)
/// may have appended since, which a transaction that relies on it finds out under the
/// write lock ([`audited_at_once`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct KnownHead(Arc<std::sync::Mutex<Option<Head>>>);

/// The audit chain's head: the last entry's sequence number and hash.
pub(crate) type Head = (i64, Vec<u8>);

impl KnownHead {
    /// The head as last known.
    pub(crate) fn get(&self) -> Option<Head> {
        self.0.lock().ok().and_then(|h| h.clone())
    }

    /// Records the head a commit left (`None`: forget it).
    pub(crate) fn set(&self, head: Option<Head>) {
        if let Ok(mut known) = self.0.lock() {
            *known = head;
        }
    }
}

/// The queue of one store's SQLite write transactions (nothing on PostgreSQL, whose
/// writers lock rows, not the database), and the chain's head as its last audited commit
/// left it.
#[derive(Clone, Debug)]
pub(crate) struct WriteGate {
    queue: Option<Arc<Semaphore>>,
    head: KnownHead,
    /// The token endpoint's uses written, by way: one statement list, or a unit of work
    /// ([`crate::ops::GrantUses`]).
    pub(crate) grant_uses: Arc<crate::ops::GrantUseCounts>,
}

impl WriteGate {
    pub(crate) fn new(backend: Backend) -> Self {
        Self {
            queue: match backend {
                Backend::Sqlite => Some(Arc::new(Semaphore::new(1))),
                Backend::Postgres => None,
            },
            head: KnownHead::default(),
            grant_uses: Arc::default(),
        }
    }

    /// This store's turn at the writer, for a transaction or a single write outside one
    /// (held until dropped; `None` on PostgreSQL).
    pub(crate) async fn turn(&self) -> StoreResult<Option<OwnedSemaphorePermit>> {
        let Some(queue) = &self.queue else {
            return Ok(None);
        };
        match tokio::time::timeout(GATE_TIMEOUT, queue.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            Ok(Err(_)) => Err(StoreError::Internal("the write queue is closed".into())),
            Err(_) => Err(StoreError::Unavailable(
                "database is locked (waited for the writer)".into(),
            )),
        }
    }
}

/// The open transaction itself.
enum Open {
    /// sqlx's transaction (its drop queues the rollback).
    Postgres(Transaction<'static, Any>),
    /// A pooled connection inside `BEGIN IMMEDIATE`, and the audit chain's head as it
    /// was read at BEGIN (sequence number, hash).
    Sqlite {
        conn: Lease,
        head: Option<(i64, Vec<u8>)>,
    },
}

/// An open transaction on a pooled connection (with its turn at the SQLite writer).
pub(crate) struct Tx {
    /// `None` only once the transaction has ended.
    open: Option<Open>,
    turn: Option<OwnedSemaphorePermit>,
    /// SQLite: where an audited commit records the head it leaves (while the turn is held).
    known: KnownHead,
}

impl Tx {
    /// The transaction's connection, for its statements.
    pub(crate) fn conn(&mut self) -> StoreResult<&mut AnyConnection> {
        match &mut self.open {
            Some(Open::Postgres(tx)) => Ok(&mut **tx),
            Some(Open::Sqlite { conn, .. }) => Ok(&mut **conn),
            None => Err(StoreError::Internal("the transaction has ended".into())),
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(Open::Sqlite { conn, .. }) = self.open.take() {
            roll_back(conn, self.turn.take());
        }
    }
}

/// Rolls a dropped SQLite transaction back on its connection, then lets the connection go
/// back to the pool (or closes it, if the database is still inside a transaction) and the
/// next writer in; without a runtime to run it, the connection is closed, which rolls back.
fn roll_back(conn: Lease, turn: Option<OwnedSemaphorePermit>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        drop(conn.detach());
        return;
    };
    runtime.spawn(async move {
        let mut conn = conn;
        // An error here is most often "no transaction is active" (SQLite ended it by
        // itself, as after `SQLITE_FULL`); the check below tells that from a stuck one.
        let rolled_back = (&mut *conn).execute(ROLLBACK).await.is_ok()
            || (&mut *conn)
                .execute(crate::health::SQLITE_BEGIN_ROLLBACK)
                .await
                .is_ok();
        if !rolled_back {
            tracing::warn!("a connection left inside a transaction was closed, not reused");
            conn.close().await;
        }
        drop(turn);
    });
}

/// Begins a transaction on a connection from `pool`, after its turn at `gate`.
pub(crate) async fn begin(pool: &Db, backend: Backend, gate: &WriteGate) -> StoreResult<Tx> {
    match backend {
        Backend::Sqlite => {
            let first = sqlx::query(BEGIN_READ_HEAD).bind(1_i64);
            Ok(begin_with(pool, gate, first).await?.0)
        }
        Backend::Postgres => {
            let turn = gate.turn().await?;
            Ok(Tx {
                open: Some(Open::Postgres(pool.pool().begin().await.map_err(db_err)?)),
                turn,
                known: gate.head.clone(),
            })
        }
    }
}

/// SQLite: begins a transaction with `first`, [`BEGIN_READ_HEAD`] or a statement list
/// written with [`begin_then!`] (so its first row is the chain's head), in one hand-off: the
/// transaction and the rows the list's last statement changed. The `Tx` holds the connection
/// before the list runs, so on an error the transaction, begun or not, is rolled back as it
/// drops.
pub(crate) async fn begin_with<'q>(
    pool: &Db,
    gate: &WriteGate,
    first: Query<'q, Any, AnyArguments<'q>>,
) -> StoreResult<(Tx, u64)> {
    let mut tx = sqlite_tx(pool, gate).await?;
    let (head, changed) = run_list(tx.conn()?, first).await.map_err(db_err)?;
    if let Some(Open::Sqlite { head: read, .. }) = &mut tx.open {
        *read = head;
    }
    Ok((tx, changed))
}

/// SQLite: a pooled connection with this store's turn at the writer, for a transaction
/// that is yet to begin (dropped, it rolls back whatever began).
async fn sqlite_tx(pool: &Db, gate: &WriteGate) -> StoreResult<Tx> {
    let turn = gate.turn().await?;
    let conn = pool.acquire().await.map_err(db_err)?;
    Ok(Tx {
        open: Some(Open::Sqlite { conn, head: None }),
        turn,
        known: gate.head.clone(),
    })
}

/// Runs a statement list that begins with [`begin_then!`]: the chain's head its `SELECT`
/// read, and the count of the list's last write.
///
/// SQLite reports each statement's count as that of the last INSERT, UPDATE or DELETE to
/// finish, so `BEGIN`, the head's `SELECT` (and a `COMMIT`) repeat an earlier statement's:
/// the last count is the last write's.
async fn run_list<'q>(
    conn: &mut AnyConnection,
    list: Query<'q, Any, AnyArguments<'q>>,
) -> Result<(Option<(i64, Vec<u8>)>, u64), sqlx::Error> {
    let (mut head, mut changed) = (None, 0);
    // sqlx 0.8 marks a list of statements in one query deprecated on SQLite, its one
    // driver that runs them (launchbadge/sqlx#3108); the conformance suite prepares and
    // runs every list this store sends, so an upgrade that drops them fails there.
    #[allow(deprecated)]
    let mut results = list.fetch_many(conn);
    while let Some(result) = results.try_next().await? {
        match result {
            Either::Left(done) => changed = done.rows_affected(),
            Either::Right(row) if head.is_none() => {
                head = Some((row.try_get::<i64, _>(0)?, row.try_get::<Vec<u8>, _>(1)?));
            }
            Either::Right(_) => {}
        }
    }
    Ok((head, changed))
}

/// SQLite: a whole audited transaction in one hand-off, when this store knows the chain's
/// head. Once it has its turn at the writer (so no writer of this store moves the head
/// meanwhile), `build` gets the head and makes the list, which begins with [`begin_then!`],
/// makes its writes and appends over that head only if the head is still it (another
/// process may have appended), and ends with `COMMIT`; `build` also answers the head the
/// list leaves when its last write (the audit entry's `INSERT`) changed a row.
///
/// `None` when the head is not known, or had moved (nothing written; it is recorded as
/// read, for the next writer); else whether the last write changed a row. The head left is
/// recorded before the turn ends. A statement that fails stops the list before its
/// `COMMIT` (an error, `Unavailable` as a failed commit is), and the transaction rolls back
/// as it drops.
pub(crate) async fn audited_at_once<'q>(
    pool: &Db,
    gate: &WriteGate,
    build: impl FnOnce(&Head) -> (Query<'q, Any, AnyArguments<'q>>, Head),
) -> StoreResult<Option<bool>> {
    let turn = gate.turn().await?;
    let Some(known) = gate.head.get() else {
        return Ok(None);
    };
    let (list, left) = build(&known);
    let conn = pool.acquire().await.map_err(db_err)?;
    let mut tx = Tx {
        open: Some(Open::Sqlite { conn, head: None }),
        turn,
        known: gate.head.clone(),
    };
    let (read, changed) = run_list(tx.conn()?, list)
        .await
        .map_err(crate::health::failed_commit)?;
    // Committed by the list: the connection goes back to the pool without a rollback, then
    // the writer's turn ends as `tx` drops, after the head is recorded.
    tx.open = None;
    if read.as_ref() != Some(&known) {
        tx.known.set(read);
        return Ok(None);
    }
    if changed == 1 {
        tx.known.set(Some(left));
    }
    Ok(Some(changed == 1))
}

/// Commits `tx`: the one COMMIT of the store. A failed commit (disk full, I/O error, a
/// lock, a lost connection) is `Unavailable`: nothing was acknowledged. A COMMIT the server
/// refused was rolled back; one whose connection was lost may have been made, so a retry must
/// be safe either way (unique constraints, single-use tokens: docs/design/availability.md).
/// A transaction whose COMMIT failed is rolled back as it drops (sqlx's on PostgreSQL, the
/// task of [`roll_back`] on SQLite), so its connection never returns to the pool inside a
/// transaction. The writer's turn ends after the COMMIT has answered.
pub(crate) async fn commit(mut tx: Tx) -> StoreResult<()> {
    match tx.open.take() {
        Some(Open::Postgres(inner)) => inner.commit().await.map_err(crate::health::failed_commit),
        Some(Open::Sqlite { mut conn, head }) => match (&mut *conn).execute(COMMIT).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tx.open = Some(Open::Sqlite { conn, head });
                Err(crate::health::failed_commit(e))
            }
        },
        None => Err(StoreError::Internal("the transaction has ended".into())),
    }
}

/// Appends `events` to the audit chain (signed with `key`, stamped `now`) and commits `tx`,
/// as [`commit`] does. On SQLite the entries, the head's sequence number and the `COMMIT`
/// are one hand-off when they fit one statement ([`crate::audit::APPEND_CHUNK`]); a
/// statement that fails leaves the `COMMIT` unrun, and the transaction rolls back as it
/// drops.
pub(crate) async fn commit_audited(
    mut tx: Tx,
    events: &[AuditEvent],
    now: UnixTime,
    key: &ChainKey,
) -> StoreResult<()> {
    if events.is_empty() {
        return commit(tx).await;
    }
    let backend = match &tx.open {
        Some(Open::Sqlite {
            head: Some(head), ..
        }) if events.len() <= crate::audit::APPEND_CHUNK => {
            let head = head.clone();
            let left = crate::audit::append_then_commit(tx.conn()?, head, events, now, key)
                .await
                .map_err(crate::health::failed_commit)?;
            // Committed by the list: the connection goes back to the pool without a
            // rollback, then the writer's turn ends as `tx` drops (after the head it left
            // is recorded).
            tx.open = None;
            tx.known.set(Some(left));
            return Ok(());
        }
        Some(Open::Sqlite { .. }) => Backend::Sqlite,
        Some(Open::Postgres(_)) => Backend::Postgres,
        None => return Err(StoreError::Internal("the transaction has ended".into())),
    };
    // The head moves by more than one list: forgotten, read again at the next BEGIN.
    tx.known.set(None);
    crate::audit::append(tx.conn()?, backend, events, now, key).await?;
    commit(tx).await
}
