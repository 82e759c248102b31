//! `portcullis-bench`: how close each hot path of Portcullis comes to what this machine allows.
//!
//! Starts the real release binary on loopback (fresh folder, its own SQLite file or a fresh
//! PostgreSQL database, configured through `PORTCULLIS_*` variables), seeds it through
//! `portcullis registry import` and the registration API, drives it with its own HTTP client
//! (kept-alive connections, every loop bounded in count and time) and prints one table. Each
//! ratio divides two things measured in this run, because absolute times drift on shared
//! machines. Nothing here asserts speed: a figure that misses its target says MISS and the run
//! still succeeds; only a broken run (a crash, a wrong answer while seeding) fails.
//!
//! ```text
//! scripts/bench [--smoke] [--only N] [--postgres URL]
//! ```
//! See `docs/benchmarks.md` for the figures, the last run and what limits each.

mod hash;
mod kernels;
mod load;
mod oidc;
mod peer;
mod pg;
mod push;
mod recovery;
mod report;
mod seed;
mod server;
mod sign_in;
mod suite;
mod sys;
mod traffic;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use crate::hash::Cost;
use crate::report::Report;
use crate::suite::{Ctx, Sizes, Wanted, QUEUE_PER_WORKER};

#[derive(Parser)]
#[command(
    name = "portcullis-bench",
    about = "Benchmarks the real Portcullis binary on loopback and prints one table of figures"
)]
struct Cli {
    /// Everything tiny (a few seconds), for CI: proves the program runs, not the speed.
    #[arg(long)]
    smoke: bool,
    /// Run one figure: 1-6 and 8-11 on SQLite; 7 is figures 1-3 and 5 on PostgreSQL; 6
    /// and 10 run on PostgreSQL too when it is configured; 12 is the argon2id kernel
    /// candidates (no server).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=12))]
    only: Option<u8>,
    /// A PostgreSQL server for figure 7 (and figures 6 and 10 on PostgreSQL); a database is
    /// created for each and dropped at its end.
    #[arg(long, value_name = "URL", env = "PORTCULLIS_TEST_POSTGRES")]
    postgres: Option<String>,
    /// The portcullis release binary (default: next to this program).
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
    /// Run the binary under this command, split at spaces, for profiling: e.g.
    /// `--wrap "perf record -e cpu-clock -g -o /tmp/serve.data --"`. Figures are then
    /// distorted (memory and CPU belong to the wrapper); use it with --only.
    #[arg(long, value_name = "COMMAND")]
    wrap: Option<String>,
    /// Figure 13 only: Portcullis against the peer in this folder (Django + django-allauth +
    /// argon2-cffi under gunicorn; `scripts/bench --peer` sets it up and passes `bench/peer`).
    #[arg(long, value_name = "DIR")]
    peer: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin = match cli.bin {
        Some(bin) => bin,
        None => suite::default_bin()?,
    };
    anyhow::ensure!(
        bin.is_file(),
        "no portcullis binary at {} (build it: cargo build --release -p portcullis)",
        bin.display()
    );
    // Absolute: the server runs in a folder of its own.
    let bin = bin.canonicalize()?;
    let postgres = cli.postgres.filter(|u| !u.trim().is_empty());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let root = tempfile::Builder::new()
        .prefix("portcullis-bench-")
        .tempdir()
        .context("creating the working folder")?;
    let wrap: Vec<String> = cli
        .wrap
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut ctx = Ctx {
        bin,
        wrap,
        root: root.path().to_owned(),
        sizes: if cli.smoke {
            Sizes::smoke()
        } else {
            Sizes::full()
        },
        cores,
        cost: Cost::PRODUCTION,
        ticks: sys::ticks_per_second(),
        report: Report::default(),
    };
    let run = |n: u8| cli.only.is_none_or(|only| only == n);

