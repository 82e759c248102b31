//! Mapping sqlx errors to the core's: unreachable or saturated databases are `Unavailable`
//! (worth a retry, answered 503), everything else is `Internal`.

use portcullis_core::ports::StoreError;

pub fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::BeginFailed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            if is_transient(&db.code().unwrap_or_default()) {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Internal(e.to_string())
            }
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// Whether a database error code names a fault of the database's situation rather than of
/// the statement: worth answering 503 with `Retry-After`, never 500.
///
/// SQLite (primary code in the low byte of extended codes): 5 BUSY, 6 LOCKED, 8 READONLY (a
/// file system remounted read-only), 10 IOERR, 13 FULL, 14 CANTOPEN. PostgreSQL: class 08
/// (connection), 53 (resources: disk full, out of memory, too many connections), 57P0x
/// (shutdown), 57014 (statement timeout), 55P03 (lock timeout), 25P03 (idle in transaction
/// too long), 58 (system I/O), 40001/40P01 (serialisation, deadlock), 25006 (a read-only
/// transaction: the host became a standby in a failover; the pool moves, see `failover.rs`).
pub(crate) fn is_transient(code: &str) -> bool {
    const SQLITE: [i32; 6] = [5, 6, 8, 10, 13, 14];
    code.parse::<i32>()
        .is_ok_and(|c| SQLITE.contains(&c) || SQLITE.contains(&(c & 0xff)))
        || code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P0")
        || code.starts_with("58")
        || matches!(
            code,
            "57014" | "55P03" | "25P03" | "40001" | "40P01" | "25006"
        )
}

/// Whether `e` is a unique-constraint violation mentioning `needle` (a column or
/// constraint name).
pub(crate) fn is_unique_violation(e: &sqlx::Error, needle: &str) -> bool {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            db.message().contains(needle) || db.constraint().is_some_and(|c| c.contains(needle))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_transient;

    #[test]
    fn storage_faults_are_transient_and_statement_errors_are_not() {
        // SQLite: full disk, I/O error (extended code SQLITE_IOERR_WRITE), busy, read-only.
        for code in ["13", "10", "778", "5", "517", "8", "14"] {
            assert!(is_transient(code), "{code}");
        }
        // PostgreSQL: statement and lock timeouts, idle in transaction, disk full, shutdown.
        for code in [
            "57014", "55P03", "25P03", "53100", "57P01", "08006", "58030", "40P01", "25006",
        ] {
            assert!(is_transient(code), "{code}");
        }
        // Constraint violations (SQLite 19 and 2067; PostgreSQL 23505), syntax.
        for code in ["19", "2067", "23505", "42601", "1"] {
            assert!(!is_transient(code), "{code}");
        }
    }
}
