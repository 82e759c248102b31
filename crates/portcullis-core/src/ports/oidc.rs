//! OpenID Connect state (issue 15): clients, pushed and pending authorization requests,
//! codes, tokens and one-time JWT ids, all in the database so any node can carry on what
//! another began. Each single-use step is one atomic statement (a conditional `UPDATE` or
//! an `INSERT … ON CONFLICT DO NOTHING`), so two nodes racing on the same code, request,
//! refresh token or proof id cannot both win.

use async_trait::async_trait;

use crate::audit::{AuditEvent, ChainKey};
use crate::clock::UnixTime;
use crate::oidc::OidcClient;
use crate::session::SessionPolicy;

use super::StoreResult;

/// A client to register.
pub struct NewOidcClient<'a> {
    pub client: &'a OidcClient,
    pub now: UnixTime,
}

/// A stored authorization request (pushed, or waiting for a sign-in).
#[derive(Clone, Debug)]
pub struct StoredRequest {
    pub client_id: String,
    /// The checked request, as JSON (`oidc::AuthRequest`).
    pub request: String,
    pub pushed: bool,
    pub expires_at: UnixTime,
    /// Pushed, and for a browser without a session its only answer is the sign-in, with
    /// nothing in it depending on when it reaches the authorization endpoint: it may be
    /// handed to the sign-in unchanged ([`OidcStore::rekey_oidc_request`]). Written at PAR;
    /// read back as `false`.
    pub login_as_is: bool,
}

/// An authorization code to store.
pub struct NewOidcCode<'a> {
    pub code_hash: [u8; 32],
    pub client_id: &'a str,
    pub account_id: i64,
    pub session_id: i64,
    pub request: &'a str,
    pub auth_time: UnixTime,
    pub now: UnixTime,
    pub expires_at: UnixTime,
}

/// A stored authorization code.
#[derive(Clone, Debug)]
pub struct OidcCodeRow {
    pub id: i64,
    pub client_id: String,
    pub account_id: i64,
    pub session_id: i64,
    pub request: String,
    pub auth_time: UnixTime,
    pub expires_at: UnixTime,
    /// Exchanged already.
    pub used: bool,
    /// The account's type, read with the code (`None`: not read, or the account is gone).
    pub account_type: Option<crate::ids::AccountType>,
}

/// Whether a token is an access or a refresh token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

/// What an exchange at the token endpoint uses up.
#[derive(Clone, Copy, Debug)]
pub enum GrantUse<'a> {
    /// An unused code, by id.
    Code(i64),
    /// An unused, unrevoked refresh token, by hash.
    Refresh(&'a [u8; 32]),
}

/// A token to store.
pub struct NewOidcToken<'a> {
    pub token_hash: [u8; 32],
    pub kind: TokenKind,
    /// The grant the token belongs to: one per code, carried through refreshes.
    pub family: &'a str,
    pub code_id: Option<i64>,
    pub client_id: &'a str,
    pub account_id: i64,
    pub session_id: i64,
    pub scope: &'a str,
    pub dpop_jkt: Option<&'a str>,
    pub auth_time: UnixTime,
    pub now: UnixTime,
    pub expires_at: UnixTime,
}

/// A stored token.
#[derive(Clone, Debug)]
pub struct OidcTokenRow {
    pub id: i64,
    pub kind: TokenKind,
    pub family: String,
    pub client_id: String,
    pub account_id: i64,
    pub session_id: i64,
    pub scope: String,
    pub dpop_jkt: Option<String>,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
}

