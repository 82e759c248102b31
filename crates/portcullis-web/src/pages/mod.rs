//! The server-rendered pages: plain HTML forms that work without JavaScript, each protected
//! by the CSRF token of [`crate::csrf`], each answer carrying the security headers.

pub mod account;
pub mod checklist;
pub mod factors;
pub mod lifecycle;
pub mod oidc;
pub mod recover;
pub mod recover_card;
pub mod register;
pub mod signin;
pub mod status;

use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use portcullis_core::ids::AccountType;
use portcullis_core::service::SessionContext;
use portcullis_core::{FieldError, ServiceError};

use crate::cookies::{self, SameSite};
use crate::csrf;
use crate::text::{self, Catalogue};
use crate::AppState;

pub const STYLESHEET: &str = include_str!("../../static/style.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(signin::show).post(signin::submit))
        .route("/sign-in/mfa", post(signin::mfa))
        .route("/forget-me", post(signin::forget_me))
        .route("/not-me/{token}", get(factors::not_me_show))
        .route("/not-me", post(factors::not_me_submit))
        .route("/security/factors", get(factors::show))
        .route("/security/reauthenticate", post(factors::reauthenticate))
        .route("/security/factors/totp", post(factors::begin_totp))
        .route(
            "/security/factors/totp/confirm",
            post(factors::confirm_totp),
        )
        .route("/security/factors/code", post(factors::enable_code))
        .route("/security/factors/{id}/remove", post(factors::remove))
        .route(
            "/security/factors/recovery-codes",
            post(factors::recovery_codes),
        )
        .route("/security/devices/{id}/untrust", post(factors::untrust))
        .route("/signout", post(account::sign_out))
        .route("/register", get(register::show).post(register::verify))
        .route("/register/account", post(register::complete))
        .route(
            "/recover/password",
            get(recover::password_start_form).post(recover::password_start),
        )
        .route("/recover/password/verify", post(recover::password_verify))
        .route("/recover/password/code", post(recover::password_code))
        .route("/recover/password/resend", post(recover::password_resend))
        .route("/recover/password/reset", post(recover::password_reset))
        .route(
            "/recover/user-id",
            get(recover::user_id_form).post(recover::user_id_start),
        )
        .route("/recover/user-id/code", post(recover::user_id_code))
        .route("/recover/user-id/resend", post(recover::user_id_resend))
        .route(
            "/recover/card",
            get(recover_card::form).post(recover_card::start),
        )
        .route("/recover/card/verify", post(recover_card::verify))
        .route("/account", get(account::home))
        .route("/security", get(account::security))
        .route("/security/sessions/{id}/end", post(account::end_session))
        .route(
            "/security/sessions/end-others",
            post(account::end_other_sessions),
        )
        .route("/security/password", post(account::change_password))
        .route("/security/answers", post(account::set_answers))
        .route("/security/contact", post(lifecycle::contact_start))
        .route(
            "/security/contact/confirm",
            post(lifecycle::contact_confirm),
        )
        .route("/security/contact/resend", post(lifecycle::contact_resend))
        .route("/security/cards", post(lifecycle::link_card))
        .route("/security/cards/{id}/unlink", post(lifecycle::unlink_card))
        .route("/demo/outbox", get(demo_outbox))
        .route("/status", get(status::show))
        .route("/static/style.css", get(stylesheet))
        .route("/static/passkeys.js", get(passkeys_script))
        .route("/static/password.js", get(password_script))
        .route("/static/theme.css", get(theme_stylesheet))
        .route(
            "/sign-in/passkey/options",
            post(factors::sign_in_passkey_options),
        )
        .route("/sign-in/passkey", post(factors::sign_in_passkey))
        .route(
            "/sign-in/mfa/passkey-options",
            post(factors::mfa_passkey_options),
        )
        .route("/security/passkeys/options", post(factors::passkey_options))
        .route("/security/passkeys", post(factors::add_passkey))
        .route("/security/factors/{id}/name", post(factors::rename))
        .fallback(not_found)
}

/// What every page's layout needs, and the words of the page (`chrome.t` with a key).
pub struct Chrome {
    pub text: &'static Catalogue,
    pub issuer: String,
    pub support_phone: String,
    pub demo: bool,
    pub signed_in: bool,
    pub csrf: String,
    /// Email or text messages are not working normally (the status board): a page that
    /// says a code is on its way also says it may be late.
    pub messages_late: bool,
}

impl Chrome {
    /// The text for `key` from the page's catalogue.
    pub fn t<'a>(&self, key: &'a str) -> &'a str {
        self.text.t(key)
    }

    /// The text for `key` with its one placeholder `{name}` filled.
    pub fn t1(&self, key: &str, name: &str, value: impl std::fmt::Display) -> String {
        self.text.fill(key, &[(name, &value)])
    }

    /// The text for `key` with two placeholders filled.
    pub fn t2(
        &self,
        key: &str,
        name: &str,
        value: impl std::fmt::Display,
        name2: &str,
        value2: impl std::fmt::Display,
    ) -> String {
        self.text.fill(key, &[(name, &value), (name2, &value2)])
    }
}

