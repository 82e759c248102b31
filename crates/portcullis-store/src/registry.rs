//! The issuer registry's storage: loads (file imports, API pushes) in one transaction of
//! their own, lookups by keyed hash.
//!
//! A load is set-based: every 50,000 rows, and before anything reads them, its rows are
//! upserted into `registry_records` sorted by `number_hash` — sorted inserts into the
//! unique index instead of random ones. Where the rows wait differs by dialect. PostgreSQL
//! gets them by COPY over a connection of its own (`registry_copy.rs`) into
//! `registry_staging` (a table with no index), and one statement ([`MERGE_STAGED`])
//! upserts them and the staged rows are deleted. SQLite holds them in memory, sorts them
//! there and upserts them in multi-row statements ([`sqlite_merge_sql`]), on one connection
//! of its own ([`loads_pool`]: a warm 256 MiB page cache).

use async_trait::async_trait;
use portcullis_core::audit::AuditEvent;
use portcullis_core::clock::UnixTime;
use portcullis_core::ids::AccountType;
use portcullis_core::ports::{
    AccountRow, Committed, Outgoing, PushKey, RegistryImport, RegistryImports, RegistryReads,
    RegistryRow, Settled, StoreError, StoreResult,
};
use portcullis_core::registry::{CardStatus, HashedRecord};

use crate::outbox::OutboxSeal;
use crate::registry_bulk::Bulk;
use crate::sql::statements;
use crate::tx::{self, Tx};
use crate::{db_err, Backend, SqlStore, SqlWork};

/// Bound parameters per staged row; the load's number is written into the statement.
const COLUMNS: usize = 16;
/// Rows per INSERT: 16 parameters each keeps us well under both backends' limits.
pub const IMPORT_BATCH: usize = 1_000;
/// Staged rows merged into the registry per statement: sorted runs long enough to help the
/// index, short enough for PostgreSQL's per-statement timeout (`database.statement_timeout_secs`).
const MERGE_EVERY: usize = 50_000;

macro_rules! record_select {
    () => {
        "SELECT r.id, r.account_type, r.verification_hash, r.last4, r.holder_name, r.email, \
         r.phone, r.product, c.account_id, r.key_id, r.status, \
         (SELECT COUNT(*) FROM registry_records n WHERE n.replaces_hash = r.number_hash) \
         AS replacements \
         FROM registry_records r LEFT JOIN account_cards c ON c.registry_record_id = r.id"
    };
}

/// A record's 16 columns as a load writes them, in the order [`bind_record`] binds them:
/// the staging table's rows ([`upsert_sql`]; COPY's list in `registry_copy.rs` follows its
/// own encoder), the staged merge ([`merge_insert!`]) and SQLite's direct one
/// ([`sqlite_merge_sql`]).
macro_rules! record_columns {
    () => {
        "account_type, number_hash, verification_hash, last4, expiry, holder_name, email, \
        phone, product, balance, credit_limit, payment_due_date, minimum_due, status, \
        replaces_hash, key_id"
    };
}

/// The staged rows of load `$1` into the registry, `$2` the load's time (see
/// [`MERGE_STAGED`]).
macro_rules! merge_insert {
    () => {
        concat!(
            "INSERT INTO registry_records (",
            record_columns!(),
            ", status_since, changed_in, reissued_in) SELECT ",
            record_columns!(),
            ", $2, CAST(NULL AS BIGINT), \
            CASE WHEN replaces_hash IS NULL THEN CAST(NULL AS BIGINT) ELSE $1 END \
            FROM registry_staging WHERE load = $1"
        )
    };
}

/// What a merged row that is already in the registry takes from the load (`$1` the load's
/// number): shared by the staged merge ([`MERGE_STAGED`]) and SQLite's direct one
/// ([`sqlite_merge_sql`]).
macro_rules! merge_update {
    () => {
        "ON CONFLICT (number_hash) DO UPDATE SET account_type = excluded.account_type, \
        verification_hash = excluded.verification_hash, last4 = excluded.last4, \
        expiry = excluded.expiry, holder_name = excluded.holder_name, email = excluded.email, \
        phone = excluded.phone, product = excluded.product, balance = excluded.balance, \
        credit_limit = excluded.credit_limit, payment_due_date = excluded.payment_due_date, \
        minimum_due = excluded.minimum_due, key_id = excluded.key_id, \
        replaces_hash = COALESCE(excluded.replaces_hash, registry_records.replaces_hash), \
        reissued_in = COALESCE(excluded.reissued_in, registry_records.reissued_in), \
        status_since = CASE WHEN registry_records.status = excluded.status \
        THEN registry_records.status_since ELSE excluded.status_since END, \
        changed_in = CASE WHEN registry_records.status = excluded.status \
        THEN registry_records.changed_in ELSE $1 END, status = excluded.status"
    };
}

