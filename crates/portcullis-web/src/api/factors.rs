//! Flow 6 over JSON: second factors, recovery codes, trusted devices, re-authentication and
//! the "This was not me" link. Adding or removing a factor needs the password entered
//! within the last 5 minutes (at sign-in, or with `POST /me/reauthenticate`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, Bearer};
use crate::client::Client;
use crate::error::{ApiError, Problem};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReauthIn {
    pub password: String,
}

/// Enter the password again, so sign-in settings can be changed for the next 5 minutes.
#[utoipa::path(post, path = "/me/reauthenticate", tag = "factors",
    security(("bearer" = [])),
    request_body = ReauthIn,
    responses(
        (status = 204, description = "Accepted"),
        (status = 400, description = "Wrong password (counts towards the lock)", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 423, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reauthenticate(
    State(state): State<AppState>,
    Client(client): Client,
    Bearer(ctx): Bearer,
    ApiJson(body): ApiJson<ReauthIn>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .reauthenticate(&ctx, &body.password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct FactorOut {
    pub id: i64,
    /// `totp`, `email` or `sms`.
    pub kind: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TrustedDeviceOut {
    pub id: i64,
    pub device: String,
    pub trusted_until: String,
    pub last_seen_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct FactorsOut {
    pub factors: Vec<FactorOut>,
    pub recovery_codes_left: i64,
    pub trusted_devices: Vec<TrustedDeviceOut>,
    /// Whether factors can be changed now without entering the password again.
    pub recently_authenticated: bool,
}

/// The account's second factors, recovery codes left and trusted devices.
#[utoipa::path(get, path = "/me/factors", tag = "factors",
    security(("bearer" = [])),
    responses(
        (status = 200, body = FactorsOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_factors(
    State(state): State<AppState>,
    Bearer(ctx): Bearer,
) -> Result<Json<FactorsOut>, ApiError> {
    let s = state.app.security_settings(&ctx).await?;
    Ok(Json(FactorsOut {
        factors: s
            .factors
            .into_iter()
            .map(|f| FactorOut {
                id: f.id,
                kind: f.kind.as_str().to_owned(),
                name: f.name,
                created_at: f.created_at.to_rfc3339(),
                last_used_at: f.last_used_at.map(|t| t.to_rfc3339()),
            })
            .collect(),
        recovery_codes_left: s.recovery_codes_left,
        trusted_devices: s
            .trusted_devices
            .into_iter()
            .map(|d| TrustedDeviceOut {
                id: d.id,
                device: d.description,
                trusted_until: d.trusted_until.to_rfc3339(),
                last_seen_at: d.last_seen_at.to_rfc3339(),
            })
            .collect(),
        recently_authenticated: s.recently_authenticated,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct TotpOut {
    /// Base32, for typing into the app.
    pub secret: String,
    pub otpauth_uri: String,
}

/// Start setting up an authenticator app; it is active after `POST /me/factors/totp/confirm`.
#[utoipa::path(post, path = "/me/factors/totp", tag = "factors",
    security(("bearer" = [])),
    responses(
        (status = 201, body = TotpOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication-required`: enter the password again first; `account-read-only`: every card of the account is closed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn begin_totp(
    State(state): State<AppState>,
    Bearer(ctx): Bearer,
) -> Result<(StatusCode, Json<TotpOut>), ApiError> {
    let e = state.app.begin_totp(&ctx).await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpOut {
            secret: e.secret.expose_secret().to_owned(),
            otpauth_uri: e.otpauth_uri.expose_secret().to_owned(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeIn {
    pub code: String,
}

/// Activate the authenticator app with the code it shows now.
#[utoipa::path(post, path = "/me/factors/totp/confirm", tag = "factors",
    security(("bearer" = [])),
    request_body = CodeIn,
    responses(
        (status = 204, description = "Active"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication-required`, or `account-read-only` (every card of the account is closed)", body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    Client(client): Client,
    Bearer(ctx): Bearer,
    ApiJson(body): ApiJson<CodeIn>,
) -> Result<StatusCode, ApiError> {
    state.app.confirm_totp(&ctx, &body.code, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeFactorIn {
    /// `email` or `sms`.
    pub channel: String,
}

/// Turn on codes by email or text message as a second factor.
#[utoipa::path(post, path = "/me/factors/code", tag = "factors",
    security(("bearer" = [])),
    request_body = CodeFactorIn,
    responses(
        (status = 204, description = "On"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication-required`, or `account-read-only` (every card of the account is closed)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn enable_code_factor(
    State(state): State<AppState>,
    Client(client): Client,
    Bearer(ctx): Bearer,
    ApiJson(body): ApiJson<CodeFactorIn>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .enable_code_factor(&ctx, &body.channel, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a second factor.
#[utoipa::path(delete, path = "/me/factors/{id}", tag = "factors",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The factor's id from GET /me/factors")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication-required`, or `account-read-only` (every card of the account is closed)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_factor(
    State(state): State<AppState>,
    Client(client): Client,
    Bearer(ctx): Bearer,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // A malformed id names nothing: 404, like an id of another account's.
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    state.app.remove_factor(&ctx, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesOut {
    /// Ten single-use codes, shown this once. Earlier codes no longer work.
    pub codes: Vec<String>,
}

/// Make ten new recovery codes (replacing earlier ones).
#[utoipa::path(post, path = "/me/factors/recovery-codes", tag = "factors",
    security(("bearer" = [])),
    responses(
        (status = 201, body = RecoveryCodesOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication-required`, or `account-read-only` (every card of the account is closed)", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn recovery_codes(
    State(state): State<AppState>,
    Client(client): Client,
    Bearer(ctx): Bearer,
) -> Result<(StatusCode, Json<RecoveryCodesOut>), ApiError> {
    let codes = state.app.issue_recovery_codes(&ctx, &client).await?;
    Ok((
        StatusCode::CREATED,
        Json(RecoveryCodesOut {
            codes: codes.iter().map(|c| c.expose_secret().to_owned()).collect(),
        }),
    ))
}

/// Stop trusting a device (it will be asked for the second step again).
#[utoipa::path(delete, path = "/me/devices/{id}/trust", tag = "factors",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The device's id from GET /me/factors")),
    responses(
        (status = 204, description = "No longer trusted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn untrust_device(
    State(state): State<AppState>,
    Client(client): Client,
    Bearer(ctx): Bearer,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // A malformed id names nothing: 404, like an id of another account's.
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    state.app.untrust_device(&ctx, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotMeIn {
    /// The token from the link in the new-device message.
    pub token: String,
}

/// "This was not me": the account is treated as compromised. Every session ends, every
/// device (and device trust) is forgotten, every second factor, passkey and recovery code
/// added since the disputed sign-in is removed, the account is locked and its password is
/// refused from then on (423 to it): the only way back is a new password, set through
/// `/recovery/password/*` (card ID + code) or by support.
#[utoipa::path(post, path = "/not-me", tag = "factors",
    request_body = NotMeIn,
    responses(
        (status = 204, description = "Every session ended, devices and new factors removed; the account is locked until a new password is set"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The link expired or was used", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn not_me(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<NotMeIn>,
) -> Result<StatusCode, ApiError> {
    state.app.not_me(&body.token, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyRegistrationOut {
    /// Names this registration for `POST /me/factors/passkeys` (5 minutes, used once).
    pub registration_token: String,
    /// `{"publicKey": …}` for `navigator.credentials.create` (binary fields base64url).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// Start adding a passkey (needs the password within the last 5 minutes).
#[utoipa::path(post, path = "/me/factors/passkeys/options", tag = "factors",
    security(("bearer" = [])),
    responses(
        (status = 200, body = PasskeyRegistrationOut),
        (status = 400, description = "Passkeys are not available at this address", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication-required`, or `account-read-only` (every card of the account is closed)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn passkey_options(
    State(state): State<AppState>,
    Bearer(ctx): Bearer,
) -> Result<Json<PasskeyRegistrationOut>, ApiError> {
    let o = state.app.begin_passkey(&ctx).await?;
    Ok(Json(PasskeyRegistrationOut {
        registration_token: o.token.expose_secret().to_owned(),
        options: serde_json::from_str(&o.options_json).unwrap_or_default(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyIn {
    pub registration_token: String,
    /// The `PublicKeyCredential` from `navigator.credentials.create`, binary fields base64url.
    #[schema(value_type = Object)]
    pub credential: serde_json::Map<String, serde_json::Value>,
    /// A name to tell it apart ("My phone"); up to 60 characters.
    #[serde(default)]
    pub name: String,
}

/// Finish adding a passkey.
#[utoipa::path(post, path = "/me/factors/passkeys", tag = "factors",
    security(("bearer" = [])),
    request_body = PasskeyIn,
    responses(
        (status = 201, description = "Added"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication-required`, or `account-read-only` (every card of the account is closed)", body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_passkey(
    State(state): State<AppState>,
    Client(client): Client,
    Bearer(ctx): Bearer,
    ApiJson(body): ApiJson<PasskeyIn>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .finish_passkey(
            &ctx,
            &body.registration_token,
            &serde_json::Value::Object(body.credential).to_string(),
            &body.name,
            &client,
        )
        .await?;
    Ok(StatusCode::CREATED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameIn {
    pub name: String,
}

/// Rename a factor (a passkey: "Work laptop").
#[utoipa::path(post, path = "/me/factors/{id}/name", tag = "factors",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The factor's id from GET /me/factors")),
    request_body = NameIn,
    responses(
        (status = 204, description = "Renamed"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rename_factor(
    State(state): State<AppState>,
    Bearer(ctx): Bearer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NameIn>,
) -> Result<StatusCode, ApiError> {
    // A malformed id names nothing: 404, like an id of another account's.
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    state.app.rename_factor(&ctx, id, &body.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
