//! Finding the writable PostgreSQL host, and finding it again after a failover.
//!
//! A multi-host `database_url` (`postgres://u@h1:p1,h2:p2/db?target_session_attrs=read-write`,
//! parsed by [`crate::pg_url`]) is served by one sqlx pool whose connect options name one
//! host at a time, the one chosen here:
//!
//! - **At start**, each host is tried in order, as libpq does: connect, then ask
//!   [`SESSION_STATE`] (in recovery? `transaction_read_only`?) and keep the first host that
//!   `target_session_attrs` accepts (`read-write`: neither; `primary`: not in recovery).
//! - **Every new pool connection** is asked the same before it is handed out; a host that
//!   has become a standby or read-only is refused (sqlx retries the connect with backoff
//!   within the acquire timeout) and wakes the watcher.
//! - **The watcher**, one task per store, is the only prober of the node (one probe at a
//!   time): every [`HEARTBEAT`] it asks the current host on its own connection, and it is
//!   woken early when a pooled connection comes back broken or a new one finds a
//!   read-only host. When the current host fails it probes the hosts in order, in
//!   [`PROBE_ROUNDS`] bounded rounds with doubling backoff (then waits for the next
//!   heartbeat), and moves the pool to the host it finds: new connect options, and every
//!   connection made before the move is closed instead of being handed out again
//!   (`stale`). Until then requests fail with `Unavailable` (503 + `Retry-After`), within
//!   the pool's acquire timeout: none waits longer.
//!
//! Nothing here replays a statement: a request whose write failed is answered 503 and its
//! outcome left to the use case's own safety (docs/design/availability.md).

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_core::ports::{StoreError, StoreResult};
use sqlx::any::AnyConnectOptions;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection};
use tokio::sync::Notify;

use crate::pg_url::{PgUrl, TargetSession};
use crate::sql::statements;

statements! {
    /// What a PostgreSQL session may do: `standby`, `read-only` or `read-write`.
    SESSION_STATE: postgres = "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' \
        WHEN current_setting('transaction_read_only') = 'on' THEN 'read-only' \
        ELSE 'read-write' END";
}

/// How often the watcher asks the current host.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// The longest one probe (connect and ask) may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The pauses between the rounds of one search (each round tries every host in order).
pub const PROBE_ROUNDS: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];

/// The hosts of a multi-host URL and which one the pool uses.
pub(crate) struct HostChoice {
    url: PgUrl,
    options: Vec<AnyConnectOptions>,
    current: AtomicUsize,
    /// When the pool last moved: connections older than this point at the old host.
    moved_at: Mutex<Option<Instant>>,
    wake: Notify,
}

/// Whether `target` accepts a session in `state` (see [`SESSION_STATE`]).
fn accepts(target: TargetSession, state: &str) -> bool {
    match target {
        TargetSession::Any => true,
        TargetSession::ReadWrite => state == "read-write",
        TargetSession::Primary => state != "standby",
    }
}

async fn session_state(conn: &mut AnyConnection) -> Result<String, sqlx::Error> {
    let state = tokio::time::timeout(
        PROBE_TIMEOUT,
        sqlx::query_scalar::<_, String>(SESSION_STATE).fetch_one(&mut *conn),
    )
    .await
    .map_err(|_| sqlx::Error::PoolTimedOut)??;
    Ok(state)
}

