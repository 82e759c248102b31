//! The sign-in page (`/`).

use super::PageForm;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use portcullis_core::service::{
    ClientInfo, MfaChallenge, MfaMethod, SignInOutcome, SignInRequest, SignedIn,
};
use portcullis_core::ServiceError;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{account_types, chrome, csrf_failed, error_page, plural, render, Chrome, CsrfCookie};
use crate::client::Client;
use crate::cookies::{self, SameSite};
use crate::text;
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
    /// The User ID was remembered on this device ("Remember me").
    pub remembered: bool,
}

#[derive(Template)]
#[template(path = "mfa.html")]
pub struct MfaPage {
    pub chrome: Chrome,
    pub challenge: String,
    pub step_up: bool,
    /// (method, label) for the choice.
    pub methods: Vec<(String, String)>,
    /// (method, button label) for the "send me a code" buttons.
    pub send_methods: Vec<(String, String)>,
    pub selected: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub trust_days: i64,
    pub remember: bool,
    pub user_id: String,
    /// A passkey is one of the ways (a button, with JavaScript).
    pub passkey: bool,
}

/// Remembers the User ID only ("Remember me"): never the password.
pub const REMEMBER: &str = "portcullis_remember";
const REMEMBER_MAX_AGE: i64 = 180 * 86_400;

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
    /// An OpenID Connect request asked for the password again (`prompt=login`, `max_age`).
    login: Option<String>,
    signed_out: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Query(q): Query<SignInQuery>,
    headers: HeaderMap,
) -> Response {
    let session_cookie = cookies::name(cookies::SESSION, state.web.secure_cookies);
    if let Some(token) = cookies::get(&headers, &session_cookie).filter(|_| q.login.is_none()) {
        if state.app.authenticate(&token).await.is_ok() {
            return Redirect::to("/account").into_response();
        }
    }
    let remembered = remembered_user_id(&state, &headers);
    let page = SignInPage {
        chrome: chrome(&state, &csrf, false),
        remembered: remembered.is_some(),
        user_id: remembered.unwrap_or_default(),
        account_type: "personal".into(),
        account_types: account_types("personal"),
        notice: if q.ended.is_some() {
            Some(text::t("signin.session_ended").into())
        } else if q.signed_out.is_some() {
            Some(text::t("signin.signed_out").into())
        } else {
            None
        },
        error: None,
    };
    csrf.apply(render(StatusCode::OK, &page))
}

/// The User ID remembered on this device ("Remember me"), if any.
fn remembered_user_id(state: &AppState, headers: &HeaderMap) -> Option<String> {
    cookies::get(headers, &cookies::name(REMEMBER, state.web.secure_cookies))
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
}

/// The second-step page for a browser already signed in with the password, when an OpenID
/// Connect request asks for a second factor. "Remember me" stays as it is.
pub(crate) fn second_step_page(
    state: &AppState,
    csrf: &CsrfCookie,
    headers: &HeaderMap,
    challenge: &MfaChallenge,
) -> Response {
    let remembered = remembered_user_id(state, headers);
    let page = mfa_page(
        state,
        csrf,
        &challenge_view(challenge),
        remembered.is_some(),
        remembered.as_deref().unwrap_or_default(),
        None,
        None,
    );
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
    remember: Option<String>,
    #[serde(default)]
    csrf: String,
}

pub async fn submit(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<SignInForm>,
) -> Response {
    let again =
        |csrf: &CsrfCookie, status: StatusCode, error: Option<String>, notice: Option<String>| {
            let page = SignInPage {
                chrome: chrome(&state, csrf, false),
                user_id: super::echo_user_id(&form.user_id),
                account_type: form.account_type.clone(),
                notice,
                error,
                account_types: account_types(&form.account_type),
                remembered: form.remember.is_some(),
            };
            csrf.apply(render(status, &page))
        };
    if !csrf.check(&state, &headers, &form.csrf) {
        csrf.rotate();
        return again(
            &csrf,
            StatusCode::FORBIDDEN,
            None,
            Some(csrf_failed().into()),
        );
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
        Ok(SignInOutcome::SignedIn(signed_in)) => {
            csrf.rotate();
            let remember = form.remember.is_some().then_some(form.user_id.trim());
            let to = (&csrf, &client, &headers);
            let response = signed_in_answer(&state, to, signed_in, Some(remember)).await;
            csrf.apply(response)
        }
        Ok(SignInOutcome::MfaRequired(challenge)) => {
            let page = mfa_page(
                &state,
                &csrf,
                &challenge_view(&challenge),
                form.remember.is_some(),
                form.user_id.trim(),
                None,
                None,
            );
            csrf.apply(render(StatusCode::OK, &page))
        }
        Err(ServiceError::SignInFailed) => again(
            &csrf,
            StatusCode::UNAUTHORIZED,
            Some(text::t("signin.failed").into()),
            None,
        ),
        Err(ServiceError::Locked { until }) => {
            let page = LockedPage {
                chrome: chrome(&state, &csrf, false),
                detail: text::fill(
                    "locked.detail",
                    &[("phone", &state.app.policies().support_phone)],
                ),
                until: crate::format::when(until),
                until_iso: until.to_rfc3339(),
            };
            csrf.apply(render(StatusCode::LOCKED, &page))
        }
        Err(e) => error_page(&state, &csrf, e),
    }
}

