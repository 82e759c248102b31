//! Service status in the binary: the background prober `serve` runs (every
//! `status.probe_secs`, never per request), and the `portcullis status …` commands.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use portcullis_core::service::status::{
    parse_time, ChannelSignals, DatabaseProbe, IncidentInput, NodeLoad, ProbeSignals,
};
use portcullis_core::service::{Portcullis, SupportAuthority};
use portcullis_core::ServiceError;
use portcullis_web::AppState;

/// How long the database gets to answer a probe.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What the prober carries from one probe to the next: delivery failure counts (only new
/// failures count) and this node's name in the write probe.
pub struct ProbeMemory {
    node: String,
    last_failures: Option<(u64, u64)>,
    last_unavailable: Option<u64>,
}

impl ProbeMemory {
    pub fn new() -> Self {
        Self {
            node: format!(
                "{}-{}",
                portcullis_notify::worker::default_node_name(),
                std::process::id()
            ),
            last_failures: None,
            last_unavailable: None,
        }
    }
}

impl Default for ProbeMemory {
    fn default() -> Self {
        Self::new()
    }
}

/// Gathers one probe's signals.
pub async fn gather(state: &AppState, memory: &mut ProbeMemory) -> ProbeSignals {
    let app = &state.app;
    let started = Instant::now();
    // A probe never outlasts its interval, so the first probe after an outage begins reports
    // it: the status lags an outage by at most two intervals (the wait, then the probe).
    let timeout = PING_TIMEOUT.min(state.web.status_probe);
    let database = match tokio::time::timeout(timeout, app.ping()).await {
        Ok(Ok(())) => {
            let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            // A real committed write: a full disk or a held lock shows here, not in a ping.
            let write = tokio::time::timeout(timeout, app.probe_write(&memory.node)).await;
            match write {
                Ok(Ok(())) => DatabaseProbe::Answered { millis },
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "status probe: the database takes no writes");
                    DatabaseProbe::WritesFailing { millis }
                }
                Err(_) => {
                    tracing::warn!("status probe: a write did not finish in time");
                    DatabaseProbe::WritesFailing { millis }
                }
            }
        }
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
    let stats = match database {
        DatabaseProbe::Failed => None,
        _ => match tokio::time::timeout(timeout, app.outbox_stats()).await {
            Ok(Ok(s)) => Some(s),
            _ => None,
        },
    };
    let delivery = state.delivery.as_ref().map(|f| f()).unwrap_or_default();
    let failures = (delivery.failures_email, delivery.failures_sms);
    let (recent_email, recent_sms) = memory.last_failures.map_or((0, 0), |before| {
        (
            failures.0.saturating_sub(before.0),
            failures.1.saturating_sub(before.1),
        )
    });
    memory.last_failures = Some(failures);
    let load = state.load.snapshot();
    let unavailable =
        load.refused_requests + load.deadline_exceeded + state.metrics.sign_ins("unavailable");
    let recent_unavailable = memory
        .last_unavailable
        .map_or(0, |before| unavailable.saturating_sub(before));
    memory.last_unavailable = Some(unavailable);
    ProbeSignals {
        database,
        hash_queue: app.hasher().queue_depth(),
        hash_capacity: app.hasher().queue_capacity(),
        email: ChannelSignals {
            oldest_pending_age_secs: stats.map(|s| s.oldest_email_age_secs),
            recent_failures: recent_email,
            provider_down: delivery.email_provider_down,
        },
        sms: ChannelSignals {
            oldest_pending_age_secs: stats.map(|s| s.oldest_sms_age_secs),
            recent_failures: recent_sms,
            provider_down: delivery.sms_provider_down,
        },
        load: NodeLoad {
            open_connections: load.open_connections,
            connection_cap: load.connection_cap,
            in_flight: load.in_flight,
            max_in_flight: load.max_in_flight,
            recent_unavailable,
        },
    }
}

/// Starts the prober: one probe at once, then one every `state.web.status_probe`.
pub fn spawn_prober(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut memory = ProbeMemory::new();
        let mut tick = tokio::time::interval(state.web.status_probe);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let signals = gather(&state, &mut memory).await;
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
