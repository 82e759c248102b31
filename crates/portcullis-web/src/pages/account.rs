//! The account home (`/account`), the security page (`/security`) and signing out.

use super::PageForm;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use portcullis_core::audit::AuditKind;
use portcullis_core::money::Money;
use serde::Deserialize;

use super::checklist::{Checklist, UserIdSource};
use super::{chrome, error_page, render, Chrome, CsrfCookie, PageSession};
use crate::client::Client;
use crate::cookies::{self, SameSite};
use crate::text;
use crate::AppState;

pub struct CardView {
    pub last4: String,
    pub product: String,
    pub balance: String,
    pub credit_limit: String,
    pub payment_due_date: String,
    pub minimum_due: String,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub chrome: Chrome,
    /// Who the page greets: the holder's name from the registry, else the User ID.
    pub greeting_name: String,
    pub account_label: String,
    pub email: String,
    pub phone: String,
    pub cards: Vec<CardView>,
}

fn money(m: Option<i64>) -> String {
    m.map_or_else(|| "—".to_owned(), |c| crate::format::money(Money(c)))
}

pub async fn home(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    PageSession(ctx): PageSession,
) -> Response {
    let home = match state.app.account_home(&ctx).await {
        Ok(h) => h,
        Err(e) => return error_page(&state, &csrf, e),
    };
    let page = AccountPage {
        chrome: chrome(&state, &csrf, true),
        greeting_name: home.holder_name.unwrap_or(home.user_id),
        account_label: super::account_type_name(home.account_type).to_owned(),
        email: home
            .email
            .as_deref()
            .map(mask_email)
            .unwrap_or_else(|| "—".into()),
        phone: home
            .phone
            .as_deref()
            .map(mask_phone)
            .unwrap_or_else(|| "—".into()),
        cards: home
            .cards
            .into_iter()
            .map(|c| CardView {
                last4: c.last4,
                product: c.product,
                balance: money(c.balance),
                credit_limit: money(c.credit_limit),
                payment_due_date: c
                    .payment_due_date
                    .map_or_else(|| "—".into(), |d| crate::format::date(&d)),
                minimum_due: money(c.minimum_due),
            })
            .collect(),
    };
    csrf.apply(render(StatusCode::OK, &page))
}

fn mask_email(e: &str) -> String {
    portcullis_core::contact::Email::parse(e).map_or_else(|_| "•••".into(), |e| e.masked())
}

fn mask_phone(p: &str) -> String {
    portcullis_core::contact::Phone::parse(p).map_or_else(|_| "•••".into(), |p| p.masked())
}

pub struct SessionView {
    pub id: i64,
    pub device: String,
    pub place: String,
    pub started: String,
    pub started_iso: String,
    pub last_active: String,
    pub last_active_iso: String,
    pub current: bool,
}

pub struct EventView {
    pub at: String,
    pub at_iso: String,
    pub what: String,
    pub place: String,
}

pub struct LinkedCardView {
    pub id: i64,
    pub last4: String,
    pub product: String,
}

#[derive(Template)]
#[template(path = "security.html")]
pub struct SecurityPage {
    pub chrome: Chrome,
    pub email: String,
    pub phone: String,
    pub cards: Vec<LinkedCardView>,
    pub sessions: Vec<SessionView>,
    pub events: Vec<EventView>,
    pub checklist: Checklist,
    pub errors: super::Errors,
    pub notice: Option<String>,
    /// An account imported without security answers chooses them here.
    pub ask_questions: bool,
    pub questions: Vec<portcullis_core::security_questions::SecurityQuestion>,
}

impl SecurityPage {
    pub fn answer_error(&self, slot: &usize) -> Option<&str> {
        self.errors.get(&format!("security_answers[{slot}]"))
    }
}

pub async fn security(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    PageSession(ctx): PageSession,
) -> Response {
    security_page(
        &state,
        &csrf,
        &ctx,
        StatusCode::OK,
        super::Errors::default(),
        None,
    )
    .await
}

