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

use portcullis_core::ports::StoreResult;
use sqlx::{Any, AnyPool, Transaction};

use crate::error::db_err;
use crate::sql::statements;
use crate::Backend;

statements! {
    /// SQLite: take the write lock at once.
    BEGIN_IMMEDIATE: sqlite = "BEGIN IMMEDIATE";
}

/// An open transaction on a pooled connection.
pub(crate) type Tx = Transaction<'static, Any>;

/// Begins a transaction on a connection from `pool`.
pub(crate) async fn begin(pool: &AnyPool, backend: Backend) -> StoreResult<Tx> {
    match backend {
        Backend::Sqlite => pool.begin_with(BEGIN_IMMEDIATE).await,
        Backend::Postgres => pool.begin().await,
    }
    .map_err(db_err)
}

/// Commits `tx`: the one COMMIT of the store. A failed commit (disk full, I/O error, a
/// lock, a lost connection) is `Unavailable`: nothing was acknowledged. A COMMIT the server
/// refused was rolled back; one whose connection was lost may have been made, so a retry must
/// be safe either way (unique constraints, single-use tokens: docs/design/availability.md). The transaction is rolled back as it drops, and the pool's release check
/// (`health::clean_for_reuse`) closes its connection unless the rollback left it clean, so
/// it never returns to the pool inside a transaction.
pub(crate) async fn commit(tx: Tx) -> StoreResult<()> {
    tx.commit().await.map_err(crate::health::failed_commit)
}
