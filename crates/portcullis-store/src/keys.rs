//! Sealed values by key id (key rotation's `keys status` and re-seal job): one short
//! statement per call, a move only over the value that was read.

use async_trait::async_trait;
use portcullis_core::ports::{SealedColumn, SealedValue, SealedValues, StoreResult};
use sqlx::Row;

use crate::sql::statements;
use crate::{db_err, SqlStore};

statements! {
    COUNT_FACTOR_SECRETS = "SELECT COUNT(*) FROM factors WHERE secret LIKE $1";
    COUNT_OUTBOX_BODIES = "SELECT COUNT(*) FROM outbox WHERE sensitive = 1 AND body LIKE $1";
    FACTOR_SECRETS_TO_MOVE = "SELECT id, secret FROM factors \
        WHERE secret LIKE 'sealed:%' AND secret NOT LIKE $1 AND id > $2 ORDER BY id LIMIT $3";
    OUTBOX_BODIES_TO_MOVE = "SELECT id, body FROM outbox \
        WHERE sensitive = 1 AND body LIKE 'sealed:%' AND body NOT LIKE $1 AND id > $2 \
        ORDER BY id LIMIT $3";
    MOVE_FACTOR_SECRET = "UPDATE factors SET secret = $3 WHERE id = $1 AND secret = $2";
    MOVE_OUTBOX_BODY = "UPDATE outbox SET body = $3 WHERE id = $1 AND body = $2";
    COUNT_WEBHOOK_SECRETS = "SELECT COUNT(*) FROM webhook_subscriptions WHERE secret LIKE $1";
    WEBHOOK_SECRETS_TO_MOVE = "SELECT id, secret FROM webhook_subscriptions \
        WHERE secret LIKE 'sealed:%' AND secret NOT LIKE $1 AND id > $2 ORDER BY id LIMIT $3";
    MOVE_WEBHOOK_SECRET = "UPDATE webhook_subscriptions SET secret = $3 \
        WHERE id = $1 AND secret = $2";
}

#[async_trait]
impl SealedValues for SqlStore {
    async fn count_sealed(&self, column: SealedColumn, pattern: &str) -> StoreResult<i64> {
        let sql = match column {
            SealedColumn::FactorSecret => COUNT_FACTOR_SECRETS,
            SealedColumn::OutboxBody => COUNT_OUTBOX_BODIES,
            SealedColumn::WebhookSecret => COUNT_WEBHOOK_SECRETS,
        };
        let row = sqlx::query(sql)
            .bind(pattern)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        row.try_get::<i64, _>(0).map_err(db_err)
    }

    async fn sealed_not_under(
        &self,
        column: SealedColumn,
        current: &str,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<SealedValue>> {
        let sql = match column {
            SealedColumn::FactorSecret => FACTOR_SECRETS_TO_MOVE,
            SealedColumn::OutboxBody => OUTBOX_BODIES_TO_MOVE,
            SealedColumn::WebhookSecret => WEBHOOK_SECRETS_TO_MOVE,
        };
        let rows = sqlx::query(sql)
            .bind(current)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(SealedValue {
                    row_id: row.try_get(0).map_err(db_err)?,
                    value: row.try_get(1).map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn replace_sealed(
        &self,
        column: SealedColumn,
        row_id: i64,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        let sql = match column {
            SealedColumn::FactorSecret => MOVE_FACTOR_SECRET,
            SealedColumn::OutboxBody => MOVE_OUTBOX_BODY,
            SealedColumn::WebhookSecret => MOVE_WEBHOOK_SECRET,
        };
        let done = sqlx::query(sql)
            .bind(row_id)
            .bind(old)
            .bind(new)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
