//! Sessions, held by the SHA-256 of their token.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{
    AccountRow, CardSummary, NewSession, SessionReads, SessionRow, SessionWrites, StoreResult,
};

use crate::accounts::{account_columns, card_columns, home_cards_join, HomeRecord};
use crate::devices::clip_user_agent;
use crate::sql::statements;
use crate::{db_err, SqlStore, SqlWork};

/// The session columns, of the table or of `$prefix` in a join, in [`SessionRecord`]'s
/// names (prefixed, so that they stand beside the account's in one row).
macro_rules! session_columns {
    ($prefix:literal) => {
        concat!(
            $prefix,
            "id AS session_id, ",
            $prefix,
            "account_id AS session_account_id, ",
            $prefix,
            "created_at AS session_created_at, ",
            $prefix,
            "last_seen_at AS session_last_seen_at, ",
            $prefix,
            "user_agent AS session_user_agent, ",
            $prefix,
            "client_ip AS session_client_ip, ",
            $prefix,
            "reauth_at AS session_reauth_at, ",
            $prefix,
            "amr AS session_amr"
        )
    };
}

statements! {
    SESSION_BY_TOKEN = concat!("SELECT ", session_columns!(""),
        " FROM sessions WHERE token_hash = $1");
    /// The session a token's hash names, its account and the account's cards, in the order
    /// of `accounts::ACCOUNT_HOME` (`GET /api/v1/me`).
    SESSION_HOME_BY_TOKEN = concat!("SELECT ", session_columns!("s."), ", ",
        account_columns!("a."), ", ", card_columns!(),
        " FROM sessions s JOIN online_accounts a ON a.id = s.account_id ", home_cards_join!(),
        " WHERE s.token_hash = $1 ORDER BY c.linked_at, r.id");
    LIST_SESSIONS = concat!("SELECT ", session_columns!(""),
        " FROM sessions WHERE account_id = $1 ORDER BY last_seen_at DESC, id DESC");
    CREATE_SESSION = "INSERT INTO sessions (token_hash, account_id, created_at, last_seen_at, \
        user_agent, client_ip, amr) VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id";
    TOUCH_SESSION = "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2";
    MARK_REAUTH = "UPDATE sessions SET reauth_at = $2 WHERE id = $1";
    DELETE_SESSION = "DELETE FROM sessions WHERE id = $1";
    DELETE_ACCOUNT_SESSIONS = "DELETE FROM sessions WHERE account_id = $1 AND id <> $2";
}

#[derive(sqlx::FromRow)]
struct SessionRecord {
    session_id: i64,
    session_account_id: i64,
    session_created_at: i64,
    session_last_seen_at: i64,
    session_user_agent: Option<String>,
    session_client_ip: Option<String>,
    session_reauth_at: Option<i64>,
    session_amr: String,
}

impl From<SessionRecord> for SessionRow {
    fn from(r: SessionRecord) -> Self {
        SessionRow {
            id: r.session_id,
            account_id: r.session_account_id,
            created_at: UnixTime(r.session_created_at),
            last_seen_at: UnixTime(r.session_last_seen_at),
            user_agent: r.session_user_agent,
            client_ip: r.session_client_ip,
            reauth_at: r.session_reauth_at.map(UnixTime),
            amr: r.session_amr,
        }
    }
}

/// One row of a session's home: the session, its account, and one card or none.
#[derive(sqlx::FromRow)]
struct SessionHomeRecord {
    #[sqlx(flatten)]
    session: SessionRecord,
    #[sqlx(flatten)]
    home: HomeRecord,
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
        // Every row names the same session; the account and cards as `account_home` reads them.
        let mut rows = rows.into_iter();
        let Some(first) = rows.next() else {
            return Ok(None);
        };
        let session = SessionRow::from(first.session);
        let homes = std::iter::once(first.home).chain(rows.map(|r| r.home));
        let home = HomeRecord::home(homes.collect())?;
        Ok(home.map(|(account, cards)| (session, account, cards)))
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
