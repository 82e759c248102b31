//! Admin tokens for the support console, held by the SHA-256 of the token. Scopes are one
//! `TEXT` column of space-separated names; a partial unique index keeps one active token per
//! name, so two racing creations for one agent leave one token.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{
    AdminTokenRef, AdminTokenRow, AdminTokenStore, CreateAdminTokenError, NewAdminToken,
    StoreError, StoreResult,
};
use portcullis_core::service::SupportScope;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::is_unique_violation;
use crate::{db_err, SqlStore};

const COLUMNS: &str = "id, name, scopes, created_at, revoked_at, last_used_at";

fn token_row(row: &AnyRow) -> StoreResult<AdminTokenRow> {
    let scopes: String = row.try_get("scopes").map_err(db_err)?;
    let scopes = scopes
        .split_whitespace()
        .map(|s| {
            SupportScope::parse(s)
                .ok_or_else(|| StoreError::Internal(format!("unknown admin token scope {s:?}")))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(AdminTokenRow {
        id: row.try_get("id").map_err(db_err)?,
        name: row.try_get("name").map_err(db_err)?,
        scopes,
        created_at: UnixTime(row.try_get("created_at").map_err(db_err)?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")
            .map_err(db_err)?
            .map(UnixTime),
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at")
            .map_err(db_err)?
            .map(UnixTime),
    })
}

fn scopes_column(scopes: &[SupportScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[async_trait]
impl AdminTokenStore for SqlStore {
    async fn create_admin_token(&self, new: NewAdminToken) -> Result<i64, CreateAdminTokenError> {
        let inserted = sqlx::query(
            "INSERT INTO admin_tokens (name, token_hash, scopes, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(new.name)
        .bind(new.token_hash.to_vec())
        .bind(scopes_column(&new.scopes))
        .bind(new.now.0)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(row) => Ok(row.try_get("id").map_err(db_err)?),
            // The partial index on active names (`admin_tokens_active_name`, or
            // `admin_tokens.name` in SQLite's words).
            Err(e) if is_unique_violation(&e, "name") => Err(CreateAdminTokenError::NameTaken),
            Err(e) => Err(db_err(e).into()),
        }
    }

    async fn admin_token_by_hash(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<AdminTokenRow>> {
        let sql = format!("SELECT {COLUMNS} FROM admin_tokens WHERE token_hash = $1");
        let row = sqlx::query(&sql)
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(token_row).transpose()
    }

    async fn touch_admin_token(&self, id: i64, now: UnixTime) -> StoreResult<()> {
        sqlx::query(
            "UPDATE admin_tokens SET last_used_at = $2 \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        )
        .bind(id)
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRow>> {
        let sql = format!("SELECT {COLUMNS} FROM admin_tokens ORDER BY id");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(token_row).collect()
    }

    async fn revoke_admin_token(
        &self,
        which: &AdminTokenRef,
        now: UnixTime,
    ) -> StoreResult<Option<AdminTokenRow>> {
        let query = match which {
            AdminTokenRef::Id(id) => sqlx::query(
                "UPDATE admin_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
                 RETURNING id, name, scopes, created_at, revoked_at, last_used_at",
            )
            .bind(*id),
            AdminTokenRef::Name(name) => sqlx::query(
                "UPDATE admin_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL \
                 RETURNING id, name, scopes, created_at, revoked_at, last_used_at",
            )
            .bind(name.as_str()),
        };
        let row = query
            .bind(now.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(token_row).transpose()
    }
}