    let load_at_start = sys::load_average();
    if let Some(peer_dir) = &cli.peer {
        peer::figure(&mut ctx, peer_dir).await?;
        print_header(&ctx, cli.smoke, postgres.as_deref(), &load_at_start);
        ctx.report.print();
        return Ok(());
    }
    if run(4) {
        suite::startup(&mut ctx).await?;
    }
    let sqlite = Wanted {
        sign_ins: run(1),
        me: run(2),
        overload: run(3),
        latency: run(5),
        timing: run(8),
        recovery: run(9),
        oidc: run(11),
    };
    suite::backend(&mut ctx, None, "SQLite", "", sqlite).await?;
    if run(7) {
        match &postgres {
            Some(server_url) => {
                let db = pg::BenchDb::create(server_url).await?;
                let all = Wanted {
                    sign_ins: true,
                    me: true,
                    overload: true,
                    latency: true,
                    timing: false,
                    recovery: false,
                    oidc: false,
                };
                let result = suite::backend(&mut ctx, Some(&db.url), "PostgreSQL", "7.", all).await;
                let dropped = db.drop_now().await;
                result?;
                dropped?;
                ctx.report.note(
                    "7",
                    format!(
                        "PostgreSQL: a fresh database on {}, dropped at the end",
                        pg::redact(server_url)
                    ),
                );
            }
            None => ctx.report.note(
                "7",
                "SKIPPED PostgreSQL: set PORTCULLIS_TEST_POSTGRES or pass --postgres URL",
            ),
        }
    }
    if run(6) {
        suite::import(&mut ctx, None, "SQLite").await?;
        if let Some(server_url) = &postgres {
            let db = pg::BenchDb::create(server_url).await?;
            let result = suite::import(&mut ctx, Some(&db.url), "PostgreSQL").await;
            db.drop_now().await?;
            result?;
        }
    }
    if run(10) {
        push::figure(&mut ctx, None, "SQLite").await?;
        if let Some(server_url) = &postgres {
            let db = pg::BenchDb::create(server_url).await?;
            let result = push::figure(&mut ctx, Some(&db.url), "PostgreSQL").await;
            db.drop_now().await?;
            result?;
        }
    }
    if run(12) {
        kernels::figure(&mut ctx).await?;
    }

    print_header(&ctx, cli.smoke, postgres.as_deref(), &load_at_start);
    ctx.report.print();
    Ok(())
}

fn print_header(ctx: &Ctx, smoke: bool, postgres: Option<&str>, load_at_start: &str) {
    let c = ctx.cost;
    println!();
    println!(
        "Portcullis benchmark ({}), {} cores; {}",
        if smoke {
            "smoke run: tiny sizes, figures not meaningful"
        } else {
            "full run"
        },
        ctx.cores,
        ctx.bin.display()
    );
    println!(
        "argon2id m={} t={} p={} (the production defaults) in the server and in the raw \
         baseline; hashing pool {} workers + {} waiting ({QUEUE_PER_WORKER} per worker, the \
         defaults), hashing threads at nice {}",
        c.memory_kib,
        c.iterations,
        c.parallelism,
        ctx.cores,
        ctx.cores * QUEUE_PER_WORKER,
        // The server inherits this program's environment.
        std::env::var("PORTCULLIS_HASHING_NICE").unwrap_or_else(|_| "5 (the default)".into())
    );
    println!(
        "server: serve --listen 127.0.0.1:0, PORTCULLIS_LIMITS_ENABLED=false (lockout on), \
         registration.security_questions=false (seeding only), logs at info to a file; \
         PostgreSQL: {}",
        postgres.map_or_else(|| "not configured".to_owned(), pg::redact)
    );
    if !ctx.wrap.is_empty() {
        println!(
            "PROFILING: the binary ran under `{}`: memory, CPU and speed figures are distorted",
            ctx.wrap.join(" ")
        );
    }
    println!(
        "load average: {load_at_start} at the start, {} at the end; MB = 10^6 bytes",
        sys::load_average()
    );
    println!();
}
