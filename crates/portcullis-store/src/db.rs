//! The store's connections: sqlx's pool and, on SQLite, the connections the store keeps
//! between uses.
//!
//! sqlx 0.8 tests every connection it takes back into its pool (`PoolConnection`'s return
//! runs a `ping`, in a spawned task). On PostgreSQL that catches a connection lost with its
//! host. On SQLite the connection is a thread in this process and the ping asks nothing of
//! the database: it is one more hand-off to that thread and back, after every read and every
//! transaction, and each hand-off wakes two threads (figure 11: a third of an OpenID Connect
//! flow's wake-ups; docs/benchmarks.md). So on SQLite the store takes a connection from sqlx
//! once and keeps it: a [`Lease`] that ends puts its connection back on the store's own list,
//! where the next lease takes it, with no hand-off. The store's own SQLite transactions end
//! before their lease does (`tx.rs` rolls a dropped one back first, and closes a connection
//! it cannot bring out of one). A connection that sqlx counts as inside a transaction of its
//! own goes back through sqlx instead, whose `after_release` check closes it. A read dropped
//! mid-query leaves nothing behind: the connection's thread runs its commands in order, so
//! the next lease's query waits behind the abandoned one.
//!
//! sqlx's pool still makes the connections (`after_connect`, the acquire timeout). Its size
//! is the leases' limit plus [`SPARE`], so whatever takes a connection from it directly (the
//! checkpointer, tests) finds one even when the store keeps all of its own.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::TryStreamExt;
use portcullis_core::ports::StoreResult;
use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Describe, Either, Execute, Executor};

/// Connections of sqlx's SQLite pool beyond the store's leases (see the module's note).
pub(crate) const SPARE: u32 = 2;

/// The store's connections; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// SQLite: the leases' limit and the connections between leases; `None` on PostgreSQL,
    /// whose connections go back to sqlx's pool (and its test).
    kept: Option<Arc<Kept>>,
}

struct Kept {
    /// One permit per lease: at most the pool's size less [`SPARE`] at once.
    leases: Arc<tokio::sync::Semaphore>,
    idle: Mutex<Vec<PoolConnection<Any>>>,
    acquire_timeout: Duration,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("pool", &self.pool)
            .field("kept", &self.kept.as_ref().map(|k| k.idle_count()))
            .finish()
    }
}

impl Kept {
    fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

impl Db {
    /// sqlx's pool as it is, its connections tested as they come back (PostgreSQL's; the
    /// one connection of SQLite's registry loads).
    pub(crate) fn pooled(pool: AnyPool) -> Self {
        Self { pool, kept: None }
    }

    /// SQLite: at most `leases` connections out at once, kept between uses; `pool` must
    /// hold `leases` + [`SPARE`].
    pub(crate) fn kept(pool: AnyPool, leases: u32, acquire_timeout: Duration) -> Self {
        let leases = usize::try_from(leases.max(1)).unwrap_or(1);
        Self {
            pool,
            kept: Some(Arc::new(Kept {
                leases: Arc::new(tokio::sync::Semaphore::new(leases)),
                idle: Mutex::new(Vec::with_capacity(leases)),
                acquire_timeout,
            })),
        }
    }

