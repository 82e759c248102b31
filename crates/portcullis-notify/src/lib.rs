//! Notifications: where messages to people go, durably.
//!
//! Messages reach the outbox table with the state change that caused them, committed by the
//! use case's unit of work; the core's [`Notifier`] is implemented by [`OutboxNotifier`],
//! which only counts them and wakes this node's [`DeliveryWorker`]. The worker claims due
//! rows under a lease and
//! sends them through a [`Transport`]: [`SmtpMailer`] for email, [`SmsGateway`] for text
//! messages (behind the SMS cost controls), or the [`OutboxFile`] of the contract (demo mode
//! and tests: one JSON line per message) for both.

pub mod breaker;
pub mod jwks;
pub mod sms;
pub mod smtp;
pub mod stats;
pub mod transport;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{Notifier, NotifyError};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, Notify};

pub use sms::{SmsFormat, SmsGateway, SmsGatewaySettings, SmsPolicy};
pub use smtp::{SmtpMailer, SmtpMode, SmtpServer, SmtpSettings};
pub use stats::{SmsBlock, Stats, StatsSnapshot};
pub use transport::{Outbound, SendError, Transport, Transports};
pub use worker::{DeliveryConfig, DeliveryHandle, DeliveryWorker, WebhookConfig, WebhookSender};

/// Wakes this node's delivery workers (one per channel) when something was queued. Each
/// worker has its own `Notify`, so a wake-up is kept for a worker that is busy.
#[derive(Clone, Debug, Default)]
pub struct Wake(Arc<[Notify; 2]>);

impl Wake {
    pub fn notify(&self) {
        for n in self.0.iter() {
            n.notify_one();
        }
    }

    pub(crate) async fn notified(&self, channel: CodeChannel) {
        let i = match channel {
            CodeChannel::Email => 0,
            CodeChannel::Sms => 1,
        };
        if let Some(n) = self.0.get(i) {
            n.notified().await;
        }
    }
}

/// Told by the use cases' units of work how many messages they committed: counts them and
/// wakes this node's delivery workers.
pub struct OutboxNotifier {
    wake: Wake,
    stats: Stats,
}

impl OutboxNotifier {
    /// A notifier on its own (no worker on this node to wake).
    pub fn new() -> Self {
        Self {
            wake: Wake::default(),
            stats: Stats::default(),
        }
    }

    pub(crate) fn with_worker(mut self, wake: Wake, stats: Stats) -> Self {
        self.wake = wake;
        self.stats = stats;
        self
    }
}

impl Default for OutboxNotifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier for OutboxNotifier {
    fn queued(&self, count: usize) {
        self.stats.enqueued(count);
        self.wake.notify();
    }
}

/// Appends every message as one JSON line `{"channel","to","subject","body","created_at"}`.
pub struct OutboxFile {
    path: PathBuf,
    lock: Mutex<()>,
}

impl OutboxFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
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

    async fn append(
        &self,
        channel: &str,
        to: &str,
        subject: &str,
        body: &str,
        created_at: UnixTime,
    ) -> Result<(), NotifyError> {
        let line = serde_json::json!({
            "channel": channel,
            "to": to,
            "subject": subject,
            "body": body,
            "created_at": created_at.to_rfc3339(),
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
        // One write of the whole line: a reader never sees half of one.
        file.write_all(&bytes)
            .await
            .map_err(|e| NotifyError(e.to_string()))?;
        file.flush().await.map_err(|e| NotifyError(e.to_string()))?;
        Ok(())
    }
}

/// The file as the delivery worker's transport for both channels; `created_at` is when the
/// message was queued.
#[async_trait]
impl Transport for OutboxFile {
    async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        self.append(
            message.channel.as_str(),
            &message.to,
            &message.subject,
            &message.body,
            message.created_at,
        )
        .await
        .map_err(|e| SendError::Retry(e.0))
    }

    fn name(&self) -> &'static str {
        "outbox-file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::contact::CodeChannel;

    #[tokio::test]
    async fn appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = OutboxFile::new(dir.path().join("o/outbox.jsonl"));
        for i in 0..3 {
            outbox
                .append(
                    "email",
                    "ann@example.com",
                    &format!("s{i}"),
                    "b",
                    UnixTime(0),
                )
                .await
                .unwrap();
        }
        let all = outbox.read_all().await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2]["subject"], "s2");
        assert_eq!(all[0]["channel"], "email");
        assert_eq!(all[0]["created_at"], "1970-01-01T00:00:00Z");
    }

    #[tokio::test]
    async fn as_a_transport_it_keeps_the_queue_time() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = OutboxFile::new(dir.path().join("outbox.jsonl"));
        let t: &dyn Transport = &outbox;
        t.send(&Outbound {
            id: 1,
            channel: CodeChannel::Sms,
            to: "+15555550100".into(),
            subject: "s".into(),
            body: "b".into(),
            created_at: UnixTime(60),
            now: UnixTime(120),
        })
        .await
        .unwrap();
        let all = outbox.read_all().await.unwrap();
        assert_eq!(all[0]["channel"], "sms");
        assert_eq!(all[0]["created_at"], "1970-01-01T00:01:00Z");
    }
}
