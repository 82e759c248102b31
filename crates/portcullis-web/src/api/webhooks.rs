//! `/api/v1/admin/webhooks`: subscriptions to security events (docs/design/webhooks.md),
//! with an admin token carrying `webhooks:write`. The same as `portcullis webhooks …`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::ports::WebhookSubscription;
use portcullis_core::service::SupportScope;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::{Admin, Scope};
use super::extract::ApiJson;
use crate::error::{ApiError, Problem};
use crate::AppState;

/// `webhooks:write`: list, add and remove webhook subscriptions.
pub struct WebhooksWrite;

impl Scope for WebhooksWrite {
    const SCOPE: SupportScope = SupportScope::WebhooksWrite;
}

#[derive(Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: i64,
    pub url: String,
    /// `all`, or the event types, comma-separated.
    pub events: String,
    /// RFC 3339.
    pub created_at: String,
    /// Deliveries not yet accepted by the endpoint (retrying with backoff).
    pub pending: i64,
    pub sent: i64,
    /// Deliveries given up after `webhooks.give_up_after_secs`.
    pub failed: i64,
    /// The error of the latest given-up delivery.
    pub last_error: Option<String>,
}

impl From<WebhookSubscription> for WebhookOut {
    fn from(s: WebhookSubscription) -> Self {
        Self {
            id: s.id,
            url: s.url,
            events: s.events.display(),
            created_at: s.created_at.to_rfc3339(),
            pending: s.pending,
            sent: s.sent,
            failed: s.failed,
            last_error: s.last_error,
        }
    }
}

/// List webhook subscriptions (scope `webhooks:write`), never their secrets.
#[utoipa::path(get, path = "/admin/webhooks", tag = "admin",
    security(("admin_bearer" = [])),
    responses(
        (status = 200, body = Vec<WebhookOut>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks webhooks:write", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    admin: Admin<WebhooksWrite>,
) -> Result<Json<Vec<WebhookOut>>, ApiError> {
    let list = state.app.webhooks_list(admin.authority()).await?;
    Ok(Json(list.into_iter().map(WebhookOut::from).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// `https://…` to a public host (`http://` with `webhooks.allow_http`; loopback only with
    /// `webhooks.allow_loopback`); no user or password; a private, link-local or reserved
    /// address (in any IPv4 notation, or embedded in IPv6) is refused.
    pub url: String,
    /// `all`, or a comma-separated list of: account.created, account.locked,
    /// account.unlocked, password.changed, password.reset, account.not_me, device.new,
    /// contact.changed, factor.added, factor.removed, card.linked, oidc.grant_given,
    /// oidc.refresh_reused, oidc.code_replayed.
    pub events: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    pub id: i64,
    /// The signing secret (`whsec_` + base64), shown this once.
    pub secret: String,
}

/// Subscribe an endpoint (scope `webhooks:write`). The answer carries the signing secret,
/// shown this once; deliveries are signed Standard Webhooks style with it.
#[utoipa::path(post, path = "/admin/webhooks", tag = "admin",
    security(("admin_bearer" = [])),
    request_body = WebhookIn,
    responses(
        (status = 201, body = WebhookCreated),
        (status = 400, description = "A URL that is not https (or loopback), names an internal address, or an unknown event type", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks webhooks:write", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_webhook(
    State(state): State<AppState>,
    admin: Admin<WebhooksWrite>,
    ApiJson(body): ApiJson<WebhookIn>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    let added = state
        .app
        .webhook_add(admin.authority(), &body.url, &body.events)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            id: added.id,
            secret: added.secret.expose_secret().to_owned(),
        }),
    ))
}

/// Remove a subscription and its deliveries not yet made (scope `webhooks:write`).
#[utoipa::path(delete, path = "/admin/webhooks/{id}", tag = "admin",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "The subscription's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks webhooks:write", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_webhook(
    State(state): State<AppState>,
    admin: Admin<WebhooksWrite>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if state.app.webhook_remove(admin.authority(), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found_because(
            "No webhook subscription has this id.",
        ))
    }
}
