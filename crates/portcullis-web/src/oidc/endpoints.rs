//! The endpoint handlers.

use axum::extract::{Query, RawForm, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use portcullis_core::oidc::{OidcError, RawAuthRequest};
use portcullis_core::service::oidc::{
    AuthorizeStep, ClientCredentials, LoginNeeded, LogoutRequest, TokenForm,
};
use portcullis_core::service::{ClientInfo, SessionContext};

use super::parse::{self, Params};
use super::{no_store, ErrorAnswer};
use crate::client::Client;
use crate::cookies::{self, SameSite};
use crate::pages::oidc::{
    browser_session, consent_page, continue_page, logout_response, no_store_redirect,
    request_refused_page,
};
use crate::pages::{unavailable_page, CsrfCookie};
use crate::AppState;

/// The cookie that remembers, across the sign-in page, which authorization request the
/// browser came with (a random handle; the request itself is in the database).
pub const RETURN_COOKIE: &str = "portcullis_oidc";

fn endpoint(state: &AppState, path: &str) -> String {
    format!("{}{path}", state.app.oidc_issuer())
}

pub async fn discovery(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.app.oidc_discovery())
}

pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.app.oidc_jwks())
}

fn form_params(body: &[u8]) -> Result<Params, OidcError> {
    let pairs: Vec<(String, String)> = serde_urlencoded_pairs(body)?;
    Params::new(pairs)
}

fn serde_urlencoded_pairs(body: &[u8]) -> Result<Vec<(String, String)>, OidcError> {
    let text = std::str::from_utf8(body).map_err(|_| OidcError::invalid_request("not UTF-8"))?;
    let mut out = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            super::parse::form_decode(s).ok_or(OidcError::invalid_request("bad form encoding"))
        };
        out.push((dec(k)?, dec(v)?));
    }
    Ok(out)
}

fn form_content(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// A client's form post to one of the client-authenticated endpoints: its parameters, its
/// credentials and the endpoint's URL (what an assertion's `aud` and a proof's `htu` name).
struct ClientCall {
    params: Params,
    creds: ClientCredentials,
    url: String,
}

fn client_call(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
) -> Result<ClientCall, OidcError> {
    if !form_content(headers) {
        return Err(OidcError::invalid_request("a form body is required"));
    }
    let params = form_params(body)?;
    let creds = parse::credentials(headers, &params)?;
    Ok(ClientCall {
        params,
        creds,
        url: endpoint(state, path),
    })
}

/// With `oidc.dpop_nonce` on, every answer of an endpoint that takes DPoP proofs carries
/// the current server nonce (RFC 9449 §8.2, §9).
fn with_nonce(state: &AppState, mut response: Response) -> Response {
    if let Some(v) = state
        .app
        .oidc_dpop_nonce()
        .and_then(|n| HeaderValue::from_str(&n).ok())
    {
        response.headers_mut().insert("dpop-nonce", v);
    }
    response
}

/// `POST /oidc/par` (RFC 9126).
pub async fn par(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let run = async {
        let call = client_call(&state, &headers, &body, "/oidc/par")?;
        let dpop = parse::dpop(&headers, "POST", call.url.clone())?;
        let raw: RawAuthRequest = call.params.to()?;
        state.app.push_authorization(call.creds, raw, dpop).await
    };
    let response = match run.await {
        Ok((request_uri, expires_in)) => no_store(
            StatusCode::CREATED,
            serde_json::json!({"request_uri": request_uri, "expires_in": expires_in}),
        ),
        Err(e) => ErrorAnswer(e).into_response(),
    };
    with_nonce(&state, response)
}

/// To the sign-in page, with the cookie that names the waiting request.
pub fn login_redirect(state: &AppState, login: &LoginNeeded) -> Response {
    let secure = state.web.secure_cookies;
    let target = if login.force { "/?login=1" } else { "/" };
    let mut r = Redirect::to(target).into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, return_cookie(&login.handle, secure));
    r
}

fn step_response(
    state: &AppState,
    csrf: &CsrfCookie,
    step: Result<AuthorizeStep, OidcError>,
) -> Response {
    match step {
        Ok(AuthorizeStep::Redirect(to)) => no_store_redirect(&to),
        Ok(AuthorizeStep::Login(login)) => login_redirect(state, &login),
        Ok(AuthorizeStep::Consent(needed)) => consent_page(state, csrf, needed),
        Ok(AuthorizeStep::SecondFactor(_)) => unavailable_page(state),
        Ok(AuthorizeStep::Refused(e)) | Err(e) => request_refused_page(state, &e),
    }
}

/// The second step asked of a browser signed in with the password alone (a request for a
/// second factor): the second-step page, whose success goes back to the request.
/// `None` for any other step.
async fn second_factor(
    state: &AppState,
    (csrf, client, headers): (&CsrfCookie, &ClientInfo, &HeaderMap),
    session: &Option<SessionContext>,
    step: &Result<AuthorizeStep, OidcError>,
) -> Option<Response> {
    let Ok(AuthorizeStep::SecondFactor(LoginNeeded { handle, .. })) = step else {
        return None;
    };
    let secure = state.web.secure_cookies;
    let device = cookies::get(headers, &cookies::name(cookies::DEVICE, secure));
    let challenge = match session {
        Some(s) => {
            state
                .app
                .oidc_second_step(s, device.as_deref(), client)
                .await
        }
        None => Ok(None),
    };
    let mut response = match challenge {
        Ok(Some(c)) => crate::pages::signin::second_step_page(state, csrf, headers, &c),
        Ok(None) => {
            return Some(step_response(
                state,
                csrf,
                Ok(AuthorizeStep::Refused(OidcError::invalid_request(
                    "a second factor is needed and none is set up",
                ))),
            ))
        }
        Err(_) => return Some(unavailable_page(state)),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, return_cookie(handle, secure));
    Some(response)
}

