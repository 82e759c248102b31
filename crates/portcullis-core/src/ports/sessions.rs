//! Sessions, held by the SHA-256 of their token.

use async_trait::async_trait;

use super::{AccountRow, CardSummary, StoreResult};
use crate::clock::UnixTime;

#[derive(Clone, Debug)]
pub struct NewSession {
    pub token_hash: [u8; 32],
    pub account_id: i64,
    pub user_agent: Option<String>,
    pub client_ip: Option<String>,
    /// How the sign-in was authenticated: RFC 8176 method references, space-separated
    /// (`pwd`, `pwd otp mfa`, `swk mfa`, ...).
    pub amr: String,
}

#[derive(Clone, Debug)]
pub struct SessionRow {
    pub id: i64,
    pub account_id: i64,
    pub created_at: UnixTime,
    pub last_seen_at: UnixTime,
    pub user_agent: Option<String>,
    pub client_ip: Option<String>,
    /// When the password was last re-entered in this session.
    pub reauth_at: Option<UnixTime>,
    /// How the sign-in was authenticated (see [`NewSession::amr`]).
    pub amr: String,
}

#[async_trait]
pub trait SessionReads: Send + Sync {
    async fn session_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<SessionRow>>;
    /// The session named by `token_hash` with its account and the account's cards (in the
    /// order of [`super::AccountReads::account_home`]), in one read: `GET /api/v1/me`.
    async fn session_home_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<(SessionRow, AccountRow, Vec<CardSummary>)>>;
    /// The account's sessions, most recently seen first.
    async fn list_sessions(&self, account_id: i64) -> StoreResult<Vec<SessionRow>>;
}

#[async_trait]
pub trait SessionWrites: Send {
    async fn create_session(&mut self, new: NewSession) -> StoreResult<i64>;
    /// Marks the session seen now (never backwards).
    async fn touch_session(&mut self, id: i64) -> StoreResult<()>;
    /// Records that the password was re-entered in this session now.
    async fn mark_reauth(&mut self, id: i64) -> StoreResult<()>;
    async fn delete_session(&mut self, id: i64) -> StoreResult<bool>;
    /// Ends every session of the account but `except`; how many.
    async fn delete_account_sessions(
        &mut self,
        account_id: i64,
        except: Option<i64>,
    ) -> StoreResult<u64>;
}