statements! {
    FIND_RECORD = concat!(record_select!(), " WHERE r.key_id = $1 AND r.number_hash = $2");
    RECORD_BY_ID = concat!(record_select!(), " WHERE r.id = $1");
    LINKED_RECORDS = concat!(record_select!(), " WHERE c.account_id = $1 ORDER BY c.linked_at, r.id");
    COUNT_RECORDS = "SELECT COUNT(*) FROM registry_records";
    /// Rows per registry key id (`keys status`).
    COUNT_BY_KEY = "SELECT key_id, COUNT(*) FROM registry_records GROUP BY key_id ORDER BY key_id";
    /// The lowest and highest key id of any row: whether any row is under another key than
    /// the import's (then the import moves them). Two lookups in `registry_records_key_id`
    /// (migration 0027), not a scan of the registry: one per load.
    KEY_RANGE = "SELECT (SELECT MIN(key_id) FROM registry_records), \
        (SELECT MAX(key_id) FROM registry_records)";
    /// Moves a row found under an old key at a lookup (a use case's unit of work).
    MOVE_FOUND = "UPDATE registry_records SET number_hash = $1, verification_hash = $2, \
        key_id = $3 WHERE id = $4 AND key_id = $5";
    /// Moves a row found under an old key to the current one (the import, which has the
    /// number in hand, before staging); the merge that follows rewrites its card-ID hash.
    MOVE_RECORD = "UPDATE registry_records SET number_hash = $1, key_id = $2 \
        WHERE key_id = $3 AND number_hash = $4";
    /// After a move: the records naming the moved number in `replaces` name it under the
    /// current key too (a replaced card stays replaced).
    MOVE_REPLACES = "UPDATE registry_records SET replaces_hash = $1 WHERE replaces_hash = $2";
    /// The load's staged rows into the registry, sorted by the unique key. A row's
    /// `status_since` is the load's time (`$2`) when it is new or its status changes, and
    /// `changed_in` the load's number (`$1`) when its status changes, `reissued_in` when it
    /// names a card it replaces; `key_id` is the load's (the ring's current key: a row
    /// under an old key was moved to it before staging); `replaces` is kept once set (a later record without it does
    /// not bring the replaced card back).
    MERGE_STAGED: postgres = concat!(merge_insert!(), " ORDER BY number_hash ", merge_update!());
    /// The first large load into an empty registry (`registry_bulk.rs`): the staged rows
    /// appended, with the table's unique index dropped until the load's end.
    BULK_MERGE: postgres = merge_insert!();
    DELETE_STAGED: postgres = "DELETE FROM registry_staging WHERE load = $1";
    /// A large page cache for the bulk upsert into the keyed-hash index (256 MiB at most,
    /// for the loads' connection only) …
    IMPORT_CACHE: sqlite = "PRAGMA cache_size = -262144";
    /// … pages read through a memory map (256 MiB at most), so a cache reset by another
    /// connection's write costs no read calls …
    IMPORT_MMAP: sqlite = "PRAGMA mmap_size = 268435456";
    /// … statement journals in memory …
    IMPORT_TEMP: sqlite = "PRAGMA temp_store = MEMORY";
    /// … and no checkpoint of its own until the log holds 100,000 pages (about 400 MB):
    /// after each commit a [`Checkpointer`] copies the log on another connection, in the
    /// background; this is the backstop for when loads come faster than it copies. At
    /// 20,000 pages (80 MB) the loads' connection checkpointed itself every few pushes of
    /// 10,000 records (each writes 3–33 MB of log as the registry grows to 1,000,000,
    /// `bench/sqlite/index_cost.py blob32`), waiting on `fsync` while holding the single
    /// writer (SQLite pushes in alternating runs: 62,035 and 53,199/s at 20,000, 63,776 and
    /// 60,993/s at 100,000; docs/benchmarks.md, figure 10). The log file keeps the size it grew to (at most this
    /// plus one load) until the last connection closes; no `journal_size_limit` is set
    /// (see docs/benchmarks.md for why).
    IMPORT_CHECKPOINT: sqlite = "PRAGMA wal_autocheckpoint = 100000";
    /// SQLite: copies the write-ahead log into the database file as far as it can without
    /// waiting for anyone (see [`Checkpointer`]).
    CHECKPOINT_PASSIVE: sqlite = "PRAGMA wal_checkpoint(PASSIVE)";
    /// PostgreSQL: the merge's sort of up to [`MERGE_EVERY`] rows in memory, not on disk
    /// (the default 4 MB spilled a 50,000-row sort to a temporary file).
    MERGE_WORK_MEM: postgres = "SET LOCAL work_mem = '64MB'";
}

