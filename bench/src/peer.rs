//! Figure 13 (`scripts/bench --peer`): Portcullis against a peer built from the usual parts —
//! Django 5.2 + django-allauth's headless JSON API + argon2-cffi at the same argon2id
//! parameters, on SQLite, under gunicorn with one sync worker per core (`bench/peer/`, set up
//! by `bench/peer/setup` from PyPI into `bench/peer/.venv`). Both sign in with one JSON POST
//! per sign-in from the same load client; chunks alternate (Portcullis, peer, Portcullis, …)
//! so that drift in what the machine gives falls on both alike. Memory is each side's peak
//! resident set over the sign-in chunks: the server process, against gunicorn's master and
//! every worker summed.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::load::{self, Conn, Loop, Outcome, Req};
use crate::seed::PASSWORD;
use crate::suite::{mb, mean_cpu, progress, round_robin, seeded, Ctx, MAX_PER_CONNECTION};
use crate::sys::{self, CpuMark};

const FIG: &str = "13";
/// django-allauth's headless login for the "app" client (no CSRF cookie dance, like an app).
const PEER_LOGIN: &str = "/_allauth/app/v1/auth/login";
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// What the peer runs, as pinned in `bench/peer/requirements.txt`.
const PEER: &str = "Django 5.2.8 + django-allauth 65.22.1 (headless) + argon2-cffi 25.1.0, \
                    gunicorn 27.0.1 sync workers, SQLite (WAL)";

/// Runs figure 13, or notes loudly why it could not.
pub async fn figure(ctx: &mut Ctx, peer_dir: &Path) -> anyhow::Result<()> {
    // Absolute: the peer's commands run in that folder.
    let peer_dir = &peer_dir
        .canonicalize()
        .with_context(|| format!("the peer's folder {}", peer_dir.display()))?;
    let python = peer_dir.join(".venv/bin/python");
    let gunicorn = peer_dir.join(".venv/bin/gunicorn");
    if !python.is_file() || !gunicorn.is_file() {
        ctx.report.note(
            FIG,
            format!(
                "SKIPPED the peer: no {} (bench/peer/setup makes it from PyPI; scripts/bench \
                 --peer runs it first)",
                gunicorn.display()
            ),
        );
        return Ok(());
    }
    let mut ours = seeded(ctx, None, "Peer-Portcullis", FIG).await?;
    let peer = Peer::start(ctx, peer_dir, ours.accounts.len()).await?;
    let result = compare(ctx, &ours.server, &ours.accounts, &peer).await;
    let stopped = peer.stop().await;
    ours.server.check_alive()?;
    ours.server.stop().await?;
    result?;
    stopped
}

async fn compare(
    ctx: &mut Ctx,
    server: &crate::server::Server,
    accounts: &[crate::seed::Account],
    peer: &Peer,
) -> anyhow::Result<()> {
    let conns = 2 * ctx.cores;
    let plan = Loop {
        connections: conns,
        run_for: ctx.sizes.sign_ins,
        max_per_connection: MAX_PER_CONNECTION,
        pace: None,
    };
    let ours_req = round_robin(
        accounts.iter().map(|a| a.sign_in(PASSWORD)).collect(),
        conns,
    )?;
    let peer_req = round_robin(
        (0..peer.users)
            .map(|i| {
                Req::post_json(
                    PEER_LOGIN,
                    &json!({"username": format!("bench-{i}"), "password": PASSWORD}),
                )
            })
            .collect(),
        conns,
    )?;
    // One untimed sign-in each, so neither side's first chunk pays for cold caches.
    warm(server.addr, &ours_req, 201).await?;
    warm(peer.addr, &peer_req, 200).await?;
    sys::reset_peak(server.pid);
    for pid in peer.pids() {
        sys::reset_peak(pid);
    }
    let (mut ours, mut theirs) = (Outcome::default(), Outcome::default());
    let (mut ours_cpu, mut theirs_cpu) = (Vec::new(), Vec::new());
    let mut rounds = Vec::new();
    for round in 0..ctx.sizes.rounds {
        progress(&format!(
            "figure {FIG}: round {}: Portcullis, then the peer",
            round + 1
        ));
        let mark = CpuMark::now(Some(server.pid));
        let a = load::run(server.addr, plan, ours_req.clone()).await?;
        ours_cpu.push(mark.used_since(Some(server.pid), ctx.ticks));
        let mark = CpuMark::now(None);
        let b = load::run(peer.addr, plan, peer_req.clone()).await?;
        theirs_cpu.push(mark.used_since(None, ctx.ticks));
        rounds.push(format!("{:.3}", a.rate(201) / b.rate(200).max(1e-9)));
        ours.merge(a);
        theirs.merge(b);
    }
    ensure!(
        ours.count(201) > 0 && theirs.count(200) > 0,
        "a side signed nobody in: Portcullis {}, peer {}",
        ours.status_summary(),
        theirs.status_summary()
    );
    let (ours_rate, peer_rate) = (ours.rate(201), theirs.rate(200));
    let ratio = ours_rate / peer_rate.max(1e-9);
    ctx.report.info(
        FIG,
        format!("Portcullis (SQLite): successful sign-ins/s (c={conns})"),
        format!("{ours_rate:.1}/s"),
    );
    ctx.report.cpu(mean_cpu(&ours_cpu));
    ctx.report.info(
        FIG,
        format!(
            "peer: {PEER}, {} workers: sign-ins/s (c={conns})",
            peer.workers
        ),
        format!("{peer_rate:.1}/s"),
    );
    ctx.report.cpu(mean_cpu(&theirs_cpu));
    ctx.report.check(
        FIG,
        "Portcullis sign-ins/s ÷ peer sign-ins/s",
        format!("{ratio:.2}"),
        "≥ 1.5",
        ratio >= 1.5,
    );
    let ours_peak = server.peak_rss_kib().unwrap_or(0);
    let peer_peak: u64 = peer
        .pids()
        .into_iter()
        .filter_map(|p| sys::status_kib(p, "VmHWM"))
        .sum();
    ctx.report.info(
        FIG,
        "peak resident memory during the sign-ins: Portcullis / peer (sum over its processes, \
         shared pages counted in each: an upper bound)",
        format!("{:.1} / {:.1} MB", mb(ours_peak), mb(peer_peak)),
    );
    // Right after the last round, with shared pages divided among the peer's processes.
    let ours_pss = sys::pss_kib(server.pid).unwrap_or(0);
    let peer_pss: u64 = peer.pids().into_iter().filter_map(sys::pss_kib).sum();
    ctx.report.info(
        FIG,
        "proportional set size after the sign-ins (Pss): Portcullis / peer (sum over its processes)",
        format!("{:.1} / {:.1} MB", mb(ours_pss), mb(peer_pss)),
    );
    ctx.report.note(
        FIG,
        format!(
            "Portcullis answers {}; peer answers {}; ratio per round {}; the peer's CPU is in \
             the 'other' column (its workers are processes of their own)",
            ours.status_summary(),
            theirs.status_summary(),
            rounds.join(", ")
        ),
    );
    Ok(())
}

