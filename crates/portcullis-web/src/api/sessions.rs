//! Flow 2 over JSON: sign in for a bearer token, and sign out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::service::SignInRequest;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{service_error, ApiJson, Bearer};
use crate::client::Client;
use crate::error::{ApiError, Problem};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInIn {
    pub user_id: String,
    pub password: String,
    /// `personal`, `merchant` or `corporate`.
    pub account_type: String,
    /// Remembers the User ID on this device (pages only; accepted and ignored by the API).
    #[serde(default)]
    pub remember_me: bool,
    /// The device token from an earlier successful sign-in on this device: failures from
    /// other devices then do not lock this one out.
    #[serde(default)]
    pub device_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    /// The bearer token. Keep it in memory or the platform's secure storage.
    pub session_token: String,
    /// When the session ends if unused (RFC 3339); activity extends it up to 12 hours.
    pub expires_at: String,
    /// Given when this device was new to the account: keep it (secure storage) and send it
    /// with later sign-ins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

/// Sign in.
///
/// Every failure (unknown User ID, wrong password, wrong account type) answers the same 401.
/// A locked account answers 423 only when the correct password is presented.
#[utoipa::path(post, path = "/sessions", tag = "sessions",
    request_body = SignInIn,
    responses(
        (status = 201, body = SessionOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Sign-in failed (one answer for every cause)", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "Locked; only for the correct password", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_session(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<SignInIn>,
) -> Result<(StatusCode, Json<SessionOut>), ApiError> {
    let signed_in = state
        .app
        .sign_in(
            SignInRequest {
                user_id: &body.user_id,
                password: &body.password,
                account_type: &body.account_type,
                device_token: body.device_token.as_deref(),
            },
            &client,
        )
        .await
        .map_err(|e| service_error(&state, e))?;
    Ok((
        StatusCode::CREATED,
        Json(SessionOut {
            session_token: signed_in.token.expose_secret().to_owned(),
            expires_at: signed_in.expires_at.to_rfc3339(),
            device_token: signed_in.device_token.map(|t| t.expose_secret().to_owned()),
        }),
    ))
}

/// Sign out: ends this session on the server.
#[utoipa::path(delete, path = "/sessions/current", tag = "sessions",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_current(
    State(state): State<AppState>,
    Client(client): Client,
    Bearer(ctx): Bearer,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .sign_out(&ctx, &client)
        .await
        .map_err(|e| service_error(&state, e))?;
    Ok(StatusCode::NO_CONTENT)
}
