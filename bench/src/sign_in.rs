//! The sign-in figures: throughput against raw argon2id (1), latency at concurrency 2 (5),
//! and issue 3's timing figure, unknown against known User IDs (8).

use std::time::Instant;

use anyhow::{ensure, Context};

use crate::hash::Rate;
use crate::load::{self, Conn, Latency, Loop};
use crate::report::ms;
use crate::seed::{self, Account, PASSWORD, WRONG_PASSWORD};
use crate::server::Server;
use crate::suite::{progress, round_robin, switches_per_request, Ctx, MAX_PER_CONNECTION};
use crate::sys::{CpuMark, CpuUse};

/// Failures after which an account locks: the server's default (`lockout.lock_after_failures`).
const LOCK_AFTER_FAILURES: u32 = 6;

/// Figure 1: successful sign-ins per second at 2× cores, over raw argon2id per second.
pub async fn throughput(
    ctx: &mut Ctx,
    server: &Server,
    accounts: &[Account],
    fig: &str,
    label: &str,
    postgres: bool,
) -> anyhow::Result<()> {
    progress(&format!(
        "{label}: figure {fig}: sign-in throughput against raw argon2id"
    ));
    let conns = 2 * ctx.cores;
    let (before, cpu_before) = ctx.raw_hashing().await?;
    let reqs = accounts.iter().map(|a| a.sign_in(PASSWORD)).collect();
    let mark = CpuMark::now(Some(server.pid));
    let out = load::run(
        server.addr,
        Loop {
            connections: conns,
            run_for: ctx.sizes.sign_ins,
            max_per_connection: MAX_PER_CONNECTION,
            pace: None,
        },
        round_robin(reqs, conns)?,
    )
    .await?;
    let cpu = mark.used_since(Some(server.pid), ctx.ticks);
    let (after, cpu_after) = ctx.raw_hashing().await?;
    let raw = Rate {
        hashes: before.hashes + after.hashes,
        elapsed: before.elapsed + after.elapsed,
    };
    let sign_ins = out.rate(201);
    let ratio = sign_ins / raw.per_second().max(1e-9);
    ctx.report.info(
        fig,
        format!(
            "{label}: successful sign-ins/s (c={conns}, {} accounts)",
            accounts.len()
        ),
        format!("{sign_ins:.1}/s"),
    );
    ctx.report.cpu(cpu);
    ctx.report.info(
        fig,
        format!("raw argon2id hashes/s ({} threads, in-process)", ctx.cores),
        format!("{:.1}/s", raw.per_second()),
    );
    ctx.report.cpu(CpuUse {
        server: 0.0,
        bench: (cpu_before.bench + cpu_after.bench) / 2.0,
        postgres: (cpu_before.postgres + cpu_after.postgres) / 2.0,
        others: (cpu_before.others + cpu_after.others) / 2.0,
        server_switches: 0,
    });
    ctx.report.check(
        fig,
        format!("{label}: sign-ins/s ÷ raw argon2id hashes/s"),
        format!("{ratio:.3}"),
        "≥ 0.90",
        ratio >= 0.90,
    );
    // The same comparison per CPU-second (server CPU per sign-in against this process's CPU
    // per raw hash): it holds when other work on the machine takes cores from either phase.
    let raw_cpu_seconds = (cpu_before.bench * before.elapsed.as_secs_f64())
        + (cpu_after.bench * after.elapsed.as_secs_f64());
    // On PostgreSQL the database's backends do part of each sign-in's work.
    let db = if postgres { cpu.postgres } else { 0.0 };
    let sign_in_cpu_seconds = (cpu.server + db) * out.elapsed.as_secs_f64();
    let per_cpu = (out.count(201) as f64 / sign_in_cpu_seconds.max(1e-9))
        / (raw.hashes as f64 / raw_cpu_seconds.max(1e-9));
    ctx.report.info(
        fig,
        format!("{label}: same ratio per CPU-second (robust to other load)"),
        format!("{per_cpu:.3}"),
    );
    ctx.report.note(
        fig,
        format!(
            "{label}: sign-in answers {} in {:.1} s ({:.0} server context switches each); raw \
             argon2id {:.1}/s before and {:.1}/s after ({:.1} ms per hash per core)",
            out.status_summary(),
            out.elapsed.as_secs_f64(),
            switches_per_request(cpu, &out),
            before.per_second(),
            after.per_second(),
            1000.0 * ctx.cores as f64 / raw.per_second().max(1e-9)
        ),
    );
    Ok(())
}