/// The answer to a form that signed the browser in: the session cookie, the device cookie
/// when the device is new, the remembered User ID (`Some(Some(id))` sets it, `Some(None)`
/// removes it, `None` leaves it as it is), and where the browser goes next. A sign-in that an
/// OpenID Connect authorization request sent here goes on with that request in this same
/// answer (its code on the way back to the client, its consent page or its second step)
/// rather than by a redirect to `/oidc/resume`: one round trip fewer for the person on a
/// slow phone, one request fewer for the server (figure 11, docs/benchmarks.md).
pub(crate) async fn signed_in_answer(
    state: &AppState,
    (csrf, client, headers): (&CsrfCookie, &ClientInfo, &HeaderMap),
    signed_in: SignedIn,
    remember: Option<Option<&str>>,
) -> Response {
    let mut answer = match home(state, headers, &signed_in) {
        Some(page) => Redirect::to(page).into_response(),
        None => {
            let session = Some(signed_in.session.clone());
            crate::oidc::resume_with(state, csrf, client, headers, session).await
        }
    };
    set_sign_in_cookies(state, answer.headers_mut(), &signed_in, remember);
    answer
}

/// The page a signed-in browser goes to; `None` when it goes on with the OpenID Connect
/// request its `portcullis_oidc` cookie names (the request and its registered redirect URI
/// are in the database). An account migrated with the earlier system's "must change
/// password", or without security answers, goes to the security page's forms first.
fn home(
    state: &AppState,
    request_headers: &HeaderMap,
    signed_in: &SignedIn,
) -> Option<&'static str> {
    let secure = state.web.secure_cookies;
    let oidc_return = cookies::get(
        request_headers,
        &cookies::name(crate::oidc::RETURN_COOKIE, secure),
    )
    .is_some_and(|v| !v.is_empty());
    if signed_in.password_change_required || signed_in.security_questions_required {
        Some("/security")
    } else if oidc_return {
        None
    } else {
        Some("/account")
    }
}

/// A sign-in's cookies, added to `headers` (see [`signed_in_answer`]).
fn set_sign_in_cookies(
    state: &AppState,
    headers: &mut HeaderMap,
    signed_in: &SignedIn,
    remember: Option<Option<&str>>,
) {
    let secure = state.web.secure_cookies;
    headers.append(
        header::SET_COOKIE,
        cookies::set(
            &cookies::name(cookies::SESSION, secure),
            signed_in.token.expose_secret(),
            Some(state.app.policies().session.absolute_secs),
            SameSite::Lax,
            secure,
        ),
    );
    if let Some(device) = &signed_in.device_token {
        headers.append(
            header::SET_COOKIE,
            cookies::set(
                &cookies::name(cookies::DEVICE, secure),
                device.expose_secret(),
                Some(cookies::DEVICE_MAX_AGE),
                SameSite::Strict,
                secure,
            ),
        );
    }
    let Some(remember) = remember else {
        return;
    };
    let remember_name = cookies::name(REMEMBER, secure);
    match remember.filter(|u| {
        !u.is_empty()
            && u.len() <= 64
            && u.bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
    }) {
        Some(user_id) => headers.append(
            header::SET_COOKIE,
            cookies::set(
                &remember_name,
                user_id,
                Some(REMEMBER_MAX_AGE),
                SameSite::Strict,
                secure,
            ),
        ),
        None => headers.append(
            header::SET_COOKIE,
            cookies::set(&remember_name, "", Some(0), SameSite::Strict, secure),
        ),
    };
}

/// "Forget me": removes the remembered User ID from this device.
pub async fn forget_me(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    headers: HeaderMap,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        csrf.rotate();
        return csrf.apply(Redirect::to("/").into_response());
    }
    let secure = state.web.secure_cookies;
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(
            &cookies::name(REMEMBER, secure),
            "",
            Some(0),
            SameSite::Strict,
            secure,
        ),
    );
    csrf.apply(response)
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// What the second-step page needs of a challenge.
pub struct ChallengeView {
    token: String,
    step_up: bool,
    methods: Vec<MfaMethod>,
}

fn challenge_view(c: &MfaChallenge) -> ChallengeView {
    ChallengeView {
        token: c.token.expose_secret().to_owned(),
        step_up: c.step_up,
        methods: c.methods.clone(),
    }
}

