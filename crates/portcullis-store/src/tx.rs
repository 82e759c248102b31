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

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::ports::{StoreError, StoreResult};
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::db_err;
use crate::sql::statements;
use crate::Backend;

statements! {
    /// SQLite: take the write lock at once.
    BEGIN_IMMEDIATE: sqlite = "BEGIN IMMEDIATE";
}

/// How long a SQLite transaction waits for its turn: the connections' `busy_timeout`.
const GATE_TIMEOUT: Duration = Duration::from_millis(sqlite_busy_timeout_ms!());

/// The queue of one store's SQLite write transactions (nothing on PostgreSQL, whose
/// writers lock rows, not the database).
#[derive(Clone, Debug)]
pub(crate) struct WriteGate(Option<Arc<Semaphore>>);

impl WriteGate {
    pub(crate) fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self(Some(Arc::new(Semaphore::new(1)))),
            Backend::Postgres => Self(None),
        }
    }

    /// This store's turn at the writer, for a transaction or a single write outside one
    /// (held until dropped; `None` on PostgreSQL).
    pub(crate) async fn turn(&self) -> StoreResult<Option<OwnedSemaphorePermit>> {
        let Some(queue) = &self.0 else {
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

/// An open transaction on a pooled connection (with its turn at the SQLite writer).
pub(crate) struct Tx {
    tx: Transaction<'static, Any>,
    _turn: Option<OwnedSemaphorePermit>,
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// Begins a transaction on a connection from `pool`, after its turn at `gate`.
pub(crate) async fn begin(pool: &AnyPool, backend: Backend, gate: &WriteGate) -> StoreResult<Tx> {
    let turn = gate.turn().await?;
    let tx = match backend {
        Backend::Sqlite => pool.begin_with(BEGIN_IMMEDIATE).await,
        Backend::Postgres => pool.begin().await,
    }
    .map_err(db_err)?;
    Ok(Tx { tx, _turn: turn })
}

/// Commits `tx`: the one COMMIT of the store. A failed commit (disk full, I/O error, a
/// lock, a lost connection) is `Unavailable`: nothing was acknowledged. A COMMIT the server
/// refused was rolled back; one whose connection was lost may have been made, so a retry must
/// be safe either way (unique constraints, single-use tokens: docs/design/availability.md). The transaction is rolled back as it drops, and the pool's release check
/// (`health::clean_for_reuse`) closes its connection unless the rollback left it clean, so
/// it never returns to the pool inside a transaction. The writer's turn ends after the
/// COMMIT has answered.
pub(crate) async fn commit(tx: Tx) -> StoreResult<()> {
    let Tx { tx, _turn } = tx;
    tx.commit().await.map_err(crate::health::failed_commit)
}
