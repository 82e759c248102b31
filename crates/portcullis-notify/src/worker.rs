//! The delivery workers: one per channel (email, text messages) on each node, so a slow
//! provider holds up only its own messages. Each claims due outbox rows under a lease
//! (one-time codes first), sends each through its channel's transport, and records the
//! outcome (again and again while the database is briefly away, so a message is not sent
//! twice for want of a recorded "sent").
//!
//! ```text
//!   enqueue ──► pending ──claim (lease)──► sending ──2xx/250──► sent
//!                  ▲                          │
//!                  └── retry at now+backoff ◄─┤ (timeout, refused connection, 4xx, a relay's
//!                                             │  5xx at connection, MAIL or AUTH, gateway 5xx)
//!                                             └── rejected (a recipient's 5xx), or at least
//!                                                 `min_attempts` made and 24 h old ──► failed
//! ```
//!
//! A provider that keeps failing opens its breaker (`breaker.rs`): its worker stops
//! claiming, tries one message after a cooldown, and meanwhile sends text-message codes that
//! have an email address by email. Time: a steady clock (the database's on PostgreSQL, so
//! every node agrees; this host's, read once and then advanced monotonically, on SQLite), so
//! a wall clock set back or forward neither holds messages nor gives them up early.
//!
//! Exactly once across nodes: a row is sent only by the node holding its lease, a send is
//! started only while the lease has at least `send_timeout` plus a margin left (so a send
//! never outlives the lease it started under), and `mark_sent` applies only while the row is
//! still this node's. What no protocol can close is a crash between the server's "accepted"
//! and `mark_sent`'s commit: that message is sent again when its lease runs out
//! (at-least-once for that window of milliseconds). Its `Message-ID` is the row's, so a
//! receiving system can recognise the resend.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::{Clock, UnixTime};
use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{OutboxRow, OutboxStore, StoreError};
use rand::Rng;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::breaker::{Breaker, Gate, SteadyClock};
use crate::stats::{SmsBlock, Stats};
use crate::transport::{Outbound, SendError, Transports};
use crate::{OutboxNotifier, Wake};

mod config;
pub(crate) mod webhooks;

pub use config::{default_node_name, DeliveryConfig};
pub use webhooks::{WebhookConfig, WebhookSender};

/// The delay before attempt `attempts + 1`: `base · 2^(attempts-1)` capped at `max`, plus up
/// to a quarter more at random so that many rows failed together do not retry together.
pub fn backoff_secs(attempts: u32, base: i64, max: i64, rng: &mut impl Rng) -> i64 {
    let exponent = attempts.saturating_sub(1).min(30);
    let delay = base.saturating_mul(1_i64 << exponent).min(max).max(1);
    let jitter = rng.gen_range(0..=delay / 4);
    delay.saturating_add(jitter).min(max)
}

/// Everything a worker needs; cheap to clone. [`Self::spawn`] starts one worker task (one
/// node); calling it twice gives two nodes.
#[derive(Clone)]
pub struct DeliveryWorker {
    store: Arc<dyn OutboxStore>,
    clock: Arc<dyn Clock>,
    transports: Transports,
    config: Arc<DeliveryConfig>,
    stats: Stats,
    wake: Wake,
    /// Webhook deliveries, when this node sends them (`webhooks.rs`).
    webhooks: Option<WebhookSender>,
}

/// A node's running workers (one per channel).
pub struct DeliveryHandle {
    node: String,
    shutdown: watch::Sender<bool>,
    /// Each channel's worker and the node id its claims carry.
    tasks: Vec<(String, tokio::task::JoinHandle<()>)>,
    store: Arc<dyn OutboxStore>,
    webhooks: Option<Arc<dyn portcullis_core::ports::WebhookStore>>,
}

