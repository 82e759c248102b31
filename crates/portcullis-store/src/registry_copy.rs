//! PostgreSQL: a registry load's rows reach `registry_staging` by `COPY … FROM STDIN`
//! (text format) instead of multi-row INSERTs.
//!
//! sqlx's `Any` driver, which the whole store is written against, has no COPY protocol, so
//! the rows go over a connection of their own (a small `PgPool` on the same host as the
//! store's pool: the host a multi-host URL chose, see `failover.rs`), each COPY committed
//! on its own. That is safe because staged rows are scratch: only the load's own transaction
//! on the store's pool moves them into `registry_records` ([`crate::registry`]'s merge,
//! which reads them under READ COMMITTED) and deletes them, so the registry still changes
//! all or nothing with the load. A load that does not commit deletes its staged rows as it
//! drops ([`StagedRows`]); the rows of a load whose process died are deleted by the next
//! load a day later ([`SWEEP_STAGED`]: a load's number starts with its start time).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::ports::StoreResult;
use portcullis_core::registry::HashedRecord;
use sqlx::any::AnyConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;

use crate::db_err;
use crate::failover::HostChoice;
use crate::health::SessionTimeouts;
use crate::sql::statements;

statements! {
    /// The load's rows, text format (see [`encode_rows`]).
    COPY_STAGING: postgres = "COPY registry_staging (load, account_type, number_hash, \
        verification_hash, last4, expiry, holder_name, email, phone, product, balance, \
        credit_limit, payment_due_date, minimum_due, status, replaces_hash, key_id) FROM STDIN";
    /// The staged rows of loads started before `$1` (a load number, see [`load_number`]):
    /// left by a process that died during a load.
    SWEEP_STAGED: postgres = "DELETE FROM registry_staging WHERE load < $1";
    /// A load that did not commit: its staged rows.
    DROP_STAGED: postgres = "DELETE FROM registry_staging WHERE load = $1";
}

/// Rows sent per COPY: a load buffers this many before it sends them.
pub(crate) const COPY_EVERY: usize = 10_000;

/// Staged rows older than this are a dead process's and are swept.
const SWEEP_AFTER_SECS: i64 = 86_400;

/// A load's number: its start time (seconds) in the high bits, 31 random bits below, so
/// loads on several nodes never share one and a dead load's rows can be found by age.
pub(crate) fn load_number(now_secs: i64) -> i64 {
    let random = i64::from_le_bytes(portcullis_crypto::token::random_bytes::<8>()) & 0x7fff_ffff;
    (now_secs.clamp(0, 0xffff_ffff) << 31) | random
}

/// The load number below which staged rows are a dead load's (see [`SWEEP_STAGED`]).
pub(crate) fn sweep_below(now_secs: i64) -> i64 {
    (now_secs - SWEEP_AFTER_SECS).clamp(0, 0xffff_ffff) << 31
}

/// The PostgreSQL connections that carry COPY: a small pool to the store's current host,
/// made again when a multi-host URL's choice moved.
pub(crate) struct CopyPools {
    /// A single-host URL's options; `None` when `choice` decides.
    fixed: Option<AnyConnectOptions>,
    choice: Option<Arc<HostChoice>>,
    timeouts: SessionTimeouts,
    current: Mutex<Option<(String, PgPool)>>,
}

impl std::fmt::Debug for CopyPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyPools").finish_non_exhaustive()
    }
}

impl CopyPools {
    pub(crate) fn new(
        fixed: Option<AnyConnectOptions>,
        choice: Option<Arc<HostChoice>>,
        timeouts: SessionTimeouts,
    ) -> Self {
        Self {
            fixed,
            choice,
            timeouts,
            current: Mutex::new(None),
        }
    }

