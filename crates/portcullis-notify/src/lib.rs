//! Notifications: where messages to people go. This crate holds the outbox file (demo mode
//! and tests: one JSON line per message, as the contract fixes) and the notifier that
//! writes to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::clock::Clock;
use portcullis_core::ports::{Message, Notifier, NotifyError};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Appends every message as one JSON line `{"channel","to","subject","body","created_at"}`.
pub struct OutboxFile {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    lock: Mutex<()>,
}

impl OutboxFile {
    pub fn new(path: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> Self {
        Self {
            path: path.into(),
            clock,
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The messages written so far, oldest first (for the demo outbox page).
    pub async fn read_all(&self) -> Result<Vec<serde_json::Value>, NotifyError> {
        match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => Ok(text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(NotifyError(e.to_string())),
        }
    }
}

#[async_trait]
impl Notifier for OutboxFile {
    async fn send(&self, message: Message) -> Result<(), NotifyError> {
        let line = serde_json::json!({
            "channel": message.channel.as_str(),
            "to": message.to,
            "subject": message.subject,
            "body": message.body,
            "created_at": self.clock.now().to_rfc3339(),
        });
        let mut bytes = serde_json::to_vec(&line).map_err(|e| NotifyError(e.to_string()))?;
        bytes.push(b'\n');
        let _guard = self.lock.lock().await;
        if let Some(parent) = self.path.parent() {
            if !parent.as_os_str().is_empty() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| NotifyError(e.to_string()))?;
            }
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| NotifyError(format!("outbox {}: {e}", self.path.display())))?;
        file.write_all(&bytes)
            .await
            .map_err(|e| NotifyError(e.to_string()))?;
        file.flush().await.map_err(|e| NotifyError(e.to_string()))?;
        Ok(())
    }
}

/// Used when no channel is configured: the message is logged (without its body, which may
/// hold a code) and dropped.
pub struct LogOnly;

#[async_trait]
impl Notifier for LogOnly {
    async fn send(&self, message: Message) -> Result<(), NotifyError> {
        tracing::warn!(
            channel = message.channel.as_str(),
            subject = %message.subject,
            "no notification channel configured; message not delivered"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::clock::FakeClock;
    use portcullis_core::contact::CodeChannel;

    #[tokio::test]
    async fn appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = OutboxFile::new(
            dir.path().join("o/outbox.jsonl"),
            Arc::new(FakeClock::new(0)),
        );
        for i in 0..3 {
            outbox
                .send(Message {
                    channel: CodeChannel::Email,
                    to: "ann@example.com".into(),
                    subject: format!("s{i}"),
                    body: "b".into(),
                })
                .await
                .unwrap();
        }
        let all = outbox.read_all().await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2]["subject"], "s2");
        assert_eq!(all[0]["channel"], "email");
        assert_eq!(all[0]["created_at"], "1970-01-01T00:00:00Z");
    }
}
