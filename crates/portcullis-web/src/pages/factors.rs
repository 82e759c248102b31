//! `/security/factors`: second factors, recovery codes, trusted devices; and the "This was
//! not me" page of the new-device message.

use super::PageForm;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use portcullis_core::ServiceError;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{chrome, csrf_failed, error_page, render, Chrome, CsrfCookie, PageSession};
use crate::client::Client;
use crate::text;
use crate::AppState;

pub struct FactorView {
    pub id: i64,
    pub name: String,
    pub added: String,
    pub passkey: bool,
}

pub struct TrustedView {
    pub id: i64,
    pub description: String,
    pub until: String,
}

pub struct TotpView {
    pub secret: String,
    pub qr_svg: String,
}

#[derive(Template)]
#[template(path = "factors.html")]
pub struct FactorsPage {
    pub chrome: Chrome,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub factors: Vec<FactorView>,
    pub trusted: Vec<TrustedView>,
    pub codes_left: i64,
    pub recent: bool,
    pub has_email: bool,
    pub has_phone: bool,
    /// New recovery codes, shown this once.
    pub codes: Vec<String>,
    /// An authenticator being set up.
    pub totp: Option<TotpView>,
}

#[derive(Template)]
#[template(path = "not_me.html")]
pub struct NotMePage {
    pub chrome: Chrome,
    pub token: String,
}

#[derive(Default)]
struct Extra {
    notice: Option<String>,
    error: Option<String>,
    codes: Vec<String>,
    totp: Option<TotpView>,
}

async fn page(
    state: &AppState,
    csrf: &CsrfCookie,
    ctx: &portcullis_core::service::SessionContext,
    status: StatusCode,
    extra: Extra,
) -> Response {
    let s = match state.app.security_settings(ctx).await {
        Ok(s) => s,
        Err(e) => return error_page(state, csrf, e),
    };
    let page = FactorsPage {
        chrome: chrome(state, csrf, true),
        notice: extra.notice,
        error: extra.error,
        factors: s
            .factors
            .into_iter()
            .map(|f| FactorView {
                id: f.id,
                passkey: f.kind == portcullis_core::ports::FactorKind::Passkey,
                name: f.name,
                added: crate::format::when(f.created_at),
            })
            .collect(),
        trusted: s
            .trusted_devices
            .into_iter()
            .map(|d| TrustedView {
                id: d.id,
                description: d.description,
                until: crate::format::when(d.trusted_until),
            })
            .collect(),
        codes_left: s.recovery_codes_left,
        recent: s.recently_authenticated,
        has_email: s.has_email,
        has_phone: s.has_phone,
        codes: extra.codes,
        totp: extra.totp,
    };
    render(status, &page)
}

pub async fn show(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    PageSession(ctx): PageSession,
) -> Response {
    csrf.apply(page(&state, &csrf, &ctx, StatusCode::OK, Extra::default()).await)
}

#[derive(Deserialize)]
pub struct FactorForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    channel: String,
}

/// The outcome of an action, as the page shows it.
async fn after(
    state: &AppState,
    csrf: &CsrfCookie,
    ctx: &portcullis_core::service::SessionContext,
    result: Result<Extra, ServiceError>,
) -> Response {
    let (status, extra) = match result {
        Ok(extra) => (StatusCode::OK, extra),
        Err(ServiceError::ReauthRequired) => (
            StatusCode::FORBIDDEN,
            Extra {
                error: Some(text::t("factors.reauth_needed").into()),
                ..Default::default()
            },
        ),
        Err(ServiceError::Invalid(errors)) => (
            StatusCode::BAD_REQUEST,
            Extra {
                error: errors.first().map(|e| e.message.clone()),
                ..Default::default()
            },
        ),
        Err(ServiceError::NotFound) => (
            StatusCode::NOT_FOUND,
            Extra {
                error: Some(text::t("factors.gone").into()),
                ..Default::default()
            },
        ),
        Err(
            e @ (ServiceError::Locked { .. }
            | ServiceError::Unavailable(_)
            | ServiceError::TooManyRequests { .. }
            | ServiceError::Internal(_)),
        ) => return error_page(state, csrf, e),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            Extra {
                error: Some(text::t("factors.start_again").into()),
                ..Default::default()
            },
        ),
    };
    csrf.apply(page(state, csrf, ctx, status, extra).await)
}

macro_rules! checked {
    ($state:expr, $csrf:expr, $headers:expr, $ctx:expr, $form_csrf:expr) => {
        if !$csrf.check(&$state, &$headers, $form_csrf) {
            return after(
                &$state,
                &$csrf,
                &$ctx,
                Ok(Extra {
                    error: Some(csrf_failed().into()),
                    ..Default::default()
                }),
            )
            .await;
        }
    };
}

