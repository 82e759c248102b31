//! The real release binary as a child process: `portcullis serve --listen 127.0.0.1:0` and
//! `portcullis registry import FILE`, configured through `PORTCULLIS_*` variables only, on a
//! folder of its own (database, secrets, outbox, logs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::load::{Conn, Req};

/// How long the server may take to start before the run gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest an import may take (a million records at the target rate take ten seconds).
const IMPORT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// How long a stopping server may take to finish its requests.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how one server (or import) runs.
#[derive(Clone, Debug)]
pub struct Setup {
    pub bin: PathBuf,
    /// The server's own folder: secrets, outbox, logs, and the SQLite file when it is one.
    pub dir: PathBuf,
    pub database_url: String,
    /// A command the binary runs under (a profiler: `perf record -g -o FILE --`), or empty.
    pub wrap: Vec<String>,
}

impl Setup {
    /// A SQLite setup in `dir`.
    pub fn sqlite(bin: &Path, dir: &Path, wrap: &[String]) -> Self {
        Self {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            database_url: format!("sqlite://{}", dir.join("portcullis.db").display()),
            wrap: wrap.to_vec(),
        }
    }

    fn command(&self, args: &[&str], log_name: &str) -> anyhow::Result<Command> {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join(log_name))
            .with_context(|| format!("opening {log_name}"))?;
        let mut cmd = match self.wrap.split_first() {
            Some((wrapper, wrapper_args)) => {
                let mut cmd = Command::new(wrapper);
                cmd.args(wrapper_args).arg(&self.bin);
                cmd
            }
            None => Command::new(&self.bin),
        };
        cmd.args(args).current_dir(&self.dir);
        // Only this run's configuration: nothing from the caller's environment.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PORTCULLIS_") || name == "RUST_LOG" {
                cmd.env_remove(name);
            }
        }
        cmd.env("PORTCULLIS_DATABASE_URL", &self.database_url)
            // The outbox and the throttle switched off below are not production settings.
            .env("PORTCULLIS_MODE", "development")
            .env("PORTCULLIS_SECRETS_DIR", self.dir.join("secrets"))
            // Each run's own management port: runs may overlap.
            .env("PORTCULLIS_MANAGEMENT_LISTEN", "127.0.0.1:0")
            // Messages (registration) go to a file instead of failing and being retried.
            .env(
                "PORTCULLIS_NOTIFY_OUTBOX_FILE",
                self.dir.join("outbox.jsonl"),
            )
            // Measure the service, not the per-address throttle (lockout stays on).
            .env("PORTCULLIS_LIMITS_ENABLED", "false")
            // Seeding only: a registration then costs one hash instead of four. Sign-in and
            // /me never read the answers.
            .env("PORTCULLIS_REGISTRATION_SECURITY_QUESTIONS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// `portcullis registry import FILE`, timed.
    pub async fn import(&self, file: &Path) -> anyhow::Result<ImportRun> {
        let file_arg = file.to_string_lossy();
        let mut cmd = self.command(&["registry", "import", &file_arg], "import.log")?;
        let started = Instant::now();
        // On timeout the future is dropped, which kills the import (kill_on_drop).
        let out = tokio::time::timeout(IMPORT_TIMEOUT, cmd.output())
            .await
            .with_context(|| format!("the import took longer than {IMPORT_TIMEOUT:?}"))?
            .context("running portcullis registry import")?;
        let wall = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "portcullis registry import failed ({}): {}\n{}",
                out.status,
                stdout.trim(),
                log_tail(&self.dir.join("import.log"))
            );
        }
        // "imported N records in X.XXs"
        let parsed = stdout.lines().find_map(|l| {
            let rest = l.strip_prefix("imported ")?;
            let (n, rest) = rest.split_once(" records in ")?;
            let secs: f64 = rest.trim().trim_end_matches('s').parse().ok()?;
            Some((
                n.parse::<u64>().ok()?,
                Duration::try_from_secs_f64(secs).ok()?,
            ))
        });
        let Some((records, reported)) = parsed else {
            bail!("unexpected output from portcullis registry import: {stdout}");
        };
        Ok(ImportRun {
            records,
            reported,
            wall,
        })
    }

    /// `portcullis admin token create --name NAME --scope SCOPE`: the token it printed.
    pub async fn admin_token(&self, name: &str, scope: &str) -> anyhow::Result<String> {
        self.one_line(
            &["admin", "token", "create", "--name", name, "--scope", scope],
            "admin",
        )
        .await
    }

    /// `portcullis oidc client add ARGS…`: the `client_id` of the JSON line it printed.
    pub async fn oidc_client(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["oidc", "client", "add"];
        all.extend_from_slice(args);
        let line = self.one_line(&all, "oidc").await?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("oidc client add printed {line:?}"))?;
        v.get("client_id")
            .and_then(|c| c.as_str())
            .map(str::to_owned)
            .context("oidc client add printed no client_id")
    }

    /// Runs a one-shot command (logging to `<what>.log`): what it printed, trimmed.
    async fn one_line(&self, args: &[&str], what: &str) -> anyhow::Result<String> {
        let log = format!("{what}.log");
        let mut cmd = self.command(args, &log)?;
        let out = cmd
            .output()
            .await
            .with_context(|| format!("running portcullis {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "portcullis {} failed ({})\n{}",
                args.iter().take(3).copied().collect::<Vec<_>>().join(" "),
                out.status,
                log_tail(&self.dir.join(&log))
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Starts `portcullis serve` and waits until `/readyz` answers 200.
    pub async fn start(&self) -> anyhow::Result<Server> {
        let log = self.dir.join("server.log");
        let mut cmd = self.command(&["serve", "--listen", "127.0.0.1:0"], "server.log")?;
        let started = Instant::now();
        let mut child = cmd.spawn().context("starting portcullis serve")?;
        let pid = child.id().context("the server has no process id")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let listening = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("Portcullis is running at http://") {
                    return Ok(rest.trim_end_matches('/').parse::<SocketAddr>()?);
                }
            }
            bail!("the server exited before listening")
        })
        .await;
        let addr = match listening {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => bail!("{e:#}\n{}", log_tail(&log)),
            Err(_) => bail!(
                "the server did not listen within {START_TIMEOUT:?}\n{}",
                log_tail(&log)
            ),
        };
        if !addr.ip().is_loopback() {
            bail!("the server listens on {addr}, not on loopback");
        }
        // Nothing else is printed on stdout, but keep the pipe drained.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let mut conn = Conn::new(addr)?;
        loop {
            if let Ok((200, _)) = conn.send(&Req::get("/readyz")).await {
                break;
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "/readyz did not answer 200 within {START_TIMEOUT:?}\n{}",
                    log_tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(Server {
            child,
            addr,
            pid,
            ready_after: started.elapsed(),
            log,
        })
    }
}

/// What `portcullis registry import` reported, and the whole command's time.
#[derive(Clone, Copy, Debug)]
pub struct ImportRun {
    pub records: u64,
    /// The import's own figure (reading, hashing, writing, committing).
    pub reported: Duration,
    /// The whole process, start to exit (includes opening the database and migrations).
    pub wall: Duration,
}

/// A running server.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    /// From spawning the process to the first 200 from `/readyz`.
    pub ready_after: Duration,
    log: PathBuf,
}

impl Server {
    pub fn rss_kib(&self) -> Option<u64> {
        crate::sys::status_kib(self.pid, "VmRSS")
    }

    /// Where the resident memory is (`exe`: the binary started, to tell its pages apart).
    pub fn resident(&self, exe: &std::path::Path) -> Option<crate::sys::Resident> {
        crate::sys::Resident::of(self.pid, exe)
    }

    pub fn peak_rss_kib(&self) -> Option<u64> {
        crate::sys::status_kib(self.pid, "VmHWM")
    }

    /// Fails when the server has exited (it must live through every figure).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the server exited ({status})\n{}", log_tail(&self.log));
        }
        Ok(())
    }

    /// SIGTERM, then up to [`STOP_TIMEOUT`] to finish, then SIGKILL.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.start_kill()?;
                self.child.wait().await?;
                bail!("the server did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
        }
        Ok(())
    }
}

/// The end of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(3000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    format!(
        "--- end of {} ---\n{}",
        path.display(),
        text.get(start..).unwrap_or_default()
    )
}
