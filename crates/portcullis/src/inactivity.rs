//! Flow 10 in the binary: the inactivity job, scheduled inside every serving node (a lease
//! row in the database lets one node run it per interval), and `portcullis admin
//! run-inactivity [--dry-run]`. The node that holds the lease also sweeps expired steps,
//! codes, throttle buckets and forgotten devices.

use std::process::ExitCode;
use std::time::Duration;

use portcullis_core::service::{InactivityRun, Portcullis};

/// This process's name in the job's lease row.
pub fn node_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into());
    let tag: String = portcullis_crypto::token::random_bytes::<4>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{host}-{}-{tag}", std::process::id())
}

/// Runs the job every `interval` (the first run shortly after start) for as long as the
/// node serves. A run that fails is logged and tried again at the next tick.
pub fn spawn_job(app: Portcullis, interval: Duration) -> tokio::task::JoinHandle<()> {
    let node = node_name();
    let lease_secs = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX).max(1);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match app.run_scheduled_inactivity(&node, lease_secs).await {
                Ok(Some(run)) => {
                    tracing::info!(
                        warned = run.warned.len(),
                        deactivated = run.deactivated.len(),
                        "inactivity job ran"
                    );
                    // The lease holder also sweeps what has expired.
                    match app.sweep_expired().await {
                        Ok(swept) => tracing::info!(
                            steps = swept.steps,
                            codes = swept.codes,
                            throttle = swept.throttle,
                            devices = swept.devices,
                            contacts = swept.contacts,
                            push_keys = swept.push_keys,
                            idempotency_keys = swept.idempotency_keys,
                            "expired rows swept"
                        ),
                        Err(e) => tracing::warn!(error = %e, "sweep failed"),
                    }
                }
                Ok(None) => tracing::debug!("inactivity job: another node holds the lease"),
                Err(e) => tracing::warn!(error = %e, "inactivity job failed"),
            }
        }
    })
}

/// What a run did (or would do), for the operator.
pub fn describe(run: &InactivityRun) -> String {
    let (warn, deactivate) = if run.dry_run {
        ("would warn", "would deactivate")
    } else {
        ("warned", "deactivated")
    };
    let mut out = String::new();
    for user_id in &run.deactivated {
        out.push_str(&format!("{deactivate} {user_id}\n"));
    }
    for user_id in &run.warned {
        out.push_str(&format!("{warn} {user_id}\n"));
    }
    out.push_str(&format!(
        "{}: {} to deactivate, {} to warn{}\n",
        if run.dry_run { "dry run" } else { "done" },
        run.deactivated.len(),
        run.warned.len(),
        if run.dry_run {
            " (nothing changed)"
        } else {
            ""
        }
    ));
    out
}

/// `portcullis admin run-inactivity [--dry-run]`.
pub async fn run_cli(app: &Portcullis, dry_run: bool, actor: &str) -> anyhow::Result<ExitCode> {
    let run = app.run_inactivity(dry_run, actor).await?;
    print!("{}", describe(&run));
    Ok(ExitCode::SUCCESS)
}
