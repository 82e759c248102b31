//! OpenID Connect state (see `portcullis_core::ports::OidcStore`): every single-use step
//! is one conditional statement, so concurrent nodes cannot both use the same code,
//! request, refresh token or proof id.

use async_trait::async_trait;
use portcullis_core::audit::{AuditEvent, ChainKey};
use portcullis_core::clock::UnixTime;
use portcullis_core::oidc::{ClientAuth, IdTokenAlg, OidcClient};
use portcullis_core::ports::{
    Committed, GrantUse, NewOidcClient, NewOidcCode, NewOidcToken, OidcCodeRow, OidcGrantRow,
    OidcGrantWrites, OidcStore, OidcTokenRow, OidcWrites, StoreError, StoreResult, StoredRequest,
    TokenKind, UnitOfWork,
};
use portcullis_core::session::SessionPolicy;
use sqlx::any::AnyArguments;
use sqlx::query::{Query, QueryAs};
use sqlx::{Any, AnyConnection, FromRow, Row};

use crate::sql::statements;
use crate::Backend;
use crate::{db_err, SqlStore, SqlWork};

/// The columns [`ClientRecord`] reads; `rest $t`: all but `client_id`, of the table `$t`
/// in a join (whose other side has the `client_id`).
macro_rules! client_columns {
    () => {
        "client_id, name, auth_method, secret_hash, jwks, redirect_uris, post_logout_uris, \
        first_party, profile, revoked_at, id_token_alg, jwks_uri"
    };
    (rest $t:literal) => {
        concat!(
            $t,
            "name, ",
            $t,
            "auth_method, ",
            $t,
            "secret_hash, ",
            $t,
            "jwks, ",
            $t,
            "redirect_uris, ",
            $t,
            "post_logout_uris, ",
            $t,
            "first_party, ",
            $t,
            "profile, ",
            $t,
            "revoked_at, ",
            $t,
            "id_token_alg, ",
            $t,
            "jwks_uri"
        )
    };
}
pub(crate) use client_columns;

/// A client by its id, the parameter `$n`.
macro_rules! client_by_id {
    ($n:literal) => {
        concat!(
            "SELECT ",
            client_columns!(),
            " FROM oidc_clients WHERE client_id = $",
            $n
        )
    };
}

/// A code by its hash (`$1`), with its session's openness (`$2`, `$3`, as in
/// [`token_in_session!`]) and its account's type.
macro_rules! code_in_session {
    () => {
        "SELECT id, client_id, account_id, session_id, request, auth_time, \
        expires_at, used_at, (SELECT COUNT(*) FROM sessions s WHERE s.id = oidc_codes.session_id \
        AND s.created_at > $2 AND s.last_seen_at > $3) AS session_open, \
        (SELECT a.account_type FROM online_accounts a WHERE a.id = oidc_codes.account_id) \
        AS account_type FROM oidc_codes WHERE code_hash = $1"
    };
}

/// A token by its hash (`$1`) and its session's openness: open while `$2` (now − the
/// absolute lifetime) < created and `$3` (now − the idle timeout) < last seen, the rule of
/// `SessionPolicy::state`.
macro_rules! token_in_session {
    () => {
        concat!(
            "SELECT ",
            token_columns!(),
            ", (SELECT COUNT(*) FROM sessions s \
            WHERE s.id = oidc_tokens.session_id AND s.created_at > $2 AND s.last_seen_at > $3) \
            AS session_open FROM oidc_tokens WHERE token_hash = $1"
        )
    };
}

/// Uses a live request (`$1`: its handle's hash, `$2`: now) and returns it.
macro_rules! take_request {
    () => {
        "UPDATE oidc_requests SET used_at = $2 WHERE handle_hash = $1 \
        AND used_at IS NULL AND expires_at >= $2 \
        RETURNING client_id, request, pushed, expires_at"
    };
}

/// The columns [`TokenRecord`] reads.
macro_rules! token_columns {
    () => {
        "id, kind, family, client_id, account_id, session_id, scope, dpop_jkt, auth_time, \
        created_at, expires_at, used_at, revoked_at"
    };
}

macro_rules! token_insert {
    () => {
        "INSERT INTO oidc_tokens (token_hash, kind, family, code_id, client_id, account_id, \
        session_id, scope, dpop_jkt, auth_time, created_at, expires_at)"
    };
}

