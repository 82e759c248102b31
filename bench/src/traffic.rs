//! The HTTP figures: GET /api/v1/me against GET /healthz (2), and overload (3).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};

use crate::load::{self, Latency, Loop, MakeReq, Outcome, Req};
use crate::report::{ms, thousands};
use crate::seed::{Account, PASSWORD};
use crate::server::Server;
use crate::suite::{
    mb, mean_cpu, progress, round_robin, switches_per_request, Ctx, MAX_PER_CONNECTION,
};
use crate::sys::{CpuMark, CpuUse};

/// Figure 2: GET /api/v1/me with a bearer token against GET /healthz, 64 connections each,
/// in alternating chunks so drift falls on both alike.
pub async fn me_vs_healthz(
    ctx: &mut Ctx,
    server: &Server,
    accounts: &[Account],
    fig: &str,
    label: &str,
    postgres: bool,
) -> anyhow::Result<()> {
    const CONNS: usize = 64;
    progress(&format!(
        "{label}: figure {fig}: GET /api/v1/me against GET /healthz"
    ));
    let me_reqs: Vec<Req> = accounts
        .iter()
        .map(Account::me)
        .collect::<anyhow::Result<_>>()?;
    let health: MakeReq = {
        let r = Req::get("/healthz");
        Arc::new(move |_, _| r.clone())
    };
    let me = round_robin(me_reqs, CONNS)?;
    let plan = |run_for| Loop {
        connections: CONNS,
        run_for,
        max_per_connection: MAX_PER_CONNECTION,
        pace: None,
    };
    // Warm-up: connections, the sessions' activity stamps, caches.
    let warm = ctx.sizes.http_chunk / 5;
    load::run(server.addr, plan(warm), health.clone()).await?;
    load::run(server.addr, plan(warm), me.clone()).await?;
    let (mut h_out, mut m_out) = (Outcome::default(), Outcome::default());
    let (mut h_cpu, mut m_cpu) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        for (make, out, cpu) in [
            (&health, &mut h_out, &mut h_cpu),
            (&me, &mut m_out, &mut m_cpu),
        ] {
            let mark = CpuMark::now(Some(server.pid));
            out.merge(load::run(server.addr, plan(ctx.sizes.http_chunk), make.clone()).await?);
            cpu.push(mark.used_since(Some(server.pid), ctx.ticks));
        }
    }
    let h = Latency::of(&h_out.latencies(200)).context("no /healthz answer")?;
    let m = Latency::of(&m_out.latencies(200)).context("no /me answer")?;
    let (h_rate, m_rate) = (h_out.rate(200), m_out.rate(200));
    let ratio = m_rate / h_rate.max(1e-9);
    ctx.report.info(
        fig,
        format!("{label}: GET /healthz, req/s ({CONNS} connections)"),
        format!("{}/s", thousands(h_rate)),
    );
    ctx.report.cpu(mean_cpu(&h_cpu));
    ctx.report.info(
        fig,
        format!("{label}: GET /healthz p50 / p99"),
        format!("{} / {}", ms(h.p50_ms), ms(h.p99_ms)),
    );
    ctx.report.info(
        fig,
        format!("{label}: GET /api/v1/me (bearer), req/s ({CONNS} connections)"),
        format!("{}/s", thousands(m_rate)),
    );
    ctx.report.cpu(mean_cpu(&m_cpu));
    // Issue 19's targets: on PostgreSQL a `/me` is a round trip to another process.
    let (target, floor) = if postgres {
        ("≥ 0.4", 0.4)
    } else {
        ("≥ 0.5", 0.5)
    };
    ctx.report.check(
        fig,
        format!("{label}: GET /api/v1/me p50 / p99"),
        format!("{} / {}", ms(m.p50_ms), ms(m.p99_ms)),
        "p99 < 10 ms",
        m.p99_ms < 10.0,
    );
    ctx.report.check(
        fig,
        format!("{label}: /me ÷ /healthz throughput"),
        format!("{ratio:.3}"),
        target,
        ratio >= floor,
    );
    let (h_mean, m_mean) = (mean_cpu(&h_cpu), mean_cpu(&m_cpu));
    let cpu_ms = |c: CpuUse, out: &Outcome| {
        1000.0 * c.server * out.elapsed.as_secs_f64() / out.samples.len().max(1) as f64
    };
    ctx.report.note(
        fig,
        format!(
            "{label}: /healthz answers {}, {:.3} ms server CPU and {:.1} server context \
             switches each; /me answers {}, {:.3} ms server CPU and {:.1} context switches each",
            h_out.status_summary(),
            cpu_ms(h_mean, &h_out),
            switches_per_request(h_mean, &h_out),
            m_out.status_summary(),
            cpu_ms(m_mean, &m_out),
            switches_per_request(m_mean, &m_out),
        ),
    );
    Ok(())
}

