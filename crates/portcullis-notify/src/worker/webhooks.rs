//! Webhook deliveries (docs/design/webhooks.md): a third worker per node, beside the email
//! and text-message ones, that claims due delivery rows under a lease, posts each to its
//! subscription's URL signed the Standard Webhooks way, and records the outcome: a 2xx is
//! sent; anything else (a timeout, a refused connection, a redirect, any other status) is
//! retried with exponential backoff and jitter ([`super::backoff_secs`]) until the row is
//! `give_up_after_secs` old with at least `min_attempts` made, then failed.
//!
//! At least once: a node that dies mid-send leaves its lease, which runs out, and another
//! node (or this one, restarted) sends the row again under the same `webhook-id`, the
//! receiver's de-duplication key. A send starts only while the lease has the timeout plus
//! a margin left, so it never outlives the lease it started under.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::{Clock, UnixTime};
use portcullis_core::ports::{WebhookDelivery, WebhookStore};
use portcullis_core::webhooks::{check_url, public_ip, UrlRules};
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{backoff_secs, DeliveryWorker};

/// How webhook deliveries are paced (the `[webhooks]` section).
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// How often to look for due deliveries (the unit of work does not wake this worker).
    pub poll_interval: Duration,
    /// How long a claim holds a delivery; must exceed `timeout` plus a margin.
    pub lease_secs: i64,
    /// Deliveries claimed and sent at once.
    pub batch_size: u32,
    /// The longest one POST may take.
    pub timeout: Duration,
    pub backoff_base_secs: i64,
    pub backoff_max_secs: i64,
    /// A delivery still not accepted this long after its event is given up …
    pub give_up_after_secs: i64,
    /// … once at least this many attempts were made.
    pub min_attempts: u32,
    /// Which endpoints may be reached (`webhooks.allow_http`, `webhooks.allow_loopback`):
    /// each URL is checked again before every send, and each address its host resolves to.
    pub rules: UrlRules,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            lease_secs: 60,
            batch_size: 20,
            timeout: Duration::from_secs(10),
            backoff_base_secs: 5,
            backoff_max_secs: 3600,
            give_up_after_secs: 24 * 3600,
            min_attempts: 5,
            rules: UrlRules::default(),
        }
    }
}

/// The webhook worker's store, HTTP client and pacing; given to a [`DeliveryWorker`] with
/// [`DeliveryWorker::with_webhooks`].
#[derive(Clone)]
pub struct WebhookSender {
    store: Arc<dyn WebhookStore>,
    client: reqwest::Client,
    config: Arc<WebhookConfig>,
}

impl WebhookSender {
    /// No redirects are followed (a receiver cannot bounce a signed event elsewhere), no
    /// proxy from the environment is used, and host names are resolved by [`PublicOnly`].
    pub fn new(store: Arc<dyn WebhookStore>, config: WebhookConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PublicOnly {
                allow_loopback: config.rules.allow_loopback,
            }))
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent("portcullis-webhooks")
            .build()
            .map_err(|e| format!("the webhook HTTP client: {e}"))?;
        Ok(Self {
            store,
            client,
            config: Arc::new(config),
        })
    }

    pub(crate) fn store(&self) -> &Arc<dyn WebhookStore> {
        &self.store
    }

    /// Posts one delivery; `Ok` on a 2xx.
    async fn post(&self, d: &WebhookDelivery, timestamp: i64) -> Result<(), Failure> {
        // The URL was checked when added; the rules (or this node's) may have changed since.
        check_url(&d.url, self.config.rules)
            .map_err(|e| Failure::GiveUp(format!("the endpoint URL is not allowed: {e}")))?;
        let id = d.message_id.clone();
        let signature = portcullis_crypto::webhook::sign(
            d.secret.expose_secret(),
            &id,
            timestamp,
            d.body.as_bytes(),
        )
        .ok_or_else(|| Failure::GiveUp("the subscription's secret is malformed".into()))?;
        let response = self
            .client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| Failure::Retry(format!("POST failed: {}", without_url(&e))))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status == reqwest::StatusCode::GONE {
            Err(Failure::GiveUp(
                "the endpoint answered 410 Gone: it takes no more deliveries".into(),
            ))
        } else {
            Err(Failure::Retry(format!("the endpoint answered {status}")))
        }
    }
}

/// Why a POST did not deliver: worth another attempt, or not (410 Gone, as Standard
/// Webhooks asks; a secret that cannot sign).
enum Failure {
    Retry(String),
    GiveUp(String),
}

/// Resolves an endpoint's host name and keeps only the addresses a webhook may reach
/// ([`public_ip`]), so neither a name pointed at an internal address nor one rebound to it
/// between the check and the connection reaches the node's own network. A name with no
/// such address fails the attempt (retried, like any refused connection).
pub(crate) struct PublicOnly {
    pub(crate) allow_loopback: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public = public_addresses(all, allow_loopback);
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses of `all` a webhook may reach.
fn public_addresses(
    all: Vec<std::net::SocketAddr>,
    allow_loopback: bool,
) -> Vec<std::net::SocketAddr> {
    all.into_iter()
        .filter(|a| public_ip(a.ip(), allow_loopback))
        .collect()
}

/// reqwest's error text without the URL (which may carry a token in its query).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "the endpoint");
    }
    if e.is_timeout() {
        "timed out".into()
    } else {
        text
    }
}

