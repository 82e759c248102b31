//! Online accounts: creation in one transaction, lookups, and the lockout counter, each
//! transition one atomic statement (see `portcullis_core::lockout`).

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{
    AccountRow, AccountStore, CardSummary, CreateAccountError, NewAccount, Outgoing, StoreError,
    StoreResult,
};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::is_unique_violation;
use crate::registry::account_type;
use crate::{db_err, SqlStore};

pub(crate) const SELECT_ACCOUNT: &str = "SELECT id, user_id, account_type, password_hash, \
     code_channel, email, phone, failed_count, locked_until, created_at, last_sign_in_at, \
     last_active_at, inactivity_warned_at, deactivated_at FROM online_accounts";

/// A card's summary from a row whose card columns are `card_id`, `last4`, `product`,
/// `holder_name`, `balance`, `credit_limit`, `payment_due_date`, `minimum_due`; `None` when `card_id` is NULL
/// (an account without cards, in a LEFT JOIN).
fn card_summary(r: &AnyRow) -> StoreResult<Option<CardSummary>> {
    let Some(id) = r.try_get::<Option<i64>, _>("card_id").map_err(db_err)? else {
        return Ok(None);
    };
    Ok(Some(CardSummary {
        id,
        last4: r.try_get("last4").map_err(db_err)?,
        product: r.try_get("product").map_err(db_err)?,
        holder_name: r.try_get("holder_name").map_err(db_err)?,
        balance: r.try_get("balance").map_err(db_err)?,
        credit_limit: r.try_get("credit_limit").map_err(db_err)?,
        payment_due_date: r.try_get("payment_due_date").map_err(db_err)?,
        minimum_due: r.try_get("minimum_due").map_err(db_err)?,
    }))
}

