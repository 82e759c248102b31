//! A paused card's way back at `/recover/card`: the card number, then the code sent to the
//! card's contact on file and the card ID (`Portcullis::start_card_unpause`,
//! `finish_card_unpause`). The token travels in a hidden field, never in the URL.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::{FieldError, ServiceError};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{
    account_types, chrome, csrf_failed, error_page, plural, render, Chrome, CsrfCookie, Errors,
    MessagePage, PageForm,
};
use crate::client::Client;
use crate::text;
use crate::AppState;

#[derive(Template)]
#[template(path = "recover_card.html")]
pub struct CardPage {
    pub chrome: Chrome,
    pub account_types: Vec<(&'static str, &'static str, bool)>,
    pub errors: Errors,
}

#[derive(Template)]
#[template(path = "recover_card_code.html")]
pub struct CardCodePage {
    pub chrome: Chrome,
    pub token: String,
    pub error: Option<String>,
    pub errors: Errors,
}

fn card_page(
    state: &AppState,
    csrf: &CsrfCookie,
    status: StatusCode,
    account_type: &str,
    errors: Vec<FieldError>,
) -> Response {
    let page = CardPage {
        chrome: chrome(state, csrf, false),
        account_types: account_types(account_type),
        errors: Errors(errors),
    };
    csrf.apply(render(status, &page))
}

fn code_page(
    state: &AppState,
    csrf: &CsrfCookie,
    status: StatusCode,
    token: &str,
    error: Option<String>,
    errors: Vec<FieldError>,
) -> Response {
    let page = CardCodePage {
        chrome: chrome(state, csrf, false),
        token: token.to_owned(),
        error,
        errors: Errors(errors),
    };
    csrf.apply(render(status, &page))
}

fn message(
    state: &AppState,
    csrf: &CsrfCookie,
    status: StatusCode,
    title: &str,
    body: &str,
    href: &str,
    label: &str,
) -> Response {
    let page = MessagePage {
        chrome: chrome(state, csrf, false),
        title: title.into(),
        message: body.into(),
        next_href: href.into(),
        next_label: label.into(),
    };
    csrf.apply(render(status, &page))
}

pub async fn form(State(state): State<AppState>, csrf: CsrfCookie) -> Response {
    card_page(&state, &csrf, StatusCode::OK, "personal", Vec::new())
}

#[derive(Deserialize)]
pub struct StartForm {
    #[serde(default)]
    account_type: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    csrf: String,
}

pub async fn start(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<StartForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        csrf.rotate();
        return card_page(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            &form.account_type,
            vec![FieldError::new("form", csrf_failed())],
        );
    }
    match state
        .app
        .start_card_unpause(&form.account_type, &form.number, &client)
        .await
    {
        Ok(token) => code_page(
            &state,
            &csrf,
            StatusCode::OK,
            token.expose_secret(),
            None,
            Vec::new(),
        ),
        Err(ServiceError::Invalid(errors)) => card_page(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            &form.account_type,
            errors,
        ),
        Err(e) => error_page(&state, &csrf, e),
    }
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    verification: String,
    #[serde(default)]
    csrf: String,
}

pub async fn verify(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<VerifyForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return code_page(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            &form.token,
            Some(csrf_failed().into()),
            Vec::new(),
        );
    }
    let again = text::t("code.resend");
    match state
        .app
        .finish_card_unpause(&form.token, &form.code, &form.verification, &client)
        .await
    {
        Ok(()) => message(
            &state,
            &csrf,
            StatusCode::OK,
            text::t("recover_card.done_title"),
            text::t("recover_card.done"),
            "/register",
            text::t("common.continue"),
        ),
        Err(ServiceError::Invalid(errors)) => code_page(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            &form.token,
            None,
            errors,
        ),
        Err(ServiceError::CodeRejected { tries_left }) => code_page(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            &form.token,
            Some(plural("code.wrong_one", "code.wrong", tries_left)),
            Vec::new(),
        ),
        Err(ServiceError::CardNotRecognised) => message(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            text::t("recover_card.title"),
            text::t("recover_card.not_recognised"),
            "/recover/card",
            again,
        ),
        Err(ServiceError::CodeSpent | ServiceError::StepExpired) => message(
            &state,
            &csrf,
            StatusCode::GONE,
            text::t("recover.expired_title"),
            text::t("code.spent"),
            "/recover/card",
            again,
        ),
        Err(e) => error_page(&state, &csrf, e),
    }
}