impl DeliveryWorker {
    /// This worker with webhook deliveries: [`Self::spawn`] then starts a third task.
    pub fn with_webhooks(mut self, sender: WebhookSender) -> Self {
        self.webhooks = Some(sender);
        self
    }

    pub(crate) async fn run_webhooks(
        self,
        node: String,
        sender: WebhookSender,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let clock = self.worker_clock().await;
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let busy = match self.webhook_pass(&node, &sender, &clock).await {
                Ok(claimed) => {
                    failures = 0;
                    claimed >= sender.config.batch_size as usize
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures % 30 == 1 {
                        tracing::warn!(node = %node, error = %e, "webhook claim failed");
                    }
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(sender.config.poll_interval) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        match sender.store.release_webhook_claims(&node).await {
            Ok(n) => tracing::info!(node = %node, released = n, "webhook worker stopped"),
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "webhook worker stopped; claims not released (their leases will run out)")
            }
        }
    }

    /// One round: claims a batch, posts them all at once (each bounded by the timeout, well
    /// inside the lease), and settles each. How many were claimed.
    async fn webhook_pass(
        &self,
        node: &str,
        sender: &WebhookSender,
        clock: &Arc<dyn Clock>,
    ) -> Result<usize, String> {
        let now = self.pass_now(clock).await;
        let config = &sender.config;
        let claimed = sender
            .store
            .claim_webhooks(node, now, config.lease_secs, config.batch_size.max(1))
            .await
            .map_err(|e| e.to_string())?;
        let count = claimed.len();
        let mut sends = JoinSet::new();
        for delivery in claimed {
            let sender = sender.clone();
            let timestamp = clock.now().0;
            sends.spawn(async move {
                let result = sender.post(&delivery, timestamp).await;
                (delivery, result)
            });
        }
        while let Some(joined) = sends.join_next().await {
            let Ok((delivery, result)) = joined else {
                continue;
            };
            let now = self.pass_now(clock).await;
            let settled = match result {
                Ok(()) => {
                    tracing::info!(
                        delivery_id = delivery.id,
                        event = %delivery.event_type,
                        "webhook delivered"
                    );
                    sender.store.webhook_sent(delivery.id, node, now).await
                }
                Err(Failure::Retry(error)) => {
                    self.webhook_retry_or_give_up(node, sender, &delivery, now, &error)
                        .await
                }
                Err(Failure::GiveUp(error)) => {
                    tracing::warn!(delivery_id = delivery.id, error = %error, "webhook given up");
                    sender.store.webhook_failed(delivery.id, node, &error).await
                }
            };
            match settled {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    delivery_id = delivery.id,
                    "webhook delivery was no longer this node's when settled"
                ),
                Err(e) => tracing::warn!(
                    delivery_id = delivery.id,
                    error = %e,
                    "recording a webhook outcome failed (the lease will run out and it is sent again)"
                ),
            }
        }
        Ok(count)
    }

    async fn webhook_retry_or_give_up(
        &self,
        node: &str,
        sender: &WebhookSender,
        d: &WebhookDelivery,
        now: UnixTime,
        error: &str,
    ) -> Result<bool, portcullis_core::ports::StoreError> {
        let config = &sender.config;
        let give_up_at = d.created_at.plus_secs(config.give_up_after_secs);
        if now >= give_up_at && d.attempts >= config.min_attempts {
            tracing::warn!(delivery_id = d.id, attempt = d.attempts, error = %error, "webhook given up");
            let reason = format!(
                "gave up after {} attempts over {} s: {error}",
                d.attempts, config.give_up_after_secs
            );
            return sender.store.webhook_failed(d.id, node, &reason).await;
        }
        let delay = backoff_secs(
            d.attempts,
            config.backoff_base_secs,
            config.backoff_max_secs,
            &mut rand::thread_rng(),
        );
        let next = if now >= give_up_at {
            now.plus_secs(delay)
        } else {
            now.plus_secs(delay).min(give_up_at)
        };
        tracing::info!(delivery_id = d.id, attempt = d.attempts, retry_in_secs = next.0 - now.0, error = %error, "webhook will be retried");
        sender.store.webhook_retry(d.id, node, error, next).await
    }
}

#[cfg(test)]
mod resolver_tests {
    #![allow(clippy::unwrap_used)]
    use std::str::FromStr;

    use reqwest::dns::{Name, Resolve};

    use super::*;

    #[tokio::test]
    async fn names_resolve_to_public_addresses_only() {
        let strict = PublicOnly {
            allow_loopback: false,
        };
        let lo = PublicOnly {
            allow_loopback: true,
        };
        // `localhost` resolves to loopback only: nothing is left unless loopback is allowed.
        assert!(strict
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .is_err());
        let addrs: Vec<_> = lo
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
        let mixed: Vec<std::net::SocketAddr> = [
            "10.0.0.1:0",
            "169.254.169.254:0",
            "93.184.215.14:0",
            "[::ffff:10.0.0.1]:0",
            "[2606:4700::1]:0",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let kept: Vec<String> = public_addresses(mixed, false)
            .iter()
            .map(|a| a.ip().to_string())
            .collect();
        assert_eq!(kept, ["93.184.215.14", "2606:4700::1"]);
    }
}