pub(crate) fn account_row(row: &AnyRow) -> StoreResult<AccountRow> {
    let get = |e: sqlx::Error| db_err(e);
    let kind: String = row.try_get("account_type").map_err(get)?;
    let channel: String = row.try_get("code_channel").map_err(get)?;
    let failed: i64 = row.try_get("failed_count").map_err(get)?;
    let created_at: i64 = row.try_get("created_at").map_err(get)?;
    Ok(AccountRow {
        id: row.try_get("id").map_err(get)?,
        user_id: row.try_get("user_id").map_err(get)?,
        account_type: account_type(&kind)?,
        password_hash: row.try_get("password_hash").map_err(get)?,
        code_channel: CodeChannel::parse(&channel)
            .ok_or_else(|| StoreError::Internal(format!("unknown code channel {channel:?}")))?,
        email: row.try_get("email").map_err(get)?,
        phone: row.try_get("phone").map_err(get)?,
        failed_count: u32::try_from(failed).unwrap_or(u32::MAX),
        locked_until: row
            .try_get::<Option<i64>, _>("locked_until")
            .map_err(get)?
            .map(UnixTime),
        created_at: UnixTime(created_at),
        last_sign_in_at: row
            .try_get::<Option<i64>, _>("last_sign_in_at")
            .map_err(get)?
            .map(UnixTime),
        last_active_at: row
            .try_get::<Option<i64>, _>("last_active_at")
            .map_err(get)?
            .map_or(UnixTime(created_at), UnixTime),
        inactivity_warned_at: row
            .try_get::<Option<i64>, _>("inactivity_warned_at")
            .map_err(get)?
            .map(UnixTime),
        deactivated_at: row
            .try_get::<Option<i64>, _>("deactivated_at")
            .map_err(get)?
            .map(UnixTime),
    })
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn create_account(&self, new: NewAccount) -> Result<i64, CreateAccountError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Consuming the step first takes the write lock on SQLite and makes the step
        // single-use on both backends.
        let consumed =
            sqlx::query("DELETE FROM steps WHERE token_hash = $1 AND kind = 'registration'")
                .bind(new.step_token_hash.to_vec())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if consumed.rows_affected() != 1 {
            return Err(CreateAccountError::StepGone);
        }
        let taken =
            sqlx::query("SELECT account_id FROM account_cards WHERE registry_record_id = $1")
                .bind(new.registry_record_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if taken.is_some() {
            return Err(CreateAccountError::CardAlreadyRegistered);
        }
        let inserted = sqlx::query(
            "INSERT INTO online_accounts (user_id, user_id_canonical, account_type, password_hash, \
             code_channel, email, phone, created_at, last_active_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             RETURNING id",
        )
        .bind(new.user_id)
        .bind(new.user_id_canonical)
        .bind(new.account_type.as_str())
        .bind(new.password_hash)
        .bind(new.code_channel.as_str())
        .bind(new.email)
        .bind(new.phone)
        .bind(new.now.0)
        .fetch_one(&mut *tx)
        .await;
        let account_id: i64 = match inserted {
            Ok(row) => row.try_get("id").map_err(db_err)?,
            Err(e) if is_unique_violation(&e, "user_id_canonical") => {
                return Err(CreateAccountError::UserIdTaken)
            }
            Err(e) => return Err(db_err(e).into()),
        };
        let linked = sqlx::query(
            "INSERT INTO account_cards (registry_record_id, account_id, linked_at) VALUES ($1, $2, $3)",
        )
        .bind(new.registry_record_id)
        .bind(account_id)
        .bind(new.now.0)
        .execute(&mut *tx)
        .await;
        match linked {
            Ok(_) => {}
            Err(e)
                if is_unique_violation(&e, "account_cards")
                    || is_unique_violation(&e, "registry_record_id") =>
            {
                return Err(CreateAccountError::CardAlreadyRegistered)
            }
            Err(e) => return Err(db_err(e).into()),
        }
        self.enqueue_tx(&mut tx, &new.messages, new.now)
            .await
            .map_err(db_err)?;
        for (question_id, hash) in new.security_answers {
            sqlx::query(
                "INSERT INTO security_answers (account_id, question_id, answer_hash) VALUES ($1, $2, $3)",
            )
            .bind(account_id)
            .bind(question_id)
            .bind(hash)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(|e| {
            if is_unique_violation(&e, "registry_record_id") {
                CreateAccountError::CardAlreadyRegistered
            } else {
                db_err(e).into()
            }
        })?;
        Ok(account_id)
    }

    async fn find_account(&self, user_id_canonical: &str) -> StoreResult<Option<AccountRow>> {
        let sql = format!("{SELECT_ACCOUNT} WHERE user_id_canonical = $1");
        let row = sqlx::query(&sql)
            .bind(user_id_canonical)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(account_row).transpose()
    }

    async fn account_by_id(&self, id: i64) -> StoreResult<Option<AccountRow>> {
        let sql = format!("{SELECT_ACCOUNT} WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(account_row).transpose()
    }

    async fn cards_for_account(&self, account_id: i64) -> StoreResult<Vec<CardSummary>> {
        let rows = sqlx::query(
            "SELECT r.id AS card_id, r.last4, r.product, r.holder_name, r.balance, \
             r.credit_limit, r.payment_due_date, r.minimum_due \
             FROM account_cards c JOIN registry_records r ON r.id = c.registry_record_id \
             WHERE c.account_id = $1 ORDER BY c.linked_at, r.id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .filter_map(|r| card_summary(r).transpose())
            .collect()
    }

    async fn account_home(
        &self,
        account_id: i64,
    ) -> StoreResult<Option<(AccountRow, Vec<CardSummary>)>> {
        // One statement: the account row repeated beside each linked card (or once, with
        // NULL card columns, when it has none).
        let rows = sqlx::query(
            "SELECT a.id, a.user_id, a.account_type, a.password_hash, a.code_channel, a.email, \
             a.phone, a.failed_count, a.locked_until, a.created_at, a.last_sign_in_at, \
             a.last_active_at, a.inactivity_warned_at, a.deactivated_at, \
             r.id AS card_id, r.last4, r.product, r.holder_name, r.balance, \
             r.credit_limit, r.payment_due_date, r.minimum_due \
             FROM online_accounts a \
             LEFT JOIN account_cards c ON c.account_id = a.id \
             LEFT JOIN registry_records r ON r.id = c.registry_record_id \
             WHERE a.id = $1 ORDER BY c.linked_at, r.id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let account = account_row(first)?;
        let cards = rows
            .iter()
            .filter_map(|r| card_summary(r).transpose())
            .collect::<StoreResult<_>>()?;
        Ok(Some((account, cards)))
    }

    async fn record_sign_in(&self, account_id: i64, now: UnixTime) -> StoreResult<()> {
        sqlx::query(
            "UPDATE online_accounts SET failed_count = 0, last_sign_in_at = $2, last_active_at = $2, \
             inactivity_warned_at = NULL WHERE id = $1",
        )
        .bind(account_id)
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn unlock_account(&self, account_id: i64) -> StoreResult<bool> {
        // An unlock by support or by card ID + code also lifts the locks of the account's
        // known devices: the person proved who they are.
        sqlx::query(
            "UPDATE devices SET failed_count = 0, locked_until = NULL \
             WHERE account_id = $1 AND (locked_until IS NOT NULL OR failed_count > 0)",
        )
        .bind(account_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        let done = sqlx::query(
            "UPDATE online_accounts SET failed_count = 0, locked_until = NULL \
             WHERE id = $1 AND (locked_until IS NOT NULL OR failed_count > 0)",
        )
        .bind(account_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn rehash_password(&self, account_id: i64, old: &str, new: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE online_accounts SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
        )
        .bind(account_id)
        .bind(new)
        .bind(old)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn change_password(
        &self,
        account_id: i64,
        new_hash: &str,
        now: UnixTime,
        keep: usize,
        messages: &[Outgoing],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Copying the old hash is the first statement and a write, so it takes the row lock
        // (PostgreSQL) or the write lock (SQLite) before anything is read.
        sqlx::query(
            "INSERT INTO password_history (account_id, password_hash, created_at) \
             SELECT id, password_hash, $2 FROM online_accounts WHERE id = $1",
        )
        .bind(account_id)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let updated = sqlx::query("UPDATE online_accounts SET password_hash = $2 WHERE id = $1")
            .bind(account_id)
            .bind(new_hash)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::Internal(format!("no account {account_id}")));
        }
        sqlx::query(
            "DELETE FROM password_history WHERE account_id = $1 AND id NOT IN \
             (SELECT id FROM password_history WHERE account_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(account_id)
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        self.enqueue_tx(&mut tx, messages, now)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn password_history(&self, account_id: i64, limit: usize) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT password_hash FROM password_history WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(account_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("password_hash"))
            .collect::<Result<_, _>>()
            .map_err(db_err)
    }

    async fn card_hashes(&self, account_id: i64) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT r.number_hash, r.verification_hash FROM account_cards c \
             JOIN registry_records r ON r.id = c.registry_record_id WHERE c.account_id = $1",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((r.try_get("number_hash")?, r.try_get("verification_hash")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_err)
    }

    async fn security_answers(&self, account_id: i64) -> StoreResult<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT question_id, answer_hash FROM security_answers WHERE account_id = $1 ORDER BY question_id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((r.try_get("question_id")?, r.try_get("answer_hash")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_err)
    }

    async fn accounts_by_email(&self, email: &str) -> StoreResult<Vec<AccountRow>> {
        let sql = format!("{SELECT_ACCOUNT} WHERE email = $1 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(email)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(account_row).collect()
    }
}