/// SQLite: the pool of one connection that registry loads run on. Loads take the single
/// writer's lock anyway, so one connection costs them nothing, and its page cache (256 MiB,
/// [`IMPORT_CACHE`]) stays warm from one load to the next: with the loads spread over the
/// main pool, each push started on a connection whose cache another connection's write
/// had reset (docs/benchmarks.md, figure 10). Connected when first used.
pub(crate) fn loads_pool(options: &sqlx::any::AnyConnectOptions) -> sqlx::AnyPool {
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        // A load waits for the one before it as it would for the write lock.
        .acquire_timeout(std::time::Duration::from_secs(30))
        // Kept while pushes keep coming; its cache memory is given back after 10 idle minutes.
        .idle_timeout(std::time::Duration::from_secs(600))
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                crate::sqlite_setup(conn).await?;
                for pragma in [IMPORT_CACHE, IMPORT_MMAP, IMPORT_TEMP, IMPORT_CHECKPOINT] {
                    sqlx::Executor::execute(&mut *conn, pragma).await?;
                }
                Ok(())
            })
        })
        .after_release(|conn, _meta| {
            Box::pin(async move {
                Ok(crate::health::clean_for_reuse(conn, Backend::Sqlite, false).await)
            })
        })
        .connect_lazy_with(options.clone())
}

/// SQLite: after a load commits, its pages are copied from the write-ahead log into the
/// database file (a passive checkpoint) on a connection of the main pool, in the
/// background, instead of by the loads' connection when its log reaches
/// `wal_autocheckpoint` ([`IMPORT_CHECKPOINT`], now the backstop): the copy then runs on
/// another core while the next load writes (docs/benchmarks.md, figure 10). One at a time;
/// a load that commits while one runs starts none (the running one, or the next, copies its
/// pages). A passive checkpoint waits for no reader or writer; one that fails is logged and
/// left to the next.
#[derive(Clone, Debug)]
pub(crate) struct Checkpointer {
    pool: sqlx::AnyPool,
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    pub(crate) fn new(pool: sqlx::AnyPool) -> Self {
        Self {
            pool,
            running: std::sync::Arc::default(),
        }
    }

    fn start(&self) {
        use std::sync::atomic::Ordering;
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, running) = (self.pool.clone(), self.running.clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            running.store(false, Ordering::Release);
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = sqlx::query(CHECKPOINT_PASSIVE).execute(&pool).await {
                tracing::warn!(error = %e, "background checkpoint after a registry load failed; the next load starts another");
            }
            running.store(false, Ordering::Release);
        });
    }
}

pub(crate) fn account_type(s: &str) -> Result<AccountType, StoreError> {
    AccountType::parse(s)
        .ok_or_else(|| StoreError::Internal(format!("unknown account type {s:?} in database")))
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    id: i64,
    account_type: String,
    verification_hash: Vec<u8>,
    last4: String,
    holder_name: String,
    email: Option<String>,
    phone: Option<String>,
    product: String,
    account_id: Option<i64>,
    key_id: i64,
    status: String,
    replacements: i64,
}

pub(crate) fn card_status(s: &str) -> Result<CardStatus, StoreError> {
    CardStatus::parse(s)
        .ok_or_else(|| StoreError::Internal(format!("unknown card status {s:?} in database")))
}

impl TryFrom<RecordRow> for RegistryRow {
    type Error = StoreError;