/// What a person allowed a client (the consent screen): live while `revoked_at` is unset.
#[derive(Clone, Debug)]
pub struct OidcGrantRow {
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// Consent records, written in a unit of work with their audit events.
#[async_trait]
pub trait OidcGrantWrites: Send {
    /// Uses a stored request that is neither used nor expired at `now` and returns it, as
    /// [`OidcStore::take_oidc_request`] does, but inside this unit of work: the use commits
    /// with the rest of it, or not at all.
    async fn use_oidc_request(
        &mut self,
        handle_hash: &[u8; 32],
        now: UnixTime,
    ) -> StoreResult<Option<StoredRequest>>;
    /// The scopes of the live grant of `account_id` to `client_id`, read in this unit of
    /// work.
    async fn live_oidc_grant_scope(
        &mut self,
        account_id: i64,
        client_id: &str,
    ) -> StoreResult<Option<String>>;
    /// Records (or widens) the grant of `account_id` to `client_id` if it is still as the
    /// caller read it: `expected` the live grant's scopes, or `None` for no live grant (none
    /// at all, or a revoked one, which becomes live again). `scope` replaces the scopes kept
    /// (the caller passes the union). `false`, writing nothing, when another answer changed
    /// the grant since: read again and retry.
    async fn save_oidc_grant(
        &mut self,
        account_id: i64,
        client_id: &str,
        expected: Option<&str>,
        scope: &str,
    ) -> StoreResult<bool>;
    /// Revokes every live grant of an account; how many.
    async fn revoke_oidc_grants(&mut self, account_id: i64) -> StoreResult<u64>;
    /// Revokes one client's grant of an account; `false` when there was no live one.
    async fn revoke_oidc_grant(&mut self, account_id: i64, client_id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait OidcStore: Send + Sync {
    /// Registers a client; `false` when its `client_id` is taken.
    async fn add_oidc_client(&self, new: NewOidcClient<'_>) -> StoreResult<bool>;
    async fn oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>>;
    /// Every registered client, revoked ones included, oldest first.
    async fn oidc_clients(&self) -> StoreResult<Vec<super::OidcClientRow>>;
    /// One registered client with its dates, revoked or not.
    async fn oidc_client_row(&self, client_id: &str) -> StoreResult<Option<super::OidcClientRow>>;

    async fn put_oidc_request(
        &self,
        handle_hash: &[u8; 32],
        stored: &StoredRequest,
        now: UnixTime,
    ) -> StoreResult<()>;
    /// Uses a request that is neither used nor expired at `now` and returns it with its
    /// client as registered (revoked or not; `None` if unknown), in one hand-off: one
    /// conditional statement uses it, so of concurrent calls only one gets it; `None` for
    /// the others and for an unknown, used or expired handle (which stays as it was).
    async fn take_oidc_request(
        &self,
        handle_hash: &[u8; 32],
        now: UnixTime,
    ) -> StoreResult<Option<(StoredRequest, Option<OidcClient>)>>;

    /// Hands a pushed request that is `login_as_is`, neither used nor expired at `now`, of
    /// `client_id`, a client registered and not revoked, to the sign-in: it moves to
    /// `new_hash` (the old handle names nothing from now on) until `expires_at`, unchanged.
    /// One conditional statement; `false`, changing nothing, when any of that does not hold.
    async fn rekey_oidc_request(
        &self,
        (old_hash, new_hash): (&[u8; 32], &[u8; 32]),
        client_id: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> StoreResult<bool>;

    async fn put_oidc_code(&self, new: NewOidcCode<'_>) -> StoreResult<()>;
    /// The token endpoint's reads for a code exchange, in one hand-off where the database
    /// allows: the client `client_id` as registered (revoked or not); the code, used or not
    /// (nothing is changed: the caller checks it first), with its account's type (`None`:
    /// the account is gone), and whether the session it was issued in is open at `now`
    /// under `policy`.
    async fn oidc_client_and_code(
        &self,
        client_id: &str,
        code_hash: &[u8; 32],
        policy: SessionPolicy,
        now: UnixTime,
    ) -> StoreResult<(Option<OidcClient>, Option<(OidcCodeRow, bool)>)>;
    /// The same for a refresh: the client, and what [`OidcStore::oidc_token_in_session`]
    /// reads of the token.
    async fn oidc_client_and_token(
        &self,
        client_id: &str,
        token_hash: &[u8; 32],
        policy: SessionPolicy,
        now: UnixTime,
    ) -> StoreResult<(Option<OidcClient>, Option<(OidcTokenRow, bool)>)>;
    async fn oidc_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<OidcTokenRow>>;
    /// A token and whether the session behind it is open at `now` under `policy` (neither
    /// idle nor past its absolute lifetime: an OIDC token lives only as long as its
    /// session), in one read: the refresh grant, userinfo and introspection need both.
    async fn oidc_token_in_session(
        &self,
        token_hash: &[u8; 32],
        policy: SessionPolicy,
        now: UnixTime,
    ) -> StoreResult<Option<(OidcTokenRow, bool)>>;
    /// Records a one-time JWT id (a DPoP proof's or a client assertion's) until
    /// `expires_at`: `false` when it was seen before (a replay). The sweep forgets expired
    /// ones.
    async fn claim_oidc_jti(
        &self,
        jti_hash: &[u8; 32],
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreResult<bool>;

    /// The live grant of an account to a client, if any.
    async fn oidc_grant(
        &self,
        account_id: i64,
        client_id: &str,
    ) -> StoreResult<Option<OidcGrantRow>>;
    /// Every live grant of an account, newest first.
    async fn oidc_grants(&self, account_id: i64) -> StoreResult<Vec<OidcGrantRow>>;
}

/// The OpenID Connect writes that change a grant, inside a unit of work (so the audit
/// event that reports each goes in the same transaction). Each stamps `now` of the work.
#[async_trait]
pub trait OidcWrites: Send {
    /// An exchange at the token endpoint, to its end: marks the code or refresh token used
    /// (a conditional `UPDATE`), stores the tokens it issues, appends `event` and commits
    /// the unit of work with anything else it holds, as `UnitOfWork::commit` does (keyed
    /// by `audit_key`): what it committed; `None`, with nothing committed, when the use
    /// changed no row (used, or a refresh token revoked, since it was read). The store may
    /// make it one round trip.
    async fn use_grant_then_commit(
        self: Box<Self>,
        used: GrantUse<'_>,
        tokens: &[NewOidcToken<'_>],
        event: AuditEvent,
        audit_key: &ChainKey,
    ) -> StoreResult<Option<super::committed::Committed>>;
    /// Revokes every token of a grant; how many.
    async fn revoke_oidc_family(&mut self, family: &str) -> StoreResult<u64>;
    /// Revokes every token issued from a code (a replayed code); how many.
    async fn revoke_oidc_code_tokens(&mut self, code_id: i64) -> StoreResult<u64>;
    /// Revokes one token: `true` when it was live.
    async fn revoke_oidc_token(&mut self, token_hash: &[u8; 32]) -> StoreResult<bool>;
}
