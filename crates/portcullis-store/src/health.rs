//! Staying healthy through storage faults: the commit path, the check every connection
//! passes before the pool hands it out again, the PostgreSQL session timeouts, and the
//! write probe.
//!
//! Why the release check exists (issue 20, a full disk under SQLite): a statement that fails
//! with `SQLITE_FULL` rolls SQLite's transaction back by itself, while sqlx still counts
//! the connection as inside one. Its `ROLLBACK` then fails, the count stays at 1, and the
//! next `BEGIN` on that connection becomes a `SAVEPOINT` that opens a real transaction which
//! no `COMMIT` ever ends: the connection keeps the write lock ("database is locked" for every
//! other writer, 5 s each) and its own writes are acknowledged but never committed. So no
//! connection goes back to the pool unless both sqlx and the database agree it is outside a
//! transaction; any other is closed and the pool opens a fresh one.

use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{StoreError, StoreResult};
use sqlx::{AnyConnection, Connection, Executor};

use crate::sql::statements;
use crate::{db_err, tx, Backend, SqlStore};

statements! {
    /// PostgreSQL: this connection's statement, lock and idle-in-transaction timeouts (ms).
    SET_TIMEOUTS: postgres = "SELECT set_config('statement_timeout', $1, false), \
        set_config('lock_timeout', $2, false), \
        set_config('idle_in_transaction_session_timeout', $3, false)";
    /// SQLite: fails inside a transaction; outside one it touches nothing. Both statements
    /// go to the connection's thread in one hand-off.
    SQLITE_BEGIN_ROLLBACK: sqlite = "BEGIN; ROLLBACK";
    /// This node's row of the write probe.
    WRITE_PROBE = "INSERT INTO write_probe (node, probed_at) VALUES ($1, $2) \
        ON CONFLICT (node) DO UPDATE SET probed_at = excluded.probed_at";
}

/// PostgreSQL timeouts set on every connection when it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimeouts {
    pub statement_ms: u64,
    pub lock_ms: u64,
    pub idle_in_transaction_ms: u64,
}

impl Default for SessionTimeouts {
    fn default() -> Self {
        Self {
            statement_ms: 5_000,
            lock_ms: 3_000,
            idle_in_transaction_ms: 10_000,
        }
    }
}

impl SessionTimeouts {
    /// Sets the timeouts on a new PostgreSQL connection.
    pub(crate) async fn apply(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        sqlx::query(SET_TIMEOUTS)
            .bind(self.statement_ms.to_string())
            .bind(self.lock_ms.to_string())
            .bind(self.idle_in_transaction_ms.to_string())
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// What a failed commit answers: `Unavailable`, unless a constraint checked at commit time
/// refused the write (the statement's fault, mapped as any other statement error).
pub(crate) fn failed_commit(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if !matches!(db.kind(), sqlx::error::ErrorKind::Other) {
            return db_err(e);
        }
    }
    // A COMMIT refused by the server rolled back; a connection lost during the COMMIT leaves
    // the outcome unknown (docs/design/availability.md says how each write stays safe then).
    tracing::warn!(error = %e, "commit failed: not acknowledged (rolled back, or its outcome unknown if the connection was lost)");
    StoreError::Unavailable(format!("commit failed: {e}"))
}

/// Whether a connection may go back to the pool: it answers, and it is outside any
/// transaction by sqlx's count and (SQLite) by the database's own state.
///
/// sqlx itself pings every connection it takes back, right after this check
/// (`return_to_pool` in sqlx-core 0.8): on PostgreSQL that ping sends the rollback a dropped
/// transaction queued and waits for it; on SQLite the connection's thread runs it first, as
/// it runs every command in order. A connection that does not answer is closed there. So
/// this check adds a round trip only where the ping cannot answer the question:
///
/// - SQLite, when sqlx still counts the connection inside a transaction as it comes back
///   (the store's own SQLite transactions are outside sqlx's count: `tx.rs` rolls a dropped
///   one back before its connection returns):
///   a dropped transaction whose rollback is queued, or one the database already ended by
///   itself (`SQLITE_FULL`). One hand-off, `BEGIN; ROLLBACK`, runs the queued rollback
///   (settling the count) and fails if the database is still inside a transaction. A
///   connection that comes back at a count of 0 (a plain statement, a committed or rolled
///   back transaction) has nothing queued that could change it: no hand-off.
/// - PostgreSQL, only when `watched` (a pool that fails over, `failover.rs`): a connection
///   that does not answer must also wake the watcher. Elsewhere sqlx's ping does it all, and
///   `start_rollback` lowers the count at once, so the count below is already settled.
///
/// A second round trip on every release was a third of those of a one-statement read
/// (figure 7.2) and two of the three hand-offs of a pooled SQLite read.
pub(crate) async fn clean_for_reuse(
    conn: &mut AnyConnection,
    backend: Backend,
    watched: bool,
) -> bool {
    let answers = match backend {
        // `BEGIN` fails inside a transaction, and then `ROLLBACK` is not run.
        Backend::Sqlite if conn.is_in_transaction() => {
            conn.execute(SQLITE_BEGIN_ROLLBACK).await.is_ok()
        }
        Backend::Postgres if watched => conn.ping().await.is_ok(),
        Backend::Sqlite | Backend::Postgres => true,
    };
    if !answers || conn.is_in_transaction() {
        tracing::warn!("a connection left inside a transaction was closed, not reused");
        return false;
    }
    true
}

impl SqlStore {
    /// A real committed write: this node's row in `write_probe`. Fails while the database
    /// takes no writes (a full disk, a read-only file system, a lock held too long).
    pub async fn write_probe(&self, node: &str, now: UnixTime) -> StoreResult<()> {
        let mut tx = tx::begin(&self.pool, self.backend, &self.gate).await?;
        sqlx::query(WRITE_PROBE)
            .bind(node)
            .bind(now.0)
            .execute(tx.conn()?)
            .await
            .map_err(db_err)?;
        tx::commit(tx).await
    }
}
