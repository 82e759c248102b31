//! The one mapping from errors to HTTP for the API: `application/problem+json` (RFC 9457)
//! with `type`, `title`, `status`, `detail`, a stable `code`, and `errors[]` for bad input.
//! Every [`ServiceError`] variant is mapped deliberately; internals are logged, not shown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::{FieldError, ServiceError};
use serde::Serialize;
use utoipa::ToSchema;

/// Seconds a client should wait after a 503.
pub const RETRY_AFTER_UNAVAILABLE: u64 = 2;

/// A problem details document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// A stable machine-readable name for the problem.
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<FieldErrorDoc>)]
    pub errors: Vec<FieldError>,
    /// For 423: when the lock ends (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    /// For a wrong code or recovery answer: tries left on this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tries_left: Option<u32>,
}

/// One field that failed a rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorDoc {
    /// In a batch (`POST /admin/registry/records`): the 0-based index of the bad record.
    #[schema(nullable = false)]
    pub index: Option<usize>,
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
    locked_until: Option<String>,
    tries_left: Option<u32>,
    www_authenticate: bool,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            locked_until: None,
            tries_left: None,
            www_authenticate: false,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
            detail,
        )
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-input",
            "Some fields need attention",
            "Check the fields listed in errors and try again.",
        );
        e.errors = errors;
        e
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "There is nothing here.",
        )
    }

    /// 409: the account's last card cannot be unlinked.
    pub fn last_card() -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            "last-card",
            "This is your only card",
            "An online account keeps at least one card. Link another card before unlinking this one.",
        );
        e.errors = vec![FieldError::new(
            "card",
            "An online account keeps at least one card.",
        )];
        e
    }

    /// 422: an `Idempotency-Key` used before with another request.
    pub fn idempotency_key_reused() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key used with another request",
            "This Idempotency-Key was used with a different request body. Use a new key for a new request; nothing was applied.",
        )
    }

    /// A 404 that says what is missing.
    pub fn not_found_because(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 503: this node is at its limit of requests in flight, or the answer took longer than
    /// the request deadline.
    pub fn overloaded() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "The service is busy. Try again in a moment; nothing was changed unless you are told so.",
        );
        e.retry_after = Some(RETRY_AFTER_UNAVAILABLE);
        e
    }

    /// 413: the body is larger than `server.body_limit_bytes`.
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            "The request body is larger than this service accepts.",
        )
    }

    /// 408: the body arrived more slowly than the service accepts.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "body-too-slow",
            "Request body too slow",
            "The request body arrived too slowly. Send it again.",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// The sign-in failure detail: one sentence for every cause.
pub const SIGN_IN_FAILED: &str =
    "The User ID, password or account type you entered is not correct. Check them and try again.";

pub fn lock_detail(support_phone: &str) -> String {
    format!(
        "Your account is locked after too many failed sign-in attempts. Unlock it now with \
         \"Forgot your password?\" using your card and a one-time code, or call {support_phone}."
    )
}

tokio::task_local! {
    /// The configured support number, for the one answer that names it (a lock's detail).
    /// Set around every request by [`crate::middleware::request_context`] from the
    /// application's policies, so `?` can turn a [`ServiceError`] into an [`ApiError`]
    /// without the handler passing configuration along.
    pub(crate) static SUPPORT_PHONE: std::sync::Arc<str>;
}

/// The support number of the request being answered ("customer support" outside one).
fn support_phone() -> String {
    SUPPORT_PHONE
        .try_with(|p| p.to_string())
        .unwrap_or_else(|_| "customer support".to_owned())
}

/// The one table: every service error's HTTP status, stable code and title. The API's
/// problem documents ([`ApiError`]) and the pages' error pages (`pages::PageError`) both
/// answer from it, so a page and an API call never disagree about what an error is. Every
/// variant is listed: a new one does not compile until it has its row.
pub fn status_of(e: &ServiceError) -> (StatusCode, &'static str, &'static str) {
    match e {
        ServiceError::Invalid(_) => (
            StatusCode::BAD_REQUEST,
            "invalid-input",
            "Some fields need attention",
        ),
        ServiceError::SignInFailed => {
            (StatusCode::UNAUTHORIZED, "sign-in-failed", "Sign-in failed")
        }
        ServiceError::Locked { .. } => (StatusCode::LOCKED, "account-locked", "Account locked"),
        ServiceError::CardNotRecognised => (
            StatusCode::BAD_REQUEST,
            "card-not-recognised",
            "Card not recognised",
        ),
        ServiceError::CardAlreadyRegistered => (
            StatusCode::CONFLICT,
            "card-already-registered",
            "Card already registered",
        ),
        ServiceError::UserIdTaken => (StatusCode::CONFLICT, "user-id-taken", "User ID taken"),
        ServiceError::StepExpired => (StatusCode::GONE, "step-expired", "This step has expired"),
        ServiceError::RecoveryFailed { .. } => (
            StatusCode::BAD_REQUEST,
            "recovery-failed",
            "Details not recognised",
        ),
        ServiceError::CodeRejected { .. } => (
            StatusCode::BAD_REQUEST,
            "code-rejected",
            "That code is not right",
        ),
        ServiceError::CodeSpent => (
            StatusCode::GONE,
            "code-spent",
            "This code can no longer be used",
        ),
        ServiceError::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Sign in required",
        ),
        ServiceError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
        ServiceError::ReauthRequired => (
            StatusCode::FORBIDDEN,
            "reauthentication-required",
            "Enter your password again",
        ),
        ServiceError::ReadOnly => (
            StatusCode::FORBIDDEN,
            "account-read-only",
            "The account is read-only",
        ),
        ServiceError::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
        ServiceError::TooManyRequests { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too many attempts",
        ),
        ServiceError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
        ),
        ServiceError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong",
        ),
    }
}

