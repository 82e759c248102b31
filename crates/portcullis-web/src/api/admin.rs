//! The support console over JSON, under `/api/v1/admin/`: look at an account and its audit
//! events, unlock it, verify the audit chain.
//!
//! Every handler takes an [`Admin<S>`], the extractor for `Authorization: Bearer <admin
//! token>` (separate from the person's session bearer), whose type names the scope the
//! handler needs; the support methods it calls check that scope again. An unknown or revoked
//! token is 401, a token without the scope 403. Support is authorised to know which User IDs
//! exist, so an unknown User ID is a plain 404.

use std::marker::PhantomData;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::Json;
use portcullis_core::audit::{AuditEntry, AuditKind};
use portcullis_core::service::{
    ClearCardOutcome, ReactivateOutcome, SupportAuthority, SupportScope, UnlockOutcome,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{IntoParams, Modify, ToSchema};

use super::extract::ApiJson;
use crate::client::Client;
use crate::error::{ApiError, Problem};
use crate::AppState;

/// The OpenAPI security scheme of the admin API.
pub const SECURITY_SCHEME: &str = "admin_bearer";

/// Adds the `admin_bearer` security scheme to the API document.
pub struct AdminBearerAuth;

impl Modify for AdminBearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                SECURITY_SCHEME,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "An admin token from `portcullis admin token create`, with the \
                             scope each operation names.",
                        ))
                        .build(),
                ),
            );
        }
    }
}

/// A scope a handler needs, as a type.
pub trait Scope: Send + Sync + 'static {
    const SCOPE: SupportScope;
}

/// `accounts:read`: show an account, read its audit events.
pub struct AccountsRead;
/// `accounts:unlock`: unlock an account.
pub struct AccountsUnlock;
/// `audit:read`: verify the audit chain, read its entries.
pub struct AuditRead;

impl Scope for AccountsRead {
    const SCOPE: SupportScope = SupportScope::AccountsRead;
}
impl Scope for AccountsUnlock {
    const SCOPE: SupportScope = SupportScope::AccountsUnlock;
}
impl Scope for AuditRead {
    const SCOPE: SupportScope = SupportScope::AuditRead;
}

/// The authority of an admin token that carries the scope `S`.
pub struct Admin<S> {
    authority: SupportAuthority,
    scope: PhantomData<S>,
}

impl<S> Admin<S> {
    pub fn authority(&self) -> &SupportAuthority {
        &self.authority
    }
}

impl<S: Scope> FromRequestParts<AppState> for Admin<S> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Copied out of the headers (the client extractor below borrows them) into a value
        // that is wiped when dropped.
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .map_or_else(SecretString::default, SecretString::from);
        let Ok(Client(client)) = Client::from_request_parts(parts, state).await;
        let authority = state
            .app
            .support_authority_from_token_for(token.expose_secret(), S::SCOPE, &client)
            .await?;
        Ok(Admin {
            authority: authority.from_ip(client.ip),
            scope: PhantomData,
        })
    }
}

fn no_such_account() -> ApiError {
    ApiError::not_found_because("No online account has this User ID.")
}

/// What support sees of an account: no secrets, no hashes.
#[derive(Serialize, ToSchema)]
pub struct SupportViewOut {
    pub user_id: String,
    /// `personal`, `merchant` or `corporate`.
    pub account_type: String,
    /// Where one-time codes go: `email` or `sms`.
    pub code_channel: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Failed password attempts in a row.
    pub failed_count: u32,
    /// Whether the account is locked now.
    pub locked: bool,
    /// When the lock ends (RFC 3339); null when not locked.
    pub locked_until: Option<String>,
    pub created_at: String,
    pub last_sign_in_at: Option<String>,
    /// When the account was deactivated after inactivity (RFC 3339); null while active.
    pub deactivated_at: Option<String>,
    /// When the inactivity warning went out; null when none is pending.
    pub inactivity_warned_at: Option<String>,
    /// Linked cards: product and last four digits.
    pub cards: Vec<String>,
    /// Active sessions.
    pub sessions: usize,
    /// The newest audit events, one line each, newest first.
    pub recent: Vec<String>,
}