/// Field errors for a form, looked up by field name in templates.
#[derive(Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }

    pub fn all(&self) -> &[FieldError] {
        &self.0
    }
}

/// The CSRF cookie of this browser; a new one is made when it has none.
pub struct CsrfCookie {
    anchor: String,
    fresh: bool,
    secure: bool,
}

impl FromRequestParts<AppState> for CsrfCookie {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secure = state.web.secure_cookies;
        let name = cookies::name(cookies::CSRF, secure);
        Ok(
            match cookies::get(&parts.headers, &name).filter(|v| v.len() >= 32) {
                Some(anchor) => CsrfCookie {
                    anchor,
                    fresh: false,
                    secure,
                },
                None => CsrfCookie {
                    anchor: csrf::new_anchor(),
                    fresh: true,
                    secure,
                },
            },
        )
    }
}

impl CsrfCookie {
    pub fn token(&self, state: &AppState) -> String {
        csrf::token_for(&state.csrf.snapshot(), &self.anchor)
    }

    /// Whether a submitted form is genuine: same site, and the token matches the cookie.
    pub fn check(&self, state: &AppState, headers: &HeaderMap, submitted: &str) -> bool {
        !self.fresh
            && !csrf::cross_site(headers)
            && csrf::verify(&state.csrf.snapshot(), Some(&self.anchor), submitted)
    }

    /// A new cookie (at sign-in and sign-out), so no token from before remains valid.
    pub fn rotate(&mut self) {
        self.anchor = csrf::new_anchor();
        self.fresh = true;
    }

    /// Adds the Set-Cookie header when the cookie is new.
    pub fn apply(&self, mut response: Response) -> Response {
        if self.fresh {
            let name = cookies::name(cookies::CSRF, self.secure);
            response.headers_mut().append(
                header::SET_COOKIE,
                cookies::set(&name, &self.anchor, None, SameSite::Strict, self.secure),
            );
        }
        response
    }
}

/// A signed-in page's session, from the session cookie.
pub struct PageSession(pub SessionContext);

/// Where a page without a valid session sends the browser.
pub struct SignInRedirect {
    had_cookie: bool,
    secure: bool,
}

impl IntoResponse for SignInRedirect {
    fn into_response(self) -> Response {
        let target = if self.had_cookie { "/?ended=1" } else { "/" };
        let mut response = Redirect::to(target).into_response();
        if self.had_cookie {
            let name = cookies::name(cookies::SESSION, self.secure);
            response.headers_mut().append(
                header::SET_COOKIE,
                cookies::set(&name, "", Some(0), SameSite::Lax, self.secure),
            );
        }
        response
    }
}

impl FromRequestParts<AppState> for PageSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secure = state.web.secure_cookies;
        let name = cookies::name(cookies::SESSION, secure);
        let token = cookies::get(&parts.headers, &name);
        let had_cookie = token.is_some();
        match state.app.authenticate(token.as_deref().unwrap_or("")).await {
            Ok(ctx) => Ok(PageSession(ctx)),
            Err(ServiceError::Unavailable(_)) => Err(unavailable_page(state)),
            Err(_) => Err(SignInRedirect { had_cookie, secure }.into_response()),
        }
    }
}

pub fn chrome(state: &AppState, csrf: &CsrfCookie, signed_in: bool) -> Chrome {
    Chrome {
        signed_in,
        csrf: csrf.token(state),
        ..chrome_without_form(state)
    }
}

/// The chrome of a page with no form on it (no CSRF token), for answers that have no cookie
/// to hand: maintenance, overload, the status page.
pub fn chrome_without_form(state: &AppState) -> Chrome {
    let policies = state.app.policies();
    Chrome {
        text: text::en(),
        issuer: policies.issuer_name.clone(),
        support_phone: policies.support_phone.clone(),
        demo: state.web.demo,
        signed_in: false,
        csrf: String::new(),
        messages_late: state.status.snapshot().messages_late(),
    }
}

/// The account types for a select: value, name, and whether it is the chosen one.
pub fn account_types(selected: &str) -> Vec<(&'static str, &'static str, bool)> {
    AccountType::ALL
        .iter()
        .map(|t| (t.as_str(), account_type_name(*t), t.as_str() == selected))
        .collect()
}

/// The name people know an account type by.
pub fn account_type_name(t: AccountType) -> &'static str {
    match t {
        AccountType::Personal => text::t("account_type.personal"),
        AccountType::Merchant => text::t("account_type.merchant"),
        AccountType::Corporate => text::t("account_type.corporate"),
    }
}