impl HostChoice {
    pub(crate) fn new(url: PgUrl) -> StoreResult<Self> {
        let options = (0..url.hosts.len())
            .filter_map(|i| url.host_url(i))
            .map(|u| {
                AnyConnectOptions::from_str(&u)
                    .map(|o| o.disable_statement_logging())
                    .map_err(crate::db_err)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Self {
            url,
            options,
            current: AtomicUsize::new(0),
            moved_at: Mutex::new(None),
            wake: Notify::new(),
        })
    }

    pub(crate) fn current_options(&self) -> Option<AnyConnectOptions> {
        self.options
            .get(self.current.load(Ordering::Acquire))
            .cloned()
    }

    /// The host the pool uses now, `host:port`.
    pub(crate) fn current_host(&self) -> String {
        self.url
            .hosts
            .get(self.current.load(Ordering::Acquire))
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Connects to host `i` and keeps the connection when the host is acceptable.
    async fn probe(&self, i: usize) -> Result<AnyConnection, String> {
        let options = self.options.get(i).ok_or("no such host")?;
        let mut conn = tokio::time::timeout(PROBE_TIMEOUT, options.connect())
            .await
            .map_err(|_| "no answer".to_owned())?
            .map_err(|e| e.to_string())?;
        let state = session_state(&mut conn).await.map_err(|e| e.to_string())?;
        if accepts(self.url.target, &state) {
            Ok(conn)
        } else {
            let _ = conn.close().await;
            Err(format!("{state} session"))
        }
    }

    /// One search: every host in order, for up to [`PROBE_ROUNDS`] rounds.
    async fn search(&self) -> Result<(usize, AnyConnection), String> {
        let mut reasons = Vec::new();
        for pause in PROBE_ROUNDS {
            tokio::time::sleep(pause).await;
            reasons.clear();
            for (i, host) in self.url.hosts.iter().enumerate() {
                match self.probe(i).await {
                    Ok(conn) => return Ok((i, conn)),
                    Err(why) => reasons.push(format!("{host}: {why}")),
                }
            }
        }
        Err(reasons.join("; "))
    }

    /// At start: the first acceptable host, or why there is none.
    pub(crate) async fn choose(&self) -> StoreResult<()> {
        match self.search().await {
            Ok((i, conn)) => {
                let _ = conn.close().await;
                self.current.store(i, Ordering::Release);
                tracing::info!(host = %self.current_host(), "database host chosen");
                Ok(())
            }
            Err(reasons) => Err(StoreError::Unavailable(format!(
                "no host of database_url accepts {:?} sessions ({reasons})",
                self.url.target
            ))),
        }
    }

    /// Whether a pooled connection was made before the pool last moved (it is closed).
    pub(crate) fn stale(&self, meta: &PoolConnectionMetadata) -> bool {
        let moved = self.moved_at.lock().map(|m| *m).unwrap_or(None);
        moved.is_some_and(|at| meta.age > at.elapsed())
    }

    /// Asks the watcher to check the current host now.
    pub(crate) fn suspect(&self) {
        self.wake.notify_one();
    }

    /// A new pool connection: refused (and the watcher woken) unless acceptable.
    pub(crate) async fn check_new(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        let state = session_state(conn).await?;
        if accepts(self.url.target, &state) {
            return Ok(());
        }
        self.suspect();
        Err(sqlx::Error::Protocol(format!(
            "{} now takes {state} sessions only; looking for the new primary",
            self.current_host()
        )))
    }

    fn move_to(&self, i: usize, pool: &AnyPool) {
        let from = self.current_host();
        if let Some(options) = self.options.get(i) {
            pool.set_connect_options(options.clone());
        }
        self.current.store(i, Ordering::Release);
        if let Ok(mut m) = self.moved_at.lock() {
            *m = Some(Instant::now());
        }
        tracing::warn!(%from, to = %self.current_host(), "database pool moved to the new primary");
    }

    /// The watcher: runs until the pool closes (or the store is dropped).
    pub(crate) async fn watch(self: Arc<Self>, pool: AnyPool) {
        let mut heartbeat: Option<AnyConnection> = None;
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(HEARTBEAT) => {}
            }
            if pool.is_closed() {
                return;
            }
            let healthy = match heartbeat.as_mut() {
                Some(conn) => session_state(conn)
                    .await
                    .is_ok_and(|s| accepts(self.url.target, &s)),
                None => false,
            };
            if healthy {
                continue;
            }
            if let Some(conn) = heartbeat.take() {
                let _ = tokio::time::timeout(PROBE_TIMEOUT, conn.close()).await;
            }
            let current = self.current.load(Ordering::Acquire);
            // The current host first: a lost heartbeat connection alone moves nothing.
            if let Ok(conn) = self.probe(current).await {
                heartbeat = Some(conn);
                continue;
            }
            tracing::warn!(host = %self.current_host(), "database host lost; searching the hosts");
            match self.search().await {
                Ok((i, conn)) => {
                    // Even back on the same host: the connections made before are broken.
                    self.move_to(i, &pool);
                    heartbeat = Some(conn);
                }
                Err(reasons) => {
                    tracing::warn!(%reasons, "no acceptable database host yet; searching again");
                }
            }
        }
    }
}

/// The watcher task of a store; stops when the last clone of the store is dropped.
pub(crate) struct Watcher {
    pub(crate) choice: Arc<HostChoice>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    pub(crate) fn start(choice: Arc<HostChoice>, pool: AnyPool) -> Self {
        let task = tokio::spawn(choice.clone().watch(pool));
        Self { choice, task }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("host", &self.choice.current_host())
            .finish()
    }
}