pub async fn reauthenticate(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<FactorForm>,
) -> Response {
    checked!(state, csrf, headers, ctx, &form.csrf);
    let result = state
        .app
        .reauthenticate(&ctx, &form.password, &client)
        .await
        .map(|()| Extra {
            notice: Some(text::t("factors.reauth_done").into()),
            ..Default::default()
        });
    // The session's re-authentication time is read again on the next request.
    match result {
        Ok(_) => Redirect::to("/security/factors").into_response(),
        Err(e) => after(&state, &csrf, &ctx, Err(e)).await,
    }
}

pub async fn begin_totp(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<FactorForm>,
) -> Response {
    checked!(state, csrf, headers, ctx, &form.csrf);
    let result = state.app.begin_totp(&ctx).await.map(|e| Extra {
        totp: Some(TotpView {
            secret: e.secret.expose_secret().to_owned(),
            qr_svg: qr_svg(e.otpauth_uri.expose_secret()),
        }),
        ..Default::default()
    });
    after(&state, &csrf, &ctx, result).await
}

/// The otpauth URI as an SVG QR code, drawn on the server.
fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

pub async fn confirm_totp(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<FactorForm>,
) -> Response {
    checked!(state, csrf, headers, ctx, &form.csrf);
    let result = state
        .app
        .confirm_totp(&ctx, &form.code, &client)
        .await
        .map(|()| Extra {
            notice: Some(text::t("factors.totp_on").into()),
            ..Default::default()
        });
    after(&state, &csrf, &ctx, result).await
}

pub async fn enable_code(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<FactorForm>,
) -> Response {
    checked!(state, csrf, headers, ctx, &form.csrf);
    let result = state
        .app
        .enable_code_factor(&ctx, &form.channel, &client)
        .await
        .map(|()| Extra {
            notice: Some(text::t("factors.code_on").into()),
            ..Default::default()
        });
    after(&state, &csrf, &ctx, result).await
}

pub async fn remove(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    Path(id): Path<i64>,
    PageForm(form): PageForm<FactorForm>,
) -> Response {
    checked!(state, csrf, headers, ctx, &form.csrf);
    let result = state
        .app
        .remove_factor(&ctx, id, &client)
        .await
        .map(|()| Extra {
            notice: Some(text::t("factors.removed").into()),
            ..Default::default()
        });
    after(&state, &csrf, &ctx, result).await
}

pub async fn recovery_codes(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<FactorForm>,
) -> Response {
    checked!(state, csrf, headers, ctx, &form.csrf);
    let result = state
        .app
        .issue_recovery_codes(&ctx, &client)
        .await
        .map(|codes| Extra {
            codes: codes.iter().map(|c| c.expose_secret().to_owned()).collect(),
            ..Default::default()
        });
    after(&state, &csrf, &ctx, result).await
}

pub async fn untrust(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    Path(id): Path<i64>,
    PageForm(form): PageForm<FactorForm>,
) -> Response {
    checked!(state, csrf, headers, ctx, &form.csrf);
    let result = state
        .app
        .untrust_device(&ctx, id, &client)
        .await
        .map(|()| Extra {
            notice: Some(text::t("factors.untrusted").into()),
            ..Default::default()
        });
    after(&state, &csrf, &ctx, result).await
}

/// The "This was not me" link: a page with a button (a link opened by a mail scanner must
/// not lock anyone out).
pub async fn not_me_show(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Path(token): Path<String>,
) -> Response {
    let page = NotMePage {
        chrome: chrome(&state, &csrf, false),
        token,
    };
    csrf.apply(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
pub struct NotMeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

pub async fn not_me_submit(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<NotMeForm>,
) -> Response {
    let message = |title: &str, message: &str, status: StatusCode| {
        let page = super::MessagePage {
            chrome: chrome(&state, &csrf, false),
            title: title.into(),
            message: message.into(),
            next_href: "/recover/password".into(),
            next_label: text::t("not_me.unlock").into(),
        };
        csrf.apply(render(status, &page))
    };
    if !csrf.check(&state, &headers, &form.csrf) {
        return message(
            text::t("page.try_again"),
            csrf_failed(),
            StatusCode::FORBIDDEN,
        );
    }
    match state.app.not_me(&form.token, &client).await {
        Ok(()) => message(
            text::t("locked.heading"),
            text::t("not_me.done"),
            StatusCode::OK,
        ),
        Err(ServiceError::StepExpired) => message(
            text::t("not_me.gone_title"),
            text::t("not_me.gone"),
            StatusCode::GONE,
        ),
        Err(e) => error_page(&state, &csrf, e),
    }
}

/// A JSON answer for the passkey script (it reads `token` and `options`).
fn options_json(token: Option<&str>, options_json: &str) -> Response {
    let options: serde_json::Value = serde_json::from_str(options_json).unwrap_or_default();
    let body = match token {
        Some(t) => serde_json::json!({ "options": options, "token": t }),
        None => serde_json::json!({ "options": options }),
    };
    axum::Json(body).into_response()
}

fn options_error(status: StatusCode, detail: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "detail": detail }))).into_response()
}

