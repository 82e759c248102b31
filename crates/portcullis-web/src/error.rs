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

impl ApiError {
    pub fn from_service(e: ServiceError, support_phone: &str) -> Self {
        match e {
            ServiceError::Invalid(errors) => Self::invalid(errors),
            ServiceError::SignInFailed => Self::new(
                StatusCode::UNAUTHORIZED,
                "sign-in-failed",
                "Sign-in failed",
                SIGN_IN_FAILED,
            ),
            ServiceError::Locked { until } => {
                let mut err = Self::new(
                    StatusCode::LOCKED,
                    "account-locked",
                    "Account locked",
                    lock_detail(support_phone),
                );
                err.locked_until = Some(until.to_rfc3339());
                err
            }
            ServiceError::CardNotRecognised => {
                let mut err = Self::new(
                    StatusCode::BAD_REQUEST,
                    "card-not-recognised",
                    "Card not recognised",
                    "We could not verify these card details. Check the card number and the card ID and try again.",
                );
                err.errors = vec![FieldError::new(
                    "number",
                    "We could not verify this card. Check the card number and the card ID.",
                )];
                err
            }
            ServiceError::CardAlreadyRegistered => Self::new(
                StatusCode::CONFLICT,
                "card-already-registered",
                "Card already registered",
                "This card already has an online account. Sign in, or use \"Forgot your User ID?\" to find it.",
            ),
            ServiceError::UserIdTaken => {
                let mut err = Self::new(
                    StatusCode::CONFLICT,
                    "user-id-taken",
                    "User ID taken",
                    "That User ID is taken. Choose another.",
                );
                err.errors = vec![FieldError::new("user_id", "That User ID is taken. Choose another.")];
                err
            }
            ServiceError::StepExpired => Self::new(
                StatusCode::GONE,
                "step-expired",
                "This step has expired",
                "This step has expired or was already used. Start again.",
            ),
            ServiceError::RecoveryFailed { tries_left } => {
                let mut err = Self::new(
                    StatusCode::BAD_REQUEST,
                    "recovery-failed",
                    "Details not recognised",
                    format!(
                        "The details you entered do not match our records. You have {tries_left} more {} on this request.",
                        if tries_left == 1 { "try" } else { "tries" }
                    ),
                );
                err.tries_left = Some(tries_left);
                err
            }
            ServiceError::CodeRejected { tries_left } => {
                let mut err = Self::new(
                    StatusCode::BAD_REQUEST,
                    "code-rejected",
                    "That code is not right",
                    format!(
                        "That code is not right. Check the latest message we sent. You have {tries_left} more {}.",
                        if tries_left == 1 { "try" } else { "tries" }
                    ),
                );
                err.errors = vec![FieldError::new("code", "That code is not right.")];
                err.tries_left = Some(tries_left);
                err
            }
            ServiceError::CodeSpent => Self::new(
                StatusCode::GONE,
                "code-spent",
                "This code can no longer be used",
                "This code has expired, was already used, or had too many wrong tries. Ask for a new code.",
            ),
            ServiceError::Unauthenticated => {
                let mut err = Self::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "Sign in required",
                    "Your session has ended or the token is not valid. Sign in again.",
                );
                err.www_authenticate = true;
                err
            }
            ServiceError::Forbidden => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed",
                "This token does not allow this action. Ask for a token with the scope it \
                 needs (see the API document).",
            ),
            ServiceError::ReauthRequired => Self::new(
                StatusCode::FORBIDDEN,
                "reauthentication-required",
                "Enter your password again",
                "For your security, enter your password again to change your sign-in \
                 settings (POST /api/v1/me/reauthenticate), then repeat this request.",
            ),
            ServiceError::NotFound => Self::not_found_because("There is no such item on this account."),
            ServiceError::TooManyRequests { retry_after } => {
                let mut err = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-requests",
                    "Too many attempts",
                    "Too many attempts from this connection. Wait a little and try again.",
                );
                err.retry_after = Some(retry_after.max(1));
                err
            }
            ServiceError::Unavailable(reason) => {
                tracing::warn!(%reason, "answering 503");
                let mut err = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Temporarily unavailable",
                    "We are very busy right now. Please try again in a moment.",
                );
                err.retry_after = Some(RETRY_AFTER_UNAVAILABLE);
                err
            }
            ServiceError::Internal(reason) => {
                tracing::error!(%reason, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Something went wrong",
                    "Something went wrong on our side. Please try again.",
                )
            }
        }
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
