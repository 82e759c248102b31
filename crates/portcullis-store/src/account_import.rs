//! Accounts imported from an issuer's earlier login system: each created with its card
//! linked, inside the import's one unit of work (`portcullis accounts import`).

use async_trait::async_trait;
use portcullis_core::ports::{
    AccountImportReads, AccountImportWrites, CreateAccountError, ImportedAccount, StoreResult,
};

use crate::error::is_unique_violation;
use crate::sql::statements;
use crate::{db_err, SqlStore, SqlWork};

statements! {
    /// The earlier system's creation time is kept; inactivity counts from the import.
    INSERT_IMPORTED = "INSERT INTO online_accounts (user_id, user_id_canonical, account_type, \
        password_hash, code_channel, email, phone, created_at, last_active_at, imported_at, \
        must_change_password_at, security_questions_required_at, public_id) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $9, $11) RETURNING id";
    /// The record's primary key in account_cards is the rule: one account per card.
    /// Imported accounts still on their old hash (the first sign-in rehashes).
    IMPORTED_HASH_SAMPLE = "SELECT password_hash FROM online_accounts \
        WHERE imported_at IS NOT NULL AND password_hash NOT LIKE $1 LIMIT $2";
}

#[async_trait]
impl AccountImportReads for SqlStore {
    async fn imported_hash_sample(&self, current: &str, limit: i64) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(IMPORTED_HASH_SAMPLE)
            .bind(current)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }
}

#[async_trait]
impl AccountImportWrites for SqlWork {
    async fn import_account(&mut self, a: &ImportedAccount) -> Result<i64, CreateAccountError> {
        let now = self.stamp();
        let conn = self.conn().await?;
        let inserted: Result<i64, _> = sqlx::query_scalar(INSERT_IMPORTED)
            .bind(&a.user_id)
            .bind(&a.user_id_canonical)
            .bind(a.account_type.as_str())
            .bind(&a.password_hash)
            .bind(a.code_channel.as_str())
            .bind(&a.email)
            .bind(&a.phone)
            .bind(a.created_at.0)
            .bind(now)
            .bind(a.must_change_password.then_some(now))
            .bind(crate::accounts::new_public_id())
            .fetch_one(&mut *conn)
            .await;
        let account_id = match inserted {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e, "user_id_canonical") => {
                return Err(CreateAccountError::UserIdTaken)
            }
            Err(e) => return Err(db_err(e).into()),
        };
        let linked = sqlx::query(crate::accounts::INSERT_ACCOUNT_CARD)
            .bind(a.registry_record_id)
            .bind(account_id)
            .bind(now)
            .execute(&mut *conn)
            .await;
        match linked {
            Ok(_) => Ok(account_id),
            Err(e)
                if is_unique_violation(&e, "account_cards")
                    || is_unique_violation(&e, "registry_record_id") =>
            {
                Err(CreateAccountError::CardAlreadyRegistered)
            }
            Err(e) => Err(db_err(e).into()),
        }
    }
}
