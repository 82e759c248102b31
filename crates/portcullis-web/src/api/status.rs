//! Service status over JSON: the public `GET /status` and the operators' incidents under
//! `/admin/status/incidents` (scope `status:write`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::ports::IncidentRow;
use portcullis_core::service::status::{parse_time, IncidentInput, StatusReport};
use portcullis_core::service::{Keyed, SupportScope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::{Admin, Scope};
use super::extract::{idempotency_key, ApiJson};
use crate::error::{ApiError, Problem};
use crate::AppState;

/// `status:write`: post and update incidents and planned maintenance.
pub struct StatusWrite;

impl Scope for StatusWrite {
    const SCOPE: SupportScope = SupportScope::StatusWrite;
}

#[derive(Serialize, ToSchema)]
pub struct ComponentOut {
    /// `sign-in`, `registration`, `recovery`, `email`, `text messages` or `database`.
    pub name: String,
    /// `operational`, `degraded` or `outage`.
    pub state: String,
}

#[derive(Serialize, ToSchema)]
pub struct IncidentOut {
    pub id: i64,
    /// `incident` or `maintenance`.
    pub kind: String,
    pub title: String,
    pub message: String,
    /// `investigating`, `identified`, `monitoring`, `resolved` (incidents) or `scheduled`,
    /// `in_progress`, `completed` (maintenance).
    pub state: String,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<IncidentRow> for IncidentOut {
    fn from(r: IncidentRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            title: r.title,
            message: r.message,
            state: r.state,
            starts_at: r.starts_at.map(|t| t.to_rfc3339()),
            ends_at: r.ends_at.map(|t| t.to_rfc3339()),
            created_at: r.created_at.to_rfc3339(),
            updated_at: r.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct HistoryDayOut {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// The worst state any part was in that day.
    pub worst: String,
}

#[derive(Serialize, ToSchema)]
pub struct MaintenanceOut {
    pub until: String,
    pub message: String,
}

/// The status answer: the contract's fields first.
#[derive(Serialize, ToSchema)]
pub struct StatusOut {
    /// The worst state of any part.
    pub overall: String,
    pub components: Vec<ComponentOut>,
    /// Open incidents and maintenance, and those settled in the last seven days.
    pub incidents: Vec<IncidentOut>,
    /// The last 90 days (from the first recorded probe), oldest first.
    pub history: Vec<HistoryDayOut>,
    /// "Is there a problem today?" in one sentence.
    pub summary: String,
    /// Set while maintenance mode is on.
    pub maintenance: Option<MaintenanceOut>,
    /// When this node last probed (RFC 3339); null before its first probe.
    pub probed_at: Option<String>,
}

impl From<StatusReport> for StatusOut {
    fn from(r: StatusReport) -> Self {
        Self {
            overall: r.snapshot.overall().as_str().to_owned(),
            summary: r.headline(),
            components: r
                .snapshot
                .components
                .iter()
                .map(|(n, s)| ComponentOut {
                    name: (*n).to_owned(),
                    state: s.as_str().to_owned(),
                })
                .collect(),
            probed_at: r.snapshot.probed_at.map(|t| t.to_rfc3339()),
            incidents: r.incidents.into_iter().map(IncidentOut::from).collect(),
            history: r
                .history
                .into_iter()
                .map(|d| HistoryDayOut {
                    date: d.date,
                    worst: d.worst.as_str().to_owned(),
                })
                .collect(),
            maintenance: r.maintenance.map(|m| MaintenanceOut {
                until: m.until.to_rfc3339(),
                message: m.message,
            }),
        }
    }
}

/// Is there a problem today? Each part's state from this node's last background probe, the
/// incidents operators posted, and 90 days of history. Public; answers during maintenance.
#[utoipa::path(get, path = "/status", tag = "status",
    responses((status = 200, body = StatusOut)))]
pub async fn status(State(state): State<AppState>) -> Json<StatusOut> {
    Json(report(&state).await.into())
}

/// How long the status waits for the database's part (incidents, history, maintenance)
/// before answering from memory: the page must answer quickly during an outage, the moment
/// people look at it, even before the prober has noticed.
pub const DATABASE_BUDGET: std::time::Duration = std::time::Duration::from_millis(500);

/// The status report, from memory when the database is slow to answer.
pub async fn report(state: &AppState) -> portcullis_core::service::status::StatusReport {
    match tokio::time::timeout(DATABASE_BUDGET, state.app.status_report(&state.status)).await {
        Ok(report) => report,
        Err(_) => state.app.status_from_memory(&state.status),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentIn {
    /// `incident` (default) or `maintenance`.
    pub kind: Option<String>,
    pub title: String,
    pub message: String,
    /// Defaults to `investigating` (incident) or `scheduled` (maintenance).
    pub state: Option<String>,
    /// RFC 3339.
    pub starts_at: Option<String>,
    /// RFC 3339.
    pub ends_at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentUpdateIn {
    pub state: String,
    /// Replaces the message when given.
    pub message: Option<String>,
}

/// Post an incident or planned maintenance (scope `status:write`). Audited. With an
/// `Idempotency-Key` header (1 to 200 visible ASCII characters), a retry of the same post
/// by the same token's operator answers with the incident the first made, as it is now
/// (`Idempotent-Replayed: true`), posting nothing; the same key with another post is 422.
/// Keys are kept a day.
#[utoipa::path(post, path = "/admin/status/incidents", tag = "admin",
    security(("admin_bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes a retried post create one incident (kept a day with a hash of the post)")),
    request_body = IncidentIn,
    responses(
        (status = 201, description = "Posted (by this request, or by the first with this Idempotency-Key: then `Idempotent-Replayed: true`)", body = IncidentOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks status:write", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The Idempotency-Key was used with another post", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_incident(
    State(state): State<AppState>,
    admin: Admin<StatusWrite>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<IncidentIn>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers).map_err(ApiError::bad_request)?;
    let time = |field: &str, v: Option<String>| v.map(|v| parse_time(field, &v)).transpose();
    let times =
        time("starts_at", body.starts_at).and_then(|a| Ok((a, time("ends_at", body.ends_at)?)))?;
    let input = IncidentInput {
        kind: body.kind.unwrap_or_else(|| "incident".into()),
        title: body.title,
        message: body.message,
        state: body.state,
        starts_at: times.0,
        ends_at: times.1,
    };
    let (row, replayed) = match key {
        None => (
            state.app.create_incident(admin.authority(), input).await?,
            false,
        ),
        Some(key) => match state
            .app
            .create_incident_keyed(admin.authority(), input, &key)
            .await?
        {
            Keyed::Applied(row) => (row, false),
            Keyed::Replayed(row) => (row, true),
            Keyed::KeyConflict => return Err(ApiError::idempotency_key_reused()),
        },
    };
    let mut response = (StatusCode::CREATED, Json(IncidentOut::from(row))).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Move an incident on, e.g. to `resolved` (scope `status:write`). Audited.
#[utoipa::path(patch, path = "/admin/status/incidents/{id}", tag = "admin",
    security(("admin_bearer" = [])),
    params(("id" = i64, Path, description = "The incident's id")),
    request_body = IncidentUpdateIn,
    responses(
        (status = 200, body = IncidentOut),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks status:write", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_incident(
    State(state): State<AppState>,
    admin: Admin<StatusWrite>,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<IncidentUpdateIn>,
) -> Result<Json<IncidentOut>, ApiError> {
    state
        .app
        .update_incident(admin.authority(), id, &body.state, body.message.as_deref())
        .await?
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::not_found_because("No incident has this id."))
}
