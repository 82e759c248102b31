//! Errors of the use cases. Each variant keeps its meaning up to the one place in the web
//! crate that maps it to HTTP.

use crate::clock::UnixTime;

/// One field that failed one rule, with words a person can act on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// In a batch (a registry push), the 0-based index of the record the field belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            index: None,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field of the record at `index` of a batch.
    pub fn at(index: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            index: Some(index),
            ..Self::new(field, message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input: which field, which rule.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// Sign-in failed. Deliberately carries no cause.
    #[error("sign-in failed")]
    SignInFailed,
    /// The correct password was presented for a locked account.
    #[error("account locked")]
    Locked { until: UnixTime },
    /// The card or merchant details did not match a registry record (no detail on purpose).
    #[error("card details not recognised")]
    CardNotRecognised,
    /// The registry record already backs an online account.
    #[error("card already registered")]
    CardAlreadyRegistered,
    /// The chosen User ID is taken.
    #[error("user id taken")]
    UserIdTaken,
    /// A registration, recovery or challenge step whose token is unknown or expired.
    #[error("step expired")]
    StepExpired,
    /// Recovery details (card ID or security answers) did not match; no detail on purpose.
    #[error("recovery details did not match")]
    RecoveryFailed { tries_left: u32 },
    /// A one-time code was wrong.
    #[error("code rejected")]
    CodeRejected { tries_left: u32 },
    /// The code expired, was used, or ran out of tries: a new one is needed.
    #[error("code spent")]
    CodeSpent,
    /// No valid session.
    #[error("not signed in")]
    Unauthenticated,
    /// Authenticated, but not allowed to do this (an admin token without the scope needed).
    #[error("forbidden")]
    Forbidden,
    /// The action needs the password re-entered (within the last few minutes).
    #[error("re-authentication required")]
    ReauthRequired,
    /// Every card of the account is closed at the issuer: it signs in read-only until it is
    /// deactivated (docs/design/cards.md).
    #[error("account read-only: every card is closed")]
    ReadOnly,
    /// The thing named does not exist for this account.
    #[error("not found")]
    NotFound,
    /// Too many attempts from this client; try again after `retry_after` seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after: u64 },
    /// The hashing pool or the database is saturated or unreachable; try again soon.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// Something that should not happen; logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ServiceError::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<portcullis_crypto::HashError> for ServiceError {
    fn from(e: portcullis_crypto::HashError) -> Self {
        match e {
            portcullis_crypto::HashError::Overloaded => {
                ServiceError::Unavailable("the hashing pool is full".into())
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}
