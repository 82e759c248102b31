//! Flow 10 in the binary: the inactivity job, scheduled inside every serving node (a lease
//! row in the database lets one node run it per interval), and `portcullis admin
//! run-inactivity [--dry-run]`. The node that holds the lease also sweeps expired steps,
//! codes, throttle buckets and forgotten devices.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::ports::Claims;
use portcullis_core::service::{InactivityRun, Portcullis, INACTIVITY_JOB};

/// This process's name in the job's lease row.
pub fn node_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into());
    let tag: String = portcullis_crypto::token::random_bytes::<4>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{host}-{}-{tag}", std::process::id())
}

/// A scheduled job leased in the database (the inactivity job, the re-seal job), running
/// in this node. Stopped at shutdown with [`LeasedJob::stop`]: a run cut short gives its
/// lease back, so that the next node to try (a node restarted in its place tries at once)
/// runs the job instead of waiting out the lease.
pub struct LeasedJob {
    task: tokio::task::JoinHandle<()>,
    /// Set from the claim until the run ends.
    running: Arc<AtomicBool>,
    name: &'static str,
    node: String,
}

impl LeasedJob {
    /// Spawns `tick` every `interval` (the first one at once), with a fresh node name; the
    /// tick is given the node name.
    pub fn spawn<F, Fut>(name: &'static str, interval: Duration, tick: F) -> LeasedJob
    where
        F: Fn(String) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let node = node_name();
        let running = Arc::new(AtomicBool::new(false));
        let (n, r) = (node.clone(), running.clone());
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                r.store(true, Ordering::SeqCst);
                tick(n.clone()).await;
                r.store(false, Ordering::SeqCst);
            }
        });
        LeasedJob {
            task,
            running,
            name,
            node,
        }
    }

    /// Stops the job; when it was in the middle of a run, gives the lease back.
    pub async fn stop(self, claims: &dyn Claims) {
        self.task.abort();
        let _ = self.task.await;
        if !self.running.load(Ordering::SeqCst) {
            return;
        }
        match claims.release_job(self.name, &self.node).await {
            Ok(true) => tracing::info!(job = self.name, "job stopped mid-run; lease released"),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                job = self.name,
                error = %e,
                "job stopped mid-run; lease not released (it runs out by itself)"
            ),
        }
    }
}

/// Runs the job every `interval` (the first run shortly after start) for as long as the
/// node serves. A run that fails is logged and tried again at the next tick.
pub fn spawn_job(app: Portcullis, interval: Duration) -> LeasedJob {
    let lease_secs = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX).max(1);
    LeasedJob::spawn(INACTIVITY_JOB, interval, move |node| {
        let app = app.clone();
        async move {
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
                            webhooks_sent = swept.webhooks_sent,
                            webhooks_failed = swept.webhooks_failed,
                            oidc = swept.oidc,
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
