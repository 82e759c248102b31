//! The public `/status` page: one sentence answering "is there a problem today?", then each
//! part, incidents and planned maintenance, and 90 days of history. No forms, no script.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{render, Chrome};
use crate::AppState;

pub struct Part {
    pub name: String,
    pub state: String,
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
        "operational" => "Working normally",
        "degraded" => "Slow or partly working",
        _ => "Not working",
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
                words: words(s.as_str()),
            })
            .collect(),
        entries: report
            .incidents
            .iter()
            .map(|i| Entry {
                kind: if i.kind == "maintenance" {
                    "Planned maintenance".into()
                } else {
                    "Incident".into()
                },
                title: i.title.clone(),
                message: i.message.clone(),
                state: i.state.replace('_', " "),
                window: match (i.starts_at, i.ends_at) {
                    (Some(a), Some(b)) => format!("{} to {}", a.to_rfc3339(), b.to_rfc3339()),
                    (Some(a), None) => format!("from {}", a.to_rfc3339()),
                    (None, Some(b)) => format!("until {}", b.to_rfc3339()),
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
                worst: d.worst.as_str().to_owned(),
            })
            .collect(),
        probed_at: report
            .snapshot
            .probed_at
            .map_or_else(|| "not yet".into(), |t| t.to_rfc3339()),
    };
    render(StatusCode::OK, &page)
}