/// The cookie naming the authorization request that waits for the sign-in.
fn return_cookie(handle: &str, secure: bool) -> HeaderValue {
    cookies::set(
        &cookies::name(RETURN_COOKIE, secure),
        handle,
        Some(portcullis_core::oidc::LOGIN_TTL_SECS),
        SameSite::Lax,
        secure,
    )
}

/// `GET /oidc/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let raw = match Params::new(pairs).and_then(|p| p.to::<RawAuthRequest>()) {
        Ok(raw) => raw,
        Err(e) => return step_response(&state, &csrf, Err(e)),
    };
    let session = match browser_session(&state, &headers).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let step = state.app.authorize(raw, session.clone()).await;
    if let Some(page) = second_factor(&state, (&csrf, &client, &headers), &session, &step).await {
        return page;
    }
    step_response(&state, &csrf, step)
}

/// `GET /oidc/resume`: back from the sign-in page to the request the cookie names.
pub async fn resume(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
) -> Response {
    let session = match browser_session(&state, &headers).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    resume_with(&state, &csrf, &client, &headers, session).await
}

/// The request the cookie names, for `session` (the browser's, or the one its sign-in has
/// just made: `pages::signin::signed_in_answer`): its code, consent page, second step or
/// refusal, and the cookie cleared unless the answer sets it again.
pub(crate) async fn resume_with(
    state: &AppState,
    csrf: &CsrfCookie,
    client: &ClientInfo,
    headers: &HeaderMap,
    session: Option<SessionContext>,
) -> Response {
    let secure = state.web.secure_cookies;
    let name = cookies::name(RETURN_COOKIE, secure);
    let handle = cookies::get(headers, &name).unwrap_or_default();
    let step = state
        .app
        .resume_authorization(&handle, session.clone())
        .await;
    if let Some(page) = second_factor(state, (csrf, client, headers), &session, &step).await {
        return page;
    }
    // Reached at the end of a form's journey: the way to the client is a page.
    let mut response = match step {
        Ok(AuthorizeStep::Redirect(to)) => continue_page(state, &to),
        step => step_response(state, csrf, step),
    };
    if !response.headers().contains_key(header::SET_COOKIE) {
        response.headers_mut().append(
            header::SET_COOKIE,
            cookies::set(&name, "", Some(0), SameSite::Lax, secure),
        );
    }
    response
}

/// `POST /oidc/token`.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let run = async {
        let call = client_call(&state, &headers, &body, "/oidc/token")?;
        let dpop = parse::dpop(&headers, "POST", call.url.clone())?;
        let form: TokenForm = call.params.to()?;
        state.app.oidc_token(call.creds, form, dpop).await
    };
    let response = match run.await {
        Ok(answer) => no_store(
            StatusCode::OK,
            serde_json::to_value(answer).unwrap_or_default(),
        ),
        Err(e) => ErrorAnswer(e).into_response(),
    };
    with_nonce(&state, response)
}

/// `GET|POST /oidc/userinfo`: `Authorization: DPoP …` with a proof, or `Bearer …` for a
/// token not bound to a key.
pub async fn userinfo(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(OidcError::invalid_token("an access token is required"))?;
        let (scheme, token) = auth
            .split_once(' ')
            .ok_or(OidcError::invalid_token("an access token is required"))?;
        let url = endpoint(&state, "/oidc/userinfo");
        let dpop = parse::dpop(&headers, method.as_str(), url)?;
        state.app.oidc_userinfo(scheme, token.trim(), dpop).await
    };
    let response = match run.await {
        Ok(claims) => no_store(StatusCode::OK, claims),
        Err(e) => ErrorAnswer(e).into_response(),
    };
    with_nonce(&state, response)
}

/// The `token` parameter of revocation and introspection.
fn token_of(call: &ClientCall) -> Result<String, OidcError> {
    call.params
        .get("token")
        .filter(|t| t.len() <= 256)
        .map(str::to_owned)
        .ok_or(OidcError::invalid_request("token is required"))
}

/// `POST /oidc/revoke` (RFC 7009).
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let run = async {
        let call = client_call(&state, &headers, &body, "/oidc/revoke")?;
        let token = token_of(&call)?;
        state.app.oidc_revoke(call.creds, &token).await
    };
    match run.await {
        Ok(()) => no_store(StatusCode::OK, serde_json::json!({})),
        Err(e) => ErrorAnswer(e).into_response(),
    }
}

/// `POST /oidc/introspect` (RFC 7662).
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let run = async {
        let call = client_call(&state, &headers, &body, "/oidc/introspect")?;
        let token = token_of(&call)?;
        state.app.oidc_introspect(call.creds, &token).await
    };
    match run.await {
        Ok(answer) => no_store(StatusCode::OK, answer),
        Err(e) => ErrorAnswer(e).into_response(),
    }
}

/// `GET /oidc/logout` and `POST /oidc/logout` (RP-Initiated Logout 1.0): the parameters in
/// the query or in a form body.
pub async fn end_session(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    method: axum::http::Method,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
    RawForm(body): RawForm,
) -> Response {
    let params = if method == axum::http::Method::POST {
        if !form_content(&headers) {
            Err(OidcError::invalid_request("a form body is required"))
        } else {
            form_params(&body)
        }
    } else {
        Params::new(pairs)
    };
    let request = match params.and_then(|p| p.to::<LogoutRequest>()) {
        Ok(r) => r,
        Err(e) => return logout_response(&state, &mut csrf, Err(e), false),
    };
    let session = match browser_session(&state, &headers).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let step = state.app.oidc_end_session(&request, session, &client).await;
    logout_response(&state, &mut csrf, step, false)
}