pub(super) async fn security_page(
    state: &AppState,
    csrf: &CsrfCookie,
    ctx: &portcullis_core::service::SessionContext,
    status: StatusCode,
    errors: super::Errors,
    notice: Option<String>,
) -> Response {
    let sessions = match state.app.sessions(ctx).await {
        Ok(s) => s,
        Err(e) => return error_page(state, csrf, e),
    };
    let events = match state.app.recent_activity(ctx, 20).await {
        Ok(e) => e,
        Err(e) => return error_page(state, csrf, e),
    };
    let home = match state.app.account_home(ctx).await {
        Ok(h) => h,
        Err(e) => return error_page(state, csrf, e),
    };
    let page = SecurityPage {
        chrome: chrome(state, csrf, true),
        email: home
            .email
            .as_deref()
            .map(mask_email)
            .unwrap_or_else(|| "—".into()),
        phone: home
            .phone
            .as_deref()
            .map(mask_phone)
            .unwrap_or_else(|| "—".into()),
        cards: home
            .cards
            .into_iter()
            .map(|c| LinkedCardView {
                id: c.id,
                last4: c.last4,
                product: c.product,
            })
            .collect(),
        ask_questions: home.security_questions_required,
        questions: portcullis_core::security_questions::QUESTIONS.to_vec(),
        checklist: Checklist::new(
            &state.app.policies().password,
            "new-password-rules",
            UserIdSource::Known(home.user_id.clone()),
        ),
        errors,
        notice,
        sessions: sessions
            .into_iter()
            .map(|s| SessionView {
                id: s.id,
                device: s
                    .user_agent
                    .map(|ua| portcullis_core::service::describe_device(&ua))
                    .unwrap_or_else(|| text::t("security.unknown_device").into()),
                place: s
                    .client_ip
                    .unwrap_or_else(|| text::t("security.unknown_place").into()),
                started: crate::format::when(s.created_at),
                started_iso: s.created_at.to_rfc3339(),
                last_active: crate::format::when(s.last_seen_at),
                last_active_iso: s.last_seen_at.to_rfc3339(),
                current: s.current,
            })
            .collect(),
        events: events
            .into_iter()
            .map(|e| EventView {
                at: crate::format::when(e.at),
                at_iso: e.at.to_rfc3339(),
                what: AuditKind::describe(&e.kind).to_owned(),
                place: e.client_ip.unwrap_or_default(),
            })
            .collect(),
    };
    csrf.apply(render(status, &page))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    csrf: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<PasswordForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        let errors = super::Errors(vec![portcullis_core::FieldError::new(
            "form",
            super::csrf_failed(),
        )]);
        return security_page(&state, &csrf, &ctx, StatusCode::FORBIDDEN, errors, None).await;
    }
    match state
        .app
        .change_password(&ctx, &form.current_password, &form.new_password, &client)
        .await
    {
        Ok(()) => {
            let notice = Some(text::t("security.password_changed").to_owned());
            security_page(
                &state,
                &csrf,
                &ctx,
                StatusCode::OK,
                super::Errors::default(),
                notice,
            )
            .await
        }
        Err(portcullis_core::ServiceError::Invalid(errors)) => {
            security_page(
                &state,
                &csrf,
                &ctx,
                StatusCode::BAD_REQUEST,
                super::Errors(errors),
                None,
            )
            .await
        }
        Err(e) => error_page(&state, &csrf, e),
    }
}

#[derive(Deserialize)]
pub struct AnswersForm {
    #[serde(default)]
    current_password: String,
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

/// Security questions chosen on the security page (an account imported without them).
pub async fn set_answers(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<AnswersForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        let errors = super::Errors(vec![portcullis_core::FieldError::new(
            "form",
            super::csrf_failed(),
        )]);
        return security_page(&state, &csrf, &ctx, StatusCode::FORBIDDEN, errors, None).await;
    }
    // An unchosen question is 0, which no question has: its slot's error says so.
    let answers: Vec<(i64, String)> = [
        (&form.question_0, &form.answer_0),
        (&form.question_1, &form.answer_1),
        (&form.question_2, &form.answer_2),
    ]
    .iter()
    .map(|(q, a)| (q.trim().parse().unwrap_or(0), (*a).clone()))
    .collect();
    match state
        .app
        .set_security_answers(&ctx, &form.current_password, &answers, &client)
        .await
    {
        Ok(()) => {
            let notice = Some(text::t("security.answers_chosen").to_owned());
            security_page(
                &state,
                &csrf,
                &ctx,
                StatusCode::OK,
                super::Errors::default(),
                notice,
            )
            .await
        }
        Err(portcullis_core::ServiceError::Invalid(errors)) => {
            // The password of this form, not of the change-password form below it.
            let errors = errors
                .into_iter()
                .map(|mut e| {
                    if e.field == "current_password" {
                        e.field = "answers_password".into();
                    }
                    e
                })
                .collect();
            security_page(
                &state,
                &csrf,
                &ctx,
                StatusCode::BAD_REQUEST,
                super::Errors(errors),
                None,
            )
            .await
        }
        Err(e) => error_page(&state, &csrf, e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn end_session(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    Path(id): Path<i64>,
    PageForm(form): PageForm<CsrfForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return Redirect::to("/security").into_response();
    }
    if let Err(e) = state.app.end_session(&ctx, id).await {
        return error_page(&state, &csrf, e);
    }
    Redirect::to("/security").into_response()
}

pub async fn end_other_sessions(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<CsrfForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return Redirect::to("/security").into_response();
    }
    if let Err(e) = state.app.end_other_sessions(&ctx).await {
        return error_page(&state, &csrf, e);
    }
    Redirect::to("/security").into_response()
}

pub async fn sign_out(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<CsrfForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return Redirect::to("/account").into_response();
    }
    if let Err(e) = state.app.sign_out(&ctx, &client).await {
        return error_page(&state, &csrf, e);
    }
    csrf.rotate();
    let secure = state.web.secure_cookies;
    let mut response = Redirect::to("/?signed_out=1").into_response();
    let name = cookies::name(cookies::SESSION, secure);
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(&name, "", Some(0), SameSite::Lax, secure),
    );
    csrf.apply(response)
}
