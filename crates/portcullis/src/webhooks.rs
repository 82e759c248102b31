//! `portcullis webhooks add | list | remove`: subscriptions to security events
//! (docs/design/webhooks.md), as the operator (`cli:<user>`). The same as
//! `/api/v1/admin/webhooks` with a `webhooks:write` token.

use std::process::ExitCode;

use portcullis_core::ports::WebhookSubscription;
use portcullis_core::service::{Portcullis, SupportAuthority};
use secrecy::ExposeSecret;

use crate::admin::refused;

/// Adds a subscription and prints one JSON line `{"id","secret"}`: the secret is shown
/// this once (it is kept sealed, to sign with).
pub async fn add(
    app: &Portcullis,
    url: &str,
    events: &str,
    actor: &str,
) -> anyhow::Result<ExitCode> {
    match app
        .webhook_add(&SupportAuthority::operator(actor), url, events)
        .await
    {
        Ok(added) => {
            println!(
                "{}",
                serde_json::json!({"id": added.id, "secret": added.secret.expose_secret()})
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(e),
    }
}

/// One JSON line per subscription, with its deliveries by state.
pub async fn list(app: &Portcullis, actor: &str) -> anyhow::Result<ExitCode> {
    let subscriptions = app
        .webhooks_list(&SupportAuthority::operator(actor))
        .await?;
    for s in &subscriptions {
        println!("{}", describe(s));
    }
    Ok(ExitCode::SUCCESS)
}

/// A subscription as the list and the admin API show it.
pub fn describe(s: &WebhookSubscription) -> serde_json::Value {
    serde_json::json!({
        "id": s.id,
        "url": s.url,
        "events": s.events.display(),
        "created_at": s.created_at.to_rfc3339(),
        "pending": s.pending,
        "sent": s.sent,
        "failed": s.failed,
        "last_error": s.last_error,
    })
}

pub async fn remove(app: &Portcullis, id: i64, actor: &str) -> anyhow::Result<ExitCode> {
    if app
        .webhook_remove(&SupportAuthority::operator(actor), id)
        .await?
    {
        println!("removed subscription {id} (its deliveries not yet made are dropped)");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: no subscription {id}");
        Ok(ExitCode::FAILURE)
    }
}
