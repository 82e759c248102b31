//! Sessions, held by the SHA-256 of their token.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{NewSession, SessionRow, SessionStore, StoreResult};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{db_err, SqlStore};

const SELECT_SESSION: &str =
    "SELECT id, account_id, created_at, last_seen_at, user_agent, client_ip, reauth_at FROM sessions";

fn session_row(r: &AnyRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        created_at: UnixTime(r.try_get("created_at")?),
        last_seen_at: UnixTime(r.try_get("last_seen_at")?),
        user_agent: r.try_get("user_agent")?,
        client_ip: r.try_get("client_ip")?,
        reauth_at: r.try_get::<Option<i64>, _>("reauth_at")?.map(UnixTime),
    })
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create_session(&self, new: NewSession) -> StoreResult<i64> {
        let row = sqlx::query(
            "INSERT INTO sessions (token_hash, account_id, created_at, last_seen_at, user_agent, client_ip) \
             VALUES ($1, $2, $3, $3, $4, $5) RETURNING id",
        )
        .bind(new.token_hash.to_vec())
        .bind(new.account_id)
        .bind(new.now.0)
        .bind(new.user_agent.map(|ua| ua.chars().take(300).collect::<String>()))
        .bind(new.client_ip)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        row.try_get("id").map_err(db_err)
    }

    async fn session_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<SessionRow>> {
        let sql = format!("{SELECT_SESSION} WHERE token_hash = $1");
        let row = sqlx::query(&sql)
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(session_row).transpose().map_err(db_err)
    }

    async fn touch_session(&self, id: i64, now: UnixTime) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2")
            .bind(id)
            .bind(now.0)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn mark_reauth(&self, id: i64, now: UnixTime) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET reauth_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now.0)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_session(&self, id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_account_sessions(
        &self,
        account_id: i64,
        except: Option<i64>,
    ) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND id <> $2")
            .bind(account_id)
            .bind(except.unwrap_or(-1))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn list_sessions(&self, account_id: i64) -> StoreResult<Vec<SessionRow>> {
        let sql =
            format!("{SELECT_SESSION} WHERE account_id = $1 ORDER BY last_seen_at DESC, id DESC");
        let rows = sqlx::query(&sql)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(session_row)
            .collect::<Result<_, _>>()
            .map_err(db_err)
    }
}
