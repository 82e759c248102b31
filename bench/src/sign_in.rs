//! The sign-in figures: throughput against raw argon2id (1), latency at concurrency 2 (5),
//! and issue 3's timing figure, unknown against known User IDs (8).

use std::time::Instant;

use anyhow::{ensure, Context};

use crate::hash::Rate;
use crate::load::{self, Conn, Latency, Loop, Outcome};
use crate::report::ms;
use crate::seed::{self, Account, PASSWORD, WRONG_PASSWORD};
use crate::server::Server;
use crate::suite::{mean_cpu, progress, round_robin, Ctx, MAX_PER_CONNECTION};
use crate::sys::{CpuMark, CpuUse};

/// Failures after which an account locks: the server's default (`lockout.lock_after_failures`).
const LOCK_AFTER_FAILURES: u32 = 6;

/// Figure 1: successful sign-ins per second at 2× cores, over raw argon2id per second.
/// Raw and sign-in chunks alternate (raw, sign-ins, raw, …, raw) so that drift in what the
/// machine gives (other tenants of the host, other engineers' builds) falls on both alike.
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
    let make = round_robin(
        accounts.iter().map(|a| a.sign_in(PASSWORD)).collect(),
        conns,
    )?;
    let mut raw = Rate::ZERO;
    let (mut raw_cpu_seconds, mut raw_cpu) = (0.0, Vec::new());
    let (mut out, mut cpu) = (Outcome::default(), Vec::new());
    let (mut sign_in_cpu_seconds, mut switches) = (0.0, 0);
    let mut raw_rates = Vec::new();
    let mut round_ratios = Vec::new();
    let (first, first_cpu) = ctx.raw_hashing().await?;
    // argon2-cffi (the reference C as Python ships it), one process per core, in the same
    // rounds: issue 19's "sign-ins ÷ the reference hash".
    let cffi_on = crate::kernels::cffi_ready();
    let mut cffi = Rate::ZERO;
    let mut add_cffi = |ctx: &Ctx| -> anyhow::Result<()> {
        if cffi_on {
            let r = crate::kernels::cffi_rate(
                ctx.cost,
                ctx.cores,
                ctx.sizes.raw_hashing,
                MAX_PER_CONNECTION,
            )?;
            cffi.add(r);
        }
        Ok(())
    };
    add_cffi(ctx)?;
    let mut previous = first;
    let mut add_raw = |rate: Rate, c: CpuUse| {
        raw.add(rate);
        raw_cpu_seconds += c.bench * rate.elapsed.as_secs_f64();
        raw_cpu.push(c);
        raw_rates.push(format!("{:.1}", rate.per_second()));
    };
    add_raw(first, first_cpu);
    for _ in 0..ctx.sizes.rounds {
        let mark = CpuMark::now(Some(server.pid));
        let chunk = load::run(
            server.addr,
            Loop {
                connections: conns,
                run_for: ctx.sizes.sign_ins,
                max_per_connection: MAX_PER_CONNECTION,
                pace: None,
            },
            make.clone(),
        )
        .await?;
        let used = mark.used_since(Some(server.pid), ctx.ticks);
        // On PostgreSQL the database's backends do part of each sign-in's work.
        let db = if postgres { used.postgres } else { 0.0 };
        sign_in_cpu_seconds += (used.server + db) * chunk.elapsed.as_secs_f64();
        switches += used.server_switches;
        cpu.push(used);
        let (next, next_cpu) = ctx.raw_hashing().await?;
        add_cffi(ctx)?;
        let around = (previous.per_second() + next.per_second()) / 2.0;
        round_ratios.push(format!("{:.3}", chunk.rate(201) / around.max(1e-9)));
        add_raw(next, next_cpu);
        previous = next;
        out.merge(chunk);
    }
    let sign_ins = out.rate(201);
    let ratio = sign_ins / raw.per_second().max(1e-9);
    let sign_in_cpu = mean_cpu(&cpu);
    ctx.report.info(
        fig,
        format!(
            "{label}: successful sign-ins/s (c={conns}, {} accounts)",
            accounts.len()
        ),
        format!("{sign_ins:.1}/s"),
    );
    ctx.report.cpu(sign_in_cpu);
    ctx.report.info(
        fig,
        format!("raw argon2id hashes/s ({} threads, in-process)", ctx.cores),
        format!("{:.1}/s", raw.per_second()),
    );
    ctx.report.cpu(CpuUse {
        server: 0.0,
        ..mean_cpu(&raw_cpu)
    });
    // Issue 19's targets: PostgreSQL's backends share the cores with the hashing.
    let (target, floor) = if postgres {
        ("≥ 0.90", 0.90)
    } else {
        ("≥ 0.95", 0.95)
    };
    ctx.report.check(
        fig,
        format!("{label}: sign-ins/s ÷ raw argon2id hashes/s"),
        format!("{ratio:.3}"),
        target,
        ratio >= floor,
    );
    if cffi_on {
        let over_cffi = sign_ins / cffi.per_second().max(1e-9);
        ctx.report.info(
            fig,
            format!(
                "argon2-cffi hashes/s ({} processes, same parameters, same rounds)",
                ctx.cores
            ),
            format!("{:.1}/s", cffi.per_second()),
        );
        ctx.report.check(
            fig,
            format!("{label}: sign-ins/s ÷ argon2-cffi hashes/s"),
            format!("{over_cffi:.3}"),
            "≥ 1.0",
            over_cffi >= 1.0,
        );
    } else {
        ctx.report.note(
            fig,
            format!(
                "{label}: SKIPPED sign-ins ÷ argon2-cffi: no argon2-cffi in {} (run \
                 scripts/test-deps)",
                crate::kernels::python()
            ),
        );
    }
    // The same comparison per CPU-second (server CPU per sign-in against this process's CPU
    // per raw hash): it holds when other work on the machine takes cores from either phase.
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
            "{label}: sign-in answers {} in {:.1} s ({:.0} server context switches each, \
             {:.1} ms server CPU each); raw argon2id per chunk {}/s ({:.1} ms CPU per hash); \
             ratio per round {}",
            out.status_summary(),
            out.elapsed.as_secs_f64(),
            switches as f64 / out.samples.len().max(1) as f64,
            1000.0 * sign_in_cpu_seconds / out.count(201).max(1) as f64,
            raw_rates.join(", "),
            1000.0 * raw_cpu_seconds / raw.hashes.max(1) as f64,
            round_ratios.join(", ")
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
            // Without the device token, so that the account's own count is the one reset.
            let (status, _) = conn
                .send(&account.sign_in_from_new_device(PASSWORD))
                .await?;
            ensure!(status == 201, "the resetting sign-in answered {status}");
            *count = 0;
        }
        // Same length as the registered IDs ("bench.user00001"), so requests match in size.
        let stranger = format!("bench.none{:05}", k % 100_000);
        let unknown_req = seed::sign_in_req(&stranger, WRONG_PASSWORD, &account.account_type);
        // Both as a stranger would send them: no device token.
        let known_req = account.sign_in_from_new_device(WRONG_PASSWORD);
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
