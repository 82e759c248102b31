//! The OpenID Connect pages (issue 15): the consent page for a client not registered
//! first-party, the sign-out confirmation of RP-Initiated Logout and the "signed out" page.
//! The protocol endpoints are in `crate::oidc`; these are the pages they show and the forms
//! the person posts back (CSRF-checked).

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use portcullis_core::oidc::OidcError;
use portcullis_core::service::oidc::{AuthorizeStep, ConsentNeeded, LogoutRequest, LogoutStep};
use portcullis_core::service::SessionContext;
use portcullis_core::ServiceError;
use serde::Deserialize;

use super::{chrome, csrf_failed, message_page, render, unavailable_page, Chrome, CsrfCookie};
use super::{MessagePage, PageForm};
use crate::client::Client;
use crate::cookies::{self, SameSite};
use crate::text;
use crate::AppState;

#[derive(Template)]
#[template(path = "oidc_consent.html")]
pub struct ConsentPage {
    pub chrome: Chrome,
    pub client_name: String,
    pub handle: String,
    /// What each scope asked lets the client do, in plain words.
    pub scopes: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "oidc_logout.html")]
pub struct LogoutPage {
    pub chrome: Chrome,
    pub client_name: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

fn scope_words(scope: &str) -> &'static str {
    match scope {
        "openid" => text::t("consent.scope_openid"),
        "email" => text::t("consent.scope_email"),
        "phone" => text::t("consent.scope_phone"),
        "offline_access" => text::t("consent.scope_offline_access"),
        _ => text::t("consent.scope_other"),
    }
}

/// The consent page for a request waiting for "Allow" or "Deny".
pub fn consent_page(state: &AppState, csrf: &CsrfCookie, needed: ConsentNeeded) -> Response {
    let mut scopes: Vec<&'static str> = needed.scopes.iter().map(|s| scope_words(s)).collect();
    scopes.dedup();
    let page = ConsentPage {
        chrome: chrome(state, csrf, true),
        client_name: needed.client_name,
        handle: needed.handle,
        scopes,
    };
    let mut response = csrf.apply(render(StatusCode::OK, &page));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A request that cannot go back to its client: a page, never a redirect.
pub fn request_refused_page(state: &AppState, e: &OidcError) -> Response {
    message_page(
        state,
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        text::t("consent.failed_title"),
        e.description,
    )
}

/// The browser's session, if it has a live one (an unavailable store is a page).
pub async fn browser_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<SessionContext>, Response> {
    let name = cookies::name(cookies::SESSION, state.web.secure_cookies);
    let Some(token) = cookies::get(headers, &name) else {
        return Ok(None);
    };
    match state.app.authenticate(&token).await {
        Ok(ctx) => Ok(Some(ctx)),
        Err(ServiceError::Unavailable(_)) => Err(unavailable_page(state)),
        Err(_) => Ok(None),
    }
}

/// A form whose CSRF token does not match (forged, or from before a sign-in).
fn form_expired(state: &AppState) -> Response {
    message_page(
        state,
        StatusCode::FORBIDDEN,
        text::t("page.try_again"),
        csrf_failed(),
    )
}

#[derive(Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    handle: String,
    #[serde(default)]
    decision: String,
}

/// `POST /oidc/consent`: "Allow" or "Deny".
pub async fn consent_submit(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<ConsentForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return form_expired(&state);
    }
    let allow = match form.decision.as_str() {
        "allow" => true,
        "deny" => false,
        _ => {
            return message_page(
                &state,
                StatusCode::BAD_REQUEST,
                text::t("page.form_unreadable_title"),
                text::t("page.form_unreadable"),
            )
        }
    };
    let session = match browser_session(&state, &headers).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let step = state
        .app
        .consent_decision(&form.handle, allow, session, &client)
        .await;
    match step {
        Ok(AuthorizeStep::Redirect(to)) => continue_page(&state, &to),
        Ok(AuthorizeStep::Consent(needed)) => consent_page(&state, &csrf, needed),
        // The session changed its sign-in under the page: sign in again, then back here.
        Ok(AuthorizeStep::Login(login)) => crate::oidc::login_redirect(&state, &login),
        // The second step is asked before the consent page, never after it.
        Ok(AuthorizeStep::SecondFactor(_)) => super::unavailable_page(&state),
        Ok(AuthorizeStep::Refused(e)) | Err(e) => request_refused_page(&state, &e),
    }
}

#[derive(Template)]
#[template(path = "oidc_continue.html")]
pub struct ContinuePage {
    pub chrome: Chrome,
    pub to: String,
}

/// The way back to the client at the end of a form's journey (sign-in, second step,
/// consent, sign-out confirmation). A 303 there would be a redirect of the form's
/// submission, which the pages' CSP (`form-action 'self'`) forbids browsers to follow to
/// another origin; this page's refresh is a navigation of its own.
pub fn continue_page(state: &AppState, to: &str) -> Response {
    let page = ContinuePage {
        chrome: super::chrome_without_form(state),
        to: to.to_owned(),
    };
    let mut response = render(StatusCode::OK, &page);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub fn no_store_redirect(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// What the end-session endpoint's answer looks like in the browser. `signed_out`: the
/// session cookie is cleared (the session itself has ended).
pub fn logout_response(
    state: &AppState,
    csrf: &mut CsrfCookie,
    step: Result<LogoutStep, OidcError>,
    from_form: bool,
) -> Response {
    let secure = state.web.secure_cookies;
    let response = match step {
        Ok(LogoutStep::Done { redirect }) => {
            csrf.rotate();
            let mut response = match redirect {
                Some(to) if from_form => continue_page(state, &to),
                Some(to) => no_store_redirect(&to),
                None => {
                    let page = MessagePage {
                        chrome: chrome(state, csrf, false),
                        title: text::t("logout.done_title").into(),
                        message: text::t("logout.done").into(),
                        next_href: "/".into(),
                        next_label: text::t("common.sign_in").into(),
                    };
                    render(StatusCode::OK, &page)
                }
            };
            let name = cookies::name(cookies::SESSION, secure);
            response.headers_mut().append(
                header::SET_COOKIE,
                cookies::set(&name, "", Some(0), SameSite::Lax, secure),
            );
            response
        }
        Ok(LogoutStep::Confirm {
            client_name,
            client_id,
            post_logout_redirect_uri,
            state: rp_state,
        }) => {
            let page = LogoutPage {
                chrome: chrome(state, csrf, true),
                client_name,
                client_id,
                post_logout_redirect_uri,
                state: rp_state,
            };
            render(StatusCode::OK, &page)
        }
        Ok(LogoutStep::Refused(e)) | Err(e) => message_page(
            state,
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            text::t("logout.refused_title"),
            e.description,
        ),
    };
    let mut response = csrf.apply(response);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// `POST /oidc/logout/confirm`: the person pressed "Sign out" on the confirmation page.
pub async fn logout_confirm(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<LogoutForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return form_expired(&state);
    }
    let session = match browser_session(&state, &headers).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let request = LogoutRequest {
        client_id: form.client_id.filter(|v| !v.is_empty()),
        post_logout_redirect_uri: form.post_logout_redirect_uri.filter(|v| !v.is_empty()),
        state: form.state.filter(|v| !v.is_empty()),
        ..LogoutRequest::default()
    };
    let step = state
        .app
        .oidc_confirm_end_session(&request, session, &client)
        .await;
    logout_response(&state, &mut csrf, step, true)
}
