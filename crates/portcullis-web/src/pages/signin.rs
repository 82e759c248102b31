//! The sign-in page (`/`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use portcullis_core::ids::AccountType;
use portcullis_core::service::SignInRequest;
use portcullis_core::ServiceError;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{chrome, error_page, render, Chrome, CsrfCookie, CSRF_FAILED};
use crate::client::Client;
use crate::cookies::{self, SameSite};
use crate::error::{lock_detail, SIGN_IN_FAILED};
use crate::AppState;

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage {
    pub chrome: Chrome,
    pub user_id: String,
    pub account_type: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub account_types: Vec<(&'static str, &'static str, bool)>,
}

#[derive(Template)]
#[template(path = "locked.html")]
pub struct LockedPage {
    pub chrome: Chrome,
    pub detail: String,
    pub until: String,
    pub until_iso: String,
}

#[derive(Deserialize)]
pub struct SignInQuery {
    ended: Option<String>,
    signed_out: Option<String>,
}

fn account_types(selected: &str) -> Vec<(&'static str, &'static str, bool)> {
    AccountType::ALL
        .iter()
        .map(|t| (t.as_str(), t.label(), t.as_str() == selected))
        .collect()
}

pub async fn show(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Query(q): Query<SignInQuery>,
    headers: HeaderMap,
) -> Response {
    let session_cookie = cookies::name(cookies::SESSION, state.web.secure_cookies);
    if let Some(token) = cookies::get(&headers, &session_cookie) {
        if state.app.authenticate(&token).await.is_ok() {
            return Redirect::to("/account").into_response();
        }
    }
    let page = SignInPage {
        chrome: chrome(&state, &csrf, false),
        user_id: String::new(),
        account_type: "personal".into(),
        account_types: account_types("personal"),
        notice: if q.ended.is_some() {
            Some("Your session ended, so we signed you out to keep your account safe. Sign in again to continue.".into())
        } else if q.signed_out.is_some() {
            Some("You have signed out. See you soon.".into())
        } else {
            None
        },
        error: None,
    };
    csrf.apply(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    account_type: String,
    #[serde(default)]
    csrf: String,
}

pub async fn submit(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let again =
        |csrf: &CsrfCookie, status: StatusCode, error: Option<String>, notice: Option<String>| {
            let page = SignInPage {
                chrome: chrome(&state, csrf, false),
                user_id: form.user_id.trim().to_owned(),
                account_type: form.account_type.clone(),
                notice,
                error,
                account_types: account_types(&form.account_type),
            };
            csrf.apply(render(status, &page))
        };
    if !csrf.check(&state, &headers, &form.csrf) {
        csrf.rotate();
        return again(&csrf, StatusCode::FORBIDDEN, None, Some(CSRF_FAILED.into()));
    }
    let device_cookie = cookies::name(cookies::DEVICE, state.web.secure_cookies);
    let device = cookies::get(&headers, &device_cookie);
    match state
        .app
        .sign_in(
            SignInRequest {
                user_id: &form.user_id,
                password: &form.password,
                account_type: &form.account_type,
                device_token: device.as_deref(),
            },
            &client,
        )
        .await
    {
        Ok(signed_in) => {
            csrf.rotate();
            let secure = state.web.secure_cookies;
            let mut response = Redirect::to("/account").into_response();
            let name = cookies::name(cookies::SESSION, secure);
            response.headers_mut().append(
                header::SET_COOKIE,
                cookies::set(
                    &name,
                    signed_in.token.expose_secret(),
                    Some(state.app.policies().session.absolute_secs),
                    SameSite::Lax,
                    secure,
                ),
            );
            csrf.apply(response)
        }
        Err(ServiceError::SignInFailed) => again(
            &csrf,
            StatusCode::UNAUTHORIZED,
            Some(SIGN_IN_FAILED.into()),
            None,
        ),
        Err(ServiceError::Locked { until }) => {
            let page = LockedPage {
                chrome: chrome(&state, &csrf, false),
                detail: lock_detail(&state.app.policies().support_phone),
                until: crate::format::when(until),
                until_iso: until.to_rfc3339(),
            };
            csrf.apply(render(StatusCode::LOCKED, &page))
        }
        Err(e) => error_page(&state, &csrf, e),
    }
}
