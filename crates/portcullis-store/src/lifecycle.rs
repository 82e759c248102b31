//! The account's lifecycle: contact changes, linked cards, the inactivity job's lease and
//! its warnings and deactivations, and reactivation. Each transition is one conditional
//! statement (or a transaction that starts with a write), so parallel callers and several
//! nodes running the same job never apply it twice; the message each one causes is queued
//! in the same transaction.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{
    AccountRow, ContactField, CreateAccountError, LifecycleStore, Outgoing, RegistryRow,
    Reregistration, StoreResult, Unlink,
};
use sqlx::Row;

use crate::accounts::{account_row, SELECT_ACCOUNT};
use crate::error::is_unique_violation;
use crate::registry::{record_row, SELECT_RECORD};
use crate::{db_err, SqlStore};

#[async_trait]
impl LifecycleStore for SqlStore {
    async fn change_contact(
        &self,
        account_id: i64,
        field: ContactField,
        value: &str,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool> {
        // The column name comes from the enum, never from input.
        let sql = match field {
            ContactField::Email => "UPDATE online_accounts SET email = $2 WHERE id = $1",
            ContactField::Phone => "UPDATE online_accounts SET phone = $2 WHERE id = $1",
        };
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = sqlx::query(sql)
            .bind(account_id)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.enqueue_tx(&mut tx, messages, now)
            .await
            .map_err(db_err)?;
        crate::health::commit(tx).await?;
        Ok(true)
    }

    async fn linked_records(&self, account_id: i64) -> StoreResult<Vec<RegistryRow>> {
        let sql = format!("{SELECT_RECORD} WHERE c.account_id = $1 ORDER BY c.linked_at, r.id");
        let rows = sqlx::query(&sql)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(record_row)
            .collect::<Result<_, _>>()
            .map_err(db_err)
    }

    async fn link_card(
        &self,
        account_id: i64,
        record_id: i64,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // The record's primary key in account_cards is the rule: one account per card.
        let inserted = sqlx::query(
            "INSERT INTO account_cards (registry_record_id, account_id, linked_at) \
             VALUES ($1, $2, $3) ON CONFLICT (registry_record_id) DO NOTHING",
        )
        .bind(record_id)
        .bind(account_id)
        .bind(now.0)
        .execute(&mut *tx)
        .await;
        let linked = match inserted {
            Ok(done) => done.rows_affected() == 1,
            Err(e) if is_unique_violation(&e, "registry_record_id") => false,
            Err(e) => return Err(db_err(e)),
        };
        if !linked {
            return Ok(false);
        }
        self.enqueue_tx(&mut tx, messages, now)
            .await
            .map_err(db_err)?;
        crate::health::commit(tx).await?;
        Ok(true)
    }

    async fn unlink_card(
        &self,
        account_id: i64,
        record_id: i64,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<Unlink> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // A write first: the account's row lock (PostgreSQL) or the write lock (SQLite), so
        // a parallel unlink waits and then counts the cards this one left.
        sqlx::query("UPDATE online_accounts SET id = id WHERE id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let cards: Vec<i64> =
            sqlx::query("SELECT registry_record_id FROM account_cards WHERE account_id = $1")
                .bind(account_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| r.try_get("registry_record_id"))
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
        if !cards.contains(&record_id) {
            return Ok(Unlink::NotLinked);
        }
        if cards.len() < 2 {
            return Ok(Unlink::LastCard);
        }
        sqlx::query("DELETE FROM account_cards WHERE registry_record_id = $1 AND account_id = $2")
            .bind(record_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        self.enqueue_tx(&mut tx, messages, now)
            .await
            .map_err(db_err)?;
        crate::health::commit(tx).await?;
        Ok(Unlink::Unlinked)
    }

    async fn claim_job(
        &self,
        job: &str,
        node: &str,
        now: UnixTime,
        until: UnixTime,
    ) -> StoreResult<bool> {
        // Atomic on both databases: the row is locked (PostgreSQL) or the database is
        // (SQLite) while the condition is evaluated, so of two nodes one wins.
        let done = sqlx::query(
            "UPDATE job_leases SET holder = $2, lease_until = $3 \
             WHERE name = $1 AND lease_until <= $4",
        )
        .bind(job)
        .bind(node)
        .bind(until.0)
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn accounts_to_warn(
        &self,
        inactive_since: UnixTime,
        limit: i64,
    ) -> StoreResult<Vec<AccountRow>> {
        let sql = format!(
            "{SELECT_ACCOUNT} WHERE status = 'active' AND inactivity_warned_at IS NULL \
             AND last_active_at <= $1 ORDER BY last_active_at, id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(inactive_since.0)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(account_row).collect()
    }

    async fn accounts_to_deactivate(
        &self,
        warned_before: UnixTime,
        limit: i64,
    ) -> StoreResult<Vec<AccountRow>> {
        let sql = format!(
            "{SELECT_ACCOUNT} WHERE status = 'active' AND inactivity_warned_at IS NOT NULL \
             AND inactivity_warned_at <= $1 ORDER BY inactivity_warned_at, id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(warned_before.0)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(account_row).collect()
    }

    async fn mark_inactivity_warned(
        &self,
        account_id: i64,
        inactive_since: UnixTime,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = sqlx::query(
            "UPDATE online_accounts SET inactivity_warned_at = $2 WHERE id = $1 \
             AND status = 'active' AND inactivity_warned_at IS NULL AND last_active_at <= $3",
        )
        .bind(account_id)
        .bind(now.0)
        .bind(inactive_since.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.enqueue_tx(&mut tx, messages, now)
            .await
            .map_err(db_err)?;
        crate::health::commit(tx).await?;
        Ok(true)
    }

    async fn deactivate_account(
        &self,
        account_id: i64,
        warned_before: UnixTime,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = sqlx::query(
            "UPDATE online_accounts SET status = 'deactivated', deactivated_at = $2 \
             WHERE id = $1 AND status = 'active' AND inactivity_warned_at IS NOT NULL \
             AND inactivity_warned_at <= $3",
        )
        .bind(account_id)
        .bind(now.0)
        .bind(warned_before.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        self.enqueue_tx(&mut tx, messages, now)
            .await
            .map_err(db_err)?;
        crate::health::commit(tx).await?;
        Ok(true)
    }

    async fn reactivate_account(
        &self,
        account_id: i64,
        now: UnixTime,
        messages: &[Outgoing],
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = sqlx::query(
            "UPDATE online_accounts SET status = 'active', deactivated_at = NULL, \
             inactivity_warned_at = NULL, last_active_at = $2 \
             WHERE id = $1 AND status = 'deactivated'",
        )
        .bind(account_id)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.enqueue_tx(&mut tx, messages, now)
            .await
            .map_err(db_err)?;
        crate::health::commit(tx).await?;
        Ok(true)
    }

    async fn reregister_account(&self, r: Reregistration) -> Result<(), CreateAccountError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Consuming the step first takes the write lock and makes the step single-use.
        let consumed =
            sqlx::query("DELETE FROM steps WHERE token_hash = $1 AND kind = 'registration'")
                .bind(r.step_token_hash.to_vec())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if consumed.rows_affected() != 1 {
            return Err(CreateAccountError::StepGone);
        }
        let updated = sqlx::query(
            "UPDATE online_accounts SET user_id = $2, user_id_canonical = $3, password_hash = $4, \
             code_channel = $5, status = 'active', deactivated_at = NULL, \
             inactivity_warned_at = NULL, last_active_at = $6, failed_count = 0, \
             locked_until = NULL WHERE id = $1 AND status = 'deactivated'",
        )
        .bind(r.account_id)
        .bind(&r.user_id)
        .bind(&r.user_id_canonical)
        .bind(&r.password_hash)
        .bind(r.code_channel.as_str())
        .bind(r.now.0)
        .execute(&mut *tx)
        .await;
        match updated {
            Ok(done) if done.rows_affected() == 1 => {}
            // Reactivated by someone else meanwhile: the card now backs an active account.
            Ok(_) => return Err(CreateAccountError::CardAlreadyRegistered),
            Err(e) if is_unique_violation(&e, "user_id_canonical") => {
                return Err(CreateAccountError::UserIdTaken)
            }
            Err(e) => return Err(db_err(e).into()),
        }
        sqlx::query("DELETE FROM security_answers WHERE account_id = $1")
            .bind(r.account_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for (question_id, hash) in &r.security_answers {
            sqlx::query(
                "INSERT INTO security_answers (account_id, question_id, answer_hash) VALUES ($1, $2, $3)",
            )
            .bind(r.account_id)
            .bind(*question_id)
            .bind(hash)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        sqlx::query(
            "UPDATE devices SET failed_count = 0, locked_until = NULL WHERE account_id = $1",
        )
        .bind(r.account_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        self.enqueue_tx(&mut tx, &r.messages, r.now)
            .await
            .map_err(db_err)?;
        crate::health::commit(tx).await?;
        Ok(())
    }
}
