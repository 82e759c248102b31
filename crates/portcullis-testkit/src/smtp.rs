//! A real SMTP server on loopback for delivery tests: Python's aiosmtpd from the project's
//! `.venv` (installed by `scripts/test-deps`), with a tiny handler that writes each message
//! it accepts to its own file in a mailbox folder and can be told to answer slowly.
//!
//! [`SmtpSink::start`] returns `None`, after printing a loud SKIPPED line, when the venv is
//! missing, so the tests that need it skip rather than fail on a machine without Python.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The handler: accepts every recipient (after `delay_ms`, to make a delivery slow enough
/// to interrupt), and on DATA writes the message to `<dir>/<n>.eml` (via a rename, so a
/// reader never sees half a message) before answering 250.
const HANDLER: &str = r#"
import asyncio, os, time, uuid

class Handler:
    def __init__(self, directory, delay_ms="0"):
        self.directory = directory
        self.delay = int(delay_ms) / 1000.0
        os.makedirs(directory, exist_ok=True)

    @classmethod
    def from_cli(cls, parser, *args):
        if not args:
            parser.error("the mailbox directory is required")
        return cls(*args)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.delay:
            await asyncio.sleep(self.delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = "%020d-%s" % (time.time_ns(), uuid.uuid4().hex)
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(("X-Envelope-To: %s\r\n" % ",".join(envelope.rcpt_tos)).encode())
            f.write(envelope.original_content or envelope.content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.directory, name + ".eml"))
        return "250 Message accepted for delivery"
"#;

/// One message the server accepted.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    pub raw: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    pub message_id: Option<String>,
    pub subject: Option<String>,
}

impl ReceivedMail {
    fn parse(raw: String) -> Self {
        let header = |name: &str| -> Option<String> {
            let prefix = format!("{}:", name.to_ascii_lowercase());
            raw.lines()
                .take_while(|l| !l.trim().is_empty())
                .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
                .map(|l| l[prefix.len()..].trim().to_owned())
        };
        let to = header("X-Envelope-To")
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        Self {
            to,
            message_id: header("Message-ID"),
            subject: header("Subject"),
            raw,
        }
    }
}

/// The project's venv Python, if `scripts/test-deps` made it.
pub fn venv_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    let ok = python.exists()
        && Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    ok.then_some(python)
}

/// Whether the run promised the venv (`scripts/test` sets `PORTCULLIS_TEST_VENV=required`
/// once `scripts/test-deps` has installed aiosmtpd and pyotp): then a test that cannot use it
/// fails instead of skipping itself.
pub fn venv_required() -> bool {
    std::env::var("PORTCULLIS_TEST_VENV").is_ok_and(|v| v == "required")
}

/// Skips (loudly) a test that needs the venv, or fails it when the run promised the venv.
pub fn skip_without_venv(what: &str) {
    assert!(
        !venv_required(),
        "{what} needs .venv (aiosmtpd, pyotp), which scripts/test-deps installed, but it is not usable"
    );
    eprintln!("\n########## SKIPPED: {what} needs .venv; run scripts/test-deps (python3 with venv) ##########\n");
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct SmtpSink {
    pub port: u16,
    pub mailbox: PathBuf,
    python: PathBuf,
    delay_ms: u64,
    dir: TempDir,
    child: Option<Child>,
}

impl SmtpSink {
    /// Starts the server on a free port; `None` (printed loudly) without the venv.
    pub async fn start(delay_ms: u64) -> Option<SmtpSink> {
        let Some(python) = venv_python() else {
            skip_without_venv("this SMTP delivery test (aiosmtpd)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pc_smtp_sink.py"), HANDLER).unwrap();
        let mut sink = SmtpSink {
            port: free_port(),
            mailbox: dir.path().join("mailbox"),
            python,
            delay_ms,
            dir,
            child: None,
        };
        sink.resume().await;
        Some(sink)
    }

    /// The server is down: connections are refused until [`Self::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and mailbox, and waits until it answers.
    pub async fn resume(&mut self) {
        self.stop();
        let child = Command::new(&self.python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "pc_smtp_sink.Handler",
            ])
            .arg(&self.mailbox)
            .arg(self.delay_ms.to_string())
            .env("PYTHONPATH", self.dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("smtp.log")).unwrap())
            .spawn()
            .expect("starting aiosmtpd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start: {}",
                std::fs::read_to_string(self.dir.path().join("smtp.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.mailbox)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(|b| ReceivedMail::parse(String::from_utf8_lossy(&b).into_owned()))
            .collect()
    }

    /// Waits until at least `n` messages arrived (or `timeout` passed) and returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.messages();
            if all.len() >= n || Instant::now() >= deadline {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