/// Renders a template with a status; a rendering failure is a plain 500 page.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(format!("<h1>{}</h1>", text::t("page.failed_title"))),
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub title: String,
    pub message: String,
    pub next_href: String,
    pub next_label: String,
}

pub fn unavailable_page(state: &AppState) -> Response {
    let page = MessagePage {
        chrome: crate::pages::chrome_without_form(state),
        title: text::t("page.busy_title").into(),
        message: text::t("page.busy").into(),
        next_href: "/".into(),
        next_label: text::t("page.try_again").into(),
    };
    let mut response = render(StatusCode::SERVICE_UNAVAILABLE, &page);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

/// A form body as axum's `Form` reads it; but a body it cannot read (a duplicated field, a
/// value of the wrong type, the wrong content type) gets the pages' own error page, 400 (or
/// 413 when too large), never axum's plain-text 422.
pub struct PageForm<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> axum::extract::FromRequest<AppState> for PageForm<T> {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => {
                let too_large = rejection.status() == StatusCode::PAYLOAD_TOO_LARGE;
                tracing::info!(status = %rejection.status(), "a form could not be read");
                Err(if too_large {
                    too_large_page(state)
                } else {
                    message_page(
                        state,
                        StatusCode::BAD_REQUEST,
                        text::t("page.form_unreadable_title"),
                        text::t("page.form_unreadable"),
                    )
                })
            }
        }
    }
}

/// What a page may echo back of a field the person typed: the text, trimmed, unless it is
/// longer than any valid value could be (a 2 MB "User ID" is not put back into the page).
pub fn echo(raw: &str, max_chars: usize) -> String {
    let trimmed = raw.trim();
    if trimmed.chars().count() > max_chars {
        String::new()
    } else {
        trimmed.to_owned()
    }
}

/// [`echo`] for a User ID: twice the longest valid one, so a near miss is still shown for
/// correcting.
pub fn echo_user_id(raw: &str) -> String {
    echo(raw, portcullis_core::ids::USER_ID_MAX * 2)
}

/// 413 as a page: the form was larger than `server.body_limit_bytes`.
pub fn too_large_page(state: &AppState) -> Response {
    message_page(
        state,
        StatusCode::PAYLOAD_TOO_LARGE,
        text::t("page.too_large_title"),
        text::t("page.too_large"),
    )
}

/// 408 as a page: the form arrived more slowly than the service accepts.
pub fn too_slow_page(state: &AppState) -> Response {
    message_page(
        state,
        StatusCode::REQUEST_TIMEOUT,
        text::t("page.too_slow_title"),
        text::t("page.too_slow"),
    )
}

/// A message page with a status: `title` and `message` from the catalogue.
pub fn message_page(state: &AppState, status: StatusCode, title: &str, message: &str) -> Response {
    let page = MessagePage {
        chrome: crate::pages::chrome_without_form(state),
        title: title.into(),
        message: message.into(),
        next_href: "/".into(),
        next_label: text::t("common.back_to_sign_in").into(),
    };
    render(status, &page)
}

