//! Flow 9 and 8 over JSON: the account summary and the sessions list.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::money::Money;
use portcullis_core::ports::{CardSummary, Unlink};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Bearer, BearerToken};
use crate::error::{ApiError, Problem};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct CardOut {
    /// Names the card for `DELETE /me/cards/{id}`.
    pub id: i64,
    pub last4: String,
    pub product: String,
    /// Decimal strings, e.g. "1234.56"; null when the issuer holds no figure.
    pub balance: Option<String>,
    pub credit_limit: Option<String>,
    /// YYYY-MM-DD
    pub payment_due_date: Option<String>,
    pub minimum_due: Option<String>,
    /// The card's status at the issuer: `active`, `blocked`, `lost_stolen` or `closed`.
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct MeOut {
    pub user_id: String,
    /// The holder's name from the issuer's registry (a merchant's trading name), for a
    /// greeting; null when no card is linked.
    pub holder_name: Option<String>,
    pub account_type: String,
    /// Where messages go (changed through `POST /me/contact`).
    pub email: Option<String>,
    pub phone: Option<String>,
    pub cards: Vec<CardOut>,
    /// Every card is closed: the account keeps its statements readable for
    /// `cards.closed_read_only_days`, then is deactivated.
    pub read_only: bool,
}

fn money(m: Option<i64>) -> Option<String> {
    m.map(|c| Money(c).to_string())
}

fn card_out(c: CardSummary) -> CardOut {
    CardOut {
        id: c.id,
        last4: c.last4,
        product: c.product,
        balance: money(c.balance),
        credit_limit: money(c.credit_limit),
        payment_due_date: c.payment_due_date,
        minimum_due: money(c.minimum_due),
        status: c.status,
    }
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
    BearerToken(token): BearerToken,
) -> Result<Json<MeOut>, ApiError> {
    // The session, the account and its cards in one read (what the `Bearer` extractor and
    // `account_home` would read in two).
    let (_ctx, home) = state.app.authenticated_home(token.expose_secret()).await?;
    Ok(Json(MeOut {
        user_id: home.user_id,
        holder_name: home.holder_name,
        account_type: home.account_type.as_str().to_owned(),
        email: home.email,
        phone: home.phone,
        read_only: !home.cards.is_empty() && home.cards.iter().all(|c| c.status == "closed"),
        cards: home.cards.into_iter().map(card_out).collect(),
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
    let sessions = state.app.sessions(&ctx).await?;
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
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // A malformed id names nothing: 404, like an id of another account's.
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let ended = state.app.end_session(&ctx, id).await?;
    if ended {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

#[derive(Serialize, ToSchema)]
pub struct EndedOut {
    /// How many sessions were ended.
    pub ended: u64,
}

/// Sign out everywhere else: end every session of the account but this one.
#[utoipa::path(delete, path = "/me/sessions", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, body = EndedOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end_other_sessions(
    State(state): State<AppState>,
    Bearer(ctx): Bearer,
) -> Result<Json<EndedOut>, ApiError> {
    let ended = state.app.end_other_sessions(&ctx).await?;
    Ok(Json(EndedOut { ended }))
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
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityAnswersIn {
    pub current_password: String,
    /// Three different questions (`GET /security-questions`) with their answers.
    pub security_answers: Vec<super::registration::AnswerIn>,
}

/// Choose (or replace) the security questions: what an account migrated from the issuer's
/// earlier login system is asked at sign-in (`security_questions_required`).
#[utoipa::path(put, path = "/me/security-answers", tag = "account",
    security(("bearer" = [])),
    request_body = SecurityAnswersIn,
    responses(
        (status = 204, description = "Chosen"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_security_answers(
    State(state): State<AppState>,
    crate::client::Client(client): crate::client::Client,
    Bearer(ctx): Bearer,
    super::extract::ApiJson(body): super::extract::ApiJson<SecurityAnswersIn>,
) -> Result<StatusCode, ApiError> {
    let answers: Vec<(i64, String)> = body
        .security_answers
        .into_iter()
        .map(|a| (a.question_id, a.answer))
        .collect();
    state
        .app
        .set_security_answers(&ctx, &body.current_password, &answers, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactChangeIn {
    pub current_password: String,
    /// What to change: `email` or `phone`.
    pub field: String,
    /// The new email address, or the new mobile number in E.164 (`+15550100123`).
    pub value: String,
}

#[derive(Serialize, ToSchema)]
pub struct ContactChangeOut {
    /// Carries the change to `POST /me/contact/confirm`; valid for 20 minutes, single use.
    pub change_token: String,
    /// `email` or `phone`.
    pub field: String,
    /// The new address the code went to, masked.
    pub sent_to: String,
}

/// Change the email address or mobile number, step 1: the current password and the new
/// address. A one-time code goes to the new address.
#[utoipa::path(post, path = "/me/contact", tag = "account",
    security(("bearer" = [])),
    request_body = ContactChangeIn,
    responses(
        (status = 403, description = "`account-read-only`: every card of the account is closed", body = Problem, content_type = "application/problem+json"),
        (status = 202, description = "A code was sent to the new address", body = ContactChangeOut),
        (status = 400, description = "A bad address, or the wrong current password", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn start_contact_change(
    State(state): State<AppState>,
    crate::client::Client(client): crate::client::Client,
    Bearer(ctx): Bearer,
    super::extract::ApiJson(body): super::extract::ApiJson<ContactChangeIn>,
) -> Result<(StatusCode, Json<ContactChangeOut>), ApiError> {
    let started = state
        .app
        .start_contact_change(
            &ctx,
            &body.current_password,
            &body.field,
            &body.value,
            &client,
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ContactChangeOut {
            change_token: started.token.expose_secret().to_owned(),
            field: started.field.as_str().to_owned(),
            sent_to: started.destination,
        }),
    ))
}

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactConfirmIn {
    pub change_token: String,
    /// The 6-digit code sent to the new address.
    pub code: String,
}

/// Change the email address or mobile number, step 2: the code from the new address. The
/// change is applied and the old address is told.
#[utoipa::path(post, path = "/me/contact/confirm", tag = "account",
    security(("bearer" = [])),
    request_body = ContactConfirmIn,
    responses(
        (status = 403, description = "`account-read-only`: every card of the account is closed", body = Problem, content_type = "application/problem+json"),
        (status = 204, description = "Changed"),
        (status = 400, description = "A wrong code (with tries_left)", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The change expired, or the code was used or ran out of tries", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn confirm_contact_change(
    State(state): State<AppState>,
    crate::client::Client(client): crate::client::Client,
    Bearer(ctx): Bearer,
    super::extract::ApiJson(body): super::extract::ApiJson<ContactConfirmIn>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .confirm_contact_change(&ctx, &body.change_token, &body.code, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactResendIn {
    pub change_token: String,
}

/// Send a new code to the new address (at most once a minute, five times per change).
#[utoipa::path(post, path = "/me/contact/resend", tag = "account",
    security(("bearer" = [])),
    request_body = ContactResendIn,
    responses(
        (status = 202, description = "A new code was sent"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resend_contact_code(
    State(state): State<AppState>,
    Bearer(ctx): Bearer,
    super::extract::ApiJson(body): super::extract::ApiJson<ContactResendIn>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .resend_contact_code(&ctx, &body.change_token)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkCardIn {
    /// The card number (or, for a merchant account, the merchant number).
    pub number: String,
    /// The card ID (3 or 4 digits) or the merchant verification code.
    pub verification: String,
}

/// Link another card of the same holder to the account.
#[utoipa::path(post, path = "/me/cards", tag = "account",
    security(("bearer" = [])),
    request_body = LinkCardIn,
    responses(
        (status = 201, body = CardOut),
        (status = 400, description = "`card-not-recognised`: the same answer for a wrong card ID, an unknown card, and a right card ID that cannot be linked (another holder's card, another account type, a card that backs another online account, a paused card); the card's holder is told", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The card is already linked to this account", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn link_card(
    State(state): State<AppState>,
    crate::client::Client(client): crate::client::Client,
    Bearer(ctx): Bearer,
    super::extract::ApiJson(body): super::extract::ApiJson<LinkCardIn>,
) -> Result<(StatusCode, Json<CardOut>), ApiError> {
    let card = state
        .app
        .link_card(&ctx, &body.number, &body.verification, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(card_out(card))))
}

/// Unlink one of the account's cards. The last card cannot be unlinked.
#[utoipa::path(delete, path = "/me/cards/{id}", tag = "account",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The card's id from GET /me")),
    responses(
        (status = 403, description = "`account-read-only`: every card of the account is closed", body = Problem, content_type = "application/problem+json"),
        (status = 204, description = "Unlinked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The account's last card", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unlink_card(
    State(state): State<AppState>,
    crate::client::Client(client): crate::client::Client,
    Bearer(ctx): Bearer,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // A malformed id names nothing: 404, like an id of another account's.
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    match state.app.unlink_card(&ctx, id, &client).await? {
        Unlink::Unlinked => Ok(StatusCode::NO_CONTENT),
        Unlink::NotLinked => Err(ApiError::not_found()),
        Unlink::LastCard => Err(ApiError::last_card()),
    }
}
