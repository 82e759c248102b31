//! The public `/status` page: one sentence answering "is there a problem today?", then each
//! part, incidents and planned maintenance, and 90 days of history. No forms, no script.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{render, Chrome};
use crate::text;
use crate::AppState;

pub struct Part {
    pub name: String,
    /// The machine state (`operational`, `degraded`, `outage`), for `data-state`.
    pub state: String,
    pub tag: &'static str,
    pub words: &'static str,
}

pub struct Entry {
    pub kind: String,
    pub title: String,
    pub message: String,
    pub state: String,
    pub window: String,
    pub updated: String,
}

pub struct Day {
    pub date: String,
    pub worst: String,
}

#[derive(Template)]
#[template(path = "status.html")]
pub struct StatusPage {
    pub chrome: Chrome,
    pub headline: String,
    pub ok: bool,
    pub parts: Vec<Part>,
    pub entries: Vec<Entry>,
    pub days: Vec<Day>,
    pub probed_at: String,
}

fn words(state: &str) -> &'static str {
    match state {
        "operational" => text::t("status.operational"),
        "degraded" => text::t("status.degraded"),
        _ => text::t("status.outage"),
    }
}

fn tag(state: &str) -> &'static str {
    match state {
        "operational" => text::t("status.tag_operational"),
        "degraded" => text::t("status.tag_degraded"),
        _ => text::t("status.tag_outage"),
    }
}

/// An incident's or a maintenance's state, in words (the states of `IncidentKind`).
fn incident_state(state: &str) -> String {
    match state {
        "investigating" => text::t("status.investigating").into(),
        "identified" => text::t("status.identified").into(),
        "monitoring" => text::t("status.monitoring").into(),
        "resolved" => text::t("status.resolved").into(),
        "scheduled" => text::t("status.scheduled").into(),
        "in_progress" => text::t("status.in_progress").into(),
        "completed" => text::t("status.completed").into(),
        other => other.replace('_', " "),
    }
}

pub async fn show(State(state): State<AppState>) -> Response {
    let report = crate::api::status::report(&state).await;
    let ok = report.maintenance.is_none()
        && report.snapshot.overall()
            == portcullis_core::service::status::ComponentState::Operational;
    let page = StatusPage {
        chrome: crate::pages::chrome_without_form(&state),
        headline: report.headline(),
        ok,
        parts: report
            .snapshot
            .components
            .iter()
            .map(|(n, s)| Part {
                name: (*n).to_owned(),
                state: s.as_str().to_owned(),
                tag: tag(s.as_str()),
                words: words(s.as_str()),
            })
            .collect(),
        entries: report
            .incidents
            .iter()
            .map(|i| Entry {
                kind: if i.kind == "maintenance" {
                    text::t("status.kind_maintenance").into()
                } else {
                    text::t("status.kind_incident").into()
                },
                title: i.title.clone(),
                message: i.message.clone(),
                state: incident_state(&i.state),
                window: match (i.starts_at, i.ends_at) {
                    (Some(a), Some(b)) => text::fill(
                        "status.window",
                        &[("from", &a.to_rfc3339()), ("until", &b.to_rfc3339())],
                    ),
                    (Some(a), None) => {
                        text::fill("status.window_from", &[("from", &a.to_rfc3339())])
                    }
                    (None, Some(b)) => {
                        text::fill("status.window_until", &[("until", &b.to_rfc3339())])
                    }
                    (None, None) => String::new(),
                },
                updated: i.updated_at.to_rfc3339(),
            })
            .collect(),
        days: report
            .history
            .iter()
            .rev()
            .map(|d| Day {
                date: d.date.clone(),
                worst: words(d.worst.as_str()).to_owned(),
            })
            .collect(),
        probed_at: report.snapshot.probed_at.map_or_else(
            || text::t("status.not_checked_yet").into(),
            |t| t.to_rfc3339(),
        ),
    };
    render(StatusCode::OK, &page)
}