/// Show an account (scope `accounts:read`). The look is audited.
#[utoipa::path(get, path = "/admin/accounts/{user_id}", tag = "admin",
    security(("admin_bearer" = [])),
    params(("user_id" = String, Path, description = "The account's User ID (any case)")),
    responses(
        (status = 200, body = SupportViewOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No admin token, or an unknown or revoked one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks accounts:read", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_account(
    State(state): State<AppState>,
    admin: Admin<AccountsRead>,
    Path(user_id): Path<String>,
) -> Result<Json<SupportViewOut>, ApiError> {
    let view = state
        .app
        .support_view(admin.authority(), &user_id)
        .await?
        .ok_or_else(no_such_account)?;
    Ok(Json(SupportViewOut {
        user_id: view.user_id,
        account_type: view.account_type,
        code_channel: view.code_channel,
        email: view.email,
        phone: view.phone,
        failed_count: view.failed_count,
        locked: view.locked_until.is_some(),
        locked_until: view.locked_until,
        created_at: view.created_at,
        last_sign_in_at: view.last_sign_in_at,
        deactivated_at: view.deactivated_at,
        inactivity_warned_at: view.inactivity_warned_at,
        cards: view.cards,
        sessions: view.sessions,
        recent: view.recent,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockIn {
    /// Why (at least 3 characters): kept in the audit log with who unlocked.
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct UnlockOut {
    /// True when the account was locked (or had failures counted) and is now clear; false
    /// when there was nothing to undo.
    pub unlocked: bool,
}

/// Unlock an account (scope `accounts:unlock`). Audited with the token's name and the
/// reason; the person is told on their channel.
#[utoipa::path(post, path = "/admin/accounts/{user_id}/unlock", tag = "admin",
    security(("admin_bearer" = [])),
    params(("user_id" = String, Path, description = "The account's User ID (any case)")),
    request_body = UnlockIn,
    responses(
        (status = 200, body = UnlockOut),
        (status = 400, description = "No reason, or a malformed User ID", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks accounts:unlock", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unlock_account(
    State(state): State<AppState>,
    admin: Admin<AccountsUnlock>,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<UnlockIn>,
) -> Result<Json<UnlockOut>, ApiError> {
    let outcome = state
        .app
        .support_unlock(admin.authority(), &user_id, &body.reason)
        .await?;
    match outcome {
        UnlockOutcome::Unlocked => Ok(Json(UnlockOut { unlocked: true })),
        UnlockOutcome::NotLocked => Ok(Json(UnlockOut { unlocked: false })),
        UnlockOutcome::NoSuchAccount => Err(no_such_account()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearCardIn {
    /// The card number (or merchant number): in the body, never in a URL.
    pub number: String,
    /// Why (at least 3 characters): kept in the audit log with who cleared it.
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct ClearCardOut {
    /// True when the card was paused (too many wrong card IDs) and accepts its card ID
    /// online again (its holder is told); false when it was not paused (any count of
    /// wrong card IDs is forgotten all the same).
    pub cleared: bool,
}

/// Let a card paused after too many wrong card IDs accept its card ID online again (scope
/// `accounts:unlock`). Audited with the token's name and the reason. `POST
/// /admin/accounts/{user_id}/unlock` also clears the account's own cards.
#[utoipa::path(post, path = "/admin/cards/clear", tag = "admin",
    security(("admin_bearer" = [])),
    request_body = ClearCardIn,
    responses(
        (status = 200, body = ClearCardOut),
        (status = 400, description = "No reason, or a malformed number", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks accounts:unlock", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such card in the registry", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn clear_card(
    State(state): State<AppState>,
    admin: Admin<AccountsUnlock>,
    ApiJson(body): ApiJson<ClearCardIn>,
) -> Result<Json<ClearCardOut>, ApiError> {
    let outcome = state
        .app
        .support_clear_card(admin.authority(), &body.number, &body.reason)
        .await?;
    match outcome {
        ClearCardOutcome::Cleared => Ok(Json(ClearCardOut { cleared: true })),
        ClearCardOutcome::NotPaused => Ok(Json(ClearCardOut { cleared: false })),
        ClearCardOutcome::NoSuchCard => Err(ApiError::not_found_because(
            "No card in the registry has this number.",
        )),
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReactivateOut {
    /// True when the account was deactivated and is now active again; false when it was
    /// not deactivated (nothing changed).
    pub reactivated: bool,
}

/// Reactivate an account deactivated after inactivity (scope `accounts:unlock`). Audited
/// with the token's name and the reason; the person is told on their channel.
#[utoipa::path(post, path = "/admin/accounts/{user_id}/reactivate", tag = "admin",
    security(("admin_bearer" = [])),
    params(("user_id" = String, Path, description = "The account's User ID (any case)")),
    request_body = UnlockIn,
    responses(
        (status = 200, body = ReactivateOut),
        (status = 400, description = "No reason, or a malformed User ID", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks accounts:unlock", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reactivate_account(
    State(state): State<AppState>,
    admin: Admin<AccountsUnlock>,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<UnlockIn>,
) -> Result<Json<ReactivateOut>, ApiError> {
    let outcome = state
        .app
        .support_reactivate(admin.authority(), &user_id, &body.reason)
        .await?;
    match outcome {
        ReactivateOutcome::Reactivated => Ok(Json(ReactivateOut { reactivated: true })),
        ReactivateOutcome::NotDeactivated => Ok(Json(ReactivateOut { reactivated: false })),
        ReactivateOutcome::NoSuchAccount => Err(no_such_account()),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountAuditQuery {
    /// How many entries, newest first: 1 to 500 (default 50).
    pub limit: Option<i64>,
}

/// One audit entry.
#[derive(Serialize, ToSchema)]
pub struct AuditEntryOut {
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    /// A stable event name, e.g. `signin.failed`, `support.action`.
    pub kind: String,
    /// The event in words.
    pub description: String,
    pub account_id: Option<i64>,
    /// Who acted: `self`, `support:<token name>`, `cli:<user>`.
    pub actor: String,
    pub client_ip: Option<String>,
    pub detail: String,
}

impl From<AuditEntry> for AuditEntryOut {
    fn from(e: AuditEntry) -> Self {
        Self {
            seq: e.seq,
            at: e.at.to_rfc3339(),
            description: AuditKind::describe(&e.kind).to_owned(),
            kind: e.kind,
            account_id: e.account_id,
            actor: e.actor,
            client_ip: e.client_ip,
            detail: e.detail,
        }
    }
}

fn bad_query(_: QueryRejection) -> ApiError {
    ApiError::bad_request("The query string is not valid: limit and after are whole numbers.")
}

/// An account's audit events, newest first (scope `accounts:read`). The read is audited.
#[utoipa::path(get, path = "/admin/accounts/{user_id}/audit", tag = "admin",
    security(("admin_bearer" = [])),
    params(("user_id" = String, Path, description = "The account's User ID (any case)"), AccountAuditQuery),
    responses(
        (status = 200, body = Vec<AuditEntryOut>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks accounts:read", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn account_audit(
    State(state): State<AppState>,
    admin: Admin<AccountsRead>,
    Path(user_id): Path<String>,
    query: Result<Query<AccountAuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditEntryOut>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let entries = state
        .app
        .support_account_audit(admin.authority(), &user_id, query.limit.unwrap_or(50))
        .await?
        .ok_or_else(no_such_account)?;
    Ok(Json(entries.into_iter().map(AuditEntryOut::from).collect()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries after this sequence number (default 0: from the start).
    pub after: Option<i64>,
    /// How many entries, oldest first: 1 to 500 (default 100).
    pub limit: Option<i64>,
}

/// Audit log entries in order (scope `audit:read`), for monitoring and export: page with
/// `after` = the last `seq` seen.
#[utoipa::path(get, path = "/admin/audit", tag = "admin",
    security(("admin_bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, body = Vec<AuditEntryOut>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks audit:read", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn audit_entries(
    State(state): State<AppState>,
    admin: Admin<AuditRead>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditEntryOut>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let entries = state
        .app
        .support_audit_entries(
            admin.authority(),
            query.after.unwrap_or(0),
            query.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(entries.into_iter().map(AuditEntryOut::from).collect()))
}

/// The first entry that failed verification.
#[derive(Serialize, ToSchema)]
pub struct FirstBadOut {
    pub seq: i64,
    /// `altered` (contents do not match the hash), `broken` (does not follow the entry
    /// before: deleted, inserted or reordered), `truncated` (entries deleted from the end),
    /// `rewritten` (the chain does not end where its head says), `unknown_key` (the entry
    /// names an audit key id the server's `audit.key` does not hold) or `old_key` (the entry
    /// is under an older audit key than one the chain had moved to, past the hour a
    /// rotation may take to reach every node).
    pub problem: String,
    /// The problem in words.
    pub description: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyOut {
    pub intact: bool,
    /// Entries verified (all of them when intact; those before the first bad one otherwise).
    pub entries: i64,
    pub first_bad: Option<FirstBadOut>,
}

/// Verify the audit chain (scope `audit:read`): every entry's hash, its link to the one
/// before, and that the log ends at the chain's head.
#[utoipa::path(get, path = "/admin/audit/verify", tag = "admin",
    security(("admin_bearer" = [])),
    responses(
        (status = 200, description = "The verdict, intact or not", body = VerifyOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks audit:read", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify_audit(
    State(state): State<AppState>,
    admin: Admin<AuditRead>,
) -> Result<Json<VerifyOut>, ApiError> {
    let check = state.app.verify_audit(admin.authority()).await?;
    Ok(Json(VerifyOut {
        intact: check.intact(),
        entries: check.entries,
        first_bad: check.first_bad.map(|bad| FirstBadOut {
            seq: bad.seq(),
            problem: bad.problem().to_owned(),
            description: bad.to_string(),
        }),
    }))
}