    /// The pool for the host the store uses now (connections are made when first used).
    pub(crate) fn get(&self) -> StoreResult<PgPool> {
        let (host, options) = match &self.choice {
            Some(choice) => (choice.current_host(), choice.current_options()),
            None => (String::new(), self.fixed.clone()),
        };
        let options = options.ok_or_else(|| {
            portcullis_core::ports::StoreError::Internal("database_url has no host".into())
        })?;
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((h, pool)) = current.as_ref() {
            if *h == host {
                return Ok(pool.clone());
            }
        }
        // The store's session timeouts, set at connection start-up.
        let t = self.timeouts;
        let options = PgConnectOptions::try_from(&options)
            .map_err(db_err)?
            .disable_statement_logging()
            .options([
                ("statement_timeout", t.statement_ms.to_string()),
                ("lock_timeout", t.lock_ms.to_string()),
                (
                    "idle_in_transaction_session_timeout",
                    t.idle_in_transaction_ms.to_string(),
                ),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(options);
        *current = Some((host, pool.clone()));
        Ok(pool)
    }

    pub(crate) async fn close(&self) {
        let pool = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((_, pool)) = pool {
            pool.close().await;
        }
    }
}

/// Sends `data` (rows encoded by [`encode_rows`]) by one COPY.
pub(crate) async fn copy_rows(pool: &PgPool, data: Vec<u8>) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let mut copy = conn.copy_in_raw(COPY_STAGING).await.map_err(db_err)?;
    if let Err(e) = copy.send(data).await {
        // Best effort: the connection is told the COPY failed, the error is the send's.
        let _ = copy.abort(e.to_string()).await;
        return Err(db_err(e));
    }
    copy.finish().await.map_err(db_err)?;
    Ok(())
}

/// Deletes a load's staged rows unless it committed: set when its first COPY is sent,
/// disarmed by the commit.
pub(crate) struct StagedRows {
    pool: PgPool,
    load: i64,
    armed: bool,
}

impl StagedRows {
    pub(crate) fn new(pool: PgPool, load: i64) -> Self {
        Self {
            pool,
            load,
            armed: true,
        }
    }

    /// The load committed: its merge deleted the staged rows with it.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for StagedRows {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (pool, load) = (self.pool.clone(), self.load);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = sqlx::query(DROP_STAGED).bind(load).execute(&pool).await {
                    tracing::warn!(error = %e, load, "could not delete the staged rows of a load that did not commit; the next load a day later will");
                }
            });
        }
    }
}

/// Appends `rows` to `out` in COPY's text format: tab-separated columns, `\N` for NULL,
/// `bytea` as `\\x` and hex, text with backslash, tab, newline and carriage return escaped.
pub(crate) fn encode_rows(out: &mut Vec<u8>, load: i64, rows: &[HashedRecord]) {
    for r in rows {
        int(out, Some(load));
        text(out, Some(r.account_type.as_str()));
        bytes(out, Some(&r.number_hash));
        bytes(out, Some(&r.verification_hash));
        text(out, Some(&r.last4));
        text(out, r.expiry.as_deref());
        text(out, Some(&r.holder_name));
        text(out, r.email.as_deref());
        text(out, r.phone.as_deref());
        text(out, Some(&r.product));
        int(out, r.balance);
        int(out, r.credit_limit);
        text(out, r.payment_due_date.as_deref());
        int(out, r.minimum_due);
        text(out, Some(r.status.as_str()));
        bytes(out, r.replaces_hash.as_ref());
        int(out, Some(r.key_id));
        // The last column's separator becomes the row's end.
        if let Some(last) = out.last_mut() {
            *last = b'\n';
        }
    }
}

fn int(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(v) => out.extend_from_slice(v.to_string().as_bytes()),
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\t');
}

fn text(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(v) => {
            for &b in v.as_bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
        }
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\t');
}

fn bytes(out: &mut Vec<u8>, v: Option<&[u8; 32]>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digit = |n: u8| HEX.get(usize::from(n)).copied().unwrap_or(b'0');
    match v {
        Some(v) => {
            out.extend_from_slice(b"\\\\x");
            for &b in v {
                out.push(digit(b >> 4));
                out.push(digit(b & 15));
            }
        }
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\t');
}
