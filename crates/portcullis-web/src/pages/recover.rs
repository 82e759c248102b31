//! Getting back in: forgot password (which also unlocks a locked account with the card ID
//! and a code) at `/recover/password`, and forgot User ID at `/recover/user-id`. Each step
//! carries its token in a hidden field, never in the URL.

use super::PageForm;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::security_questions::SecurityQuestion;
use portcullis_core::service::Proof;
use portcullis_core::{FieldError, ServiceError};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::checklist::{Checklist, UserIdSource};
use super::{
    chrome, csrf_failed, error_page, plural, render, Chrome, CsrfCookie, Errors, MessagePage,
};
use crate::client::Client;
use crate::text;
use crate::AppState;

#[derive(Template)]
#[template(path = "recover_start.html")]
pub struct StartPage {
    pub chrome: Chrome,
    pub user_id: String,
    pub errors: Errors,
}

#[derive(Template)]
#[template(path = "recover_verify.html")]
pub struct VerifyPage {
    pub chrome: Chrome,
    pub token: String,
    pub questions: Vec<SecurityQuestion>,
    pub error: Option<String>,
    pub errors: Errors,
}

#[derive(Template)]
#[template(path = "recover_code.html")]
pub struct CodePage {
    pub chrome: Chrome,
    pub action: &'static str,
    pub resend_action: &'static str,
    pub token: String,
    pub destination: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "recover_reset.html")]
pub struct ResetPage {
    pub chrome: Chrome,
    pub token: String,
    pub unlocked: bool,
    /// "This was not me": only a new password gets the person back in.
    pub new_password_required: bool,
    pub checklist: Checklist,
    pub errors: Errors,
}

#[derive(Template)]
#[template(path = "recover_user_id.html")]
pub struct UserIdPage {
    pub chrome: Chrome,
    pub email: String,
    pub errors: Errors,
}

#[derive(Template)]
#[template(path = "recover_user_id_done.html")]
pub struct UserIdDonePage {
    pub chrome: Chrome,
    pub user_ids: Vec<String>,
}

fn start_page(
    state: &AppState,
    csrf: &CsrfCookie,
    status: StatusCode,
    user_id: &str,
    errors: Vec<FieldError>,
) -> Response {
    let page = StartPage {
        chrome: chrome(state, csrf, false),
        user_id: super::echo_user_id(user_id),
        errors: Errors(errors),
    };
    csrf.apply(render(status, &page))
}

fn expired(state: &AppState, csrf: &CsrfCookie, href: &str) -> Response {
    let page = MessagePage {
        chrome: chrome(state, csrf, false),
        title: text::t("recover.expired_title").into(),
        message: text::t("recover.expired").into(),
        next_href: href.into(),
        next_label: text::t("recover.start_again").into(),
    };
    csrf.apply(render(StatusCode::GONE, &page))
}

pub async fn password_start_form(State(state): State<AppState>, csrf: CsrfCookie) -> Response {
    start_page(&state, &csrf, StatusCode::OK, "", Vec::new())
}

#[derive(Deserialize)]
pub struct StartForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    csrf: String,
}

