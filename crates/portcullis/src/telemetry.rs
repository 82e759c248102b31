//! Logging: one subscriber for every command, writing to standard error.
//!
//! `log.format = "auto"` (the default) writes readable lines when standard error is a
//! terminal (a person watching) and JSON lines otherwise (journald, a container runtime, a
//! log shipper); `json` and `text` force one. `RUST_LOG` chooses what is logged.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The two ways a line can look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The format for `log.format` when standard error is (or is not) a terminal.
pub fn choose(setting: &str, stderr_is_terminal: bool) -> LogFormat {
    match setting {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        _ if stderr_is_terminal => LogFormat::Text,
        _ => LogFormat::Json,
    }
}

/// Installs the subscriber. `default_filter` applies when `RUST_LOG` is unset. Calling it
/// twice is harmless (the second call changes nothing), so tests may build apps freely.
pub fn init(setting: &str, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match choose(setting, terminal) {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(terminal).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_terminal_and_the_setting_wins() {
        assert_eq!(choose("auto", true), LogFormat::Text);
        assert_eq!(choose("auto", false), LogFormat::Json);
        assert_eq!(choose("json", true), LogFormat::Json);
        assert_eq!(choose("text", false), LogFormat::Text);
    }
}
