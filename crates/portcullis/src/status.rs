//! Service status in the binary: the background prober `serve` runs (every
//! `status.probe_secs`, never per request), and the `portcullis status …` commands.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use portcullis_core::service::status::{parse_time, DatabaseProbe, IncidentInput, ProbeSignals};
use portcullis_core::service::{Portcullis, SupportAuthority};
use portcullis_core::ServiceError;
use portcullis_web::AppState;

/// How long the database gets to answer a probe.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Gathers one probe's signals. `last_failures` carries the delivery failure count between
/// probes, so only new failures count.
pub async fn gather(state: &AppState, last_failures: &mut Option<u64>) -> ProbeSignals {
    let app = &state.app;
    let started = Instant::now();
    // A probe never outlasts its interval, so the first probe after an outage begins reports
    // it: the status lags an outage by at most two intervals (the wait, then the probe).
    let timeout = PING_TIMEOUT.min(state.web.status_probe);
    let database = match tokio::time::timeout(timeout, app.ping()).await {
        Ok(Ok(())) => DatabaseProbe::Answered {
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        },
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "status probe: database unavailable");
            DatabaseProbe::Failed
        }
        Err(_) => {
            tracing::warn!("status probe: database did not answer in time");
            DatabaseProbe::Failed
        }
    };
    // With the database down the outbox cannot be read either: asking would only hold the
    // probe (and the status it reports) back by another timeout.
    let oldest = match database {
        DatabaseProbe::Failed => None,
        DatabaseProbe::Answered { .. } => {
            match tokio::time::timeout(timeout, app.outbox_stats()).await {
                Ok(Ok(s)) => Some(s.oldest_pending_age_secs),
                _ => None,
            }
        }
    };
    let delivery = state.delivery.as_ref().map(|f| f()).unwrap_or_default();
    let failures = delivery.failed + delivery.retried;
    let recent = last_failures.map_or(0, |before| failures.saturating_sub(before));
    *last_failures = Some(failures);
    ProbeSignals {
        database,
        hash_queue: app.hasher().queue_depth(),
        hash_capacity: app.hasher().queue_capacity(),
        oldest_pending_age_secs: oldest,
        recent_delivery_failures: recent,
    }
}

/// Starts the prober: one probe at once, then one every `state.web.status_probe`.
pub fn spawn_prober(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_failures = None;
        let mut tick = tokio::time::interval(state.web.status_probe);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let signals = gather(&state, &mut last_failures).await;
            state.app.record_probe(&state.status, &signals).await;
        }
    })
}

fn report(result: Result<(), ServiceError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ServiceError::Invalid(errors)) => {
            for e in errors {
                eprintln!("{}: {}", e.field, e.message);
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// `portcullis status incident create`.
pub async fn incident_create(
    app: &Portcullis,
    actor: &str,
    kind: &str,
    title: &str,
    message: &str,
    starts: Option<&str>,
    ends: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let authority = SupportAuthority::operator(actor);
    report(
        async {
            let input = IncidentInput {
                kind: kind.to_owned(),
                title: title.to_owned(),
                message: message.to_owned(),
                state: None,
                starts_at: starts.map(|s| parse_time("starts", s)).transpose()?,
                ends_at: ends.map(|s| parse_time("ends", s)).transpose()?,
            };
            let row = app.create_incident(&authority, input).await?;
            println!("posted {} #{} ({})", row.kind, row.id, row.state);
            Ok(())
        }
        .await,
    )
}

/// `portcullis status incident update`.
pub async fn incident_update(
    app: &Portcullis,
    actor: &str,
    id: i64,
    state: &str,
    message: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let authority = SupportAuthority::operator(actor);
    match app.update_incident(&authority, id, state, message).await {
        Ok(Some(row)) => {
            println!("#{} is now {}", row.id, row.state);
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => {
            eprintln!("no incident has id {id}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => report(Err(e)),
    }
}

/// `portcullis status incident list`.
pub async fn incident_list(app: &Portcullis, actor: &str) -> anyhow::Result<ExitCode> {
    let authority = SupportAuthority::operator(actor);
    let rows = app.list_incidents(&authority).await?;
    if rows.is_empty() {
        println!("no incidents in the last 90 days");
    }
    for r in rows {
        println!(
            "#{:<4} {:<11} {:<13} {}  (updated {})",
            r.id,
            r.kind,
            r.state,
            r.title,
            r.updated_at.to_rfc3339()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `portcullis status maintenance on|off`.
pub async fn maintenance(
    app: &Portcullis,
    actor: &str,
    on: Option<(&str, Option<&str>)>,
) -> anyhow::Result<ExitCode> {
    let authority = SupportAuthority::operator(actor);
    match on {
        Some((until, message)) => report(
            async {
                let until = parse_time("until", until)?;
                let row = app.maintenance_on(&authority, until, message).await?;
                println!(
                    "maintenance mode is on until {} (every node within 2 s)",
                    row.until.to_rfc3339()
                );
                Ok(())
            }
            .await,
        ),
        None => {
            app.maintenance_off(&authority).await?;
            println!("maintenance mode is off");
            Ok(ExitCode::SUCCESS)
        }
    }
}