fn options_failed(e: ServiceError) -> Response {
    match e {
        ServiceError::ReauthRequired => {
            options_error(StatusCode::FORBIDDEN, text::t("passkey.options_reauth"))
        }
        ServiceError::StepExpired => {
            options_error(StatusCode::GONE, text::t("passkey.options_expired"))
        }
        ServiceError::TooManyRequests { .. } => options_error(
            StatusCode::TOO_MANY_REQUESTS,
            text::t("passkey.options_too_many"),
        ),
        ServiceError::Invalid(errors) => options_error(
            StatusCode::BAD_REQUEST,
            errors
                .first()
                .map_or(text::t("passkey.options_unavailable"), |e| {
                    e.message.as_str()
                }),
        ),
        ServiceError::Internal(reason) => {
            tracing::error!(%reason, "passkey options failed");
            options_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                text::t("passkey.options_failed"),
            )
        }
        _ => options_error(
            StatusCode::SERVICE_UNAVAILABLE,
            text::t("passkey.options_busy"),
        ),
    }
}

#[derive(Deserialize)]
pub struct OptionsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge: String,
}

pub async fn passkey_options(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<OptionsForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return options_error(StatusCode::FORBIDDEN, csrf_failed());
    }
    match state.app.begin_passkey(&ctx).await {
        Ok(o) => options_json(Some(o.token.expose_secret()), &o.options_json),
        Err(e) => options_failed(e),
    }
}

pub async fn add_passkey(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    PageForm(form): PageForm<FactorForm>,
) -> Response {
    checked!(state, csrf, headers, ctx, &form.csrf);
    let result = state
        .app
        .finish_passkey(&ctx, &form.token, &form.credential, &form.name, &client)
        .await
        .map(|()| Extra {
            notice: Some(text::t("factors.passkey_added").into()),
            ..Default::default()
        });
    after(&state, &csrf, &ctx, result).await
}

pub async fn rename(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    headers: HeaderMap,
    PageSession(ctx): PageSession,
    Path(id): Path<i64>,
    PageForm(form): PageForm<FactorForm>,
) -> Response {
    checked!(state, csrf, headers, ctx, &form.csrf);
    let result = state
        .app
        .rename_factor(&ctx, id, &form.name)
        .await
        .map(|()| Extra {
            notice: Some(text::t("factors.renamed").into()),
            ..Default::default()
        });
    after(&state, &csrf, &ctx, result).await
}

pub async fn sign_in_passkey_options(
    State(state): State<AppState>,
    Client(client): Client,
    csrf: CsrfCookie,
    headers: HeaderMap,
    PageForm(form): PageForm<OptionsForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return options_error(StatusCode::FORBIDDEN, csrf_failed());
    }
    match state.app.passkey_sign_in_options(&client).await {
        Ok(o) => options_json(Some(o.token.expose_secret()), &o.options_json),
        Err(e) => options_failed(e),
    }
}

pub async fn mfa_passkey_options(
    State(state): State<AppState>,
    csrf: CsrfCookie,
    headers: HeaderMap,
    PageForm(form): PageForm<OptionsForm>,
) -> Response {
    if !csrf.check(&state, &headers, &form.csrf) {
        return options_error(StatusCode::FORBIDDEN, csrf_failed());
    }
    match state.app.mfa_passkey_options(&form.challenge).await {
        Ok(options) => options_json(None, &options),
        Err(e) => options_failed(e),
    }
}

pub async fn sign_in_passkey(
    State(state): State<AppState>,
    mut csrf: CsrfCookie,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<FactorForm>,
) -> Response {
    let back = |csrf: &CsrfCookie, status: StatusCode, text: &str| {
        let page = super::MessagePage {
            chrome: chrome(&state, csrf, false),
            title: text::t("passkey.sign_in_failed_title").into(),
            message: text.into(),
            next_href: "/".into(),
            next_label: text::t("common.back_to_sign_in").into(),
        };
        csrf.apply(render(status, &page))
    };
    if !csrf.check(&state, &headers, &form.csrf) {
        csrf.rotate();
        return back(&csrf, StatusCode::FORBIDDEN, csrf_failed());
    }
    let device = crate::cookies::get(
        &headers,
        &crate::cookies::name(crate::cookies::DEVICE, state.web.secure_cookies),
    );
    match state
        .app
        .passkey_sign_in(&form.token, &form.credential, device.as_deref(), &client)
        .await
    {
        Ok(signed_in) => {
            csrf.rotate();
            let to = (&csrf, &client, &headers);
            let response = super::signin::signed_in_answer(&state, to, signed_in, None).await;
            csrf.apply(response)
        }
        Err(ServiceError::SignInFailed | ServiceError::StepExpired) => back(
            &csrf,
            StatusCode::UNAUTHORIZED,
            text::t("passkey.sign_in_failed"),
        ),
        Err(e) => error_page(&state, &csrf, e),
    }
}
