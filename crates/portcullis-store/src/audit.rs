//! The audit chain. Appends are serialised by the head row: `UPDATE … RETURNING` takes the
//! row lock on PostgreSQL and the write lock on SQLite, so two appends never share a `seq`.

use async_trait::async_trait;
use portcullis_core::audit::{chain_hash, AuditEntry, AuditEvent, ChainInput};
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{AuditStore, StoreResult};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{db_err, SqlStore};

const SELECT_ENTRY: &str =
    "SELECT seq, at, kind, account_id, actor, client_ip, detail, prev_hash, hash FROM audit_log";

fn entry_row(r: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        at: UnixTime(r.try_get("at")?),
        kind: r.try_get("kind")?,
        account_id: r.try_get("account_id")?,
        actor: r.try_get("actor")?,
        client_ip: r.try_get("client_ip")?,
        detail: r.try_get("detail")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(
        &self,
        event: &AuditEvent,
        now: UnixTime,
        key: &portcullis_crypto::KeyedHasher,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let head =
            sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        let seq: i64 = head.try_get("seq").map_err(db_err)?;
        let prev: Vec<u8> = head.try_get("hash").map_err(db_err)?;
        let kind = event.kind.as_str();
        let hash = chain_hash(
            key,
            &ChainInput {
                prev: &prev,
                seq,
                at: now,
                kind,
                account_id: event.account_id,
                actor: &event.actor,
                client_ip: event.client_ip.as_deref(),
                detail: &event.detail,
            },
        );
        sqlx::query(
            "INSERT INTO audit_log (seq, at, kind, account_id, actor, client_ip, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(seq)
        .bind(now.0)
        .bind(kind)
        .bind(event.account_id)
        .bind(event.actor.as_str())
        .bind(event.client_ip.as_deref())
        .bind(event.detail.as_str())
        .bind(prev)
        .bind(hash.to_vec())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(hash.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        crate::health::commit(tx).await
    }

    async fn audit_entries(&self, after: i64, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let sql = format!("{SELECT_ENTRY} WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(entry_row)
            .collect::<Result<_, _>>()
            .map_err(db_err)
    }

    async fn audit_head(&self) -> StoreResult<(i64, Vec<u8>)> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok((
            head.try_get("seq").map_err(db_err)?,
            head.try_get("hash").map_err(db_err)?,
        ))
    }

    async fn account_audit(&self, account_id: i64, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let sql = format!("{SELECT_ENTRY} WHERE account_id = $1 ORDER BY seq DESC LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(account_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(entry_row)
            .collect::<Result<_, _>>()
            .map_err(db_err)
    }
}
