//! The `portcullis` binary under test, run as a newcomer runs it: shared by the API suite and
//! the `otel` test binary (`tests/otel.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// The binary as a newcomer runs it: in `dir`, with none of the caller's `PORTCULLIS_*`
/// settings or `RUST_LOG`.
pub(crate) fn clean(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("PORTCULLIS_") || name == "RUST_LOG" {
            cmd.env_remove(name.as_ref());
        }
    }
    // Tests run side by side: each takes a free management port (as each passes
    // `--listen 127.0.0.1:0`) instead of the default 127.0.0.1:9464.
    cmd.env("PORTCULLIS_MANAGEMENT_LISTEN", "127.0.0.1:0");
    cmd.current_dir(dir);
    cmd
}

/// The address the banner's `Portcullis is running at …` line names, without its last `/`.
pub(crate) fn base_of(banner: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.strip_prefix("Portcullis is running at "))
        .unwrap()
        .trim_end_matches('/')
        .to_owned()
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[allow(clippy::disallowed_methods)] // test support: polls the child's output
pub(crate) fn wait_for(path: &Path, what: &str, done: impl Fn(&str) -> bool, err: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not appear:\n{text}\n{}",
            std::fs::read_to_string(err).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap()
}
