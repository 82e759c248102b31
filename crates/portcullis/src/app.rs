//! Wiring: builds the application from a [`Config`] and serves it on an already-bound
//! listener (so tests can bind port 0), with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use portcullis_core::clock::Clock;
use portcullis_core::ports::{Notifier, Store};
use portcullis_core::service::Portcullis;
use portcullis_crypto::secrets::load_or_create_key;
use portcullis_crypto::{HashPool, KeyedHasher};
use portcullis_notify::{LogOnly, OutboxFile};
use portcullis_store::{SqlStore, StoreOptions};
use portcullis_web::{AppState, DemoOutbox, WebConfig};
use tokio::net::TcpListener;

use crate::config::Config;

/// The registry key: HMAC-SHA-256 of card numbers and card IDs.
pub const REGISTRY_KEY: &str = "registry.key";
/// Keys CSRF tokens.
pub const CSRF_KEY: &str = "csrf.key";

/// A built application.
pub struct Built {
    pub app: Portcullis,
    pub store: Arc<SqlStore>,
    pub state: AppState,
    pub outbox: Option<Arc<OutboxFile>>,
}

struct OutboxAdapter(Arc<OutboxFile>);

impl DemoOutbox for OutboxAdapter {
    fn messages(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<serde_json::Value>> + Send + '_>>
    {
        Box::pin(async move { self.0.read_all().await.unwrap_or_default() })
    }
}

/// Opens the store, loads the keys and starts the hashing pool.
pub async fn build(config: &Config, clock: Arc<dyn Clock>, demo: bool) -> anyhow::Result<Built> {
    let registry_key = load_or_create_key(&config.secrets_dir, REGISTRY_KEY)
        .context("loading the registry key")?;
    let csrf_key =
        load_or_create_key(&config.secrets_dir, CSRF_KEY).context("loading the CSRF key")?;
    let store = Arc::new(
        SqlStore::connect(
            &config.database_url,
            StoreOptions {
                max_connections: config.database.max_connections,
                acquire_timeout: std::time::Duration::from_secs(
                    config.database.acquire_timeout_secs,
                ),
            },
        )
        .await
        .with_context(|| {
            format!(
                "opening the database ({})",
                redact_url(&config.database_url)
            )
        })?,
    );
    let workers = config.hash_workers();
    let hasher = HashPool::start(
        config.hash_params(),
        workers,
        workers * config.hashing.queue_per_worker,
    )
    .context("starting the hashing pool")?;
    let outbox = config
        .notify
        .outbox_file
        .as_ref()
        .map(|path| Arc::new(OutboxFile::new(path.clone(), clock.clone())));
    let notifier: Arc<dyn Notifier> = match &outbox {
        Some(o) => o.clone(),
        None => Arc::new(LogOnly),
    };
    let app = Portcullis::new(
        store.clone() as Arc<dyn Store>,
        hasher,
        KeyedHasher::new(registry_key),
        clock,
        notifier,
        config.policies(),
    );
    let state = AppState {
        app: app.clone(),
        web: Arc::new(WebConfig {
            secure_cookies: config.secure_cookies,
            demo,
            trusted_proxies: config.trusted_proxies(),
        }),
        csrf: KeyedHasher::new(csrf_key),
        outbox: outbox
            .clone()
            .map(|o| Arc::new(OutboxAdapter(o)) as Arc<dyn DemoOutbox>),
    };
    Ok(Built {
        app,
        store,
        state,
        outbox,
    })
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = portcullis_web::router(state);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving HTTP")
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = url.get(scheme + 3..at).unwrap_or("");
            let user = creds.split(':').next().unwrap_or("");
            format!(
                "{}{}@{}",
                url.get(..scheme + 3).unwrap_or(""),
                user,
                url.get(at + 1..).unwrap_or("")
            )
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_removed_from_urls() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