    /// sqlx's pool (connections taken from it directly are not the store's kept ones).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A connection: on SQLite the one used last, when one is free.
    pub async fn acquire(&self) -> Result<Lease, sqlx::Error> {
        let Some(kept) = &self.kept else {
            return Ok(Lease {
                conn: Some(self.pool.acquire().await?),
                back: None,
            });
        };
        let permit =
            tokio::time::timeout(kept.acquire_timeout, kept.leases.clone().acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
        let reused = kept.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match reused {
            Some(conn) => conn,
            // Every connection the store keeps is out on a lease, and the leases are fewer
            // than the pool's connections: sqlx has one, or makes one.
            None => self.pool.acquire().await?,
        };
        Ok(Lease {
            conn: Some(conn),
            back: Some((kept.clone(), permit)),
        })
    }

    /// Connections open, idle (sqlx's idle ones and the store's kept ones) and the most the
    /// pool may open.
    pub(crate) fn counts(&self) -> (u32, usize, u32) {
        let kept_idle = self.kept.as_ref().map_or(0, |k| k.idle_count());
        let max = self.pool.options().get_max_connections();
        (self.pool.size(), self.pool.num_idle() + kept_idle, max)
    }

    /// Closes every connection: the kept ones, then sqlx's pool, which waits for the ones
    /// out on a lease (they end on its closed pool, which closes them).
    pub(crate) async fn close(&self) {
        if let Some(kept) = &self.kept {
            kept.leases.close();
            let idle = kept
                .idle
                .lock()
                .map(|mut v| std::mem::take(&mut *v))
                .unwrap_or_default();
            // sqlx's close waits for every connection it lent: these first.
            for conn in idle {
                let _ = conn.detach().close().await;
            }
        }
        self.pool.close().await;
    }
}

/// SQLite: runs a statement list in one hand-off and returns each statement's rows, in
/// order (sqlx ends each statement's rows with its count).
pub(crate) async fn rows_per_statement<'q>(
    list: Query<'q, Any, AnyArguments<'q>>,
    db: &Db,
) -> StoreResult<Vec<Vec<AnyRow>>> {
    let mut lists = vec![Vec::new()];
    // sqlx 0.8 marks a list of statements in one query deprecated on SQLite (see
    // `tx::begin_with`); the conformance suite runs every list this store sends.
    #[allow(deprecated)]
    let mut results = list.fetch_many(db);
    while let Some(result) = results.try_next().await.map_err(crate::db_err)? {
        match result {
            Either::Left(_) => lists.push(Vec::new()),
            Either::Right(row) => {
                if let Some(rows) = lists.last_mut() {
                    rows.push(row);
                }
            }
        }
    }
    lists.pop_if(|rows| rows.is_empty());
    Ok(lists)
}

/// A connection out of the store's connections; back when dropped.
pub struct Lease {
    conn: Option<PoolConnection<Any>>,
    back: Option<(Arc<Kept>, tokio::sync::OwnedSemaphorePermit)>,
}

impl Lease {
    /// The connection, out of the pool for good (one left in a state not to reuse): it
    /// closes when dropped.
    pub(crate) fn detach(mut self) -> Option<AnyConnection> {
        self.conn.take().map(PoolConnection::detach)
    }

    /// Closes the connection instead of returning it.
    pub(crate) async fn close(self) {
        if let Some(conn) = self.detach() {
            let _ = conn.close().await;
        }
    }
}

impl Deref for Lease {
    type Target = AnyConnection;

    // Only `Drop` and `detach` take the connection out, and nothing derefs after them (as
    // in sqlx's `PoolConnection`).
    #[allow(clippy::expect_used)]
    fn deref(&self) -> &AnyConnection {
        self.conn.as_deref().expect("a lease holds its connection")
    }
}

impl DerefMut for Lease {
    #[allow(clippy::expect_used)]
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn
            .as_deref_mut()
            .expect("a lease holds its connection")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (Some(conn), Some((kept, permit))) = (self.conn.take(), self.back.take()) else {
            return;
        };
        if conn.is_in_transaction() || kept.leases.is_closed() {
            // sqlx's way back: its `after_release` closes a connection still inside a
            // transaction of sqlx's, and its closed pool closes every connection.
            drop(conn);
        } else if let Ok(mut idle) = kept.idle.lock() {
            idle.push(conn);
        }
        // The next lease finds the connection on the list.
        drop(permit);
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

/// Reads and statements on `&Db` run on a connection leased for the one query.
impl<'c> Executor<'c> for &'c Db {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if self.kept.is_none() {
            return (&self.pool).fetch_many(query);
        }
        Box::pin(async_stream::try_stream! {
            let mut conn = self.acquire().await?;
            let mut results = (&mut *conn).fetch_many(query);
            while let Some(result) = results.try_next().await? {
                yield result;
            }
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if self.kept.is_none() {
            return (&self.pool).fetch_optional(query);
        }
        Box::pin(async move { (&mut *self.acquire().await?).fetch_optional(query).await })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        Box::pin(async move {
            (&mut *self.acquire().await?)
                .prepare_with(sql, parameters)
                .await
        })
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        Box::pin(async move { (&mut *self.acquire().await?).describe(sql).await })
    }
}
