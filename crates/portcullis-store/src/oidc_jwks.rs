//! The key sets fetched from clients' `jwks_uri`s (see
//! `portcullis_core::ports::OidcJwksCache`): one row per client, shared by every node. The
//! fetch claim is one conditional upsert, so of any number of concurrent requests on any
//! number of nodes only one per interval fetches.

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::ports::{CachedJwks, JwksCacheRow, OidcJwksCache, StoreError, StoreResult};
use serde_json::Value;

use crate::sql::statements;
use crate::{db_err, SqlStore};

statements! {
    CACHED_JWKS = "SELECT attempted_at, jwks, fetched_at FROM oidc_jwks_cache \
        WHERE client_id = $1";
    CLAIM_JWKS_FETCH = "INSERT INTO oidc_jwks_cache (client_id, attempted_at) VALUES ($1, $2) \
        ON CONFLICT (client_id) DO UPDATE SET attempted_at = excluded.attempted_at \
        WHERE oidc_jwks_cache.attempted_at <= $3";
    /// A set is never replaced by one fetched earlier (a slow fetch finishing late).
    SAVE_JWKS = "UPDATE oidc_jwks_cache SET jwks = $2, fetched_at = $3 \
        WHERE client_id = $1 AND (fetched_at IS NULL OR fetched_at <= $3)";
}

#[derive(sqlx::FromRow)]
struct CachedRecord {
    attempted_at: i64,
    jwks: Option<String>,
    fetched_at: Option<i64>,
}

#[async_trait]
impl OidcJwksCache for SqlStore {
    async fn oidc_jwks_cached(&self, client_id: &str) -> StoreResult<Option<JwksCacheRow>> {
        let row: Option<CachedRecord> = sqlx::query_as(CACHED_JWKS)
            .bind(client_id.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| {
            let set = match (r.jwks, r.fetched_at) {
                (Some(jwks), Some(fetched_at)) => Some(CachedJwks {
                    jwks: serde_json::from_str(&jwks)
                        .map_err(|_| StoreError::Internal("oidc: unreadable cached JWKS".into()))?,
                    fetched_at: UnixTime(fetched_at),
                }),
                _ => None,
            };
            Ok(JwksCacheRow {
                attempted_at: UnixTime(r.attempted_at),
                set,
            })
        })
        .transpose()
    }

    async fn claim_oidc_jwks_fetch(
        &self,
        client_id: &str,
        now: UnixTime,
        not_since: UnixTime,
    ) -> StoreResult<bool> {
        let done = sqlx::query(CLAIM_JWKS_FETCH)
            .bind(client_id.to_owned())
            .bind(now.0)
            .bind(not_since.0)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn save_oidc_jwks(
        &self,
        client_id: &str,
        jwks: &Value,
        fetched_at: UnixTime,
    ) -> StoreResult<()> {
        sqlx::query(SAVE_JWKS)
            .bind(client_id.to_owned())
            .bind(jwks.to_string())
            .bind(fetched_at.0)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
