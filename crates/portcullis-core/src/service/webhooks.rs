//! Webhook subscriptions, managed by an operator or an admin token with `webhooks:write`
//! (`portcullis webhooks …`, `/api/v1/admin/webhooks`). The events themselves are written
//! by each use case's unit of work from its audit events (`crate::webhooks`).

use secrecy::SecretString;

use super::Portcullis;
use crate::audit::AuditKind;
use crate::ports::{WebhookStats, WebhookSubscription};
use crate::support::{SupportAuthority, SupportScope};
use crate::webhooks::{check_url, scheme_and_host, EventFilter, UrlRules};
use crate::{FieldError, ServiceError};

/// A subscription just added: its id and its signing secret, shown this once.
pub struct NewWebhook {
    pub id: i64,
    pub secret: SecretString,
}

impl Portcullis {
    /// Deliveries pending and given up, all subscriptions, for `/metrics`.
    pub async fn webhook_stats(&self) -> Result<WebhookStats, ServiceError> {
        Ok(self.ports.webhooks.webhook_stats(self.clock.now()).await?)
    }

    /// Every subscription, with its deliveries by state (never a secret).
    pub async fn webhooks_list(
        &self,
        authority: &SupportAuthority,
    ) -> Result<Vec<WebhookSubscription>, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::WebhooksWrite, now)
            .await?;
        Ok(self.ports.webhooks.list_subscriptions().await?)
    }

    /// Subscribes `url` to `events` (`all` or a comma-separated list of
    /// [`crate::webhooks::EVENT_TYPES`]) with a new signing secret.
    pub async fn webhook_add(
        &self,
        authority: &SupportAuthority,
        url: &str,
        events: &str,
    ) -> Result<NewWebhook, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::WebhooksWrite, now)
            .await?;
        let url = url.trim();
        let mut errors = Vec::new();
        if let Err(e) = check_url(
            url,
            UrlRules {
                allow_http: self.policies.webhooks_allow_http,
                allow_loopback: self.policies.webhooks_allow_loopback,
            },
        ) {
            errors.push(FieldError::new("url", e));
        }
        let filter = EventFilter::parse(events);
        if let Err(e) = &filter {
            errors.push(FieldError::new("events", e.clone()));
        }
        let filter = match filter {
            Ok(f) if errors.is_empty() => f,
            _ => return Err(ServiceError::Invalid(errors)),
        };
        let secret = portcullis_crypto::webhook::new_secret();
        // The subscription and the operator's audit entry commit together, or neither.
        let mut work = self.begin(now);
        let id = work.add_subscription(url, &filter, &secret).await?;
        work.audit(
            authority
                .event(AuditKind::WebhookAdded, None)
                .detail(format!(
                    "subscription {id}: {} ({})",
                    scheme_and_host(url),
                    filter.display()
                )),
        );
        work.commit().await?;
        Ok(NewWebhook { id, secret })
    }

    /// Removes subscription `id` and its deliveries not yet made; false when there is none.
    pub async fn webhook_remove(
        &self,
        authority: &SupportAuthority,
        id: i64,
    ) -> Result<bool, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::WebhooksWrite, now)
            .await?;
        let mut work = self.begin(now);
        let removed = work.remove_subscription(id).await?;
        if removed {
            work.audit(
                authority
                    .event(AuditKind::WebhookRemoved, None)
                    .detail(format!("subscription {id}")),
            );
            work.commit().await?;
        }
        Ok(removed)
    }
}