/// Logs what an answer hides: the reason of a 503 or a 500, in the request's span.
pub(crate) fn log_hidden(e: &ServiceError) {
    match e {
        ServiceError::Unavailable(reason) => tracing::warn!(%reason, "answering 503"),
        ServiceError::Internal(reason) => tracing::error!(%reason, "internal error"),
        _ => {}
    }
}

/// Every service error as a problem document, from [`status_of`], with what each variant
/// adds (field errors, the lock's end, tries left, `Retry-After`). Handlers use `?`.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        log_hidden(&e);
        let (status, code, title) = status_of(&e);
        let plural = |n: u32| if n == 1 { "try" } else { "tries" };
        let detail = match &e {
            ServiceError::Invalid(_) => "Check the fields listed in errors and try again.".into(),
            ServiceError::SignInFailed => SIGN_IN_FAILED.to_owned(),
            ServiceError::Locked { .. } => lock_detail(&support_phone()),
            ServiceError::CardNotRecognised => "We could not verify these card details. Check \
                the card number and the card ID and try again. A card that cannot be used here \
                (it already has an online account, or it stopped accepting its card ID online \
                after too many wrong ones) gets this answer too; its holder is told."
                .into(),
            ServiceError::CardAlreadyRegistered => "This card already has an online account. \
                Sign in, or use \"Forgot your User ID?\" to find it."
                .into(),
            ServiceError::UserIdTaken => "That User ID is taken. Choose another.".into(),
            ServiceError::StepExpired => {
                "This step has expired or was already used. Start again.".into()
            }
            ServiceError::RecoveryFailed { tries_left } => format!(
                "The details you entered do not match our records. You have {tries_left} more \
                 {} on this request.",
                plural(*tries_left)
            ),
            ServiceError::CodeRejected { tries_left } => format!(
                "That code is not right. Check the latest message we sent. You have \
                 {tries_left} more {}.",
                plural(*tries_left)
            ),
            ServiceError::CodeSpent => "This code has expired, was already used, or had too \
                many wrong tries. Ask for a new code."
                .into(),
            ServiceError::Unauthenticated => {
                "Your session has ended or the token is not valid. Sign in again.".into()
            }
            ServiceError::Forbidden => "This token does not allow this action. Ask for a \
                token with the scope it needs (see the API document)."
                .into(),
            ServiceError::ReauthRequired => "For your security, enter your password again to \
                change your sign-in settings (POST /api/v1/me/reauthenticate), then repeat \
                this request."
                .into(),
            ServiceError::ReadOnly => "Every card of this online account is closed at the \
                issuer: it can be read (GET /api/v1/me) but its settings cannot be changed until \
                a new card is linked; it is deactivated after cards.closed_read_only_days."
                .into(),
            ServiceError::NotFound => "There is no such item on this account.".into(),
            ServiceError::TooManyRequests { .. } => {
                "Too many attempts from this connection. Wait a little and try again.".into()
            }
            ServiceError::Unavailable(_) => {
                "We are very busy right now. Please try again in a moment.".into()
            }
            ServiceError::Internal(_) => {
                "Something went wrong on our side. Please try again.".into()
            }
        };
        let mut err = Self::new(status, code, title, detail);
        match e {
            ServiceError::Invalid(errors) => err.errors = errors,
            ServiceError::Locked { until } => err.locked_until = Some(until.to_rfc3339()),
            ServiceError::CardNotRecognised => {
                err.errors = vec![FieldError::new(
                    "number",
                    "We could not verify this card. Check the card number and the card ID.",
                )]
            }
            ServiceError::UserIdTaken => {
                err.errors = vec![FieldError::new(
                    "user_id",
                    "That User ID is taken. Choose another.",
                )]
            }
            ServiceError::RecoveryFailed { tries_left } => err.tries_left = Some(tries_left),
            ServiceError::CodeRejected { tries_left } => {
                err.errors = vec![FieldError::new("code", "That code is not right.")];
                err.tries_left = Some(tries_left);
            }
            ServiceError::Unauthenticated => err.www_authenticate = true,
            ServiceError::TooManyRequests { retry_after } => {
                err.retry_after = Some(retry_after.max(1))
            }
            ServiceError::Unavailable(_) => err.retry_after = Some(RETRY_AFTER_UNAVAILABLE),
            ServiceError::SignInFailed
            | ServiceError::CardAlreadyRegistered
            | ServiceError::StepExpired
            | ServiceError::CodeSpent
            | ServiceError::Forbidden
            | ServiceError::ReauthRequired
            | ServiceError::ReadOnly
            | ServiceError::NotFound
            | ServiceError::Internal(_) => {}
        }
        err
    }
}

impl ApiError {
    /// 503 while maintenance mode is on: the operator's message, when it should end, and
    /// `Retry-After` in seconds.
    pub fn maintenance(message: &str, until_rfc3339: &str, retry_after: u64) -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "maintenance",
            "Down for maintenance",
            format!("{message} We expect to be back by {until_rfc3339}."),
        );
        err.retry_after = Some(retry_after.max(1));
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("/problems/{}", self.code),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_owned(),
            errors: self.errors,
            locked_until: self.locked_until,
            tries_left: self.tries_left,
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        if self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
