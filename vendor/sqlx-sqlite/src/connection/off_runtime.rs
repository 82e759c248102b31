//! Portcullis: SQLite's waits, off the async runtime.
//!
//! The connection's statements run on the calling thread (`worker.rs`), which is a tokio
//! worker in the server. Two things inside a statement may wait: the busy handler (another
//! connection holds the write lock: SQLite sleeps and tries again) and the checkpoint that
//! follows a commit once the write-ahead log has grown. Both run through [`off_runtime`]:
//! on a worker of a multi-threaded tokio runtime, inside `block_in_place`, so the worker's
//! other tasks move to another thread while this one waits; anywhere else, in place.

use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

use libsqlite3_sys::{sqlite3, sqlite3_wal_checkpoint_v2, SQLITE_CHECKPOINT_PASSIVE, SQLITE_OK};

/// The WAL's size, in pages, that starts a checkpoint after a commit: SQLite's default
/// (`SQLITE_DEFAULT_WAL_AUTOCHECKPOINT`), which this hook replaces.
const AUTOCHECKPOINT_PAGES: c_int = 1000;

/// SQLite's own busy handler's sleeps, in ms (`sqliteDefaultBusyCallback`).
const DELAYS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

/// Runs `f` where it may block: off the runtime's worker when on one.
pub(crate) fn off_runtime<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    // `block_in_place` refuses (panics) on a current-thread runtime; inside a task of a
    // multi-threaded one it is on one of its workers (no `LocalSet` is used here).
    let on_worker = Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
        && tokio::task::try_id().is_some();
    if on_worker {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// How long SQLite's own handler has slept before its `count`-th call, in ms.
fn slept_before(count: usize) -> u64 {
    let head: u64 = DELAYS.iter().take(count).sum();
    let tail = count.saturating_sub(DELAYS.len()) as u64 * DELAYS[DELAYS.len() - 1];
    head + tail
}

/// `sqlite3_busy_handler`'s callback: waits as `sqlite3_busy_timeout` does, `arg` being the
/// timeout in ms. Returns 0 (give up: `SQLITE_BUSY`) once the timeout is spent.
pub(crate) unsafe extern "C" fn busy_handler(arg: *mut c_void, count: c_int) -> c_int {
    let timeout = arg as usize as u64;
    let count = usize::try_from(count).unwrap_or(0);
    let slept = slept_before(count);
    if slept >= timeout {
        return 0;
    }
    let delay = DELAYS
        .get(count)
        .copied()
        .unwrap_or(DELAYS[DELAYS.len() - 1])
        .min(timeout - slept);
    off_runtime(|| std::thread::sleep(Duration::from_millis(delay)));
    1
}

/// `sqlite3_wal_hook`'s callback: SQLite's automatic checkpoint (a passive one once the log
/// holds [`AUTOCHECKPOINT_PAGES`]), run off the runtime.
pub(crate) unsafe extern "C" fn wal_hook(
    _arg: *mut c_void,
    db: *mut sqlite3,
    name: *const c_char,
    pages: c_int,
) -> c_int {
    if pages >= AUTOCHECKPOINT_PAGES {
        off_runtime(|| {
            // Its result is SQLite's own hook's: ignored (the next commit tries again).
            // SAFETY: `db` and `name` are SQLite's, valid for this call.
            unsafe {
                sqlite3_wal_checkpoint_v2(
                    db,
                    name,
                    SQLITE_CHECKPOINT_PASSIVE,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        });
    }
    SQLITE_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waits_are_sqlites_own() {
        assert_eq!(slept_before(0), 0);
        assert_eq!(slept_before(1), 1);
        assert_eq!(slept_before(12), 328);
        assert_eq!(slept_before(13), 428);
    }
}
