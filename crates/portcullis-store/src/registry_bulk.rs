//! PostgreSQL: the first large load into an empty registry builds the registry's two
//! full-table secondary indexes once, after its rows are in, instead of inserting every row
//! into them.
//!
//! Measured with `psql` on 1,000,000 staged rows (docs/benchmarks.md, figure 6): the
//! sorted `INSERT … SELECT … ON CONFLICT` into an empty `registry_records` took 11.0 s;
//! without the unique index on `number_hash` and the index on `key_id` the plain INSERT
//! took 3.5 s, and building the two afterwards 1.2 s and 0.6 s.
//!
//! The conditions, all checked in the load's own transaction: the database is PostgreSQL
//! (its DDL is transactional), the load reached its first merge with at least
//! [`MERGE_EVERY`](crate::registry) staged rows (a small push never takes this path), and
//! the registry is empty once the load holds `registry_records` in ACCESS EXCLUSIVE mode
//! (taken with NOWAIT inside a savepoint: when another session holds any lock on the table,
//! or it is not empty, the savepoint is rolled back, which releases the lock, and the load
//! merges as usual). Then the two indexes are dropped, the staged rows are appended by a
//! plain INSERT (no row can conflict: the table was empty and is locked, and a load's own
//! numbers are distinct — the import and the push both refuse a repeated number), and the
//! indexes are built again before anything reads the registry (`settle`) and before the
//! commit. The unique index is built as it was: a repeated number would fail the build and
//! with it the whole load. Everything is in the load's transaction: a load that fails or is
//! dropped rolls back the drop with its rows, so the schema never stays without its indexes.
//!
//! The cost: for the rest of that first load, every other statement on `registry_records`
//! waits for it (up to `database.lock_timeout_secs`, then answers 503) — there is nothing
//! to read yet. The index builds run with `statement_timeout` raised to 10 minutes (the
//! per-statement 5 s default would stop a build of a few million rows), restored right
//! after.

use crate::db_err;
use crate::registry::SqlImport;
use crate::sql::statements;
use portcullis_core::ports::StoreResult;

statements! {
    BULK_SAVEPOINT: postgres = "SAVEPOINT registry_bulk";
    BULK_RELEASE: postgres = "RELEASE SAVEPOINT registry_bulk";
    BULK_ROLLBACK: postgres = "ROLLBACK TO SAVEPOINT registry_bulk";
    /// Fails at once (instead of queueing) when any other session holds a lock on the table.
    BULK_LOCK: postgres = "LOCK TABLE registry_records IN ACCESS EXCLUSIVE MODE NOWAIT";
    /// Whether the registry is empty, asked after the lock: committed rows of a load that
    /// finished before it are seen (READ COMMITTED, a new snapshot per statement).
    BULK_EMPTY: postgres = "SELECT NOT EXISTS (SELECT 1 FROM registry_records)";
    /// The two indexes every row of a load goes into (migrations 0001 and 0027); the
    /// partial ones (0016) take only the few rows they index and stay.
    DROP_NUMBER_UNIQUE: postgres = "ALTER TABLE registry_records \
        DROP CONSTRAINT registry_records_number_hash_key";
    DROP_KEY_ID_INDEX: postgres = "DROP INDEX registry_records_key_id";
    /// … built again as the migrations made them (the schema test compares them after a
    /// bulk load).
    ADD_NUMBER_UNIQUE: postgres = "ALTER TABLE registry_records \
        ADD CONSTRAINT registry_records_number_hash_key UNIQUE (number_hash)";
    ADD_KEY_ID_INDEX: postgres = "CREATE INDEX registry_records_key_id ON registry_records (key_id)";
    /// The builds' sorts in memory.
    BUILD_MEMORY: postgres = "SET LOCAL maintenance_work_mem = '256MB'";
    BUILD_TIMEOUT_SET: postgres = "SET LOCAL statement_timeout = '10min'";
    /// Back to the session's own value (the one set when the connection was made).
    BUILD_TIMEOUT_RESET: postgres = "SET LOCAL statement_timeout TO DEFAULT";
}

/// Where a load stands with the bulk path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bulk {
    /// Not decided yet (PostgreSQL, registry empty at the load's first batch).
    Maybe,
    /// Merging as usual.
    No,
    /// The indexes are dropped; merges append.
    Active,
}

/// Tries to take the bulk path (see the module's text); `Active` when taken, else `No`
/// with the transaction as it was.
pub(crate) async fn begin(import: &mut SqlImport) -> StoreResult<Bulk> {
    let tx = &mut import.tx;
    sqlx::query(BULK_SAVEPOINT)
        .execute(tx.conn()?)
        .await
        .map_err(db_err)?;
    let locked = sqlx::query(BULK_LOCK).execute(tx.conn()?).await.is_ok();
    let empty = locked
        && sqlx::query_scalar::<_, bool>(BULK_EMPTY)
            .fetch_one(tx.conn()?)
            .await
            .map_err(db_err)?;
    if !empty {
        // Releases the lock (when taken) and clears the failed LOCK's error state.
        sqlx::query(BULK_ROLLBACK)
            .execute(tx.conn()?)
            .await
            .map_err(db_err)?;
        sqlx::query(BULK_RELEASE)
            .execute(tx.conn()?)
            .await
            .map_err(db_err)?;
        return Ok(Bulk::No);
    }
    for ddl in [DROP_NUMBER_UNIQUE, DROP_KEY_ID_INDEX, BULK_RELEASE] {
        sqlx::query(ddl).execute(tx.conn()?).await.map_err(db_err)?;
    }
    tracing::info!(
        load = import.load,
        "registry load into an empty registry: its indexes are built after its rows"
    );
    Ok(Bulk::Active)
}

/// Builds the dropped indexes again (nothing when the load is not on the bulk path).
pub(crate) async fn finish(import: &mut SqlImport) -> StoreResult<()> {
    if import.bulk != Bulk::Active {
        return Ok(());
    }
    for statement in [
        BUILD_MEMORY,
        BUILD_TIMEOUT_SET,
        ADD_NUMBER_UNIQUE,
        ADD_KEY_ID_INDEX,
        BUILD_TIMEOUT_RESET,
    ] {
        sqlx::query(statement)
            .execute(import.tx.conn()?)
            .await
            .map_err(db_err)?;
    }
    import.bulk = Bulk::No;
    Ok(())
}