pub async fn password_start(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<StartForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        csrf.rotate();
        return start_page(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            &form.user_id,
            vec![FieldError::new("form", csrf_failed())],
        );
    }
    match crate::pace::at_least(
        crate::pace::RECOVERY_FLOOR,
        state.app.start_password_recovery(&form.user_id, &client),
    )
    .await
    {
        Ok(start) => {
            let page = VerifyPage {
                chrome: chrome(&state, &csrf, false),
                token: start.token.expose_secret().to_owned(),
                questions: start.questions,
                error: None,
                errors: Errors::default(),
            };
            csrf.apply(render(StatusCode::OK, &page))
        }
        Err(ServiceError::Invalid(errors)) => start_page(
            &state,
            &csrf,
            StatusCode::BAD_REQUEST,
            &form.user_id,
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
    method: String,
    #[serde(default)]
    card_id: String,
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
    csrf: String,
}

pub async fn password_verify(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<VerifyForm>,
) -> Response {
    let questions: Vec<SecurityQuestion> = [&form.question_0, &form.question_1, &form.question_2]
        .iter()
        .filter_map(|q| q.parse().ok())
        .filter_map(portcullis_core::security_questions::question)
        .collect();
    let again = |status: StatusCode, error: Option<String>, errors: Vec<FieldError>| {
        let page = VerifyPage {
            chrome: chrome(&state, &csrf, false),
            token: form.token.clone(),
            questions: questions.clone(),
            error,
            errors: Errors(errors),
        };
        csrf.apply(render(status, &page))
    };
    if !csrf.check(&state, &headers, &form.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            Some(csrf_failed().into()),
            Vec::new(),
        );
    }
    let answers: Vec<(i64, String)> = questions
        .iter()
        .zip([&form.answer_0, &form.answer_1, &form.answer_2])
        .map(|(q, a)| (q.id, a.clone()))
        .collect();
    let proof = if form.method == "answers" {
        Proof::Answers(&answers)
    } else {
        Proof::CardId(&form.card_id)
    };
    match state.app.verify_recovery(&form.token, proof, &client).await {
        Ok(sent) => {
            let page = CodePage {
                chrome: chrome(&state, &csrf, false),
                action: "/recover/password/code",
                resend_action: "/recover/password/resend",
                token: form.token.clone(),
                destination: sent.destination,
                notice: None,
                error: None,
            };
            csrf.apply(render(StatusCode::OK, &page))
        }
        Err(ServiceError::Invalid(errors)) => again(StatusCode::BAD_REQUEST, None, errors),
        Err(ServiceError::RecoveryFailed { tries_left }) => again(
            StatusCode::BAD_REQUEST,
            Some(plural(
                "recover.no_match_one",
                "recover.no_match",
                tries_left,
            )),
            Vec::new(),
        ),
        Err(ServiceError::StepExpired) => expired(&state, &csrf, "/recover/password"),
        Err(e) => error_page(&state, &csrf, e),
    }
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

fn code_page(
    state: &AppState,
    csrf: &CsrfCookie,
    status: StatusCode,
    user_id_flow: bool,
    token: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let page = CodePage {
        chrome: chrome(state, csrf, false),
        action: if user_id_flow {
            "/recover/user-id/code"
        } else {
            "/recover/password/code"
        },
        resend_action: if user_id_flow {
            "/recover/user-id/resend"
        } else {
            "/recover/password/resend"
        },
        token: token.to_owned(),
        destination: String::new(),
        notice,
        error,
    };
    csrf.apply(render(status, &page))
}

fn code_error(
    state: &AppState,
    csrf: &CsrfCookie,
    user_id_flow: bool,
    token: &str,
    e: ServiceError,
) -> Response {
    let restart = if user_id_flow {
        "/recover/user-id"
    } else {
        "/recover/password"
    };
    match e {
        ServiceError::Invalid(_) => code_page(
            state,
            csrf,
            StatusCode::BAD_REQUEST,
            user_id_flow,
            token,
            None,
            Some(text::t("code.enter").into()),
        ),
        ServiceError::CodeRejected { tries_left } => code_page(
            state,
            csrf,
            StatusCode::BAD_REQUEST,
            user_id_flow,
            token,
            None,
            Some(plural(
                "code.wrong_latest_one",
                "code.wrong_latest",
                tries_left,
            )),
        ),
        ServiceError::CodeSpent => code_page(
            state,
            csrf,
            StatusCode::GONE,
            user_id_flow,
            token,
            None,
            Some(text::t("code.spent").into()),
        ),
        ServiceError::StepExpired => expired(state, csrf, restart),
        ServiceError::TooManyRequests { retry_after } => code_page(
            state,
            csrf,
            StatusCode::TOO_MANY_REQUESTS,
            user_id_flow,
            token,
            None,
            Some(text::fill("code.wait", &[("seconds", &retry_after)])),
        ),
        other => error_page(state, csrf, other),
    }
}

pub async fn password_code(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<CodeForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return code_page(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            false,
            &form.token,
            None,
            Some(csrf_failed().into()),
        );
    }
    match state
        .app
        .verify_recovery_code(&form.token, &form.code, &client)
        .await
    {
        Ok(accepted) => {
            let page = ResetPage {
                chrome: chrome(&state, &csrf, false),
                token: accepted.reset_token.expose_secret().to_owned(),
                unlocked: accepted.unlocked,
                new_password_required: accepted.new_password_required,
                checklist: Checklist::new(
                    &state.app.policies().password,
                    "new-password-rules",
                    UserIdSource::Unknown,
                ),
                errors: Errors::default(),
            };
            csrf.apply(render(StatusCode::OK, &page))
        }
        Err(e) => code_error(&state, &csrf, false, &form.token, e),
    }
}

pub async fn password_resend(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    headers: HeaderMap,
    PageForm(form): PageForm<CodeForm>,
) -> Response {
    resend(state, csrf, headers, form, false).await
}

