//! The seam between the delivery worker and the outside world: one [`Transport`] per way of
//! sending (SMTP, the SMS gateway, the outbox file), each answering sent, retry or rejected.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::clock::UnixTime;
use portcullis_core::contact::CodeChannel;

/// One message as a transport sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// The outbox row's id: stable across retries (SMTP uses it in the `Message-ID`).
    pub id: i64,
    pub channel: CodeChannel,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub created_at: UnixTime,
    /// When this attempt is made (the email `Date`).
    pub now: UnixTime,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// Worth another try later: the server is down, busy, or timed out.
    #[error("{0}")]
    Retry(String),
    /// Will never succeed as it is: a bad address, a refused request.
    #[error("{0}")]
    Rejected(String),
}

#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, message: &Outbound) -> Result<(), SendError>;
    /// For logs: `smtp`, `sms-gateway`, `outbox-file`.
    fn name(&self) -> &'static str;
}

/// The transport for each channel; a channel without one fails its messages with a clear
/// error.
#[derive(Clone, Default)]
pub struct Transports {
    pub email: Option<Arc<dyn Transport>>,
    pub sms: Option<Arc<dyn Transport>>,
}

impl Transports {
    /// One transport for both channels (the outbox file).
    pub fn both(transport: Arc<dyn Transport>) -> Self {
        Self {
            email: Some(transport.clone()),
            sms: Some(transport),
        }
    }

    pub fn for_channel(&self, channel: CodeChannel) -> Option<&Arc<dyn Transport>> {
        match channel {
            CodeChannel::Email => self.email.as_ref(),
            CodeChannel::Sms => self.sms.as_ref(),
        }
    }
}
