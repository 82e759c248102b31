//! Flow 2 over JSON: sign in for a bearer token, and sign out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::service::{MfaChallenge, MfaMethod, SignInOutcome, SignInRequest, SignedIn};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, Bearer};
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
    /// Present (true) for an account migrated from the issuer's earlier login system with
    /// "must change password": send the person to `POST /me/password` before anything else.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub password_change_required: bool,
    /// Present (true) for an account migrated without security answers: ask the person to
    /// choose three (`PUT /me/security-answers`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub security_questions_required: bool,
}

impl SessionOut {
    pub(crate) fn from_signed_in(signed_in: SignedIn) -> Self {
        Self {
            session_token: signed_in.token.expose_secret().to_owned(),
            expires_at: signed_in.expires_at.to_rfc3339(),
            device_token: signed_in.device_token.map(|t| t.expose_secret().to_owned()),
            password_change_required: signed_in.password_change_required,
            security_questions_required: signed_in.security_questions_required,
        }
    }
}

/// One way to pass the second step.
#[derive(Serialize, ToSchema)]
pub struct MfaMethodOut {
    /// `totp`, `email`, `sms` or `recovery_code`.
    pub method: String,
    /// Where a code would go, masked (`email` and `sms` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// The password was right; a second step is needed before the session starts.
#[derive(Serialize, ToSchema)]
pub struct MfaRequiredOut {
    pub mfa_required: bool,
    /// For `POST /sessions/mfa/send` and `POST /sessions/mfa`; valid 10 minutes.
    pub challenge_token: String,
    /// The method names, e.g. `["totp","recovery_code"]`.
    pub methods: Vec<String>,
    /// The methods with where codes go.
    pub method_details: Vec<MfaMethodOut>,
    /// True when asked because this device is new to the account (no factor set up).
    pub new_device: bool,
    pub expires_at: String,
}

impl MfaRequiredOut {
    pub(crate) fn from_challenge(c: &MfaChallenge) -> Self {
        Self {
            mfa_required: true,
            challenge_token: c.token.expose_secret().to_owned(),
            methods: c.methods.iter().map(|m| m.as_str().to_owned()).collect(),
            method_details: c
                .methods
                .iter()
                .map(|m| MfaMethodOut {
                    method: m.as_str().to_owned(),
                    destination: match m {
                        MfaMethod::Email { destination } | MfaMethod::Sms { destination } => {
                            Some(destination.clone())
                        }
                        _ => None,
                    },
                })
                .collect(),
            new_device: c.step_up,
            expires_at: c.expires_at.to_rfc3339(),
        }
    }
}

/// Sign in.
///
/// Every failure (unknown User ID, wrong password, wrong account type) answers the same 401.
/// A locked account answers 423 only when the correct password is presented. When a second
/// factor is set up, or the device is new to the account, the answer is 200 with a
/// challenge for `POST /sessions/mfa`.
#[utoipa::path(post, path = "/sessions", tag = "sessions",
    request_body = SignInIn,
    responses(
        (status = 201, body = SessionOut),
        (status = 200, description = "A second step is needed", body = MfaRequiredOut),
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
) -> Result<Response, ApiError> {
    let outcome = state
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
        .await?;
    Ok(match outcome {
        SignInOutcome::SignedIn(signed_in) => (
            StatusCode::CREATED,
            Json(SessionOut::from_signed_in(signed_in)),
        )
            .into_response(),
        SignInOutcome::MfaRequired(challenge) => (
            StatusCode::OK,
            Json(MfaRequiredOut::from_challenge(&challenge)),
        )
            .into_response(),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaSendIn {
    pub challenge_token: String,
    /// `email` or `sms`, one of the challenge's methods.
    pub method: String,
}

#[derive(Serialize, ToSchema)]
pub struct MfaSentOut {
    /// Where the code went, masked.
    pub destination: String,
}

/// Send a code for a sign-in challenge by email or text (again at most once a minute).
#[utoipa::path(post, path = "/sessions/mfa/send", tag = "sessions",
    request_body = MfaSendIn,
    responses(
        (status = 202, body = MfaSentOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The challenge expired or was used", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn mfa_send(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<MfaSendIn>,
) -> Result<(StatusCode, Json<MfaSentOut>), ApiError> {
    let destination = state
        .app
        .send_mfa_code(&body.challenge_token, &body.method)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(MfaSentOut { destination })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaIn {
    pub challenge_token: String,
    /// `totp`, `email`, `sms` or `recovery_code`.
    pub method: String,
    /// The 6-digit code, or a recovery code (`abcde-fghjk`).
    pub code: String,
    /// Skip the second step on this device for 30 days (configurable).
    #[serde(default)]
    pub trust_device: bool,
}

/// The second step of sign-in: a code from the authenticator app, by email or text, or a
/// recovery code. Every wrong answer also counts towards the account's lock.
#[utoipa::path(post, path = "/sessions/mfa", tag = "sessions",
    request_body = MfaIn,
    responses(
        (status = 201, body = SessionOut),
        (status = 400, description = "Wrong code (`tries_left` says how many remain)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The challenge expired, was used or ran out of tries", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "The account was locked", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn mfa_verify(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<MfaIn>,
) -> Result<(StatusCode, Json<SessionOut>), ApiError> {
    let signed_in = state
        .app
        .verify_mfa(
            &body.challenge_token,
            &body.method,
            &body.code,
            body.trust_device,
            &client,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionOut::from_signed_in(signed_in)),
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
    state.app.sign_out(&ctx, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeIn {
    pub challenge_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyRequestOut {
    /// `{"publicKey": …}` for `navigator.credentials.get` (binary fields base64url).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// Options for a passkey as the second step of a sign-in challenge (then `POST /sessions/mfa`
/// with `method: "passkey"` and the credential, as JSON text, in `code`).
#[utoipa::path(post, path = "/sessions/mfa/passkey-options", tag = "sessions",
    request_body = ChallengeIn,
    responses(
        (status = 200, body = PasskeyRequestOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn mfa_passkey_options(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChallengeIn>,
) -> Result<Json<PasskeyRequestOut>, ApiError> {
    let options = state.app.mfa_passkey_options(&body.challenge_token).await?;
    Ok(Json(PasskeyRequestOut {
        options: serde_json::from_str(&options).unwrap_or_default(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct PasskeySignInOptionsOut {
    /// Names this sign-in for `POST /sessions/passkey` (5 minutes, used once).
    pub passkey_token: String,
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// Start a sign-in with a passkey alone (a discoverable credential: no User ID typed).
#[utoipa::path(post, path = "/sessions/passkey/options", tag = "sessions",
    responses(
        (status = 200, body = PasskeySignInOptionsOut),
        (status = 400, description = "Passkeys are not available at this address", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many from this client address", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn passkey_options(
    State(state): State<AppState>,
    Client(client): Client,
) -> Result<Json<PasskeySignInOptionsOut>, ApiError> {
    let o = state.app.passkey_sign_in_options(&client).await?;
    Ok(Json(PasskeySignInOptionsOut {
        passkey_token: o.token.expose_secret().to_owned(),
        options: serde_json::from_str(&o.options_json).unwrap_or_default(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeySignInIn {
    pub passkey_token: String,
    /// The `PublicKeyCredential` from `navigator.credentials.get`, binary fields base64url.
    #[schema(value_type = Object)]
    pub credential: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub device_token: Option<String>,
}

/// Sign in with a passkey alone. Every failure answers the same 401.
#[utoipa::path(post, path = "/sessions/passkey", tag = "sessions",
    request_body = PasskeySignInIn,
    responses(
        (status = 201, body = SessionOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        (status = 423, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn passkey_sign_in(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<PasskeySignInIn>,
) -> Result<(StatusCode, Json<SessionOut>), ApiError> {
    let signed_in = state
        .app
        .passkey_sign_in(
            &body.passkey_token,
            &serde_json::Value::Object(body.credential).to_string(),
            body.device_token.as_deref(),
            &client,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionOut::from_signed_in(signed_in)),
    ))
}