    fn try_from(r: RecordRow) -> StoreResult<Self> {
        Ok(RegistryRow {
            id: r.id,
            account_type: account_type(&r.account_type)?,
            verification_hash: r.verification_hash,
            last4: r.last4,
            holder_name: r.holder_name,
            email: r.email,
            phone: r.phone,
            product: r.product,
            account_id: r.account_id,
            key_id: r.key_id,
            status: card_status(&r.status)?,
            replaced: r.replacements > 0,
        })
    }
}

/// A registry load: its transaction, its number (`changed_in` of the records whose status
/// it changed), and the messages and audit events its commit writes.
pub struct SqlImport {
    pub(crate) tx: Tx,
    backend: Backend,
    pub(crate) now: UnixTime,
    pub(crate) load: i64,
    seal: Option<OutboxSeal>,
    outgoing: Vec<Outgoing>,
    events: Vec<AuditEvent>,
    /// Rows staged (SQLite: held) that [`SqlImport::merge`] has not moved into the registry
    /// yet.
    staged: usize,
    /// SQLite: the load's rows not merged yet, held here instead of in a staging table
    /// (see [`SqlImport::merge_direct`]).
    held: Vec<HashedRecord>,
    /// Whether rows under another key than the load's exist (asked once, at the first
    /// batch): only then does each record look for its row under the old keys.
    old_rows: Option<bool>,
    /// PostgreSQL: the load's rows go to the staging table by COPY (`registry_copy.rs`):
    /// the pool, the rows not sent yet (COPY text) and how many, and the guard that deletes
    /// the sent rows unless the load commits.
    copy: Option<sqlx::PgPool>,
    unsent: Vec<u8>,
    unsent_rows: usize,
    sent: Option<crate::registry_copy::StagedRows>,
    /// SQLite with a loads connection of its own: the checkpoint started after the commit.
    checkpointer: Option<Checkpointer>,
    /// PostgreSQL: whether the load appends to an empty registry with its indexes dropped
    /// (`registry_bulk.rs`).
    pub(crate) bulk: Bulk,
}

impl SqlImport {
    /// Upserts the load's staged rows into the registry in one sorted statement and clears
    /// them; nothing to do when none are staged. Runs before anything reads the registry in
    /// this load (`settle`) and at the latest before the commit.
    pub(crate) async fn merge(&mut self) -> StoreResult<()> {
        if self.backend == Backend::Sqlite {
            return self.merge_direct().await;
        }
        self.send_copy().await?;
        if self.staged == 0 {
            return Ok(());
        }
        if self.bulk == Bulk::Maybe {
            // Only a load that reaches its first merge with a full run of rows (a large one).
            self.bulk = if self.staged >= MERGE_EVERY {
                crate::registry_bulk::begin(self).await?
            } else {
                Bulk::No
            };
        }
        let merge = match self.bulk {
            Bulk::Active => BULK_MERGE,
            Bulk::Maybe | Bulk::No => MERGE_STAGED,
        };
        sqlx::query(merge)
            .bind(self.load)
            .bind(self.now.0)
            .execute(self.tx.conn()?)
            .await
            .map_err(db_err)?;
        let seen = sqlx::query(DELETE_STAGED)
            .bind(self.load)
            .execute(self.tx.conn()?)
            .await
            .map_err(db_err)?
            .rows_affected();
        // Every row sent must have been seen by the load's transaction (PostgreSQL's COPY
        // commits on a connection of its own: another host after a failover, or a snapshot
        // older than the COPY, would merge nothing). Fail the load rather than commit it,
        // its audit and its events for rows it never merged.
        if seen != self.staged as u64 {
            return Err(StoreError::Internal(format!(
                "registry load: {seen} staged rows seen of {} sent; the load is refused",
                self.staged
            )));
        }
        self.staged = 0;
        Ok(())
    }

