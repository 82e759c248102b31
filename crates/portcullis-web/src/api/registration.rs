//! Flow 1 over JSON: the security questions, card verification, and account creation.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::security_questions::QUESTIONS;
use portcullis_core::service::{Keyed, Registration};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{idempotency_key, ApiJson};
use crate::client::Client;
use crate::error::{ApiError, Problem};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct QuestionOut {
    pub id: i64,
    pub text: String,
}

/// The security questions a person may choose from.
#[utoipa::path(get, path = "/security-questions", tag = "registration",
    responses((status = 200, body = Vec<QuestionOut>)))]
pub async fn security_questions() -> Json<Vec<QuestionOut>> {
    Json(
        QUESTIONS
            .iter()
            .map(|q| QuestionOut {
                id: q.id,
                text: q.text.to_owned(),
            })
            .collect(),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyCardIn {
    /// `personal`, `merchant` or `corporate`.
    pub account_type: String,
    /// Card number (13–19 digits) or merchant number.
    pub number: String,
    /// Card ID (3 or 4 digits) or merchant verification code.
    pub verification: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyCardOut {
    /// Carries the verified card into step 2; valid for 20 minutes, single use.
    pub registration_token: String,
    pub account_type: String,
    /// The channels the registry holds for this card: `email`, `sms`.
    pub code_channels: Vec<String>,
    /// True when the card backs an online account deactivated after inactivity: step 2
    /// brings that account back (with the User ID, password and answers chosen there).
    pub reactivation: bool,
}

/// Step 1: prove you hold the card.
#[utoipa::path(post, path = "/registration/verify-card", tag = "registration",
    request_body = VerifyCardIn,
    responses(
        (status = 200, body = VerifyCardOut),
        (status = 400, description = "`card-not-recognised`: the same answer for a wrong card ID, an unknown card, and a right card ID that cannot be used (the card already has an online account, another account type, or the card is paused after too many wrong card IDs); the holder of a real card is told at the registry's email or phone", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify_card(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<VerifyCardIn>,
) -> Result<Json<VerifyCardOut>, ApiError> {
    let verified = state
        .app
        .verify_card(
            &body.account_type,
            &body.number,
            &body.verification,
            &client,
        )
        .await?;
    let mut code_channels = Vec::new();
    if verified.has_email {
        code_channels.push("email".to_owned());
    }
    if verified.has_phone {
        code_channels.push("sms".to_owned());
    }
    Ok(Json(VerifyCardOut {
        registration_token: verified.token.expose_secret().to_owned(),
        account_type: verified.account_type.as_str().to_owned(),
        code_channels,
        reactivation: verified.reactivation,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerIn {
    pub question_id: i64,
    pub answer: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteIn {
    pub registration_token: String,
    /// 6–32 letters, digits, `.` `_` `-` `@`; case-insensitive.
    pub user_id: String,
    pub password: String,
    /// Three answers to three different questions.
    pub security_answers: Vec<AnswerIn>,
    /// `email` or `sms`.
    pub code_channel: String,
}

#[derive(Serialize, ToSchema)]
pub struct CompleteOut {
    pub user_id: String,
}

/// Step 2: choose a User ID, a password and security questions. With an
/// `Idempotency-Key` header (1 to 200 visible ASCII characters), a retry of the same request
/// (after a lost answer) gets the first answer again, `Idempotent-Replayed: true`, without
/// being applied again; the same key with another request is 422. Keys are kept a day.
/// Every call, a replay too, counts on the client address's limit first (429).
#[utoipa::path(post, path = "/registration/complete", tag = "registration",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes a retried completion apply once (kept a day with a hash of the request)")),
    request_body = CompleteIn,
    responses(
        (status = 201, description = "The account was made (by this request, or by the first with this Idempotency-Key: then `Idempotent-Replayed: true`)", body = CompleteOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "User ID taken, or the card already has an account", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The registration token expired or was used", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The Idempotency-Key was used with another request", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many from this client address (replays of an Idempotency-Key count too)", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn complete(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CompleteIn>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers).map_err(ApiError::bad_request)?;
    let answers: Vec<(i64, String)> = body
        .security_answers
        .into_iter()
        .map(|a| (a.question_id, a.answer))
        .collect();
    let input = Registration {
        token: &body.registration_token,
        user_id: &body.user_id,
        password: &body.password,
        security_answers: &answers,
        code_channel: &body.code_channel,
    };
    let (user_id, replayed) = match key {
        None => (
            state.app.complete_registration(input, &client).await?,
            false,
        ),
        Some(key) => match state
            .app
            .complete_registration_keyed(input, &client, &key)
            .await?
        {
            Keyed::Applied(user_id) => (user_id, false),
            Keyed::Replayed(user_id) => (user_id, true),
            Keyed::KeyConflict => return Err(ApiError::idempotency_key_reused()),
        },
    };
    let mut response = (
        StatusCode::CREATED,
        Json(CompleteOut {
            user_id: user_id.as_str().to_owned(),
        }),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}
