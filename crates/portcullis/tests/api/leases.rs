//! Leased jobs at shutdown (issue 16, rolling restarts): a job stopped in the middle of a
//! run gives its lease back, so the next node claims it at once; a job whose run had ended
//! keeps it (the job ran this interval and must not run twice).

use std::time::Duration;

use portcullis::inactivity::LeasedJob;
use portcullis_core::clock::{Clock, UnixTime};
use portcullis_core::ports::Claims;
use portcullis_testkit::{both, spawn_app_with, Backend, TestApp};

const JOB: &str = "inactivity";
const HOUR: Duration = Duration::from_secs(3600);

async fn holder(app: &TestApp) -> Option<String> {
    sqlx::query_scalar("SELECT holder FROM job_leases WHERE name = 'inactivity'")
        .fetch_one(app.built.store.pool())
        .await
        .unwrap()
}

/// A job whose run claims the lease at `now` for an hour, then (with `long`) runs until it
/// is stopped; waits until the first run has claimed it.
async fn claiming_job(app: &TestApp, now: UnixTime, long: bool) -> LeasedJob {
    let (claimed_tx, mut claimed) = tokio::sync::mpsc::unbounded_channel();
    let s = app.built.store.clone();
    let job = LeasedJob::spawn(JOB, HOUR, move |node| {
        let (s, tx) = (s.clone(), claimed_tx.clone());
        async move {
            let won = s
                .claim_job(JOB, &node, now, now.plus_secs(3600))
                .await
                .unwrap();
            let _ = tx.send(won);
            if long {
                // A long run, cut short by the shutdown.
                std::future::pending::<()>().await;
            }
        }
    });
    assert!(claimed.recv().await.unwrap(), "the job took its lease");
    job
}

async fn stopped_mid_run(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let store = app.built.store.clone();
    let now = app.clock.now();
    let job = claiming_job(&app, now, true).await;
    assert!(!store
        .claim_job(JOB, "other", now.plus_secs(1), now.plus_secs(3601))
        .await
        .unwrap());
    job.stop(store.as_ref()).await;
    assert!(
        store
            .claim_job(JOB, "other", now.plus_secs(1), now.plus_secs(3601))
            .await
            .unwrap(),
        "the lease of a run cut short was not given back"
    );
    assert_eq!(holder(&app).await.as_deref(), Some("other"));
}
both!(a_job_stopped_mid_run_gives_its_lease_back, stopped_mid_run);

async fn stopped_after_run(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let store = app.built.store.clone();
    let now = app.clock.now();
    let job = claiming_job(&app, now, false).await;
    // The run has returned; let the loop mark it ended.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ran = holder(&app).await;
    job.stop(store.as_ref()).await;
    assert!(
        !store
            .claim_job(JOB, "other", now.plus_secs(1), now.plus_secs(3601))
            .await
            .unwrap(),
        "a finished run's lease was given back: the job would run twice"
    );
    assert_eq!(holder(&app).await, ran);
}
both!(
    a_job_stopped_after_its_run_keeps_its_lease,
    stopped_after_run
);