    /// SQLite: the held rows into the registry, sorted by `number_hash`, by multi-row
    /// upserts ([`sqlite_merge_sql`]) whose text depends only on their row count, so each
    /// size is prepared once per connection. A staging table bought SQLite nothing the
    /// sort in memory does not: on one connection the rows were written to it, sorted back
    /// out of it and deleted from it while the load held the single writer, and each
    /// load's statement, with the load's number written in, was prepared again.
    async fn merge_direct(&mut self) -> StoreResult<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let mut held = std::mem::take(&mut self.held);
        held.sort_unstable_by_key(|r| r.number_hash);
        for chunk in held.chunks(SQLITE_MERGE_BATCH) {
            // The one statement built at run time on SQLite (see `sqlite_merge_sql`).
            let merge = sqlite_merge_sql(chunk.len());
            // Only the full size stays prepared on the connection: a statement of up to
            // 18,000 parameters for every remainder size a load ends with would fill its
            // statement cache with programs used once.
            let mut q = sqlx::query(&merge).persistent(chunk.len() == SQLITE_MERGE_BATCH);
            for r in chunk {
                q = bind_record(q, r)
                    .bind(self.now.0)
                    .bind(r.replaces_hash.map(|_| self.load));
            }
            q.bind(self.load)
                .execute(self.tx.conn()?)
                .await
                .map_err(db_err)?;
        }
        self.staged = 0;
        Ok(())
    }

    /// PostgreSQL: sends the rows buffered for COPY (nothing when none are).
    async fn send_copy(&mut self) -> StoreResult<()> {
        let Some(pool) = &self.copy else {
            return Ok(());
        };
        if self.unsent_rows == 0 {
            return Ok(());
        }
        if self.sent.is_none() {
            self.sent = Some(crate::registry_copy::StagedRows::new(
                pool.clone(),
                self.load,
            ));
        }
        let data = std::mem::take(&mut self.unsent);
        crate::registry_copy::copy_rows(pool, data).await?;
        self.staged += self.unsent_rows;
        self.unsent_rows = 0;
        Ok(())
    }

    /// Moves the row whose number HMAC under old key `old_id` is `old_hash` to key `key_id`
    /// (`number_hash`), and the `replaces` naming it along (nothing when no such row).
    async fn move_old(
        &mut self,
        old_id: i64,
        old_hash: &[u8; 32],
        key_id: i64,
        number_hash: &[u8; 32],
    ) -> StoreResult<()> {
        let moved = sqlx::query(MOVE_RECORD)
            .bind(number_hash.to_vec())
            .bind(key_id)
            .bind(old_id)
            .bind(old_hash.to_vec())
            .execute(self.tx.conn()?)
            .await
            .map_err(db_err)?;
        if moved.rows_affected() > 0 {
            sqlx::query(MOVE_REPLACES)
                .bind(number_hash.to_vec())
                .bind(old_hash.to_vec())
                .execute(self.tx.conn()?)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }
}

#[async_trait]
impl RegistryImport for SqlImport {
    fn now(&self) -> UnixTime {
        self.now
    }

    async fn upsert(&mut self, batch: &[HashedRecord]) -> StoreResult<()> {
        let Some(first) = batch.first() else {
            return Ok(());
        };
        let old_rows = match self.old_rows {
            Some(known) => known,
            None => {
                let (low, high): (Option<i64>, Option<i64>) = sqlx::query_as(KEY_RANGE)
                    .fetch_one(self.tx.conn()?)
                    .await
                    .map_err(db_err)?;
                let old = [low, high].iter().flatten().any(|&k| k != first.key_id);
                if low.is_some() {
                    self.bulk = Bulk::No;
                }
                self.old_rows = Some(old);
                old
            }
        };
        if old_rows {
            for r in batch {
                for (old_id, old_hash) in &r.old_number_hashes {
                    self.move_old(*old_id, old_hash, r.key_id, &r.number_hash)
                        .await?;
                }
                // The card this one replaces may still be under an old key, where
                // `replaces_hash` (the current key's) would not find it: its number moves
                // to the current key (its card-ID hash stays: a replaced card proves
                // nothing, docs/design/cards.md).
                if let Some(replaces) = &r.replaces_hash {
                    for (old_id, old_hash) in &r.old_replaces_hashes {
                        self.move_old(*old_id, old_hash, r.key_id, replaces).await?;
                    }
                }
            }
        }
        if self.backend == Backend::Sqlite {
            self.held.extend_from_slice(batch);
            self.staged += batch.len();
            if self.staged >= MERGE_EVERY {
                self.merge().await?;
            }
            return Ok(());
        }
        if self.copy.is_some() {
            crate::registry_copy::encode_rows(&mut self.unsent, self.load, batch);
            self.unsent_rows += batch.len();
            if self.unsent_rows >= crate::registry_copy::COPY_EVERY {
                self.send_copy().await?;
                if self.staged >= MERGE_EVERY {
                    self.merge().await?;
                }
            }
            return Ok(());
        }
        for chunk in batch.chunks(IMPORT_BATCH) {
            // The one statement built at run time (see `upsert_sql`).
            let upsert = upsert_sql(chunk.len(), self.backend, self.load);
            let mut q = sqlx::query(&upsert);
            for r in chunk {
                q = bind_record(q, r);
            }
            q.execute(self.tx.conn()?).await.map_err(db_err)?;
            self.staged += chunk.len();
            if self.staged >= MERGE_EVERY {
                self.merge().await?;
            }
        }
        Ok(())
    }