/// The page for an error no form can show next to a field: the status from the one table
/// the API answers from too ([`crate::error::status_of`]) and words from the catalogue for
/// each kind of error. Only an internal error is a 500.
pub fn error_page(state: &AppState, csrf: &CsrfCookie, e: ServiceError) -> Response {
    crate::error::log_hidden(&e);
    let (status, _, _) = crate::error::status_of(&e);
    let (title, message) = match &e {
        ServiceError::Unavailable(_) => return unavailable_page(state),
        ServiceError::TooManyRequests { retry_after } => {
            let page = MessagePage {
                chrome: chrome(state, csrf, false),
                title: text::t("page.too_many_title").into(),
                message: text::fill(
                    "page.too_many",
                    &[("minutes", &retry_after.div_ceil(60).max(1))],
                ),
                next_href: "/".into(),
                next_label: text::t("common.back_to_sign_in").into(),
            };
            let mut response = render(status, &page);
            if let Ok(v) = HeaderValue::from_str(&(*retry_after).max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return csrf.apply(response);
        }
        ServiceError::Locked { .. } => (
            text::t("locked.title"),
            text::fill(
                "locked.detail",
                &[("phone", &state.app.policies().support_phone)],
            ),
        ),
        ServiceError::Invalid(_) => (
            text::t("problem.invalid_title"),
            text::t("problem.invalid").to_owned(),
        ),
        ServiceError::SignInFailed => (
            text::t("problem.sign_in_failed_title"),
            text::t("signin.failed").to_owned(),
        ),
        ServiceError::CardNotRecognised => (
            text::t("problem.card_not_recognised_title"),
            text::t("problem.card_not_recognised").to_owned(),
        ),
        ServiceError::CardAlreadyRegistered => (
            text::t("problem.card_already_registered_title"),
            text::t("problem.card_already_registered").to_owned(),
        ),
        ServiceError::UserIdTaken => (
            text::t("problem.user_id_taken_title"),
            text::t("problem.user_id_taken").to_owned(),
        ),
        ServiceError::StepExpired => (
            text::t("problem.step_expired_title"),
            text::t("problem.step_expired").to_owned(),
        ),
        ServiceError::RecoveryFailed { .. } => (
            text::t("problem.recovery_failed_title"),
            text::t("problem.recovery_failed").to_owned(),
        ),
        ServiceError::CodeRejected { .. } => (
            text::t("problem.code_rejected_title"),
            text::t("problem.code_rejected").to_owned(),
        ),
        ServiceError::CodeSpent => (
            text::t("problem.code_spent_title"),
            text::t("problem.code_spent").to_owned(),
        ),
        ServiceError::Unauthenticated => (
            text::t("problem.unauthenticated_title"),
            text::t("problem.unauthenticated").to_owned(),
        ),
        ServiceError::Forbidden => (
            text::t("problem.forbidden_title"),
            text::t("problem.forbidden").to_owned(),
        ),
        ServiceError::ReauthRequired => (
            text::t("problem.reauth_title"),
            text::t("problem.reauth").to_owned(),
        ),
        ServiceError::ReadOnly => (
            text::t("problem.read_only_title"),
            text::t("problem.read_only").to_owned(),
        ),
        ServiceError::NotFound => (
            text::t("page.not_found_title"),
            text::t("problem.not_found").to_owned(),
        ),
        ServiceError::Internal(_) => (
            text::t("page.failed_title"),
            text::t("page.failed").to_owned(),
        ),
    };
    let page = MessagePage {
        chrome: chrome(state, csrf, false),
        title: title.into(),
        message,
        next_href: "/".into(),
        next_label: text::t("common.back_to_sign_in").into(),
    };
    csrf.apply(render(status, &page))
}

/// What a form that arrived without a valid CSRF token says (often: cookies cleared, or the
/// form sat open for a long time).
pub fn csrf_failed() -> &'static str {
    text::t("page.csrf_failed")
}

/// A text that counts something: `one` when `count` is 1, else `many` with `{count}` filled.
pub fn plural(one: &'static str, many: &'static str, count: impl std::fmt::Display) -> String {
    let count = count.to_string();
    if count == "1" {
        text::fill(one, &[("count", &count)])
    } else {
        text::fill(many, &[("count", &count)])
    }
}

/// The scripts, both progressive enhancement: passkeys, and the password fields (show and
/// hide, the live checklist of rules).
const PASSKEYS_JS: &str = include_str!("../../static/passkeys.js");
const PASSWORD_JS: &str = include_str!("../../static/password.js");

fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

async fn passkeys_script() -> Response {
    asset("text/javascript; charset=utf-8", PASSKEYS_JS)
}

async fn password_script() -> Response {
    asset("text/javascript; charset=utf-8", PASSWORD_JS)
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

/// The issuer's colours (see [`crate::theme`]), made once at start-up from the configuration.
async fn theme_stylesheet(State(state): State<AppState>) -> Response {
    asset("text/css; charset=utf-8", state.web.theme.css())
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    chrome: Chrome,
    messages: Vec<OutboxMessage>,
}

struct OutboxMessage {
    channel: String,
    to: String,
    subject: String,
    body: String,
    created_at: String,
}

async fn demo_outbox(State(state): State<AppState>, csrf: CsrfCookie) -> Response {
    let Some(outbox) = state.outbox.clone().filter(|_| state.web.demo) else {
        return not_found_page(&state, &csrf);
    };
    let field =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|s| s.as_str()).unwrap_or("").to_owned();
    let mut messages: Vec<OutboxMessage> = outbox
        .messages()
        .await
        .iter()
        .map(|m| OutboxMessage {
            channel: field(m, "channel"),
            to: field(m, "to"),
            subject: field(m, "subject"),
            body: field(m, "body"),
            created_at: field(m, "created_at"),
        })
        .collect();
    messages.reverse();
    let page = OutboxPage {
        chrome: chrome(&state, &csrf, false),
        messages,
    };
    csrf.apply(render(StatusCode::OK, &page))
}

fn not_found_page(state: &AppState, csrf: &CsrfCookie) -> Response {
    let page = MessagePage {
        chrome: chrome(state, csrf, false),
        title: text::t("page.not_found_title").into(),
        message: text::t("page.not_found").into(),
        next_href: "/".into(),
        next_label: text::t("page.go_to_sign_in").into(),
    };
    csrf.apply(render(StatusCode::NOT_FOUND, &page))
}

async fn not_found(State(state): State<AppState>, csrf: CsrfCookie) -> Response {
    not_found_page(&state, &csrf)
}