/// Figure 3: 20× more concurrent sign-ins than the hashing pool holds, with signed-in people
/// reading /me meanwhile (4 connections, one request each per 20 ms).
pub async fn overload(
    ctx: &mut Ctx,
    server: &Server,
    accounts: &[Account],
    fig: &str,
    label: &str,
) -> anyhow::Result<()> {
    let capacity = ctx.pool_capacity();
    let conns = 20 * capacity;
    progress(&format!(
        "{label}: figure {fig}: overload, {conns} concurrent sign-ins for {:.0} s",
        ctx.sizes.overload.as_secs_f64()
    ));
    // Connection c always signs in as account c mod n, from the account's known device: with
    // 64 accounts no device has more attempts in flight than its own allowance (4) lets it
    // claim at once.
    let sign_ins: Vec<Req> = accounts.iter().map(|a| a.sign_in(PASSWORD)).collect();
    let n = sign_ins.len();
    ensure!(n > 0, "no accounts");
    let make_sign_in: MakeReq = {
        let fallback = Req::get("/healthz");
        Arc::new(move |c, _| {
            sign_ins
                .get(c % n)
                .cloned()
                .unwrap_or_else(|| fallback.clone())
        })
    };
    let me = round_robin(
        accounts
            .iter()
            .map(Account::me)
            .collect::<anyhow::Result<_>>()?,
        4,
    )?;

    let rss_before = server.rss_kib().unwrap_or(0);
    let reset = crate::sys::reset_peak(server.pid);
    let stop = Arc::new(AtomicBool::new(false));
    let sampled = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, sampled, pid) = (stop.clone(), sampled.clone(), server.pid);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let rss = crate::sys::status_kib(pid, "VmRSS").unwrap_or(0);
                sampled.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mark = CpuMark::now(Some(server.pid));
    let (signed, read) = tokio::join!(
        load::run(
            server.addr,
            Loop {
                connections: conns,
                run_for: ctx.sizes.overload,
                max_per_connection: MAX_PER_CONNECTION,
                pace: None,
            },
            make_sign_in,
        ),
        load::run(
            server.addr,
            Loop {
                connections: 4,
                run_for: ctx.sizes.overload,
                max_per_connection: MAX_PER_CONNECTION,
                pace: Some(Duration::from_millis(20)),
            },
            me,
        )
    );
    let cpu = mark.used_since(Some(server.pid), ctx.ticks);
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let (signed, read) = (signed?, read?);
    let peak = server
        .peak_rss_kib()
        .unwrap_or(0)
        .max(sampled.load(Ordering::Relaxed));

    let refused = signed.latencies(503);
    let fast = refused.iter().filter(|m| **m <= 50_000).count();
    let unanswered = signed.count(0) + read.count(0);
    let sent = signed.samples.len() + read.samples.len();
    ctx.report.info(
        fig,
        format!(
            "{label}: overload, {conns} concurrent sign-ins (20× pool of {capacity}), {:.0} s",
            ctx.sizes.overload.as_secs_f64()
        ),
        format!(
            "{:.1} signed in/s, {}/s 503",
            signed.rate(201),
            thousands(signed.rate(503))
        ),
    );
    ctx.report.cpu(cpu);
    ctx.report.check(
        fig,
        format!("{label}: peak RSS of the server (VmHWM)"),
        format!("{:.1} MB", mb(peak)),
        "< 100 MB",
        mb(peak) < 100.0,
    );
    let share = if refused.is_empty() {
        "no 503".to_owned()
    } else {
        let l = Latency::of(&refused);
        format!(
            "{:.1}% of {} (p50 {}, p99 {})",
            100.0 * fast as f64 / refused.len() as f64,
            thousands(refused.len() as f64),
            l.map_or_else(String::new, |l| ms(l.p50_ms)),
            l.map_or_else(String::new, |l| ms(l.p99_ms))
        )
    };
    ctx.report.info(
        fig,
        format!("{label}: 503 answers back within 50 ms"),
        share,
    );
    ctx.report.check(
        fig,
        format!("{label}: requests left without an answer"),
        format!("{unanswered} of {}", thousands(sent as f64)),
        "0",
        unanswered == 0,
    );
    let m = Latency::of(&read.latencies(200)).context("no /me answer during overload")?;
    ctx.report.check(
        fig,
        format!("{label}: GET /api/v1/me during overload, p50 / p99"),
        format!("{} / {}", ms(m.p50_ms), ms(m.p99_ms)),
        "p99 < 50 ms",
        m.p99_ms < 50.0,
    );
    ctx.report.note(
        fig,
        format!(
            "{label}: sign-in answers {}; /me answers {}; RSS before the phase {:.1} MB; peak {}",
            signed.status_summary(),
            read.status_summary(),
            mb(rss_before),
            if reset {
                "of this phase (VmHWM reset through clear_refs)"
            } else {
                "since the server started (VmHWM could not be reset)"
            }
        ),
    );
    Ok(())
}
