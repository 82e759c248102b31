//! Admin tokens for the support console, held by the SHA-256 of the token. Scopes are one
//! `TEXT` column of space-separated names; a partial unique index keeps one active token per
//! name, so two racing creations for one agent leave one token.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{
    AdminTokenReads, AdminTokenRef, AdminTokenRow, AdminTokenWrites, CreateAdminTokenError,
    NewAdminToken, StoreError, StoreResult,
};
use portcullis_core::support::SupportScope;

use crate::error::is_unique_violation;
use crate::sql::statements;
use crate::{db_err, SqlStore, SqlWork};

macro_rules! columns {
    () => {
        "id, name, scopes, created_at, revoked_at, last_used_at"
    };
}

statements! {
    CREATE_TOKEN = "INSERT INTO admin_tokens (name, token_hash, scopes, created_at) \
        VALUES ($1, $2, $3, $4) RETURNING id";
    TOKEN_BY_HASH = concat!("SELECT ", columns!(), " FROM admin_tokens WHERE token_hash = $1");
    TOUCH_TOKEN = "UPDATE admin_tokens SET last_used_at = $2 \
        WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
    LIST_TOKENS = concat!("SELECT ", columns!(), " FROM admin_tokens ORDER BY id");
    REVOKE_BY_ID = concat!("UPDATE admin_tokens SET revoked_at = $2 \
        WHERE id = $1 AND revoked_at IS NULL RETURNING ", columns!());
    REVOKE_BY_NAME = concat!("UPDATE admin_tokens SET revoked_at = $2 \
        WHERE name = $1 AND revoked_at IS NULL RETURNING ", columns!());
}

#[derive(sqlx::FromRow)]
struct TokenRecord {
    id: i64,
    name: String,
    scopes: String,
    created_at: i64,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TryFrom<TokenRecord> for AdminTokenRow {
    type Error = StoreError;

    fn try_from(r: TokenRecord) -> StoreResult<Self> {
        let scopes = r
            .scopes
            .split_whitespace()
            .map(|s| {
                SupportScope::parse(s)
                    .ok_or_else(|| StoreError::Internal(format!("unknown admin token scope {s:?}")))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(AdminTokenRow {
            id: r.id,
            name: r.name,
            scopes,
            created_at: UnixTime(r.created_at),
            revoked_at: r.revoked_at.map(UnixTime),
            last_used_at: r.last_used_at.map(UnixTime),
        })
    }
}

fn scopes_column(scopes: &[SupportScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[async_trait]
impl AdminTokenReads for SqlStore {
    async fn admin_token_by_hash(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<AdminTokenRow>> {
        let row: Option<TokenRecord> = sqlx::query_as(TOKEN_BY_HASH)
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(AdminTokenRow::try_from).transpose()
    }

    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRow>> {
        let rows: Vec<TokenRecord> = sqlx::query_as(LIST_TOKENS)
            .fetch_all(self.reads())
            .await
            .map_err(db_err)?;
        rows.into_iter().map(AdminTokenRow::try_from).collect()
    }
}

#[async_trait]
impl AdminTokenWrites for SqlWork {
    async fn create_admin_token(
        &mut self,
        new: NewAdminToken,
    ) -> Result<i64, CreateAdminTokenError> {
        let now = self.stamp();
        let inserted = sqlx::query_scalar(CREATE_TOKEN)
            .bind(new.name)
            .bind(new.token_hash.to_vec())
            .bind(scopes_column(&new.scopes))
            .bind(now)
            .fetch_one(self.conn().await?)
            .await;
        match inserted {
            Ok(id) => Ok(id),
            // The partial index on active names (`admin_tokens_active_name`, or
            // `admin_tokens.name` in SQLite's words).
            Err(e) if is_unique_violation(&e, "name") => Err(CreateAdminTokenError::NameTaken),
            Err(e) => Err(db_err(e).into()),
        }
    }

    async fn touch_admin_token(&mut self, id: i64) -> StoreResult<()> {
        let now = self.stamp();
        sqlx::query(TOUCH_TOKEN)
            .bind(id)
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_admin_token(
        &mut self,
        which: &AdminTokenRef,
    ) -> StoreResult<Option<AdminTokenRow>> {
        let now = self.stamp();
        let query = match which {
            AdminTokenRef::Id(id) => sqlx::query_as(REVOKE_BY_ID).bind(*id),
            AdminTokenRef::Name(name) => sqlx::query_as(REVOKE_BY_NAME).bind(name.as_str()),
        };
        let row: Option<TokenRecord> = query
            .bind(now)
            .fetch_optional(self.conn().await?)
            .await
            .map_err(db_err)?;
        row.map(AdminTokenRow::try_from).transpose()
    }
}