    async fn settle(&mut self) -> StoreResult<Settled> {
        self.merge().await?;
        crate::registry_bulk::finish(self).await?;
        crate::lifecycle::settle(self).await
    }

    async fn claim_push_key(
        &mut self,
        key: &str,
        request_hash: &[u8; 32],
        response: &str,
    ) -> StoreResult<PushKey> {
        crate::lifecycle::claim_push_key(self, key, request_hash, response).await
    }

    fn send(&mut self, message: Outgoing) {
        self.outgoing.push(message);
    }

    fn audit(&mut self, event: AuditEvent) {
        self.events.push(event);
    }

    async fn commit(
        mut self: Box<Self>,
        audit_key: &portcullis_core::audit::ChainKey,
    ) -> StoreResult<Committed> {
        self.merge().await?;
        crate::registry_bulk::finish(&mut self).await?;
        let messages = std::mem::take(&mut self.outgoing);
        let events = std::mem::take(&mut self.events);
        crate::outbox::enqueue(self.tx.conn()?, self.seal.as_ref(), &messages, self.now).await?;
        crate::webhooks::enqueue_events(self.tx.conn()?, &events, self.now).await?;
        let sent = self.sent.take();
        tx::commit_audited(self.tx, &events, self.now, audit_key).await?;
        if let Some(sent) = sent {
            sent.disarm();
        }
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.start();
        }
        Ok(Committed {
            messages: messages.len(),
            audited: events.len(),
        })
    }
}

/// Binds a record's 16 columns, in the order of [`record_columns!`].
fn bind_record<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    r: &'q HashedRecord,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(r.account_type.as_str())
        .bind(&r.number_hash[..])
        .bind(&r.verification_hash[..])
        .bind(r.last4.as_str())
        .bind(r.expiry.as_deref())
        .bind(r.holder_name.as_str())
        .bind(r.email.as_deref())
        .bind(r.phone.as_deref())
        .bind(r.product.as_str())
        .bind(r.balance)
        .bind(r.credit_limit)
        .bind(r.payment_due_date.as_deref())
        .bind(r.minimum_due)
        .bind(r.status.as_str())
        .bind(r.replaces_hash.as_ref().map(|h| &h[..]))
        .bind(r.key_id)
}

/// SQLite: rows per direct upsert ([`sqlite_merge_sql`]); 18 parameters each keeps the
/// statement under SQLite's 32,766.
const SQLITE_MERGE_BATCH: usize = 1_000;
/// Bound parameters per row of [`sqlite_merge_sql`].
const SQLITE_MERGE_COLUMNS: usize = 18;

/// SQLite: the multi-row upsert of `rows` held records into the registry, with the same
/// conflict rule as the staged merge ([`MERGE_STAGED`]). Each row binds its 16 columns,
/// `status_since` (the load's time) and `reissued_in` (the load's number when the record
/// names a card it replaces); the one parameter after the rows is the load's number, for
/// `changed_in` when a status changes. Anonymous `?` placeholders only (see
/// [`crate::sql::push_rows`]), the last one numbered after every row's.
pub(crate) fn sqlite_merge_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(1_200 + rows * 40);
    sql.push_str(concat!(
        "INSERT INTO registry_records (",
        record_columns!(),
        ", status_since, reissued_in) VALUES "
    ));
    crate::sql::push_rows(&mut sql, rows, SQLITE_MERGE_COLUMNS, Backend::Sqlite, "(");
    sql.push(' ');
    sql.push_str(&merge_update!().replace("$1", "?"));
    sql
}

/// The multi-row INSERT of `rows` records into the staging table for load `load` (the
/// placeholders by [`crate::sql::push_rows`]).
pub(crate) fn upsert_sql(rows: usize, backend: Backend, load: i64) -> String {
    let mut sql = String::with_capacity(200 + rows * 80);
    sql.push_str(concat!(
        "INSERT INTO registry_staging (load, ",
        record_columns!(),
        ") VALUES "
    ));
    crate::sql::push_rows(&mut sql, rows, COLUMNS, backend, &format!("({load},"));
    sql
}

