//! Sessions, held by the SHA-256 of their token.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{
    AccountRow, CardSummary, NewSession, SessionReads, SessionRow, SessionWrites, StoreResult,
};

use crate::accounts::{SessionHomeRecord, SESSION_HOME_BY_TOKEN};
use crate::devices::clip_user_agent;
use crate::sql::statements;
use crate::{db_err, SqlStore, SqlWork};

macro_rules! session_select {
    () => {
        "SELECT id, account_id, created_at, last_seen_at, user_agent, client_ip, reauth_at, \
         amr FROM sessions"
    };
}

statements! {
    SESSION_BY_TOKEN = concat!(session_select!(), " WHERE token_hash = $1");
    LIST_SESSIONS = concat!(session_select!(),
        " WHERE account_id = $1 ORDER BY last_seen_at DESC, id DESC");
    CREATE_SESSION = "INSERT INTO sessions (token_hash, account_id, created_at, last_seen_at, \
        user_agent, client_ip, amr) VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id";
    TOUCH_SESSION = "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2";
    MARK_REAUTH = "UPDATE sessions SET reauth_at = $2 WHERE id = $1";
    DELETE_SESSION = "DELETE FROM sessions WHERE id = $1";
    DELETE_ACCOUNT_SESSIONS = "DELETE FROM sessions WHERE account_id = $1 AND id <> $2";
}

#[derive(sqlx::FromRow)]
struct SessionRecord {
    id: i64,
    account_id: i64,
    created_at: i64,
    last_seen_at: i64,
    user_agent: Option<String>,
    client_ip: Option<String>,
    reauth_at: Option<i64>,
    amr: String,
}

impl From<SessionRecord> for SessionRow {
    fn from(r: SessionRecord) -> Self {
        SessionRow {
            id: r.id,
            account_id: r.account_id,
            created_at: UnixTime(r.created_at),
            last_seen_at: UnixTime(r.last_seen_at),
            user_agent: r.user_agent,
            client_ip: r.client_ip,
            reauth_at: r.reauth_at.map(UnixTime),
            amr: r.amr,
        }
    }
}

#[async_trait]
impl SessionReads for SqlStore {
    async fn session_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<SessionRow>> {
        let row: Option<SessionRecord> = sqlx::query_as(SESSION_BY_TOKEN)
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.map(SessionRow::from))
    }

    async fn session_home_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<(SessionRow, AccountRow, Vec<CardSummary>)>> {
        let rows: Vec<SessionHomeRecord> = sqlx::query_as(SESSION_HOME_BY_TOKEN)
            .bind(token_hash.to_vec())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        SessionHomeRecord::session_home(rows)
    }

    async fn list_sessions(&self, account_id: i64) -> StoreResult<Vec<SessionRow>> {
        let rows: Vec<SessionRecord> = sqlx::query_as(LIST_SESSIONS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(SessionRow::from).collect())
    }
}

#[async_trait]
impl SessionWrites for SqlWork {
    async fn create_session(&mut self, new: NewSession) -> StoreResult<i64> {
        let now = self.stamp();
        sqlx::query_scalar(CREATE_SESSION)
            .bind(new.token_hash.to_vec())
            .bind(new.account_id)
            .bind(now)
            .bind(clip_user_agent(new.user_agent.as_deref()))
            .bind(new.client_ip)
            .bind(new.amr)
            .fetch_one(self.conn().await?)
            .await
            .map_err(db_err)
    }

    async fn touch_session(&mut self, id: i64) -> StoreResult<()> {
        let now = self.stamp();
        sqlx::query(TOUCH_SESSION)
            .bind(id)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn mark_reauth(&mut self, id: i64) -> StoreResult<()> {
        let now = self.stamp();
        sqlx::query(MARK_REAUTH)
            .bind(id)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_session(&mut self, id: i64) -> StoreResult<bool> {
        let done = sqlx::query(DELETE_SESSION)
            .bind(id)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_account_sessions(
        &mut self,
        account_id: i64,
        except: Option<i64>,
    ) -> StoreResult<u64> {
        let done = sqlx::query(DELETE_ACCOUNT_SESSIONS)
            .bind(account_id)
            .bind(except.unwrap_or(-1))
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