async fn warm(addr: SocketAddr, make: &load::MakeReq, want: u16) -> anyhow::Result<()> {
    let mut conn = Conn::new(addr)?;
    let (status, body) = conn.send(&make(0, 0)).await?;
    ensure!(
        status == want,
        "a warm-up sign-in answered {status}, not {want}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// The peer's gunicorn, started on a free loopback port over a fresh SQLite file.
struct Peer {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    workers: usize,
    users: usize,
}

impl Peer {
    async fn start(ctx: &Ctx, peer_dir: &Path, users: usize) -> anyhow::Result<Self> {
        let dir = ctx.dir("peer")?;
        let db = dir.join("peer.sqlite3");
        let python = peer_dir.join(".venv/bin/python");
        let users = users.max(1);
        progress(&format!(
            "figure {FIG}: the peer: migrating and creating {users} users"
        ));
        for args in [
            vec!["manage.py".to_owned(), "migrate".into(), "-v0".into()],
            vec![
                "manage.py".to_owned(),
                "seed_users".into(),
                users.to_string(),
                PASSWORD.into(),
            ],
        ] {
            let out = Command::new(&python)
                .args(&args)
                .current_dir(peer_dir)
                .env("PEER_DB", &db)
                .output()
                .await
                .with_context(|| format!("running the peer's {}", args.join(" ")))?;
            if !out.status.success() {
                bail!(
                    "the peer's {} failed ({}): {}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        // A free port: bound and released at once (loopback, this run only).
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let workers = ctx.cores;
        let log = dir.join("gunicorn.log");
        let child = Command::new(peer_dir.join(".venv/bin/gunicorn"))
            .args([
                "--workers",
                &workers.to_string(),
                "--bind",
                &addr.to_string(),
                "--access-logfile",
                "/dev/null",
                // No control socket in the home folder (gunicorn ≥ 24 makes one by default).
                "--no-control-socket",
                "--error-logfile",
            ])
            .arg(&log)
            .arg("peer.wsgi")
            .current_dir(peer_dir)
            .env("PEER_DB", &db)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the peer's gunicorn")?;
        let pid = child.id().context("gunicorn has no process id")?;
        let peer = Self {
            child,
            pid,
            addr,
            workers,
            users,
        };
        let started = Instant::now();
        loop {
            let ready = match Conn::new(addr) {
                Ok(mut conn) => conn.try_send(&Req::get(PEER_LOGIN)).await.is_some(),
                Err(_) => false,
            };
            if ready && peer.pids().len() > workers {
                return Ok(peer);
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "the peer did not answer within {START_TIMEOUT:?}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// gunicorn's master and its workers.
    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pid];
        pids.extend(sys::children(self.pid));
        pids
    }

    /// SIGTERM to the master (it stops its workers), then SIGKILL after 10 s.
    async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.start_kill()?;
            self.child.wait().await?;
        }
        Ok(())
    }
}
