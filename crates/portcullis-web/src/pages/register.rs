//! Creating an online account (`/register`): step 1 proves the card, step 2 chooses the
//! User ID, password, security questions and code channel.

use super::PageForm;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::security_questions::{SecurityQuestion, QUESTIONS};
use portcullis_core::service::Registration;
use portcullis_core::{FieldError, ServiceError};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::checklist::{Checklist, UserIdSource};
use super::{
    account_types, chrome, csrf_failed, error_page, render, Chrome, CsrfCookie, Errors, MessagePage,
};
use crate::client::Client;
use crate::text;
use crate::AppState;

#[derive(Template)]
#[template(path = "register_card.html")]
pub struct CardStepPage {
    pub chrome: Chrome,
    pub account_type: String,
    pub account_types: Vec<(&'static str, &'static str, bool)>,
    pub errors: Errors,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "register_account.html")]
pub struct AccountStepPage {
    pub chrome: Chrome,
    pub token: String,
    pub user_id: String,
    pub chosen: Vec<i64>,
    pub questions: Vec<SecurityQuestion>,
    pub ask_questions: bool,
    pub has_email: bool,
    pub has_phone: bool,
    pub channel: String,
    pub checklist: Checklist,
    pub errors: Errors,
}

impl AccountStepPage {
    /// Whether question `id` is the `slot`th choice (for keeping choices on error).
    pub fn is_chosen(&self, slot: &usize, id: &i64) -> bool {
        self.chosen.get(*slot) == Some(id)
    }

    pub fn answer_error(&self, slot: &usize) -> Option<&str> {
        self.errors.get(&format!("security_answers[{slot}]"))
    }
}

/// Askama filters for the registration pages.
mod filters {
    /// The id of the input that a field error's name points at (`security_answers[1]` →
    /// `answer_1`).
    #[allow(clippy::unnecessary_wraps)]
    pub fn anchor(field: &str, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(
            match field
                .strip_prefix("security_answers[")
                .and_then(|r| r.strip_suffix(']'))
            {
                Some(i) => format!("answer_{i}"),
                None if field == "security_answers" => "question_0".to_owned(),
                None => field.to_owned(),
            },
        )
    }
}

fn card_step(
    state: &AppState,
    csrf: &CsrfCookie,
    status: StatusCode,
    account_type: &str,
    errors: Vec<FieldError>,
    error: Option<String>,
) -> Response {
    let page = CardStepPage {
        chrome: chrome(state, csrf, false),
        account_type: account_type.to_owned(),
        account_types: account_types(account_type),
        errors: Errors(errors),
        error,
    };
    csrf.apply(render(status, &page))
}

pub async fn show(State(state): State<AppState>, csrf: CsrfCookie) -> Response {
    card_step(&state, &csrf, StatusCode::OK, "personal", Vec::new(), None)
}

#[derive(Deserialize)]
pub struct CardForm {
    #[serde(default)]
    account_type: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    verification: String,
    #[serde(default)]
    csrf: String,
}

pub async fn verify(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<CardForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        csrf.rotate();
        return card_step(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            &form.account_type,
            Vec::new(),
            Some(csrf_failed().into()),
        );
    }
    match state
        .app
        .verify_card(
            &form.account_type,
            &form.number,
            &form.verification,
            &client,
        )
        .await
    {
        Ok(verified) => {
            let page = AccountStepPage {
                chrome: chrome(&state, &csrf, false),
                token: verified.token.expose_secret().to_owned(),
                user_id: String::new(),
                chosen: Vec::new(),
                questions: QUESTIONS.to_vec(),
                ask_questions: state.app.policies().security_questions_enabled,
                has_email: verified.has_email,
                has_phone: verified.has_phone,
                channel: if verified.has_email {
                    "email".into()
                } else {
                    "sms".into()
                },
                checklist: Checklist::new(
                    &state.app.policies().password,
                    "password-rules",
                    UserIdSource::Field("user_id"),
                ),
                errors: Errors::default(),
            };
            csrf.apply(render(StatusCode::OK, &page))
        }
        Err(ServiceError::Invalid(errors)) => card_step(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            &form.account_type,
            errors,
            None,
        ),
        Err(ServiceError::CardNotRecognised) => card_step(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            &form.account_type,
            Vec::new(),
            Some(text::t("register.card_unverified").into()),
        ),
        Err(ServiceError::CardAlreadyRegistered) => card_step(
            &state,
            &csrf,
            StatusCode::CONFLICT,
            &form.account_type,
            Vec::new(),
            Some(text::t("register.card_taken_step_1").into()),
        ),
        Err(e) => error_page(&state, &csrf, e),
    }
}