fn mfa_page(
    state: &AppState,
    csrf: &CsrfCookie,
    c: &ChallengeView,
    remember: bool,
    user_id: &str,
    notice: Option<String>,
    error: Option<String>,
) -> MfaPage {
    let label = |m: &MfaMethod| match m {
        MfaMethod::Passkey => text::t("mfa.method_passkey").to_owned(),
        MfaMethod::Totp => text::t("mfa.method_totp").to_owned(),
        MfaMethod::Email { destination } => {
            text::fill("mfa.method_email", &[("destination", destination)])
        }
        MfaMethod::Sms { destination } => {
            text::fill("mfa.method_sms", &[("destination", destination)])
        }
        MfaMethod::RecoveryCode => text::t("mfa.method_recovery_code").to_owned(),
    };
    let send_methods = c
        .methods
        .iter()
        .filter_map(|m| match m {
            MfaMethod::Email { destination } => Some((
                "email".to_owned(),
                text::fill("mfa.send_email", &[("destination", destination)]),
            )),
            MfaMethod::Sms { destination } => Some((
                "sms".to_owned(),
                text::fill("mfa.send_sms", &[("destination", destination)]),
            )),
            _ => None,
        })
        .collect();
    MfaPage {
        chrome: chrome(state, csrf, false),
        challenge: c.token.clone(),
        step_up: c.step_up,
        selected: c
            .methods
            .iter()
            .find(|m| **m != MfaMethod::Passkey)
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
        passkey: c.methods.contains(&MfaMethod::Passkey),
        methods: c
            .methods
            .iter()
            .filter(|m| **m != MfaMethod::Passkey)
            .map(|m| (m.as_str().to_owned(), label(m)))
            .collect(),
        send_methods,
        notice,
        error,
        trust_days: state.app.policies().mfa.trust_device_secs / 86_400,
        remember,
        user_id: user_id.to_owned(),
    }
}

#[derive(Deserialize)]
pub struct MfaForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    trust: Option<String>,
    #[serde(default)]
    action: String,
    #[serde(default)]
    remember: String,
    #[serde(default)]
    user_id: String,
}

/// The second step's form: send a code, or check one.
pub async fn mfa(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<MfaForm>,
) -> Response {
    let remember = form.remember == "true";
    // The methods are shown again from what the challenge offered.
    let view = ChallengeView {
        token: form.challenge.clone(),
        step_up: false,
        methods: state
            .app
            .challenge_methods(&form.challenge)
            .await
            .unwrap_or_default(),
    };
    let again =
        |csrf: &CsrfCookie, status: StatusCode, notice: Option<String>, error: Option<String>| {
            let mut page = mfa_page(
                &state,
                csrf,
                &view,
                remember,
                &super::echo_user_id(&form.user_id),
                notice,
                error,
            );
            if !form.method.is_empty() {
                page.selected = form.method.clone();
            }
            csrf.apply(render(status, &page))
        };
    if !csrf.check(&state, &headers, &form.csrf) {
        csrf.rotate();
        return again(
            &csrf,
            StatusCode::FORBIDDEN,
            Some(csrf_failed().into()),
            None,
        );
    }
    if view.methods.is_empty() {
        return start_again(&state, &csrf);
    }
    if form.action == "send" {
        return match state.app.send_mfa_code(&form.challenge, &form.method).await {
            Ok(destination) => again(
                &csrf,
                StatusCode::OK,
                Some(text::fill("mfa.sent", &[("destination", &destination)])),
                None,
            ),
            Err(ServiceError::TooManyRequests { retry_after }) => again(
                &csrf,
                StatusCode::TOO_MANY_REQUESTS,
                None,
                Some(text::fill("mfa.wait", &[("seconds", &retry_after)])),
            ),
            Err(e) => error_page(&state, &csrf, e),
        };
    }
    match state
        .app
        .verify_mfa(
            &form.challenge,
            &form.method,
            &form.code,
            form.trust.is_some(),
            &client,
        )
        .await
    {
        Ok(signed_in) => {
            csrf.rotate();
            let remember = Some(remember.then_some(form.user_id.trim()));
            let to = (&csrf, &client, &headers);
            let response = signed_in_answer(&state, to, signed_in, remember).await;
            csrf.apply(response)
        }
        Err(ServiceError::CodeRejected { tries_left }) => again(
            &csrf,
            StatusCode::BAD_REQUEST,
            None,
            Some(plural("code.wrong_one", "code.wrong", tries_left)),
        ),
        Err(ServiceError::Invalid(errors)) => again(
            &csrf,
            StatusCode::BAD_REQUEST,
            None,
            errors.first().map(|e| e.message.clone()),
        ),
        Err(ServiceError::Locked { until }) => {
            let page = LockedPage {
                chrome: chrome(&state, &csrf, false),
                detail: text::fill(
                    "locked.detail",
                    &[("phone", &state.app.policies().support_phone)],
                ),
                until: crate::format::when(until),
                until_iso: until.to_rfc3339(),
            };
            csrf.apply(render(StatusCode::LOCKED, &page))
        }
        Err(ServiceError::StepExpired | ServiceError::CodeSpent) => start_again(&state, &csrf),
        Err(e) => error_page(&state, &csrf, e),
    }
}

fn start_again(state: &AppState, csrf: &CsrfCookie) -> Response {
    let page = super::MessagePage {
        chrome: chrome(state, csrf, false),
        title: text::t("signin.again_title").into(),
        message: text::t("signin.again").into(),
        next_href: "/".into(),
        next_label: text::t("common.sign_in").into(),
    };
    csrf.apply(render(StatusCode::GONE, &page))
}