/// One row of [`token_insert!`]'s twelve placeholders, numbered from `$n`.
macro_rules! token_values {
    (1) => {
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    };
    (13) => {
        "($13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
    };
    (3) => {
        "($3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    };
    (15) => {
        "($15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)"
    };
}

/// SQLite: a use (`$1`, `$2`) and the tokens it issues (from `$3`), one statement list and
/// so one hand-off; the tokens are inserted only if the use changed its row (`changes()` is
/// the last finished statement's count, the use's, while the `INSERT` runs).
macro_rules! use_then_insert {
    ($use:expr, $($values:expr),+) => {
        concat!($use, "; ", token_insert!(), " SELECT * FROM (VALUES ", $($values,)+
            ") WHERE changes() = 1")
    };
}

/// SQLite: a whole exchange in one statement list, and so one hand-off: `BEGIN`, the
/// chain's head read under the write lock, the use (`$1`, `$2`) only if the head is still
/// the one this store last left (`$h`: its number, `$h + 1`: its hash), the tokens (from
/// `$3`) only if the use changed its row, the head's number moved to `$h + 2` only if they
/// were all inserted (`$n` of them), the audit entry (from `$h + 3`) only if it moved, and
/// `COMMIT`. A use that lost, or a head another process moved, writes nothing: the last
/// write's count is 0. Each `changes()` is the count of the statement before (the last to
/// finish while it runs).
macro_rules! use_then_commit {
    ($use:expr, $n:literal, $values:expr, $seq:literal, $hash:literal, $next:literal, $entry:literal) => {
        crate::tx::begin_then!(concat!(
            $use,
            " AND EXISTS (SELECT 1 FROM audit_head WHERE id = 1 AND seq = ",
            $seq,
            " AND hash = ",
            $hash,
            "); ",
            token_insert!(),
            " SELECT * FROM (VALUES ",
            $values,
            ") WHERE changes() = 1; UPDATE audit_head SET seq = ",
            $next,
            " WHERE id = 1 AND changes() = ",
            $n,
            "; INSERT INTO audit_log (seq, at, kind, account_id, actor, client_ip, detail, \
            prev_hash, hash, key_id) SELECT * FROM (VALUES ",
            $entry,
            ") WHERE changes() = 1; COMMIT"
        ))
    };
    ($use:expr, 1) => {
        use_then_commit!(
            $use,
            "1",
            token_values!(3),
            "$15",
            "$16",
            "$17",
            "($18, $19, $20, $21, $22, $23, $24, $25, $26, $27)"
        )
    };
    ($use:expr, 2) => {
        use_then_commit!(
            $use,
            "2",
            concat!(token_values!(3), ", ", token_values!(15)),
            "$27",
            "$28",
            "$29",
            "($30, $31, $32, $33, $34, $35, $36, $37, $38, $39)"
        )
    };
}

macro_rules! use_code {
    () => {
        "UPDATE oidc_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL"
    };
}

macro_rules! use_refresh {
    () => {
        "UPDATE oidc_tokens SET used_at = $2 WHERE token_hash = $1 AND kind = 'refresh' \
        AND used_at IS NULL AND revoked_at IS NULL"
    };
}

statements! {
    INSERT_CLIENT = "INSERT INTO oidc_clients (client_id, name, auth_method, secret_hash, jwks, \
        redirect_uris, post_logout_uris, first_party, profile, created_at, id_token_alg, \
        jwks_uri) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (client_id) DO NOTHING";
    CLIENT_BY_ID = client_by_id!(1);
    INSERT_REQUEST = "INSERT INTO oidc_requests (handle_hash, client_id, request, pushed, \
        created_at, expires_at, login_as_is) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    /// A pushed request handed to the sign-in as it is: a new handle, a new expiry, and
    /// nothing left of its pushed state (it reads as one stored for the sign-in).
    REKEY_REQUEST = "UPDATE oidc_requests SET handle_hash = $2, expires_at = $5, pushed = 0, \
        login_as_is = 0 WHERE handle_hash = $1 AND client_id = $3 AND login_as_is = 1 \
        AND used_at IS NULL AND expires_at >= $4 AND EXISTS (SELECT 1 FROM oidc_clients c \
        WHERE c.client_id = $3 AND c.revoked_at IS NULL)";
    /// Uses a live request and returns it, in one statement.
    TAKE_REQUEST = take_request!();
    /// SQLite: uses a live request and returns it, then its client, in one hand-off (a
    /// statement list: SQLite's `RETURNING` cannot join). The client is read whether or not
    /// the use took the request; only a taken request's is kept.
    TAKE_REQUEST_WITH_CLIENT_SQLITE: sqlite = concat!(take_request!(), "; SELECT ", client_columns!(),
        " FROM oidc_clients WHERE client_id = \
        (SELECT client_id FROM oidc_requests WHERE handle_hash = $1)");
    /// PostgreSQL: the same in one statement, one row holding both (`client_row` is NULL
    /// when the client is not registered).
    TAKE_REQUEST_WITH_CLIENT_POSTGRES: postgres = concat!("WITH taken AS (", take_request!(),
        ") SELECT taken.client_id, taken.request, taken.pushed, taken.expires_at, \
        c.id AS client_row, ", client_columns!(rest "c."),
        " FROM taken LEFT JOIN oidc_clients c ON c.client_id = taken.client_id");
    INSERT_CODE = "INSERT INTO oidc_codes (code_hash, client_id, account_id, session_id, request, \
        auth_time, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    USE_CODE = use_code!();
    USE_CODE_THEN_TOKEN: sqlite = use_then_insert!(use_code!(), token_values!(3));
    USE_CODE_THEN_PAIR: sqlite =
        use_then_insert!(use_code!(), token_values!(3), ", ", token_values!(15));
    BEGIN_USE_CODE_THEN_TOKEN: sqlite =
        crate::tx::begin_then!(use_then_insert!(use_code!(), token_values!(3)));
    BEGIN_USE_CODE_THEN_PAIR: sqlite = crate::tx::begin_then!(use_then_insert!(use_code!(),
        token_values!(3), ", ", token_values!(15)));
    /// A code, its session's openness (`$2`, `$3`: the oldest open session's creation
    /// and last use, as in `TOKEN_IN_SESSION`) and its account's type (the ID token's
    /// `account_type`), in one read.
    CODE_IN_SESSION = code_in_session!();
    /// SQLite: [`CODE_IN_SESSION`], then the client `$4`, in one hand-off.
    CODE_IN_SESSION_THEN_CLIENT: sqlite = concat!(code_in_session!(), "; ", client_by_id!(4));
    INSERT_TOKEN = concat!(token_insert!(), " VALUES ", token_values!(1));
    /// An exchange's access and refresh tokens in one statement.
    INSERT_TOKEN_PAIR = concat!(token_insert!(), " VALUES ", token_values!(1), ", ",
        token_values!(13));
    TOKEN_BY_HASH = concat!("SELECT ", token_columns!(), " FROM oidc_tokens WHERE token_hash = $1");
    /// A token and its session's openness (see [`token_in_session!`]).
    TOKEN_IN_SESSION = token_in_session!();
    /// SQLite: [`TOKEN_IN_SESSION`], then the client `$4`, in one hand-off.
    TOKEN_IN_SESSION_THEN_CLIENT: sqlite = concat!(token_in_session!(), "; ", client_by_id!(4));
    USE_REFRESH = use_refresh!();
    USE_REFRESH_THEN_TOKEN: sqlite = use_then_insert!(use_refresh!(), token_values!(3));
    USE_REFRESH_THEN_PAIR: sqlite =
        use_then_insert!(use_refresh!(), token_values!(3), ", ", token_values!(15));
    BEGIN_USE_REFRESH_THEN_TOKEN: sqlite =
        crate::tx::begin_then!(use_then_insert!(use_refresh!(), token_values!(3)));
    BEGIN_USE_REFRESH_THEN_PAIR: sqlite =
        crate::tx::begin_then!(use_then_insert!(use_refresh!(), token_values!(3), ", ",
            token_values!(15)));
    /// SQLite: a code's whole exchange, one token or two (see [`use_then_commit!`]).
    USE_CODE_THEN_COMMIT_TOKEN: sqlite = use_then_commit!(use_code!(), 1);
    USE_CODE_THEN_COMMIT_PAIR: sqlite = use_then_commit!(use_code!(), 2);
    /// SQLite: a refresh token's whole rotation, one token or two.
    USE_REFRESH_THEN_COMMIT_TOKEN: sqlite = use_then_commit!(use_refresh!(), 1);
    USE_REFRESH_THEN_COMMIT_PAIR: sqlite = use_then_commit!(use_refresh!(), 2);
    REVOKE_FAMILY = "UPDATE oidc_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL";
    REVOKE_CODE_TOKENS = "UPDATE oidc_tokens SET revoked_at = $2 WHERE family IN \
        (SELECT family FROM oidc_tokens WHERE code_id = $1) AND revoked_at IS NULL";
    REVOKE_TOKEN = "UPDATE oidc_tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL";
    CLAIM_JTI = "INSERT INTO oidc_jti (jti_hash, expires_at) VALUES ($1, $2) \
        ON CONFLICT (jti_hash) DO NOTHING";
    /// Compare and set: the grant is written only if it is still as read (`$6`: the live
    /// grant's scopes, or NULL for no live grant), so two answers at once cannot drop each
    /// other's scopes (on PostgreSQL the `WHERE` is checked against the row a concurrent
    /// answer committed).
    SAVE_GRANT = "INSERT INTO oidc_grants (account_id, client_id, scope, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, client_id) DO UPDATE \
        SET scope = excluded.scope, updated_at = excluded.updated_at, revoked_at = NULL \
        WHERE (oidc_grants.revoked_at IS NULL AND oidc_grants.scope = $6) \
        OR (oidc_grants.revoked_at IS NOT NULL AND $6 IS NULL)";
    REVOKE_GRANTS = "UPDATE oidc_grants SET revoked_at = $2 WHERE account_id = $1 \
        AND revoked_at IS NULL";
    REVOKE_GRANT = "UPDATE oidc_grants SET revoked_at = $3 WHERE account_id = $1 \
        AND client_id = $2 AND revoked_at IS NULL";
    GRANT_OF = "SELECT client_id, scope, created_at, updated_at FROM oidc_grants \
        WHERE account_id = $1 AND client_id = $2 AND revoked_at IS NULL";
    GRANTS_OF = "SELECT client_id, scope, created_at, updated_at FROM oidc_grants \
        WHERE account_id = $1 AND revoked_at IS NULL ORDER BY updated_at DESC, id DESC";
}

#[derive(sqlx::FromRow)]
pub(crate) struct ClientRecord {
    client_id: String,
    name: String,
    auth_method: String,
    secret_hash: Option<Vec<u8>>,
    jwks: Option<String>,
    redirect_uris: String,
    post_logout_uris: String,
    first_party: i64,
    profile: String,
    pub(crate) revoked_at: Option<i64>,
    id_token_alg: String,
    jwks_uri: Option<String>,
}

/// The statement that registers `c` at `now` (nothing when its `client_id` is taken).
pub(crate) fn insert_client(
    c: &OidcClient,
    now: i64,
) -> Query<'static, Any, AnyArguments<'static>> {
    let uris = |list: &[String]| serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
    sqlx::query(INSERT_CLIENT)
        .bind(c.client_id.clone())
        .bind(c.name.clone())
        .bind(c.auth.as_str())
        .bind(c.secret_hash.clone())
        .bind(c.jwks.as_ref().map(|j| j.to_string()))
        .bind(uris(&c.redirect_uris))
        .bind(uris(&c.post_logout_uris))
        .bind(i64::from(c.first_party))
        .bind(if c.fapi2 { "fapi2" } else { "" })
        .bind(now)
        .bind(c.id_token_alg.as_str())
        .bind(c.jwks_uri.clone())
}

fn internal(what: &str) -> StoreError {
    StoreError::Internal(format!("oidc: unreadable {what}"))
}

impl TryFrom<ClientRecord> for OidcClient {
    type Error = StoreError;
    fn try_from(r: ClientRecord) -> Result<Self, StoreError> {
        let list = |text: &str| -> Result<Vec<String>, StoreError> {
            serde_json::from_str(text).map_err(|_| internal("URI list"))
        };
        Ok(OidcClient {
            auth: ClientAuth::parse(&r.auth_method).ok_or_else(|| internal("auth method"))?,
            redirect_uris: list(&r.redirect_uris)?,
            post_logout_uris: list(&r.post_logout_uris)?,
            jwks: match r.jwks {
                Some(text) => Some(serde_json::from_str(&text).map_err(|_| internal("JWKS"))?),
                None => None,
            },
            jwks_uri: r.jwks_uri,
            client_id: r.client_id,
            name: r.name,
            secret_hash: r.secret_hash,
            first_party: r.first_party != 0,
            fapi2: r.profile == "fapi2",
            id_token_alg: IdTokenAlg::parse(&r.id_token_alg)
                .ok_or_else(|| internal("ID token algorithm"))?,
            revoked: r.revoked_at.is_some(),
        })
    }
}

#[derive(sqlx::FromRow)]
struct RequestRecord {
    client_id: String,
    request: String,
    pushed: i64,
    expires_at: i64,
}

/// The live grant of `account_id` to `client_id`, read in or outside a unit of work.
fn grant_of(
    account_id: i64,
    client_id: &str,
) -> sqlx::query::QueryAs<'static, sqlx::Any, GrantRecord, sqlx::any::AnyArguments<'static>> {
    sqlx::query_as(GRANT_OF)
        .bind(account_id)
        .bind(client_id.to_owned())
}

impl From<RequestRecord> for StoredRequest {
    fn from(r: RequestRecord) -> Self {
        StoredRequest {
            client_id: r.client_id,
            request: r.request,
            pushed: r.pushed != 0,
            expires_at: UnixTime(r.expires_at),
            login_as_is: false,
        }
    }
}

#[derive(sqlx::FromRow)]
struct CodeRecord {
    id: i64,
    client_id: String,
    account_id: i64,
    session_id: i64,
    request: String,
    auth_time: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl From<CodeRecord> for OidcCodeRow {
    fn from(r: CodeRecord) -> Self {
        OidcCodeRow {
            id: r.id,
            client_id: r.client_id,
            account_id: r.account_id,
            session_id: r.session_id,
            request: r.request,
            auth_time: UnixTime(r.auth_time),
            expires_at: UnixTime(r.expires_at),
            used: r.used_at.is_some(),
            account_type: None,
        }
    }
}

/// Stores an exchange's tokens: one statement for the usual one or two (access, then
/// refresh), one per pair beyond.
async fn insert_tokens(conn: &mut AnyConnection, tokens: &[NewOidcToken<'_>]) -> StoreResult<()> {
    for pair in tokens.chunks(2) {
        let q = sqlx::query(if pair.len() == 2 {
            INSERT_TOKEN_PAIR
        } else {
            INSERT_TOKEN
        });
        let q = bind_tokens(q, pair);
        q.execute(&mut *conn).await.map_err(db_err)?;
    }
    Ok(())
}

/// Binds each token's twelve columns, in `token_insert!`'s order.
fn bind_tokens<'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    tokens: &[NewOidcToken<'_>],
) -> Query<'q, Any, AnyArguments<'q>> {
    for new in tokens {
        q = q
            .bind(new.token_hash.to_vec())
            .bind(new.kind.as_str())
            .bind(new.family.to_owned())
            .bind(new.code_id)
            .bind(new.client_id.to_owned())
            .bind(new.account_id)
            .bind(new.session_id)
            .bind(new.scope.to_owned())
            .bind(new.dpop_jkt.map(str::to_owned))
            .bind(new.auth_time.0)
            .bind(new.now.0)
            .bind(new.expires_at.0);
    }
    q
}

#[derive(sqlx::FromRow)]
struct TokenRecord {
    id: i64,
    kind: String,
    family: String,
    client_id: String,
    account_id: i64,
    session_id: i64,
    scope: String,
    dpop_jkt: Option<String>,
    auth_time: i64,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<TokenRecord> for OidcTokenRow {
    fn from(r: TokenRecord) -> Self {
        OidcTokenRow {
            id: r.id,
            kind: if r.kind == "refresh" {
                TokenKind::Refresh
            } else {
                TokenKind::Access
            },
            family: r.family,
            client_id: r.client_id,
            account_id: r.account_id,
            session_id: r.session_id,
            scope: r.scope,
            dpop_jkt: r.dpop_jkt,
            auth_time: UnixTime(r.auth_time),
            created_at: UnixTime(r.created_at),
            expires_at: UnixTime(r.expires_at),
            used_at: r.used_at.map(UnixTime),
            revoked_at: r.revoked_at.map(UnixTime),
        }
    }
}

/// A `…_IN_SESSION` statement with its row's hash and the bounds a session's times must be
/// above to be open at `now`: the same rule as `SessionPolicy::state`, open while
/// now < created + absolute and now < last seen + idle.
fn in_session<O>(
    statement: &'static str,
    hash: &[u8; 32],
    policy: SessionPolicy,
    now: UnixTime,
) -> QueryAs<'static, Any, O, AnyArguments<'static>>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
{
    sqlx::query_as(statement)
        .bind(hash.to_vec())
        .bind(now.0.saturating_sub(policy.absolute_secs))
        .bind(now.0.saturating_sub(policy.idle_secs))
}

impl SqlStore {
    /// A client and a `…_IN_SESSION` row: on SQLite the `(list, _)` that reads the row, then
    /// the client, in one hand-off; on PostgreSQL the client, then the `(_, statement)`.
    async fn client_and_in_session<O>(
        &self,
        (list, statement): (&'static str, &'static str),
        (hash, client_id): (&[u8; 32], &str),
        policy: SessionPolicy,
        now: UnixTime,
    ) -> StoreResult<(Option<OidcClient>, Option<O>)>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        match self.backend {
            Backend::Sqlite => {
                let q = sqlx::query(list)
                    .bind(hash.to_vec())
                    .bind(now.0.saturating_sub(policy.absolute_secs))
                    .bind(now.0.saturating_sub(policy.idle_secs))
                    .bind(client_id.to_owned());
                let mut lists = crate::db::rows_per_statement(q, &self.pool)
                    .await?
                    .into_iter();
                let found = lists.next().and_then(|rows| rows.into_iter().next());
                let client = lists.next().and_then(|rows| rows.into_iter().next());
                let found = found
                    .map(|row| O::from_row(&row).map_err(db_err))
                    .transpose()?;
                let client = client
                    .map(|row| ClientRecord::from_row(&row).map_err(db_err))
                    .transpose()?
                    .map(OidcClient::try_from)
                    .transpose()?;
                Ok((client, found))
            }
            Backend::Postgres => {
                let client = self.oidc_client(client_id).await?;
                let found: Option<O> = in_session(statement, hash, policy, now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                Ok((client, found))
            }
        }
    }
}

#[derive(sqlx::FromRow)]
struct CodeInSession {
    #[sqlx(flatten)]
    code: CodeRecord,
    session_open: i64,
    account_type: Option<String>,
}

impl CodeInSession {
    /// The code, its account's type and whether its session is open.
    fn read(self) -> StoreResult<(OidcCodeRow, bool)> {
        let account_type = self
            .account_type
            .map(|t| crate::registry::account_type(&t))
            .transpose()?;
        Ok((
            OidcCodeRow {
                account_type,
                ..OidcCodeRow::from(self.code)
            },
            self.session_open > 0,
        ))
    }
}

#[derive(sqlx::FromRow)]
struct TokenInSession {
    #[sqlx(flatten)]
    token: TokenRecord,
    session_open: i64,
}

#[derive(sqlx::FromRow)]
struct GrantRecord {
    client_id: String,
    scope: String,
    created_at: i64,
    updated_at: i64,
}

impl From<GrantRecord> for OidcGrantRow {
    fn from(r: GrantRecord) -> Self {
        OidcGrantRow {
            client_id: r.client_id,
            scope: r.scope,
            created_at: UnixTime(r.created_at),
            updated_at: UnixTime(r.updated_at),
        }
    }
}

#[async_trait]
impl OidcGrantWrites for SqlWork {
    async fn use_oidc_request(
        &mut self,
        handle_hash: &[u8; 32],
        now: UnixTime,
    ) -> StoreResult<Option<StoredRequest>> {
        let row: Option<RequestRecord> = sqlx::query_as(TAKE_REQUEST)
            .bind(handle_hash.to_vec())
            .bind(now.0)
            .fetch_optional(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(row.map(StoredRequest::from))
    }

    async fn live_oidc_grant_scope(
        &mut self,
        account_id: i64,
        client_id: &str,
    ) -> StoreResult<Option<String>> {
        let row: Option<GrantRecord> = grant_of(account_id, client_id)
            .fetch_optional(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| r.scope))
    }

    async fn save_oidc_grant(
        &mut self,
        account_id: i64,
        client_id: &str,
        expected: Option<&str>,
        scope: &str,
    ) -> StoreResult<bool> {
        let now = self.stamp();
        let done = sqlx::query(SAVE_GRANT)
            .bind(account_id)
            .bind(client_id.to_owned())
            .bind(scope.to_owned())
            .bind(now)
            .bind(now)
            .bind(expected.map(str::to_owned))
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_oidc_grants(&mut self, account_id: i64) -> StoreResult<u64> {
        let now = self.stamp();
        let done = sqlx::query(REVOKE_GRANTS)
            .bind(account_id)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn revoke_oidc_grant(&mut self, account_id: i64, client_id: &str) -> StoreResult<bool> {
        let now = self.stamp();
        let done = sqlx::query(REVOKE_GRANT)
            .bind(account_id)
            .bind(client_id.to_owned())
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl OidcStore for SqlStore {
    async fn add_oidc_client(&self, new: NewOidcClient<'_>) -> StoreResult<bool> {
        let done = insert_client(new.client, new.now.0)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>> {
        let row: Option<ClientRecord> = sqlx::query_as(CLIENT_BY_ID)
            .bind(client_id.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(OidcClient::try_from).transpose()
    }

    async fn oidc_clients(&self) -> StoreResult<Vec<portcullis_core::ports::OidcClientRow>> {
        crate::oidc_clients::list(&self.pool).await
    }

    async fn oidc_client_row(
        &self,
        client_id: &str,
    ) -> StoreResult<Option<portcullis_core::ports::OidcClientRow>> {
        crate::oidc_clients::one(&self.pool, client_id).await
    }

    async fn put_oidc_request(
        &self,
        handle_hash: &[u8; 32],
        stored: &StoredRequest,
        now: UnixTime,
    ) -> StoreResult<()> {
        let _turn = self.gate.turn().await?;
        sqlx::query(INSERT_REQUEST)
            .bind(handle_hash.to_vec())
            .bind(stored.client_id.clone())
            .bind(stored.request.clone())
            .bind(i64::from(stored.pushed))
            .bind(now.0)
            .bind(stored.expires_at.0)
            .bind(i64::from(stored.login_as_is))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn rekey_oidc_request(
        &self,
        (old_hash, new_hash): (&[u8; 32], &[u8; 32]),
        client_id: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> StoreResult<bool> {
        let _turn = self.gate.turn().await?;
        let done = sqlx::query(REKEY_REQUEST)
            .bind(old_hash.to_vec())
            .bind(new_hash.to_vec())
            .bind(client_id.to_owned())
            .bind(now.0)
            .bind(expires_at.0)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn take_oidc_request(
        &self,
        handle_hash: &[u8; 32],
        now: UnixTime,
    ) -> StoreResult<Option<(StoredRequest, Option<OidcClient>)>> {
        let _turn = self.gate.turn().await?;
        let (request, client) = match self.backend {
            Backend::Sqlite => {
                let q = sqlx::query(TAKE_REQUEST_WITH_CLIENT_SQLITE)
                    .bind(handle_hash.to_vec())
                    .bind(now.0);
                let mut lists = crate::db::rows_per_statement(q, &self.pool).await?;
                let client = lists.pop().and_then(|rows| rows.into_iter().next());
                let request = lists.pop().and_then(|rows| rows.into_iter().next());
                (request, client)
            }
            Backend::Postgres => {
                let row = sqlx::query(TAKE_REQUEST_WITH_CLIENT_POSTGRES)
                    .bind(handle_hash.to_vec())
                    .bind(now.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                let registered = match &row {
                    Some(row) => row
                        .try_get::<Option<i64>, _>("client_row")
                        .map_err(db_err)?
                        .is_some(),
                    None => false,
                };
                (row.clone(), row.filter(|_| registered))
            }
        };
        let Some(request) = request else {
            return Ok(None);
        };
        let request = RequestRecord::from_row(&request).map_err(db_err)?;
        let client = client
            .map(|row| ClientRecord::from_row(&row).map_err(db_err))
            .transpose()?
            .map(OidcClient::try_from)
            .transpose()?;
        Ok(Some((StoredRequest::from(request), client)))
    }

    async fn put_oidc_code(&self, new: NewOidcCode<'_>) -> StoreResult<()> {
        let _turn = self.gate.turn().await?;
        sqlx::query(INSERT_CODE)
            .bind(new.code_hash.to_vec())
            .bind(new.client_id.to_owned())
            .bind(new.account_id)
            .bind(new.session_id)
            .bind(new.request.to_owned())
            .bind(new.auth_time.0)
            .bind(new.now.0)
            .bind(new.expires_at.0)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn oidc_client_and_code(
        &self,
        client_id: &str,
        code_hash: &[u8; 32],
        policy: SessionPolicy,
        now: UnixTime,
    ) -> StoreResult<(Option<OidcClient>, Option<(OidcCodeRow, bool)>)> {
        let statements = (CODE_IN_SESSION_THEN_CLIENT, CODE_IN_SESSION);
        let (client, code) = self
            .client_and_in_session::<CodeInSession>(statements, (code_hash, client_id), policy, now)
            .await?;
        Ok((client, code.map(CodeInSession::read).transpose()?))
    }

    async fn oidc_client_and_token(
        &self,
        client_id: &str,
        token_hash: &[u8; 32],
        policy: SessionPolicy,
        now: UnixTime,
    ) -> StoreResult<(Option<OidcClient>, Option<(OidcTokenRow, bool)>)> {
        let statements = (TOKEN_IN_SESSION_THEN_CLIENT, TOKEN_IN_SESSION);
        let (client, token) = self
            .client_and_in_session::<TokenInSession>(
                statements,
                (token_hash, client_id),
                policy,
                now,
            )
            .await?;
        Ok((
            client,
            token.map(|r| (OidcTokenRow::from(r.token), r.session_open > 0)),
        ))
    }

    async fn oidc_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<OidcTokenRow>> {
        let row: Option<TokenRecord> = sqlx::query_as(TOKEN_BY_HASH)
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.map(OidcTokenRow::from))
    }

    async fn oidc_token_in_session(
        &self,
        token_hash: &[u8; 32],
        policy: SessionPolicy,
        now: UnixTime,
    ) -> StoreResult<Option<(OidcTokenRow, bool)>> {
        let row: Option<TokenInSession> = in_session(TOKEN_IN_SESSION, token_hash, policy, now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| (OidcTokenRow::from(r.token), r.session_open > 0)))
    }

    async fn claim_oidc_jti(
        &self,
        jti_hash: &[u8; 32],
        expires_at: UnixTime,
        _now: UnixTime,
    ) -> StoreResult<bool> {
        let _turn = self.gate.turn().await?;
        let done = sqlx::query(CLAIM_JTI)
            .bind(jti_hash.to_vec())
            .bind(expires_at.0)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn oidc_grant(
        &self,
        account_id: i64,
        client_id: &str,
    ) -> StoreResult<Option<OidcGrantRow>> {
        let row: Option<GrantRecord> = grant_of(account_id, client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.map(OidcGrantRow::from))
    }

    async fn oidc_grants(&self, account_id: i64) -> StoreResult<Vec<OidcGrantRow>> {
        let rows: Vec<GrantRecord> = sqlx::query_as(GRANTS_OF)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.into_iter().map(OidcGrantRow::from).collect())
    }
}

impl SqlWork {
    /// `used` (a conditional `UPDATE` that uses a code or refresh token), then, when it
    /// changed a row, the tokens it issues, in the unit of work's transaction: they become
    /// visible together, so a replay that sees the use also sees (and revokes) every token
    /// it issued. `false`, nothing stored, when the `UPDATE` changed nothing.
    async fn use_then_store(
        &mut self,
        used: GrantUse<'_>,
        tokens: &[NewOidcToken<'_>],
    ) -> StoreResult<bool> {
        let stamp = self.stamp();
        if self.backend() == Backend::Sqlite && matches!(tokens.len(), 1 | 2) {
            // The unit's first statements begin its transaction in the same hand-off.
            let (first, inside) = match (&used, tokens.len()) {
                (GrantUse::Code(_), 1) => (BEGIN_USE_CODE_THEN_TOKEN, USE_CODE_THEN_TOKEN),
                (GrantUse::Code(_), _) => (BEGIN_USE_CODE_THEN_PAIR, USE_CODE_THEN_PAIR),
                (GrantUse::Refresh(_), 1) => (BEGIN_USE_REFRESH_THEN_TOKEN, USE_REFRESH_THEN_TOKEN),
                (GrantUse::Refresh(_), _) => (BEGIN_USE_REFRESH_THEN_PAIR, USE_REFRESH_THEN_PAIR),
            };
            let q = bind_tokens(bind_use(&used, sqlx::query(first), stamp), tokens);
            // The list's last statement is the tokens' `INSERT`: it inserted only if the
            // use changed its row.
            if let Some(inserted) = self.begin_with(q).await? {
                return Ok(inserted > 0);
            }
            let q = bind_tokens(bind_use(&used, sqlx::query(inside), stamp), tokens);
            let done = q.execute(self.conn().await?).await.map_err(db_err)?;
            return Ok(done.rows_affected() > 0);
        }
        let conn = self.conn().await?;
        let statement = match &used {
            GrantUse::Code(_) => USE_CODE,
            GrantUse::Refresh(_) => USE_REFRESH,
        };
        let done = bind_use(&used, sqlx::query(statement), stamp)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_tokens(conn, tokens).await?;
        Ok(true)
    }
}

impl SqlWork {
    /// SQLite, a unit of work that holds nothing yet, when this store knows the chain's
    /// head: the whole exchange in one hand-off ([`use_then_commit!`]), the tokens and the
    /// audit entry hashed over the known head. `None` when it cannot be used, or when the
    /// head had moved (another process appended: nothing was written, and the caller goes
    /// the usual way); else whether the use changed its row and so committed.
    async fn use_then_commit_at_once(
        &mut self,
        used: GrantUse<'_>,
        tokens: &[NewOidcToken<'_>],
        event: &AuditEvent,
        key: &ChainKey,
    ) -> StoreResult<Option<bool>> {
        if self.backend() != Backend::Sqlite
            || !self.is_fresh()
            || portcullis_core::webhooks::event_type(event.kind).is_some()
        {
            return Ok(None);
        }
        let list = match (&used, tokens.len()) {
            (GrantUse::Code(_), 1) => USE_CODE_THEN_COMMIT_TOKEN,
            (GrantUse::Code(_), 2) => USE_CODE_THEN_COMMIT_PAIR,
            (GrantUse::Refresh(_), 1) => USE_REFRESH_THEN_COMMIT_TOKEN,
            (GrantUse::Refresh(_), 2) => USE_REFRESH_THEN_COMMIT_PAIR,
            _ => return Ok(None),
        };
        let stamp = self.stamp();
        let now = self.now();
        crate::tx::audited_at_once(self.pool(), self.gate(), |(seq, hash)| {
            let q = bind_tokens(bind_use(&used, sqlx::query(list), stamp), tokens)
                .bind(*seq)
                .bind(hash.clone())
                .bind(seq.saturating_add(1));
            let (mut next, mut prev) = (*seq, hash.clone());
            let q = crate::audit::bind_entries(
                q,
                std::slice::from_ref(event),
                (&mut next, &mut prev),
                now,
                key,
            );
            (q, (next, prev))
        })
        .await
    }
}

/// Binds a use's `$1` (the code or token) and `$2` (now).
fn bind_use<'q>(
    used: &GrantUse<'_>,
    q: Query<'q, Any, AnyArguments<'q>>,
    now: i64,
) -> Query<'q, Any, AnyArguments<'q>> {
    match used {
        GrantUse::Code(id) => q.bind(*id),
        GrantUse::Refresh(hash) => q.bind(hash.to_vec()),
    }
    .bind(now)
}

#[async_trait]
impl OidcWrites for SqlWork {
    async fn use_grant_then_commit(
        mut self: Box<Self>,
        used: GrantUse<'_>,
        tokens: &[NewOidcToken<'_>],
        event: AuditEvent,
        audit_key: &ChainKey,
    ) -> StoreResult<Option<Committed>> {
        let at_once = self
            .use_then_commit_at_once(used, tokens, &event, audit_key)
            .await?;
        self.gate().grant_uses.count(at_once.is_some());
        if let Some(committed) = at_once {
            // The list writes no outbox row and one audit entry.
            return Ok(committed.then_some(Committed {
                messages: 0,
                audited: 1,
            }));
        }
        if !self.use_then_store(used, tokens).await? {
            return Ok(None);
        }
        self.audit(event);
        Ok(Some(self.commit(audit_key).await?))
    }

    async fn revoke_oidc_family(&mut self, family: &str) -> StoreResult<u64> {
        let now = self.stamp();
        let done = sqlx::query(REVOKE_FAMILY)
            .bind(family.to_owned())
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn revoke_oidc_code_tokens(&mut self, code_id: i64) -> StoreResult<u64> {
        let now = self.stamp();
        let done = sqlx::query(REVOKE_CODE_TOKENS)
            .bind(code_id)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn revoke_oidc_token(&mut self, token_hash: &[u8; 32]) -> StoreResult<bool> {
        let now = self.stamp();
        let done = sqlx::query(REVOKE_TOKEN)
            .bind(token_hash.to_vec())
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