#[async_trait]
impl RegistryImports for SqlStore {
    async fn begin_import(&self, now: UnixTime) -> StoreResult<Box<dyn RegistryImport>> {
        let load = crate::registry_copy::load_number(now.0);
        let tx = match (&self.loads, self.backend) {
            (Some((loads, _)), _) => tx::begin(loads, self.backend, &self.gate).await?,
            (None, Backend::Sqlite) => {
                let mut tx = tx::begin(&self.pool, self.backend, &self.gate).await?;
                sqlx::query(IMPORT_CACHE)
                    .execute(tx.conn()?)
                    .await
                    .map_err(db_err)?;
                tx
            }
            (None, Backend::Postgres) => {
                let mut tx = tx::begin(&self.pool, self.backend, &self.gate).await?;
                sqlx::query(MERGE_WORK_MEM)
                    .execute(tx.conn()?)
                    .await
                    .map_err(db_err)?;
                // The staged rows of loads whose process died (see `registry_copy.rs`).
                sqlx::query(crate::registry_copy::SWEEP_STAGED)
                    .bind(crate::registry_copy::sweep_below(now.0))
                    .execute(tx.conn()?)
                    .await
                    .map_err(db_err)?;
                tx
            }
        };
        let copy = match &self.copy {
            Some(pools) => Some(pools.get()?),
            None => None,
        };
        Ok(Box::new(SqlImport {
            tx,
            backend: self.backend,
            now,
            load,
            seal: self.outbox_seal.clone(),
            outgoing: Vec::new(),
            events: Vec::new(),
            staged: 0,
            held: Vec::new(),
            old_rows: None,
            copy,
            unsent: Vec::new(),
            unsent_rows: 0,
            sent: None,
            checkpointer: self.loads.as_ref().map(|(_, c)| c.clone()),
            bulk: match self.backend {
                Backend::Postgres => Bulk::Maybe,
                Backend::Sqlite => Bulk::No,
            },
        }))
    }
}

#[async_trait]
impl RegistryReads for SqlStore {
    async fn find_record(
        &self,
        key_id: i64,
        number_hash: &[u8; 32],
    ) -> StoreResult<Option<RegistryRow>> {
        let row: Option<RecordRow> = sqlx::query_as(FIND_RECORD)
            .bind(key_id)
            .bind(number_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(RegistryRow::try_from).transpose()
    }

    async fn record_by_id(&self, id: i64) -> StoreResult<Option<RegistryRow>> {
        let row: Option<RecordRow> = sqlx::query_as(RECORD_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(RegistryRow::try_from).transpose()
    }

    async fn count_records(&self) -> StoreResult<i64> {
        sqlx::query_scalar(COUNT_RECORDS)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn count_by_key(&self) -> StoreResult<Vec<(i64, i64)>> {
        sqlx::query_as(COUNT_BY_KEY)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn card_paused(&self, record_id: i64) -> StoreResult<bool> {
        crate::card_guard::paused(&self.pool, record_id).await
    }

    async fn linked_records(&self, account_id: i64) -> StoreResult<Vec<RegistryRow>> {
        let rows: Vec<RecordRow> = sqlx::query_as(LINKED_RECORDS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.into_iter().map(RegistryRow::try_from).collect()
    }

    async fn accounts_with_cards_closed(
        &self,
        closed_before: UnixTime,
        limit: i64,
    ) -> StoreResult<Vec<AccountRow>> {
        crate::lifecycle::accounts_with_cards_closed(&self.pool, closed_before, limit).await
    }
}

/// Moves a row found under an old key at a lookup to the current one, in a use case's
/// unit of work (`RegistryWrites::move_record`, implemented in `lifecycle.rs`).
pub(crate) async fn move_found(
    work: &mut SqlWork,
    id: i64,
    from_key_id: i64,
    to_key_id: i64,
    number_hash: &[u8; 32],
    verification_hash: &[u8; 32],
) -> StoreResult<bool> {
    let done = sqlx::query(MOVE_FOUND)
        .bind(number_hash.to_vec())
        .bind(verification_hash.to_vec())
        .bind(to_key_id)
        .bind(id)
        .bind(from_key_id)
        .execute(work.conn().await?)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}