impl DeliveryHandle {
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Asks the workers to stop: each finishes the message in hand, releases its other
    /// claims and ends.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for (_, task) in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "delivery worker ended abnormally");
            }
        }
    }

    /// [`Self::stop`], but within `budget`: a send still hanging then is abandoned and its
    /// worker's claims released, so another node (or this one, restarted) sends at once
    /// instead of after the lease. A message the provider accepted in that instant may go
    /// twice.
    pub async fn stop_within(mut self, budget: Duration) {
        let _ = self.shutdown.send(true);
        let deadline = Instant::now() + budget;
        for (node, task) in &mut self.tasks {
            match tokio::time::timeout_at(deadline, &mut *task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "delivery worker ended abnormally"),
                Err(_) => {
                    task.abort();
                    if let Some(store) = &self.webhooks {
                        let _ = store.release_webhook_claims(node).await;
                    }
                    match self.store.release_claims(node).await {
                        Ok(n) => tracing::warn!(
                            node = %node,
                            released = n,
                            "delivery worker stopped mid-send at the end of the drain; claims released"
                        ),
                        Err(e) => tracing::warn!(
                            node = %node,
                            error = %e,
                            "delivery worker stopped; claims not released (their leases will run out)"
                        ),
                    }
                }
            }
        }
    }

    /// Stops the tasks at once, without releasing claims (their leases run out).
    pub fn abort(&self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

impl DeliveryWorker {
    pub fn new(
        store: Arc<dyn OutboxStore>,
        clock: Arc<dyn Clock>,
        transports: Transports,
        config: DeliveryConfig,
    ) -> Self {
        Self {
            store,
            clock,
            transports,
            config: Arc::new(config),
            stats: Stats::default(),
            wake: Wake::default(),
            webhooks: None,
        }
    }

    /// The notifier the use cases tell of the messages they commit: it wakes this worker.
    pub fn notifier(&self) -> OutboxNotifier {
        OutboxNotifier::new().with_worker(self.wake.clone(), self.stats.clone())
    }

    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// This worker with `steady_time` on: what `serve` runs (see the module's note on time).
    pub fn with_steady_time(mut self) -> Self {
        Arc::make_mut(&mut self.config).steady_time = true;
        self
    }

    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// Wakes the workers (something was queued).
    pub fn wake(&self) {
        self.wake.notify();
    }

    /// Starts this node's workers, one per channel, each under a fresh node id.
    pub fn spawn(&self) -> DeliveryHandle {
        let node = format!(
            "{}-{}-{:08x}",
            self.config.node_name,
            std::process::id(),
            rand::thread_rng().gen::<u32>()
        );
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = [CodeChannel::Email, CodeChannel::Sms]
            .into_iter()
            .map(|channel| {
                let worker = self.clone();
                let task_node = format!("{node}-{}", channel.as_str());
                let rx = rx.clone();
                let id = task_node.clone();
                let task = tokio::spawn(async move { worker.run(task_node, channel, rx).await });
                (id, task)
            })
            .collect::<Vec<_>>();
        if let Some(sender) = self.webhooks.clone() {
            let worker = self.clone();
            let task_node = format!("{node}-webhooks");
            let id = task_node.clone();
            let task = tokio::spawn(worker.run_webhooks(task_node, sender, rx));
            tasks.push((id, task));
        }
        tracing::info!(node = %node, webhooks = self.webhooks.is_some(), "delivery workers started (email, sms)");
        DeliveryHandle {
            node,
            shutdown,
            tasks,
            store: self.store.clone(),
            webhooks: self.webhooks.as_ref().map(|w| w.store().clone()),
        }
    }

    /// The clock a worker times its decisions with (see the module's note on time).
    async fn worker_clock(&self) -> Arc<dyn Clock> {
        if !self.config.steady_time {
            return self.clock.clone();
        }
        let anchor = match self.store.database_time().await {
            Ok(Some(t)) => t,
            _ => self.clock.now(),
        };
        Arc::new(SteadyClock::new(anchor))
    }

    /// Now, by the database's clock when it has one (PostgreSQL, in steady mode) or else by
    /// the worker's clock.
    async fn pass_now(&self, clock: &Arc<dyn Clock>) -> UnixTime {
        if self.config.steady_time {
            if let Ok(Some(t)) = self.store.database_time().await {
                return t;
            }
        }
        clock.now()
    }

    async fn run(self, node: String, channel: CodeChannel, mut shutdown: watch::Receiver<bool>) {
        let clock = self.worker_clock().await;
        let mut breaker = Breaker::new(self.config.breaker);
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let gate = breaker.gate(Instant::now());
            // With the provider's breaker open only text-message codes have somewhere else to
            // go (email); an email worker then has nothing to do until its trial.
            let outcome = match (gate, channel) {
                (Gate::OpenUntil(_), CodeChannel::Email) => Ok(0),
                _ => {
                    self.pass(&node, Some(channel), &clock, &mut breaker, gate, &shutdown)
                        .await
                }
            };
            let busy = match outcome {
                Ok(claimed) => {
                    failures = 0;
                    gate == Gate::Closed && claimed >= self.config.batch_size as usize
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures % 30 == 1 {
                        tracing::warn!(node = %node, error = %e, "outbox claim failed");
                    }
                    false
                }
            };
            if busy {
                continue;
            }
            let wait = match breaker.gate(Instant::now()) {
                Gate::OpenUntil(until) => until.min(Instant::now() + self.config.poll_interval),
                _ => Instant::now() + self.config.poll_interval,
            };
            tokio::select! {
                () = self.wake.notified(channel) => {}
                () = tokio::time::sleep_until(wait) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        match self.store.release_claims(&node).await {
            Ok(n) => tracing::info!(node = %node, released = n, "delivery worker stopped"),
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "delivery worker stopped; claims not released (their leases will run out)")
            }
        }
    }

    /// For one-shot commands (an operator's unlock, say): delivers what is due now, round
    /// after round until nothing is due or `budget` is spent, then gives back its claims.
    /// Serving nodes would deliver the same messages within a poll; leases keep the two
    /// from sending one message twice. Returns how many rows were handled.
    pub async fn deliver_due(&self, budget: Duration) -> usize {
        let node = format!(
            "{}-cli-{}-{:08x}",
            self.config.node_name,
            std::process::id(),
            rand::thread_rng().gen::<u32>()
        );
        let (_tx, rx) = watch::channel(false);
        let mut handled = 0;
        let clock = self.worker_clock().await;
        let mut breaker = Breaker::new(self.config.breaker);
        let rounds = async {
            loop {
                match self
                    .pass(&node, None, &clock, &mut breaker, Gate::Closed, &rx)
                    .await
                {
                    Ok(0) => break,
                    Ok(n) => handled += n,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox claim failed");
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(budget, rounds).await;
        if let Err(e) = self.store.release_claims(&node).await {
            tracing::warn!(error = %e, "releasing claims failed (their leases will run out)");
        }
        handled
    }

    /// One round: claims a batch and settles each row. Returns how many rows were claimed.
    /// Public for tests that drive a worker step by step.
    pub async fn run_once(&self, node: &str) -> Result<usize, String> {
        let (_tx, rx) = watch::channel(false);
        let mut breaker = Breaker::new(self.config.breaker);
        self.pass(
            node,
            None,
            &self.clock.clone(),
            &mut breaker,
            Gate::Closed,
            &rx,
        )
        .await
    }

    /// One round: claims a batch (one message for a breaker's trial; while it is open,
    /// only what can go by the other channel) and settles each row. Returns how many rows
    /// were claimed.
    async fn pass(
        &self,
        node: &str,
        channel: Option<CodeChannel>,
        clock: &Arc<dyn Clock>,
        breaker: &mut Breaker,
        gate: Gate,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<usize, String> {
        let now = self.pass_now(clock).await;
        let started = Instant::now();
        let elapsed =
            move || now.plus_secs(i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX));
        let limit = match gate {
            Gate::Trial => 1,
            _ => self.config.batch_size.max(1),
        };
        let rows = self
            .store
            .claim_channel(node, now, self.config.lease_secs, limit, channel)
            .await
            .map_err(|e| e.to_string())?;
        let claimed = rows.len();
        let mut left_unsent = false;
        let needed = i64::try_from(self.config.send_timeout.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_add(2);
        for row in rows {
            if *shutdown.borrow() {
                left_unsent = true;
                break;
            }
            // Never start a send that could outlive the lease: another node may take the row
            // the moment it runs out.
            if row.claimed_until.0.saturating_sub(elapsed().0) < needed {
                left_unsent = true;
                continue;
            }
            // An open breaker (opened before this pass or during it): a code with another
            // way to go takes it; everything else waits, its attempt given back.
            if let Gate::OpenUntil(_) = breaker.gate(Instant::now()) {
                if row.sensitive && row.fallback().is_some() {
                    self.deliver(node, row, elapsed(), breaker, true).await;
                } else {
                    left_unsent = true;
                }
                continue;
            }
            self.deliver(node, row, elapsed(), breaker, false).await;
        }
        if left_unsent {
            if let Err(e) = self.store.release_claims(node).await {
                tracing::warn!(node = %node, error = %e, "releasing unsent claims failed");
            }
        }
        Ok(claimed)
    }

    /// Records an outcome, trying again while the database is briefly unavailable (a few
    /// seconds, within the lease): a "sent" that is not recorded would send the message
    /// again when the lease runs out.
    async fn record<F, Fut>(&self, what: &str, id: i64, mut attempt: F) -> Result<bool, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool, StoreError>>,
    {
        let mut delay = Duration::from_millis(100);
        let give_up = Instant::now()
            + Duration::from_secs(
                u64::try_from(self.config.lease_secs / 2)
                    .unwrap_or(1)
                    .max(1),
            );
        loop {
            match attempt().await {
                Err(StoreError::Unavailable(e)) if Instant::now() + delay < give_up => {
                    tracing::warn!(outbox_id = id, error = %e, outcome = what, "recording a delivery outcome failed; trying again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    async fn deliver(
        &self,
        node: &str,
        row: OutboxRow,
        now: UnixTime,
        breaker: &mut Breaker,
        fall_back: bool,
    ) {
        let id = row.id;
        let outcome = if fall_back {
            self.code_by_other_channel(node, &row).await
        } else {
            match row.channel {
                CodeChannel::Email => self
                    .send(&row, CodeChannel::Email, &row.recipient)
                    .await
                    .map(|()| CodeChannel::Email),
                CodeChannel::Sms => self.deliver_sms(node, &row).await,
            }
        };
        // The provider's health, for its breaker: only its own failures count.
        match &outcome {
            Ok(channel) if *channel == row.channel => {
                if breaker.is_open() {
                    tracing::info!(
                        channel = row.channel.as_str(),
                        "provider answers again: breaker closed"
                    );
                }
                breaker.success();
                self.stats.breaker(row.channel, false);
            }
            Err(SendError::Retry(error)) if !fall_back && breaker.failure(Instant::now()) => {
                tracing::warn!(channel = row.channel.as_str(), error = %error, "provider failing: breaker open, next trial after a cooldown");
                self.stats.breaker(row.channel, true);
            }
            _ => {}
        }
        // A code that failed on its channel goes by the other at once when it can (text to
        // email, email to text): a retry in a few minutes may be past its ten-minute life.
        let outcome = match outcome {
            Err(SendError::Retry(error))
                if !fall_back && row.sensitive && row.fallback().is_some() =>
            {
                tracing::warn!(outbox_id = id, channel = row.channel.as_str(), error = %error, "a code could not go on its channel: sending it by the other");
                self.code_by_other_channel(node, &row).await
            }
            other => other,
        };
        let recorded = match outcome {
            Ok(channel) => {
                let marked = self
                    .record("sent", id, || self.store.mark_sent(id, node, now))
                    .await;
                if let Ok(true) = marked {
                    self.stats.sent(channel);
                    tracing::info!(
                        outbox_id = id,
                        channel = channel.as_str(),
                        attempt = row.attempts,
                        "message sent"
                    );
                }
                marked
            }
            Err(SendError::Rejected(error)) => {
                tracing::warn!(outbox_id = id, attempt = row.attempts, error = %error, "message failed");
                let marked = self
                    .record("failed", id, || self.store.mark_failed(id, node, &error))
                    .await;
                if let Ok(true) = marked {
                    self.stats.failed(row.channel);
                }
                marked
            }
            Err(SendError::Retry(error)) => self.retry_or_give_up(node, &row, now, &error).await,
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::error!(
                outbox_id = id,
                node = %node,
                "outbox row was no longer this node's when its outcome was recorded"
            ),
            Err(e) => {
                tracing::error!(outbox_id = id, error = %e, "recording a delivery outcome failed")
            }
        }
    }

    /// Moves a code to the other channel's fallback address and sends it there.
    async fn code_by_other_channel(
        &self,
        node: &str,
        row: &OutboxRow,
    ) -> Result<CodeChannel, SendError> {
        match row.channel {
            CodeChannel::Sms => self.code_by_email(node, row).await,
            CodeChannel::Email => self.code_by_sms(node, row).await,
        }
    }

    /// Moves a code by email to its fallback phone and sends it there, through the SMS cost
    /// controls like any text message. Once moved it is a text message: if the gateway fails
    /// too, the SMS worker retries it.
    async fn code_by_sms(&self, node: &str, row: &OutboxRow) -> Result<CodeChannel, SendError> {
        let Some(phone) = row.fallback_phone.as_deref() else {
            return Err(SendError::Retry("no phone to fall back to".into()));
        };
        if self.transports.sms.is_none() {
            return Err(SendError::Retry(
                "the relay is failing and no SMS gateway is configured to fall back to".into(),
            ));
        }
        let moved = self
            .store
            .fall_back_to_sms(
                row.id,
                node,
                "the email relay is failing; the code was sent by text",
            )
            .await
            .map_err(|e| SendError::Retry(format!("falling back to text: {e}")))?;
        if !moved {
            return Err(SendError::Retry(
                "the row changed while falling back to text".into(),
            ));
        }
        self.stats.code_fallback();
        let moved_row = OutboxRow {
            channel: CodeChannel::Sms,
            recipient: phone.to_owned(),
            fallback_email: None,
            fallback_phone: None,
            ..row.clone()
        };
        self.deliver_sms(node, &moved_row).await
    }

    /// Moves a text-message code to its email fallback and sends it there.
    async fn code_by_email(&self, node: &str, row: &OutboxRow) -> Result<CodeChannel, SendError> {
        let Some(fallback) = row.fallback_email.as_deref() else {
            return Err(SendError::Retry("no email address to fall back to".into()));
        };
        let moved = self
            .store
            .fall_back_to_email(
                row.id,
                node,
                "the SMS gateway is failing; the code was sent by email",
            )
            .await
            .map_err(|e| SendError::Retry(format!("falling back to email: {e}")))?;
        if !moved {
            return Err(SendError::Retry(
                "the row changed while falling back to email".into(),
            ));
        }
        self.stats.code_fallback();
        self.send(row, CodeChannel::Email, fallback)
            .await
            .map(|()| CodeChannel::Email)
    }

    async fn retry_or_give_up(
        &self,
        node: &str,
        row: &OutboxRow,
        now: UnixTime,
        error: &str,
    ) -> Result<bool, portcullis_core::ports::StoreError> {
        let give_up_at = row.created_at.plus_secs(self.config.give_up_after_secs);
        if now >= give_up_at && row.attempts >= self.config.min_attempts {
            tracing::warn!(outbox_id = row.id, attempt = row.attempts, error = %error, "message given up");
            let reason = format!(
                "gave up after {} attempts over {} h: {error}",
                row.attempts,
                self.config.give_up_after_secs / 3600
            );
            let marked = self
                .record("failed", row.id, || {
                    self.store.mark_failed(row.id, node, &reason)
                })
                .await;
            if let Ok(true) = marked {
                self.stats.failed(row.channel);
            }
            return marked;
        }
        let delay = backoff_secs(
            row.attempts,
            self.config.backoff_base_secs,
            self.config.backoff_max_secs,
            &mut rand::thread_rng(),
        );
        // The last try is made at the give-up time itself; attempts still owed after it keep
        // their usual spacing.
        let next = if now >= give_up_at {
            now.plus_secs(delay)
        } else {
            now.plus_secs(delay).min(give_up_at)
        };
        tracing::info!(outbox_id = row.id, attempt = row.attempts, retry_in_secs = next.0 - now.0, error = %error, "message will be retried");
        let marked = self
            .record("retry", row.id, || {
                self.store.mark_retry(row.id, node, error, next)
            })
            .await;
        if let Ok(true) = marked {
            self.stats.retried(row.channel);
        }
        marked
    }

    async fn send(&self, row: &OutboxRow, channel: CodeChannel, to: &str) -> Result<(), SendError> {
        let Some(transport) = self.transports.for_channel(channel) else {
            return Err(SendError::Rejected(format!(
                "no {} transport is configured",
                match channel {
                    CodeChannel::Email => "email (SMTP)",
                    CodeChannel::Sms => "SMS gateway",
                }
            )));
        };
        let outbound = Outbound {
            id: row.id,
            channel,
            to: to.to_owned(),
            subject: row.subject.clone(),
            body: row.body.clone(),
            created_at: row.created_at,
            now: self.clock.now(),
        };
        // The transports have their own timeouts; this one is the backstop that keeps a
        // send inside its lease.
        match tokio::time::timeout(self.config.send_timeout, transport.send(&outbound)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Retry(format!(
                "{} timed out after {} s",
                transport.name(),
                self.config.send_timeout.as_secs()
            ))),
        }
    }

    /// A text message through the cost controls: sent as SMS, sent by email instead, or
    /// refused.
    async fn deliver_sms(&self, node: &str, row: &OutboxRow) -> Result<CodeChannel, SendError> {
        if self.transports.sms.is_none() {
            return Err(SendError::Rejected("no SMS gateway is configured".into()));
        }
        let policy = &self.config.sms;
        let blocked = if policy.prefix_allowed(&row.recipient) {
            let claims = policy.quota_claims(&row.recipient);
            let day = self.clock.now().0.div_euclid(86_400);
            if claims.is_empty() {
                None
            } else {
                let quota: Vec<_> = claims.iter().map(|(c, _)| c.clone()).collect();
                match self.store.claim_sms_quota(&quota, day).await {
                    Ok(None) => {
                        let result = self.send(row, CodeChannel::Sms, &row.recipient).await;
                        if result.is_err() {
                            // Not sent, so not spent: an outage must not eat the day's quota.
                            let keys: Vec<String> = quota.into_iter().map(|c| c.key).collect();
                            if let Err(e) = self.store.release_sms_quota(&keys, day).await {
                                tracing::warn!(outbox_id = row.id, error = %e, "releasing SMS quota failed");
                            }
                        }
                        return result.map(|()| CodeChannel::Sms);
                    }
                    Ok(Some(i)) => Some(claims.get(i).map_or(SmsBlock::DailyQuota, |(_, b)| *b)),
                    Err(e) => return Err(SendError::Retry(format!("SMS quota: {e}"))),
                }
            }
        } else {
            Some(SmsBlock::PrefixNotAllowed)
        };
        let Some(reason) = blocked else {
            return self
                .send(row, CodeChannel::Sms, &row.recipient)
                .await
                .map(|()| CodeChannel::Sms);
        };
        self.stats.blocked(reason);
        tracing::warn!(
            outbox_id = row.id,
            reason = reason.as_str(),
            "text message refused by the SMS cost controls"
        );
        let Some(fallback) = row.fallback_email.as_deref() else {
            return Err(SendError::Rejected(format!(
                "{}, and there is no email address to fall back to",
                reason.describe()
            )));
        };
        let moved = self
            .store
            .fall_back_to_email(
                row.id,
                node,
                &format!("{}; sent by email", reason.describe()),
            )
            .await
            .map_err(|e| SendError::Retry(format!("falling back to email: {e}")))?;
        if !moved {
            return Err(SendError::Retry(
                "the row changed while falling back to email".into(),
            ));
        }
        self.stats.fallback();
        self.send(row, CodeChannel::Email, fallback)
            .await
            .map(|()| CodeChannel::Email)
    }
}

#[cfg(test)]
mod tests;
