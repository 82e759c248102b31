//! The forms of `/security` that change the account: contact details (password, then a
//! code to the new address) and linked cards (link with card number + card ID, unlink).

use super::PageForm;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::ports::{ContactField, Unlink};
use portcullis_core::{FieldError, ServiceError};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::account::security_page;
use super::recover::CodePage;
use super::{chrome, csrf_failed, error_page, plural, render, CsrfCookie, Errors, PageSession};
use crate::client::Client;
use crate::text;
use crate::AppState;

/// The contact and card forms share the page with the password form: their field errors
/// get names of their own so each shows next to its own form.
fn rename(errors: Vec<FieldError>, map: &[(&str, &str)]) -> Errors {
    Errors(
        errors
            .into_iter()
            .map(|mut e| {
                if let Some((_, to)) = map.iter().find(|(from, _)| *from == e.field) {
                    e.field = (*to).to_owned();
                }
                e
            })
            .collect(),
    )
}

const CONTACT_FIELDS: &[(&str, &str)] = &[
    ("current_password", "contact_password"),
    ("email", "contact_value"),
    ("phone", "contact_value"),
    ("field", "contact_field"),
];

const CARD_FIELDS: &[(&str, &str)] = &[
    ("number", "card_number"),
    ("verification", "card_verification"),
    ("card_id", "card_verification"),
];

async fn csrf_refused(
    state: &AppState,
    csrf: &CsrfCookie,
    ctx: &portcullis_core::service::SessionContext,
) -> Response {
    let errors = Errors(vec![FieldError::new("form", csrf_failed())]);
    security_page(state, csrf, ctx, StatusCode::FORBIDDEN, errors, None).await
}

#[derive(Deserialize)]
pub struct ContactForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    field: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    csrf: String,
}

pub async fn contact_start(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<ContactForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return csrf_refused(&state, &csrf, &ctx).await;
    }
    match state
        .app
        .start_contact_change(
            &ctx,
            &form.current_password,
            &form.field,
            &form.value,
            &client,
        )
        .await
    {
        Ok(started) => contact_code_page(
            &state,
            &csrf,
            StatusCode::OK,
            started.token.expose_secret().to_owned(),
            started.destination,
            None,
            None,
        ),
        Err(ServiceError::Invalid(errors)) => {
            let errors = rename(errors, CONTACT_FIELDS);
            security_page(&state, &csrf, &ctx, StatusCode::BAD_REQUEST, errors, None).await
        }
        Err(e) => error_page(&state, &csrf, e),
    }
}

fn contact_code_page(
    state: &AppState,
    csrf: &CsrfCookie,
    status: StatusCode,
    token: String,
    destination: String,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let page = CodePage {
        chrome: chrome(state, csrf, true),
        action: "/security/contact/confirm",
        resend_action: "/security/contact/resend",
        token,
        destination,
        notice,
        error,
    };
    csrf.apply(render(status, &page))
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf: String,
}

pub async fn contact_confirm(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<CodeForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return contact_code_page(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            form.token,
            String::new(),
            None,
            Some(csrf_failed().into()),
        );
    }
    match state
        .app
        .confirm_contact_change(&ctx, &form.token, &form.code, &client)
        .await
    {
        Ok(field) => {
            let notice = match field {
                ContactField::Email => text::t("security.email_changed"),
                ContactField::Phone => text::t("security.phone_changed"),
            };
            security_page(
                &state,
                &csrf,
                &ctx,
                StatusCode::OK,
                Errors::default(),
                Some(notice.into()),
            )
            .await
        }
        Err(ServiceError::Invalid(errors)) => contact_code_page(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            form.token,
            String::new(),
            None,
            errors.into_iter().next().map(|e| e.message),
        ),
        Err(ServiceError::CodeRejected { tries_left }) => contact_code_page(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            form.token,
            String::new(),
            None,
            Some(plural("code.wrong_one", "code.wrong", tries_left)),
        ),
        Err(ServiceError::CodeSpent | ServiceError::StepExpired) => {
            let errors = Errors(vec![FieldError::new(
                "contact_form",
                text::t("security.contact_spent"),
            )]);
            security_page(&state, &csrf, &ctx, StatusCode::GONE, errors, None).await
        }
        Err(e) => error_page(&state, &csrf, e),
    }
}

pub async fn contact_resend(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<CodeForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return contact_code_page(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            form.token,
            String::new(),
            None,
            Some(csrf_failed().into()),
        );
    }
    match state.app.resend_contact_code(&ctx, &form.token).await {
        Ok(()) => contact_code_page(
            &state,
            &csrf,
            StatusCode::OK,
            form.token,
            String::new(),
            Some(text::t("security.contact_resent").into()),
            None,
        ),
        Err(ServiceError::TooManyRequests { retry_after }) => contact_code_page(
            &state,
            &csrf,
            StatusCode::TOO_MANY_REQUESTS,
            form.token,
            String::new(),
            None,
            Some(text::fill("code.wait", &[("seconds", &retry_after)])),
        ),
        Err(ServiceError::StepExpired) => {
            let errors = Errors(vec![FieldError::new(
                "contact_form",
                text::t("security.contact_expired"),
            )]);
            security_page(&state, &csrf, &ctx, StatusCode::GONE, errors, None).await
        }
        Err(e) => error_page(&state, &csrf, e),
    }
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    number: String,
    #[serde(default)]
    verification: String,
    #[serde(default)]
    csrf: String,
}

pub async fn link_card(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<LinkForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return csrf_refused(&state, &csrf, &ctx).await;
    }
    let refused = |status, message: &str| {
        (
            status,
            Errors(vec![FieldError::new("card_number", message)]),
        )
    };
    let (status, errors) = match state
        .app
        .link_card(&ctx, &form.number, &form.verification, &client)
        .await
    {
        Ok(card) => {
            let notice = text::fill(
                "security.card_linked",
                &[("product", &card.product), ("last4", &card.last4)],
            );
            return security_page(
                &state,
                &csrf,
                &ctx,
                StatusCode::OK,
                Errors::default(),
                Some(notice),
            )
            .await;
        }
        Err(ServiceError::Invalid(errors)) => {
            (StatusCode::BAD_REQUEST, rename(errors, CARD_FIELDS))
        }
        Err(ServiceError::CardNotRecognised) => {
            refused(StatusCode::BAD_REQUEST, text::t("security.card_unverified"))
        }
        Err(ServiceError::CardAlreadyRegistered) => {
            refused(StatusCode::CONFLICT, text::t("security.card_taken"))
        }
        Err(e) => return error_page(&state, &csrf, e),
    };
    security_page(&state, &csrf, &ctx, status, errors, None).await
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn unlink_card(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    Path(id): Path<i64>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return csrf_refused(&state, &csrf, &ctx).await;
    }
    let (status, errors, notice) = match state.app.unlink_card(&ctx, id, &client).await {
        Ok(Unlink::Unlinked) => (
            StatusCode::OK,
            Errors::default(),
            Some(text::t("security.card_unlinked").to_owned()),
        ),
        Ok(Unlink::NotLinked) => (
            StatusCode::NOT_FOUND,
            Errors(vec![FieldError::new(
                "card",
                text::t("security.card_not_linked"),
            )]),
            None,
        ),
        Ok(Unlink::LastCard) => (
            StatusCode::CONFLICT,
            Errors(vec![FieldError::new("card", text::t("security.card_last"))]),
            None,
        ),
        Err(e) => return error_page(&state, &csrf, e),
    };
    security_page(&state, &csrf, &ctx, status, errors, notice).await
}