pub async fn user_id_resend(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    headers: HeaderMap,
    PageForm(form): PageForm<CodeForm>,
) -> Response {
    resend(state, csrf, headers, form, true).await
}

async fn resend(
    state: AppState,
    csrf: CsrfCookie,
    headers: HeaderMap,
    form: CodeForm,
    user_id_flow: bool,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return code_page(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            user_id_flow,
            &form.token,
            None,
            Some(csrf_failed().into()),
        );
    }
    match crate::pace::at_least(
        crate::pace::RECOVERY_FLOOR,
        state.app.resend_recovery_code(&form.token, user_id_flow),
    )
    .await
    {
        Ok(()) => code_page(
            &state,
            &csrf,
            StatusCode::OK,
            user_id_flow,
            &form.token,
            Some(text::t("code.resent").into()),
            None,
        ),
        Err(e) => code_error(&state, &csrf, user_id_flow, &form.token, e),
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    csrf: String,
}

pub async fn password_reset(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<ResetForm>,
) -> Response {
    let again = |status: StatusCode, errors: Vec<FieldError>| {
        let page = ResetPage {
            chrome: chrome(&state, &csrf, false),
            token: form.token.clone(),
            unlocked: false,
            new_password_required: false,
            checklist: Checklist::new(
                &state.app.policies().password,
                "new-password-rules",
                UserIdSource::Unknown,
            ),
            errors: Errors(errors),
        };
        csrf.apply(render(status, &page))
    };
    if !csrf.check(&state, &headers, &form.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            vec![FieldError::new("form", csrf_failed())],
        );
    }
    match state
        .app
        .reset_password(&form.token, &form.new_password, &client)
        .await
    {
        Ok(()) => {
            let page = MessagePage {
                chrome: chrome(&state, &csrf, false),
                title: text::t("reset.done_title").into(),
                message: text::t("reset.done").into(),
                next_href: "/".into(),
                next_label: text::t("common.sign_in").into(),
            };
            csrf.apply(render(StatusCode::OK, &page))
        }
        Err(ServiceError::Invalid(errors)) => again(StatusCode::BAD_REQUEST, errors),
        Err(ServiceError::StepExpired) => expired(&state, &csrf, "/recover/password"),
        Err(e) => error_page(&state, &csrf, e),
    }
}

fn user_id_page(
    state: &AppState,
    csrf: &CsrfCookie,
    status: StatusCode,
    email: &str,
    errors: Vec<FieldError>,
) -> Response {
    let page = UserIdPage {
        chrome: chrome(state, csrf, false),
        // RFC 5321 caps an address at 254 characters.
        email: super::echo(email, 254),
        errors: Errors(errors),
    };
    csrf.apply(render(status, &page))
}

pub async fn user_id_form(State(state): State<AppState>, csrf: CsrfCookie) -> Response {
    user_id_page(&state, &csrf, StatusCode::OK, "", Vec::new())
}

#[derive(Deserialize)]
pub struct UserIdForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    csrf: String,
}

pub async fn user_id_start(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<UserIdForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        csrf.rotate();
        return user_id_page(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            &form.email,
            vec![FieldError::new("form", csrf_failed())],
        );
    }
    match crate::pace::at_least(
        crate::pace::RECOVERY_FLOOR,
        state
            .app
            .start_user_id_recovery(&form.email, &form.channel, &client),
    )
    .await
    {
        Ok(token) => code_page(
            &state,
            &csrf,
            StatusCode::OK,
            true,
            token.expose_secret(),
            Some(text::t("recover_user_id.sent").into()),
            None,
        ),
        Err(ServiceError::Invalid(errors)) => {
            user_id_page(&state, &csrf, StatusCode::BAD_REQUEST, &form.email, errors)
        }
        Err(e) => error_page(&state, &csrf, e),
    }
}

pub async fn user_id_code(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<CodeForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return code_page(
            &state,
            &csrf,
            StatusCode::FORBIDDEN,
            true,
            &form.token,
            None,
            Some(csrf_failed().into()),
        );
    }
    match crate::pace::at_least(
        crate::pace::RECOVERY_FLOOR,
        state
            .app
            .verify_user_id_code(&form.token, &form.code, &client),
    )
    .await
    {
        Ok(user_ids) => {
            let page = UserIdDonePage {
                chrome: chrome(&state, &csrf, false),
                user_ids,
            };
            csrf.apply(render(StatusCode::OK, &page))
        }
        Err(e) => code_error(&state, &csrf, true, &form.token, e),
    }
}
