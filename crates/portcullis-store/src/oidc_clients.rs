//! Registered OpenID Connect clients, listed, added and revoked (see
//! `portcullis_core::ports::OidcClientWrites`). Revoking a client revokes every token issued
//! to it in the same transaction.

use crate::Db;
use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::oidc::OidcClient;
use portcullis_core::ports::{OidcClientRow, OidcClientWrites, StoreResult};

use crate::oidc::{client_columns, ClientRecord};
use crate::sql::statements;
use crate::{db_err, SqlWork};

statements! {
    LIST_CLIENTS = concat!("SELECT ", client_columns!(), ", created_at FROM oidc_clients ORDER BY id");
    CLIENT_ROW = concat!("SELECT ", client_columns!(), ", created_at FROM oidc_clients \
        WHERE client_id = $1");
    REVOKE_CLIENT = "UPDATE oidc_clients SET revoked_at = $2 \
        WHERE client_id = $1 AND revoked_at IS NULL";
    REVOKE_CLIENT_TOKENS = "UPDATE oidc_tokens SET revoked_at = $2 \
        WHERE client_id = $1 AND revoked_at IS NULL";
    /// A revoked client's keys fetched from its `jwks_uri` are of no further use.
    DROP_CLIENT_JWKS = "DELETE FROM oidc_jwks_cache WHERE client_id = $1";
}

#[derive(sqlx::FromRow)]
struct RowRecord {
    #[sqlx(flatten)]
    client: ClientRecord,
    created_at: i64,
}

fn row(r: RowRecord) -> StoreResult<OidcClientRow> {
    let revoked_at = r.client.revoked_at.map(UnixTime);
    Ok(OidcClientRow {
        client: OidcClient::try_from(r.client)?,
        created_at: UnixTime(r.created_at),
        revoked_at,
    })
}

pub(crate) async fn list(pool: &Db) -> StoreResult<Vec<OidcClientRow>> {
    let rows: Vec<RowRecord> = sqlx::query_as(LIST_CLIENTS)
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.into_iter().map(row).collect()
}

pub(crate) async fn one(pool: &Db, client_id: &str) -> StoreResult<Option<OidcClientRow>> {
    let found: Option<RowRecord> = sqlx::query_as(CLIENT_ROW)
        .bind(client_id.to_owned())
        .fetch_optional(pool)
        .await
        .map_err(db_err)?;
    found.map(row).transpose()
}

#[async_trait]
impl OidcClientWrites for SqlWork {
    async fn insert_oidc_client(&mut self, client: &OidcClient) -> StoreResult<bool> {
        let now = self.stamp();
        let query = crate::oidc::insert_client(client, now);
        let done = query.execute(self.conn().await?).await.map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_oidc_client(&mut self, client_id: &str) -> StoreResult<Option<u64>> {
        let now = self.stamp();
        let done = sqlx::query(REVOKE_CLIENT)
            .bind(client_id.to_owned())
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let tokens = sqlx::query(REVOKE_CLIENT_TOKENS)
            .bind(client_id.to_owned())
            .bind(now)
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        sqlx::query(DROP_CLIENT_JWKS)
            .bind(client_id.to_owned())
            .execute(self.conn().await?)
            .await
            .map_err(db_err)?;
        Ok(Some(tokens.rows_affected()))
    }
}