#[derive(Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    question_0: String,
    #[serde(default)]
    answer_0: String,
    #[serde(default)]
    question_1: String,
    #[serde(default)]
    answer_1: String,
    #[serde(default)]
    question_2: String,
    #[serde(default)]
    answer_2: String,
    #[serde(default)]
    code_channel: String,
    /// Which channels the card has (from step 1), only to redraw the form after an error:
    /// the service checks the channel against the registry itself.
    #[serde(default)]
    has_email: String,
    #[serde(default)]
    has_phone: String,
    #[serde(default)]
    csrf: String,
}

pub async fn complete(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<AccountForm>,
) -> Response {
    let chosen: Vec<i64> = [&form.question_0, &form.question_1, &form.question_2]
        .iter()
        .map(|q| q.parse().unwrap_or(0))
        .collect();
    let ask_questions = state.app.policies().security_questions_enabled;
    let step = |csrf: &CsrfCookie, status: StatusCode, errors: Vec<FieldError>| {
        let page = AccountStepPage {
            chrome: chrome(&state, csrf, false),
            token: form.token.clone(),
            user_id: form.user_id.trim().to_owned(),
            chosen: chosen.clone(),
            questions: QUESTIONS.to_vec(),
            ask_questions,
            has_email: form.has_email != "false",
            has_phone: form.has_phone != "false",
            channel: form.code_channel.clone(),
            checklist: Checklist::new(
                &state.app.policies().password,
                "password-rules",
                UserIdSource::Field("user_id"),
            ),
            errors: Errors(errors),
        };
        csrf.apply(render(status, &page))
    };
    if !csrf.check(&state, &headers, &form.csrf) {
        csrf.rotate();
        return step(
            &csrf,
            StatusCode::FORBIDDEN,
            vec![FieldError::new("form", csrf_failed())],
        );
    }
    let answers: Vec<(i64, String)> = if ask_questions {
        chosen
            .iter()
            .zip([&form.answer_0, &form.answer_1, &form.answer_2])
            .map(|(q, a)| (*q, a.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let result = state
        .app
        .complete_registration(
            Registration {
                token: &form.token,
                user_id: &form.user_id,
                password: &form.password,
                security_answers: &answers,
                code_channel: &form.code_channel,
            },
            &client,
        )
        .await;
    match result {
        Ok(user_id) => {
            let page = MessagePage {
                chrome: chrome(&state, &csrf, false),
                title: text::t("register.done_title").into(),
                message: text::fill("register.done", &[("user_id", &user_id.as_str())]),
                next_href: "/".into(),
                next_label: text::t("common.sign_in").into(),
            };
            csrf.apply(render(StatusCode::CREATED, &page))
        }
        Err(ServiceError::Invalid(errors)) => step(&csrf, StatusCode::BAD_REQUEST, errors),
        Err(ServiceError::UserIdTaken) => step(
            &csrf,
            StatusCode::CONFLICT,
            vec![FieldError::new(
                "user_id",
                text::t("register.user_id_taken"),
            )],
        ),
        Err(ServiceError::CardAlreadyRegistered) => card_step(
            &state,
            &csrf,
            StatusCode::CONFLICT,
            "personal",
            Vec::new(),
            Some(text::t("register.card_taken").into()),
        ),
        Err(ServiceError::StepExpired) => card_step(
            &state,
            &csrf,
            StatusCode::GONE,
            "personal",
            Vec::new(),
            Some(text::t("register.expired").into()),
        ),
        Err(e) => error_page(&state, &csrf, e),
    }
}
