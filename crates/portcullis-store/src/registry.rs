//! The issuer registry's storage: imports in one transaction of their own, lookups by keyed
//! hash. The import's multi-row upsert is the one statement built at run time (its row
//! count varies), and the one place besides the outbox claim where the dialects differ:
//! SQLite gets anonymous `?` placeholders and a larger page cache (see [`upsert_sql`]).

use async_trait::async_trait;
use portcullis_core::ids::AccountType;
use portcullis_core::ports::{
    RegistryImport, RegistryImports, RegistryReads, RegistryRow, RegistryWrites, StoreError,
    StoreResult,
};
use portcullis_core::registry::HashedRecord;

use crate::sql::statements;
use crate::tx::{self, Tx};
use crate::{db_err, Backend, SqlStore, SqlWork};

const COLUMNS: usize = 14;
/// Rows per INSERT: 14 parameters each keeps us well under both backends' limits.
pub const IMPORT_BATCH: usize = 1_000;

macro_rules! record_select {
    () => {
        "SELECT r.id, r.account_type, r.verification_hash, r.last4, r.holder_name, r.email, \
         r.phone, r.product, c.account_id, r.key_id \
         FROM registry_records r LEFT JOIN account_cards c ON c.registry_record_id = r.id"
    };
}

statements! {
    FIND_RECORD = concat!(record_select!(), " WHERE r.key_id = $1 AND r.number_hash = $2");
    RECORD_BY_ID = concat!(record_select!(), " WHERE r.id = $1");
    LINKED_RECORDS = concat!(record_select!(), " WHERE c.account_id = $1 ORDER BY c.linked_at, r.id");
    COUNT_RECORDS = "SELECT COUNT(*) FROM registry_records";
    /// Rows per registry key id (`keys status`).
    COUNT_BY_KEY = "SELECT key_id, COUNT(*) FROM registry_records GROUP BY key_id ORDER BY key_id";
    /// Whether any row is under another key than the import's (then the import moves them).
    COUNT_NOT_UNDER = "SELECT COUNT(*) FROM registry_records WHERE key_id <> $1";
    /// Moves a row found under an old key to the current one (the import, which has the
    /// number in hand); the upsert that follows rewrites its card-ID hash.
    /// Moves a row found under an old key at a lookup (a use case's unit of work).
    MOVE_FOUND = "UPDATE registry_records SET number_hash = $1, verification_hash = $2, \
        key_id = $3 WHERE id = $4 AND key_id = $5";
    MOVE_RECORD = "UPDATE registry_records SET number_hash = $1, key_id = $2 \
        WHERE key_id = $3 AND number_hash = $4";
    /// A large page cache for the bulk upsert into the keyed-hash index (256 MiB at most,
    /// for the importing connection only).
    IMPORT_CACHE: sqlite = "PRAGMA cache_size = -262144";
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
        })
    }
}

pub struct SqlImport {
    tx: Tx,
    backend: Backend,
    /// Whether rows under another key than the import's exist (asked once, at the first
    /// batch): only then does each record look for its row under the old keys.
    old_rows: Option<bool>,
}

#[async_trait]
impl RegistryImport for SqlImport {
    async fn upsert(&mut self, batch: &[HashedRecord]) -> StoreResult<()> {
        let Some(first) = batch.first() else {
            return Ok(());
        };
        let old_rows = match self.old_rows {
            Some(known) => known,
            None => {
                let n: i64 = sqlx::query_scalar(COUNT_NOT_UNDER)
                    .bind(first.key_id)
                    .fetch_one(&mut *self.tx)
                    .await
                    .map_err(db_err)?;
                self.old_rows = Some(n > 0);
                n > 0
            }
        };
        if old_rows {
            for r in batch {
                for (old_id, old_hash) in &r.old_number_hashes {
                    sqlx::query(MOVE_RECORD)
                        .bind(r.number_hash.to_vec())
                        .bind(r.key_id)
                        .bind(*old_id)
                        .bind(old_hash.to_vec())
                        .execute(&mut *self.tx)
                        .await
                        .map_err(db_err)?;
                }
            }
        }
        for chunk in batch.chunks(IMPORT_BATCH) {
            // The one statement built at run time (see `upsert_sql`).
            let upsert = upsert_sql(chunk.len(), self.backend);
            let mut q = sqlx::query(&upsert);
            for r in chunk {
                q = q
                    .bind(r.account_type.as_str())
                    .bind(r.number_hash.to_vec())
                    .bind(r.verification_hash.to_vec())
                    .bind(r.last4.clone())
                    .bind(r.expiry.clone())
                    .bind(r.holder_name.clone())
                    .bind(r.email.clone())
                    .bind(r.phone.clone())
                    .bind(r.product.clone())
                    .bind(r.balance)
                    .bind(r.credit_limit)
                    .bind(r.payment_due_date.clone())
                    .bind(r.minimum_due)
                    .bind(r.key_id);
            }
            q.execute(&mut *self.tx).await.map_err(db_err)?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        tx::commit(self.tx).await
    }
}

/// The multi-row upsert of `rows` records. SQLite gets anonymous `?` placeholders: sqlx
/// looks each numbered parameter up by name, which SQLite does by a linear scan, so 13,000
/// `$n` parameters cost ~10^8 steps per statement (measured: 3,000 records/s instead of
/// tens of thousands).
pub(crate) fn upsert_sql(rows: usize, backend: Backend) -> String {
    let mut sql = String::with_capacity(200 + rows * 80);
    sql.push_str(
        "INSERT INTO registry_records (account_type, number_hash, verification_hash, last4, \
         expiry, holder_name, email, phone, product, balance, credit_limit, payment_due_date, \
         minimum_due, key_id) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..COLUMNS {
            if c > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(i * COLUMNS + c + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(
        " ON CONFLICT (number_hash) DO UPDATE SET account_type = excluded.account_type, \
         verification_hash = excluded.verification_hash, last4 = excluded.last4, \
         expiry = excluded.expiry, holder_name = excluded.holder_name, email = excluded.email, \
         phone = excluded.phone, product = excluded.product, balance = excluded.balance, \
         credit_limit = excluded.credit_limit, payment_due_date = excluded.payment_due_date, \
         minimum_due = excluded.minimum_due, key_id = excluded.key_id",
    );
    sql
}

#[async_trait]
impl RegistryImports for SqlStore {
    async fn begin_import(&self) -> StoreResult<Box<dyn RegistryImport>> {
        let mut tx = tx::begin(&self.pool, self.backend).await?;
        if self.backend == Backend::Sqlite {
            sqlx::query(IMPORT_CACHE)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        Ok(Box::new(SqlImport {
            tx,
            backend: self.backend,
            old_rows: None,
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
}

#[async_trait]
impl RegistryWrites for SqlWork {
    async fn move_record(
        &mut self,
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
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
