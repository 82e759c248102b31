//! Flow 9 and 8 over JSON: the account summary and the sessions list.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::money::Money;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{service_error, Bearer};
use crate::error::{ApiError, Problem};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct CardOut {
    pub last4: String,
    pub product: String,
    /// Decimal strings, e.g. "1234.56"; null when the issuer holds no figure.
    pub balance: Option<String>,
    pub credit_limit: Option<String>,
    /// YYYY-MM-DD
    pub payment_due_date: Option<String>,
    pub minimum_due: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MeOut {
    pub user_id: String,
    pub account_type: String,
    pub cards: Vec<CardOut>,
}

fn money(m: Option<i64>) -> Option<String> {
    m.map(|c| Money(c).to_string())
}

/// The signed-in person's account summary.
#[utoipa::path(get, path = "/me", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, body = MeOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn me(
    State(state): State<AppState>,
    Bearer(ctx): Bearer,
) -> Result<Json<MeOut>, ApiError> {
    let home = state
        .app
        .account_home(&ctx)
        .await
        .map_err(|e| service_error(&state, e))?;
    Ok(Json(MeOut {
        user_id: home.user_id,
        account_type: home.account_type.as_str().to_owned(),
        cards: home
            .cards
            .into_iter()
            .map(|c| CardOut {
                last4: c.last4,
                product: c.product,
                balance: money(c.balance),
                credit_limit: money(c.credit_limit),
                payment_due_date: c.payment_due_date,
                minimum_due: money(c.minimum_due),
            })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SessionInfoOut {
    pub id: i64,
    pub created_at: String,
    pub last_seen_at: String,
    pub user_agent: Option<String>,
    /// The client address the session was started from.
    pub client_ip: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// The account's active sessions.
#[utoipa::path(get, path = "/me/sessions", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<SessionInfoOut>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    Bearer(ctx): Bearer,
) -> Result<Json<Vec<SessionInfoOut>>, ApiError> {
    let sessions = state
        .app
        .sessions(&ctx)
        .await
        .map_err(|e| service_error(&state, e))?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionInfoOut {
                id: s.id,
                created_at: s.created_at.to_rfc3339(),
                last_seen_at: s.last_seen_at.to_rfc3339(),
                user_agent: s.user_agent,
                client_ip: s.client_ip,
                current: s.current,
            })
            .collect(),
    ))
}

/// End one of the account's sessions.
#[utoipa::path(delete, path = "/me/sessions/{id}", tag = "account",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The session's id from GET /me/sessions")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_session(
    State(state): State<AppState>,
    Bearer(ctx): Bearer,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let ended = state
        .app
        .end_session(&ctx, id)
        .await
        .map_err(|e| service_error(&state, e))?;
    if ended {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordIn {
    pub current_password: String,
    pub new_password: String,
}

/// Change the password. Every other session ends and the owner is notified.
#[utoipa::path(post, path = "/me/password", tag = "account",
    security(("bearer" = [])),
    request_body = ChangePasswordIn,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    crate::client::Client(client): crate::client::Client,
    Bearer(ctx): Bearer,
    super::extract::ApiJson(body): super::extract::ApiJson<ChangePasswordIn>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .change_password(&ctx, &body.current_password, &body.new_password, &client)
        .await
        .map_err(|e| service_error(&state, e))?;
    Ok(StatusCode::NO_CONTENT)
}
