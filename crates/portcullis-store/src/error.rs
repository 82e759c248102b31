//! Mapping sqlx errors to the core's: unreachable or saturated databases are `Unavailable`
//! (worth a retry, answered 503), everything else is `Internal`.

use portcullis_core::ports::StoreError;

pub fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite: 5 BUSY, 6 LOCKED (and their extended codes); PostgreSQL: class 08
            // (connection), 53 (resources), 57P0x (shutdown), 40001/40P01 (serialisation).
            let busy = code == "5"
                || code == "6"
                || code
                    .parse::<i32>()
                    .is_ok_and(|c| c & 0xff == 5 || c & 0xff == 6)
                || code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P0")
                || code == "40001"
                || code == "40P01";
            if busy {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Internal(e.to_string())
            }
        }
        _ => StoreError::Internal(e.to_string()),
    }
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