/// Figure 5: sign-in latency at concurrency 2.
pub async fn latency(
    ctx: &mut Ctx,
    server: &Server,
    accounts: &[Account],
    fig: &str,
    label: &str,
) -> anyhow::Result<()> {
    progress(&format!(
        "{label}: figure {fig}: sign-in latency at concurrency 2"
    ));
    let reqs = accounts.iter().map(|a| a.sign_in(PASSWORD)).collect();
    let mark = CpuMark::now(Some(server.pid));
    let out = load::run(
        server.addr,
        Loop {
            connections: 2,
            run_for: ctx.sizes.latency,
            max_per_connection: MAX_PER_CONNECTION,
            pace: None,
        },
        round_robin(reqs, 2)?,
    )
    .await?;
    let cpu = mark.used_since(Some(server.pid), ctx.ticks);
    let lat = Latency::of(&out.latencies(201)).context("no successful sign-in")?;
    ctx.report.check(
        fig,
        format!("{label}: sign-in p50 at concurrency 2 ({} sign-ins)", lat.n),
        ms(lat.p50_ms),
        "≤ 50 ms",
        lat.p50_ms <= 50.0,
    );
    ctx.report.cpu(cpu);
    ctx.report.check(
        fig,
        format!("{label}: sign-in p99 at concurrency 2"),
        ms(lat.p99_ms),
        "≤ 100 ms",
        lat.p99_ms <= 100.0,
    );
    ctx.report
        .note(fig, format!("{label}: answers {}", out.status_summary()));
    Ok(())
}

/// Figure 8 (issue 3's timing figure): failed sign-ins for unknown and known User IDs, in
/// interleaved pairs on one connection, alternating which goes first.
pub async fn timing(
    ctx: &mut Ctx,
    server: &Server,
    accounts: &[Account],
    fig: &str,
    label: &str,
) -> anyhow::Result<()> {
    progress(&format!(
        "{label}: figure {fig}: failed sign-in timing, unknown vs known User ID"
    ));
    ensure!(!accounts.is_empty(), "no accounts");
    let mut conn = Conn::new(server.addr)?;
    let mut failures = vec![0u32; accounts.len()];
    let (mut unknown, mut known) = (Vec::new(), Vec::new());
    let mut odd = 0usize;
    let mark = CpuMark::now(Some(server.pid));
    let deadline = Instant::now() + ctx.sizes.timing_limit;
    for k in 0..ctx.sizes.timing_pairs {
        if Instant::now() >= deadline {
            break;
        }
        let a = k % accounts.len();
        let (Some(account), Some(count)) = (accounts.get(a), failures.get_mut(a)) else {
            continue;
        };
        // Lockout stays on: before an account would lock, its owner signs in (untimed),
        // which resets its count.
        if *count + 1 >= LOCK_AFTER_FAILURES {
            let (status, _) = conn.send(&account.sign_in(PASSWORD)).await?;
            ensure!(status == 201, "the resetting sign-in answered {status}");
            *count = 0;
        }
        // Same length as the registered IDs ("bench.user00001"), so requests match in size.
        let stranger = format!("bench.none{:05}", k % 100_000);
        let unknown_req = seed::sign_in_req(&stranger, WRONG_PASSWORD, &account.account_type);
        let known_req = account.sign_in(WRONG_PASSWORD);
        let unknown_first = k % 2 == 0;
        for first in [true, false] {
            let is_unknown = first == unknown_first;
            let req = if is_unknown { &unknown_req } else { &known_req };
            let sent = Instant::now();
            let status = conn.try_send(req).await.map_or(0, |(s, _)| s);
            let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
            if status != 401 {
                odd += 1;
                continue;
            }
            if is_unknown {
                unknown.push(micros);
            } else {
                known.push(micros);
                *count += 1;
            }
        }
    }
    let cpu = mark.used_since(Some(server.pid), ctx.ticks);
    let u = load::median(&unknown).context("no unknown-user sample")?;
    let kn = load::median(&known).context("no known-user sample")?;
    let ratio = f64::from(u) / f64::from(kn.max(1));
    ctx.report.info(
        fig,
        format!(
            "{label}: median failed sign-in, unknown User ID ({} samples)",
            unknown.len()
        ),
        ms(f64::from(u) / 1000.0),
    );
    ctx.report.cpu(cpu);
    ctx.report.info(
        fig,
        format!(
            "{label}: median failed sign-in, known User ID, wrong password ({})",
            known.len()
        ),
        ms(f64::from(kn) / 1000.0),
    );
    ctx.report.check(
        fig,
        format!("{label}: unknown ÷ known median (issue 3)"),
        format!("{ratio:.3}"),
        "within ±10%",
        (ratio - 1.0).abs() <= 0.10,
    );
    if odd > 0 {
        ctx.report.note(
            fig,
            format!("{label}: {odd} answers were not 401 and were left out"),
        );
    }
    Ok(())
}
