//! The sites and apps a person allowed on the consent page (OpenID Connect grants), and
//! withdrawing one: the client's next request shows the consent page again.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::Bearer;
use crate::client::Client;
use crate::error::{ApiError, Problem};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct OidcGrantOut {
    pub client_id: String,
    /// The client's registered name.
    pub client_name: String,
    /// The scopes allowed.
    pub scopes: Vec<String>,
    pub granted_at: String,
    pub updated_at: String,
}

/// The sites and apps (OpenID Connect clients not registered first-party) this account
/// allowed, newest first.
#[utoipa::path(get, path = "/me/oidc-grants", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<OidcGrantOut>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_grants(
    State(state): State<AppState>,
    Bearer(ctx): Bearer,
) -> Result<Json<Vec<OidcGrantOut>>, ApiError> {
    let grants = state.app.oidc_grants_of(&ctx).await?;
    Ok(Json(
        grants
            .into_iter()
            .map(|(g, name)| OidcGrantOut {
                scopes: g.scope.split(' ').map(str::to_owned).collect(),
                client_id: g.client_id,
                client_name: name,
                granted_at: g.created_at.to_rfc3339(),
                updated_at: g.updated_at.to_rfc3339(),
            })
            .collect(),
    ))
}

/// Withdraw the access given to one site or app (audited `oidc.grant_revoked`).
#[utoipa::path(delete, path = "/me/oidc-grants/{client_id}", tag = "account",
    security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id from GET /me/oidc-grants")),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_grant(
    State(state): State<AppState>,
    Bearer(ctx): Bearer,
    Client(client): Client,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if client_id.len() > 128 {
        return Err(ApiError::not_found());
    }
    if state
        .app
        .revoke_oidc_grant_of(&ctx, &client_id, &client)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}
