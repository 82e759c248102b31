//! Figure 10 (issue 17): registry records pushed through `POST /api/v1/admin/registry/records`
//! in batches of 10,000 (the most one push carries), each batch all or nothing, against the
//! real server on SQLite. The batches are built before the clock starts; `cores`
//! connections push at once, so one batch is decoded and hashed while another is written.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::load::{Conn, Req};
use crate::report::thousands;
use crate::server::Setup;
use crate::suite::{progress, Ctx};
use crate::sys::CpuMark;

/// Records per push: the API's limit.
const BATCH: u64 = 10_000;
const PATH: &str = "/api/v1/admin/registry/records";

fn record(i: u64) -> Value {
    json!({
        "account_type": "personal",
        "number": portcullis_core::card::with_luhn_check_digit(&format!("5{i:014}")),
        "verification": format!("{:03}", i % 1000),
        "expiry": "2030-01",
        "holder_name": format!("Holder {i}"),
        "email": format!("holder{i}@example.com"),
        "phone": "",
        "product": "Gold Card",
        "balance": "12.34",
        "credit_limit": "5000.00",
        "payment_due_date": "2026-12-20",
        "minimum_due": "25.00",
        "status": if i.is_multiple_of(50) { "closed" } else { "active" },
        "replaces": "",
    })
}

/// Figure 10 on a fresh SQLite file when `database_url` is `None`, else on that (fresh)
/// PostgreSQL database, named `label`.
pub async fn figure(ctx: &mut Ctx, database_url: Option<&str>, label: &str) -> anyhow::Result<()> {
    let rows = ctx.sizes.push_rows;
    progress(&format!(
        "figure 10: {label}, {rows} registry records pushed through the API in batches of {BATCH}"
    ));
    let dir = ctx.root.join(if database_url.is_some() {
        "push-pg"
    } else {
        "push"
    });
    std::fs::create_dir_all(&dir)?;
    let mut setup = Setup::sqlite(&ctx.bin, &dir, &ctx.wrap);
    if let Some(url) = database_url {
        setup.database_url = url.to_owned();
    }
    let token = setup.admin_token("bench.issuer", "registry:write").await?;
    let server = setup.start().await?;
    let bodies: Vec<Req> = (0..rows.div_ceil(BATCH))
        .map(|b| {
            let batch: Vec<Value> = (b * BATCH..((b + 1) * BATCH).min(rows))
                .map(record)
                .collect();
            Req::post_json(PATH, &Value::Array(batch)).with_bearer(&token)
        })
        .collect::<anyhow::Result<_>>()?;
    let queue = Arc::new(Mutex::new(bodies));
    let mark = CpuMark::now(Some(server.pid));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..ctx.cores.max(1) {
        let queue = queue.clone();
        let mut conn = Conn::new(server.addr)?;
        workers.push(tokio::spawn(async move {
            let mut pushed = 0u64;
            loop {
                let Some(req) = queue.lock().await.pop() else {
                    return anyhow::Ok(pushed);
                };
                let (status, body) = conn.send(&req).await?;
                ensure!(
                    status == 200,
                    "push answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
                let answer: Value = serde_json::from_slice(&body)?;
                pushed += answer
                    .get("records")
                    .and_then(Value::as_u64)
                    .context("no record count")?;
            }
        }));
    }
    let mut pushed = 0;
    for w in workers {
        pushed += w.await??;
    }
    let elapsed = started.elapsed();
    let cpu = mark.used_since(Some(server.pid), ctx.ticks);
    ensure!(pushed == rows, "pushed {pushed} of {rows} records");
    let rate = rows as f64 / elapsed.as_secs_f64().max(1e-9);
    ctx.report.check(
        "10",
        format!(
            "{label}: registry API push, records/s ({} in batches of {})",
            thousands(rows as f64),
            thousands(BATCH as f64)
        ),
        format!("{}/s", thousands(rate)),
        "≥ 100,000/s",
        rate >= 100_000.0,
    );
    ctx.report.cpu(cpu);
    ctx.report.note(
        "10",
        format!(
            "{} pushes over {} connections in {:.2} s; each push validated, hashed (on every \
             core), upserted and settled (reissues, status changes) in one transaction",
            rows.div_ceil(BATCH),
            ctx.cores.max(1),
            elapsed.as_secs_f64()
        ),
    );
    server.stop().await
}
