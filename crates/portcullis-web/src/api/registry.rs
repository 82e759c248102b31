//! `POST /api/v1/admin/registry/records` (contract: "Registry import columns"): the issuer's
//! systems push registry records, one or up to 10,000 at a time, all or nothing, with an
//! `Idempotency-Key` so a push retried after a timeout is applied once. The records'
//! effects (reissues, status changes) are the same as the file import's
//! (docs/design/cards.md).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::service::registry_load::hash_records;
use portcullis_core::service::{PushOutcome, RecordError, SupportScope};
use portcullis_core::FieldError;
use serde::Serialize;
use utoipa::ToSchema;

use super::admin::{Admin, Scope};
use super::extract::{idempotency_key, is_json_type};
use crate::error::{ApiError, Problem};
use crate::AppState;

mod decode;
use decode::decode;

/// The path, for the larger body limit it gets (`limits.rs`).
pub const PATH: &str = "/api/v1/admin/registry/records";
/// The largest body this route reads: 10,000 records of up to ~1.6 kB each.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// `registry:write`: push registry records.
pub struct RegistryWrite;

impl Scope for RegistryWrite {
    const SCOPE: SupportScope = SupportScope::RegistryWrite;
}

/// One registry record: the import columns as keys (strings; numbers are taken as their
/// text; null or missing is an empty cell).
#[derive(ToSchema)]
#[schema(example = json!({"account_type": "personal", "number": "4111111111111111",
    "verification": "123", "expiry": "2030-01", "holder_name": "Ann Example",
    "email": "ann@example.com", "phone": "", "product": "Gold Card", "balance": "12.50",
    "credit_limit": "5000.00", "payment_due_date": "2026-12-20", "minimum_due": "25.00",
    "status": "active", "replaces": "378282246310005"}))]
#[allow(dead_code)]
pub struct RegistryRecordIn {
    /// `personal`, `merchant` or `corporate`.
    account_type: String,
    /// The card number (13–19 digits, Luhn-valid) or the merchant number.
    number: String,
    /// The card ID (3 or 4 digits) or the merchant verification code.
    verification: String,
    /// `YYYY-MM` (cards).
    expiry: Option<String>,
    holder_name: String,
    email: Option<String>,
    /// E.164.
    phone: Option<String>,
    product: Option<String>,
    balance: Option<String>,
    credit_limit: Option<String>,
    /// `YYYY-MM-DD`.
    payment_due_date: Option<String>,
    minimum_due: Option<String>,
    /// `active` (when empty), `blocked`, `lost_stolen` or `closed`.
    status: Option<String>,
    /// The number of the card this one replaces (a reissue, or a new number at renewal).
    replaces: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RecordsOut {
    /// Records inserted or updated.
    pub records: u64,
}

/// Push registry records (scope `registry:write`): a JSON array of 1 to 10,000 records,
/// inserted or updated (matched on the number) all or nothing, with their effects on
/// online accounts: a card whose `replaces` names a linked card takes over its online
/// account (the person is told; the old number proves nothing any more), and a card that
/// is not `active` can no longer register, link or recover. With an `Idempotency-Key`
/// header (1 to 200 visible ASCII characters), a retry of the same body is answered as the
/// first time without being applied again (`Idempotent-Replayed: true`); the same key with
/// another body is 422.
#[utoipa::path(post, path = "/admin/registry/records", tag = "admin",
    security(("admin_bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes a retried push apply once (kept with a hash of the body)")),
    request_body(content = Vec<RegistryRecordIn>, content_type = "application/json"),
    responses(
        (status = 200, body = RecordsOut),
        (status = 400, description = "Bad records (each error names its `index` and `field`), more than 10,000, or not a JSON array of objects; nothing was applied", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks registry:write", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The Idempotency-Key was used with another body", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn push_records(
    State(state): State<AppState>,
    admin: Admin<RegistryWrite>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !is_json_type(content_type) {
        return Err(ApiError::bad_request(
            "Send the body as JSON with Content-Type: application/json.",
        ));
    }
    let key = idempotency_key(&headers).map_err(ApiError::bad_request)?;
    let request_hash = portcullis_crypto::sha256(&body);
    let app = state.app.clone();
    // Decoding, validation and the keyed hashes: CPU work, off the async runtime and on
    // every core.
    let hashed = tokio::task::spawn_blocking(move || {
        let raws = decode(&body)?;
        hash_records(&raws, &app.record_keys()).map_err(Bad::Records)
    })
    .await
    .map_err(|e| ApiError::from(portcullis_core::ServiceError::Internal(e.to_string())))?
    .map_err(|bad| match bad {
        Bad::Body(detail) => ApiError::bad_request(detail),
        Bad::Records(errors) => rejected(errors),
    })?;
    let outcome = state
        .app
        .push_registry(admin.authority(), &hashed, key.as_deref(), &request_hash)
        .await?;
    match outcome {
        PushOutcome::Applied(body) => Ok(json(body, false)),
        PushOutcome::Replayed(body) => Ok(json(body, true)),
        PushOutcome::KeyConflict => Err(ApiError::idempotency_key_reused()),
        PushOutcome::Rejected(errors) => Err(rejected(errors)),
    }
}

fn json(body: String, replayed: bool) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn rejected(errors: Vec<RecordError>) -> ApiError {
    ApiError::invalid(
        errors
            .into_iter()
            .map(|e| FieldError::at(e.index, e.field, e.message))
            .collect(),
    )
}

/// What is wrong with a push before the store sees it.
enum Bad {
    /// The body is not a JSON array of objects.
    Body(String),
    /// Records that break a rule, by index.
    Records(Vec<RecordError>),
}
