//! Flows 3–5 over JSON: forgot password (which also unlocks with card ID + code) and
//! forgot User ID.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::service::Proof;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::ApiJson;
use super::registration::QuestionOut;
use crate::client::Client;
use crate::error::{ApiError, Problem};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartIn {
    pub user_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct StartOut {
    pub recovery_token: String,
    /// `card_id`, and `security_questions` unless the issuer switched them off.
    pub methods: Vec<String>,
    pub questions: Vec<QuestionOut>,
}

/// Forgot password, step 1. The answer is the same for an unknown User ID.
#[utoipa::path(post, path = "/recovery/password/start", tag = "recovery",
    request_body = StartIn,
    responses(
        (status = 200, body = StartOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many from this client address", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn password_start(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<StartIn>,
) -> Result<Json<StartOut>, ApiError> {
    let start = crate::pace::at_least(
        crate::pace::RECOVERY_FLOOR,
        state.app.start_password_recovery(&body.user_id, &client),
    )
    .await?;
    Ok(Json(StartOut {
        recovery_token: start.token.expose_secret().to_owned(),
        methods: start.methods.iter().map(|m| (*m).to_owned()).collect(),
        questions: start
            .questions
            .iter()
            .map(|q| QuestionOut {
                id: q.id,
                text: q.text.to_owned(),
            })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerIn {
    pub question_id: i64,
    pub answer: String,
}

/// One of three shapes: `{recovery_token, card_id}`, `{recovery_token, security_answers}`,
/// or (after either) `{recovery_token, code}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyIn {
    pub recovery_token: String,
    #[serde(default)]
    pub card_id: Option<String>,
    #[serde(default)]
    pub security_answers: Option<Vec<AnswerIn>>,
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyOut {
    /// Present after card ID or answers: a code went to the registered channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_required: Option<bool>,
    /// `email` or `sms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Where, masked: `a•••@example.com`, `•••• 0100`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Present after the code: carries the person to the new password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_token: Option<String>,
    /// After card ID + code: the account was locked and is now unlocked (its password
    /// works again). Never after "This was not me": see `new_password_required`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unlocked: Option<bool>,
    /// Present after the code: true when the account's password is marked compromised
    /// ("This was not me"). The account stays locked and the old password stays refused
    /// until `POST /recovery/password/reset` sets a new one (which may not be the old one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_password_required: Option<bool>,
}

/// Forgot password, steps 2 and 3: prove it is you, then enter the code.
#[utoipa::path(post, path = "/recovery/password/verify", tag = "recovery",
    request_body = VerifyIn,
    responses(
        (status = 200, body = VerifyOut),
        (status = 400, description = "Bad input, details not recognised, or a wrong code", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The step or the code expired", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn password_verify(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<VerifyIn>,
) -> Result<Json<VerifyOut>, ApiError> {
    let shapes = [
        body.card_id.is_some(),
        body.security_answers.is_some(),
        body.code.is_some(),
    ];
    if shapes.iter().filter(|s| **s).count() != 1 {
        return Err(ApiError::bad_request(
            "Send exactly one of card_id, security_answers or code with the recovery_token.",
        ));
    }
    if let Some(code) = &body.code {
        let accepted = state
            .app
            .verify_recovery_code(&body.recovery_token, code, &client)
            .await?;
        return Ok(Json(VerifyOut {
            code_required: None,
            channel: None,
            destination: None,
            reset_token: Some(accepted.reset_token.expose_secret().to_owned()),
            unlocked: Some(accepted.unlocked),
            new_password_required: Some(accepted.new_password_required),
        }));
    }
    let answers: Vec<(i64, String)> = body
        .security_answers
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.question_id, a.answer))
        .collect();
    let proof = match &body.card_id {
        Some(c) => Proof::CardId(c),
        None => Proof::Answers(&answers),
    };
    let sent = state
        .app
        .verify_recovery(&body.recovery_token, proof, &client)
        .await?;
    Ok(Json(VerifyOut {
        code_required: Some(true),
        channel: Some(sent.channel.as_str().to_owned()),
        destination: Some(sent.destination),
        reset_token: None,
        unlocked: None,
        new_password_required: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendIn {
    pub recovery_token: String,
}

/// Send the code again (at most once a minute, five times in all).
#[utoipa::path(post, path = "/recovery/password/resend", tag = "recovery",
    request_body = ResendIn,
    responses(
        (status = 202, description = "A new code is on its way"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn password_resend(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResendIn>,
) -> Result<StatusCode, ApiError> {
    crate::pace::at_least(
        crate::pace::RECOVERY_FLOOR,
        state.app.resend_recovery_code(&body.recovery_token, false),
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetIn {
    pub reset_token: String,
    pub new_password: String,
}

/// Forgot password, step 4: the new password. Every session ends; the owner is told.
#[utoipa::path(post, path = "/recovery/password/reset", tag = "recovery",
    request_body = ResetIn,
    responses(
        (status = 204, description = "Password changed"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn password_reset(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<ResetIn>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .reset_password(&body.reset_token, &body.new_password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIdStartIn {
    pub email: String,
    /// `email` or `sms`: where the code should go (the phone on file for `sms`).
    pub channel: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserIdStartOut {
    pub recovery_token: String,
}

/// Forgot User ID, step 1: the same answer whether or not the address is known.
#[utoipa::path(post, path = "/recovery/user-id/start", tag = "recovery",
    request_body = UserIdStartIn,
    responses(
        (status = 202, body = UserIdStartOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn user_id_start(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<UserIdStartIn>,
) -> Result<(StatusCode, Json<UserIdStartOut>), ApiError> {
    let token = crate::pace::at_least(
        crate::pace::RECOVERY_FLOOR,
        state
            .app
            .start_user_id_recovery(&body.email, &body.channel, &client),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(UserIdStartOut {
            recovery_token: token.expose_secret().to_owned(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIdVerifyIn {
    pub recovery_token: String,
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserIdVerifyOut {
    /// The (first) User ID registered with the address.
    pub user_id: String,
    /// Every User ID registered with the address (a person may have several account types).
    pub user_ids: Vec<String>,
}

/// Forgot User ID, step 2: the code shows the User ID.
#[utoipa::path(post, path = "/recovery/user-id/verify", tag = "recovery",
    request_body = UserIdVerifyIn,
    responses(
        (status = 200, body = UserIdVerifyOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn user_id_verify(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<UserIdVerifyIn>,
) -> Result<Json<UserIdVerifyOut>, ApiError> {
    let user_ids = crate::pace::at_least(
        crate::pace::RECOVERY_FLOOR,
        state
            .app
            .verify_user_id_code(&body.recovery_token, &body.code, &client),
    )
    .await?;
    let user_id = user_ids.first().cloned().unwrap_or_default();
    Ok(Json(UserIdVerifyOut { user_id, user_ids }))
}

/// Send the User ID code again.
#[utoipa::path(post, path = "/recovery/user-id/resend", tag = "recovery",
    request_body = ResendIn,
    responses(
        (status = 202, description = "A new code is on its way"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn user_id_resend(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResendIn>,
) -> Result<StatusCode, ApiError> {
    crate::pace::at_least(
        crate::pace::RECOVERY_FLOOR,
        state.app.resend_recovery_code(&body.recovery_token, true),
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardStartIn {
    /// `personal`, `merchant` or `corporate`.
    pub account_type: String,
    /// The card number (or the merchant number).
    pub number: String,
}

#[derive(Serialize, ToSchema)]
pub struct CardStartOut {
    /// Carries the way back to `POST /recovery/card/verify` (10 minutes, the code's life).
    pub recovery_token: String,
}

/// A paused card's way back, step 1. A card whose card ID was guessed wrong too often takes
/// no card ID online; its holder gets it back here: a one-time code goes to the email (or
/// phone) the card issuer has on file for the card. The answer is the same for any number —
/// unknown, not paused, or paused — and only a paused card's holder is sent a code.
#[utoipa::path(post, path = "/recovery/card/start", tag = "recovery",
    request_body = CardStartIn,
    responses(
        (status = 202, body = CardStartOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many from this client address", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn card_start(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<CardStartIn>,
) -> Result<(StatusCode, Json<CardStartOut>), ApiError> {
    let token = crate::pace::at_least(
        crate::pace::RECOVERY_FLOOR,
        state
            .app
            .start_card_unpause(&body.account_type, &body.number, &client),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CardStartOut {
            recovery_token: token.expose_secret().to_owned(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardVerifyIn {
    pub recovery_token: String,
    /// The code sent to the card's email or phone on file.
    pub code: String,
    /// The card ID (or the merchant verification code).
    pub verification: String,
}

/// A paused card's way back, step 2: the code and the card ID. On success the card accepts
/// its card ID online again (registration, linking, forgot password) and its holder is told.
/// One card ID per code; a wrong one answers `card-not-recognised` and counts on the card.
#[utoipa::path(post, path = "/recovery/card/verify", tag = "recovery",
    request_body = CardVerifyIn,
    responses(
        (status = 204, description = "The card accepts its card ID online again"),
        (status = 400, description = "Bad input, a wrong code, or the card ID not recognised", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The step or the code expired, or the code was used", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn card_verify(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<CardVerifyIn>,
) -> Result<StatusCode, ApiError> {
    crate::pace::at_least(
        crate::pace::RECOVERY_FLOOR,
        state.app.finish_card_unpause(
            &body.recovery_token,
            &body.code,
            &body.verification,
            &client,
        ),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
