//! Wiring: builds the application from a [`Config`] and serves it on an already-bound
//! listener (so tests can bind port 0), with graceful shutdown.

use std::sync::Arc;

use anyhow::Context;
use portcullis_core::clock::Clock;
use portcullis_core::ports::{Notifier, OutboxStore, WebhookStore};
use portcullis_core::service::Portcullis;
use portcullis_crypto::{HashPool, KeyedHasher, LiveRing};
use portcullis_notify::{
    DeliveryConfig, DeliveryWorker, OutboxFile, SmsFormat, SmsGateway, SmsGatewaySettings,
    SmsPolicy, SmtpMailer, SmtpMode, SmtpServer, SmtpSettings, Transport, Transports,
    WebhookSender,
};
use portcullis_store::{SqlStore, StoreOptions};
use portcullis_web::{AppParts, AppState, DemoOutbox, WebConfig};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::serve::{ConnectionLimits, PlainTcp};
use crate::tls::Tls;

/// The registry key: HMAC-SHA-256 of card numbers and card IDs.
pub const REGISTRY_KEY: &str = "registry.key";
/// Keys CSRF tokens.
pub const CSRF_KEY: &str = "csrf.key";
/// Seals outbox bodies that carry a one-time code (shared by every node, like the others).
pub const OUTBOX_KEY: &str = "outbox.key";
/// Seals authenticator-app secrets at rest.
pub const FACTOR_KEY: &str = "factor.key";
/// Keys the audit chain's hashes (created with the key the chain was under before it had
/// its own: derived from the registry key's key 1).
pub const AUDIT_KEY: &str = "audit.key";

/// A built application.
pub struct Built {
    pub app: Portcullis,
    pub store: Arc<SqlStore>,
    pub state: AppState,
    pub outbox: Option<Arc<OutboxFile>>,
    /// The delivery worker, not started: `serve` starts it (one per serving process) and
    /// stops it on shutdown; the other commands only queue.
    pub delivery: DeliveryWorker,
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
    let options = StoreOptions {
        max_connections: config.database.max_connections,
        acquire_timeout: std::time::Duration::from_secs(config.database.acquire_timeout_secs),
        session_timeouts: config.database.session_timeouts(),
    };
    let mut store = SqlStore::connect(&config.database_url, options.clone())
        .await
        .with_context(|| {
            format!(
                "opening the database ({})",
                redact_url(&config.database_url)
            )
        })?;
    if let Some(read_url) = &config.database_read_url {
        store = store
            .with_read_replica(read_url, options)
            .await
            .with_context(|| {
                format!(
                    "opening the read replica database_read_url ({})",
                    redact_url(read_url)
                )
            })?;
    }
    refuse_new_keys_for_old_data(config, &store).await?;
    // Card lookups, one-time codes, recovery-code hints and destination buckets use every
    // key of the ring (followed as it is rotated); decoy questions and a paused card's step
    // stay under its first key, which a rotation keeps (docs/design/keys.md).
    let registry_keys =
        LiveRing::open(&config.secrets_dir, REGISTRY_KEY).context("loading the registry key")?;
    let registry_key = registry_keys.snapshot().first().clone();
    let audit_keys = open_audit_ring(config, &store, &registry_keys.snapshot()).await?;
    // Keyrings, followed while the process runs (`portcullis keys rotate`).
    let csrf_keys =
        LiveRing::open(&config.secrets_dir, CSRF_KEY).context("loading the CSRF key")?;
    let outbox_keys =
        LiveRing::open(&config.secrets_dir, OUTBOX_KEY).context("loading the outbox key")?;
    let factor_keys =
        LiveRing::open(&config.secrets_dir, FACTOR_KEY).context("loading the factor key")?;
    let store = Arc::new(store.with_outbox_ring(outbox_keys));
    let workers = config.hash_workers();
    let hasher = HashPool::start_with_nice(
        config.hash_params(),
        workers,
        workers * config.hashing.queue_per_worker,
        config.hashing.nice,
    )
    .context("starting the hashing pool")?;
    unknown_user_hash(store.as_ref(), &hasher).await;
    let outbox = config
        .notify
        .outbox_file
        .as_ref()
        .map(|path| Arc::new(OutboxFile::new(path.clone())));
    let delivery = DeliveryWorker::new(
        store.clone() as Arc<dyn OutboxStore>,
        clock.clone(),
        transports(config, outbox.as_ref())?,
        delivery_config(config),
    )
    .with_webhooks(
        WebhookSender::new(
            store.clone() as Arc<dyn WebhookStore>,
            config.webhooks.sender_config(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    // Messages are committed to the outbox by the use cases' units of work; the notifier
    // only wakes this process's delivery worker when one commits some.
    let notifier: Arc<dyn Notifier> = Arc::new(delivery.notifier());
    let app = Portcullis::new(
        store.clone(),
        hasher,
        KeyedHasher::new(registry_key),
        clock,
        notifier,
        config.policies(),
    )
    .with_factor_ring(factor_keys)
    .with_registry_ring(registry_keys)
    .with_audit_ring(audit_keys)
    .with_oidc_keys(
        LiveRing::open(
            &config.secrets_dir,
            portcullis_core::service::oidc::SIGNING_RING,
        )
        .context("loading the OpenID Connect signing key")?,
    )
    .with_jwks_fetcher(Arc::new(
        portcullis_notify::jwks::HttpJwksFetcher::new(std::time::Duration::from_millis(
            config.oidc.jwks_policy().timeout_ms,
        ))
        .map_err(anyhow::Error::msg)?,
    ));
    let state = AppState::new(AppParts {
        app: app.clone(),
        web: Arc::new(WebConfig {
            secure_cookies: config.secure_cookies,
            demo,
            addressing: config.client_addressing(),
            status_probe: std::time::Duration::try_from_secs_f64(config.status.probe_secs)
                .unwrap_or(std::time::Duration::from_secs(15)),
            theme: config.theme.theme()?,
            requests: config.server.request_limits(),
        }),
        csrf: csrf_keys,
        outbox: outbox
            .clone()
            .map(|o| Arc::new(OutboxAdapter(o)) as Arc<dyn DemoOutbox>),
        status: Default::default(),
        metrics: database_pool_metrics(&store),
        maintenance: Default::default(),
        delivery: Some(delivery_source(delivery.stats())),
        load: Arc::new(portcullis_web::limits::Load::new(
            config.server.max_requests_in_flight,
        )),
    });
    Ok(Built {
        app,
        store,
        state,
        outbox,
        delivery,
    })
}

/// The keys without which the data already written cannot be read: card numbers and IDs
/// are found by their HMAC under the registry key (whose key 1 `audit.key` is made from), and
/// authenticator-app secrets are sealed under the factor key. The CSRF and outbox keys
/// protect only what is in flight, so a new one costs a retried form or a resent code.
pub const KEYS_THE_DATA_NEEDS: [&str; 2] = [REGISTRY_KEY, FACTOR_KEY];

/// Refuses to mint a new registry or factor key for a database that already holds data:
/// that is a restore without its secrets folder, and going on would quietly unlink every
/// card and break every authenticator app and the audit chain's proof.
async fn refuse_new_keys_for_old_data(config: &Config, store: &SqlStore) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for name in KEYS_THE_DATA_NEEDS {
        if portcullis_crypto::secrets::load_existing_key(&config.secrets_dir, name)
            .with_context(|| format!("reading {name}"))?
            .is_none()
        {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let holdings = store.holdings().await.context("reading the database")?;
    if holdings.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the secrets folder {} has no {} but the database already holds data ({holdings}): \
         the keys it was written under are missing. Restore the secrets folder from the same \
         backup as the database (docs/operations.md, \"Back up and restore\"); new keys would \
         unlink every card, break every authenticator app and the audit chain's proof.",
        config.secrets_dir.display(),
        missing.join(" or ")
    )
}

/// `audit.key`, followed as it is rotated; created when missing with the key the chain was
/// under before it had its own (derived from the registry key's key 1), so an existing
/// chain still verifies. Refuses to create it for a log that has entries under a later key
/// id: that file was lost, and entries under those keys could no longer be verified.
async fn open_audit_ring(
    config: &Config,
    store: &SqlStore,
    registry: &portcullis_crypto::KeyRing,
) -> anyhow::Result<LiveRing> {
    use portcullis_core::ports::AuditReads;
    let dir = &config.secrets_dir;
    if portcullis_crypto::keyring::load_ring(dir, AUDIT_KEY)
        .context("reading the audit key")?
        .is_none()
    {
        let later: i64 = store
            .count_audit_by_key()
            .await
            .context("reading the audit log")?
            .iter()
            .filter(|(id, _)| *id != 1)
            .map(|(_, n)| *n)
            .sum();
        if later > 0 {
            anyhow::bail!(
                "the secrets folder {} has no {AUDIT_KEY} but {later} audit entries are under                  a rotated audit key: restore the secrets folder from the same backup as the                  database (docs/operations.md, \"Back up and restore\")",
                dir.display()
            );
        }
        portcullis_crypto::keyring::load_or_create_ring_with(dir, AUDIT_KEY, || {
            portcullis_core::audit::derived_key(&KeyedHasher::new(registry.first().clone()))
        })
        .context("creating the audit key")?;
    }
    LiveRing::open(dir, AUDIT_KEY).context("loading the audit key")
}

/// `/metrics`' counters, reading the database pool's use and the token endpoint's ways of
/// writing from `store`.
fn database_pool_metrics(store: &Arc<SqlStore>) -> Arc<portcullis_web::metrics::Metrics> {
    let metrics = Arc::new(portcullis_web::metrics::Metrics::default());
    let store = store.clone();
    metrics.set_database_pool(Box::new(move || {
        let u = store.pool_usage();
        let g = store.grant_uses();
        portcullis_web::metrics::DatabaseReading {
            open: u.open,
            idle: u.idle,
            max: u.max,
            grant_uses_one_list: g.one_list,
            grant_uses_unit_of_work: g.unit_of_work,
        }
    }));
    metrics
}

/// The delivery worker's counters, as the status prober and `/metrics` read them.
fn delivery_source(
    stats: portcullis_notify::Stats,
) -> portcullis_core::service::status::DeliverySource {
    Arc::new(move || {
        let s = stats.snapshot();
        portcullis_core::service::status::DeliverySignals {
            enqueued: s.enqueued,
            sent_email: s.sent_email,
            sent_sms: s.sent_sms,
            retried: s.retried,
            failed: s.failed,
            failures_email: s.failures_email,
            failures_sms: s.failures_sms,
            email_provider_down: s.email_provider_down,
            sms_provider_down: s.sms_provider_down,
        }
    })
}

fn delivery_config(config: &Config) -> DeliveryConfig {
    let n = &config.notify;
    DeliveryConfig {
        poll_interval: std::time::Duration::try_from_secs_f64(n.poll_secs)
            .unwrap_or(std::time::Duration::from_secs(2)),
        lease_secs: n.lease_secs,
        send_timeout: n.send_timeout(),
        sms: SmsPolicy {
            allowed_prefixes: n.sms_allowed_prefixes.clone(),
            per_number_per_day: n.sms_per_number_per_day,
            per_prefix_per_day: n.sms_per_prefix_per_day,
            per_day: n.sms_per_day,
        },
        ..DeliveryConfig::default()
    }
}

/// The transport for each channel: the outbox file for both when it is set (demo mode,
/// tests), else SMTP and the SMS gateway as configured.
fn transports(config: &Config, outbox: Option<&Arc<OutboxFile>>) -> anyhow::Result<Transports> {
    if let Some(file) = outbox {
        return Ok(Transports::both(file.clone()));
    }
    let n = &config.notify;
    let server = match (&n.smtp_url, &n.smtp_host) {
        (Some(url), _) => Some(SmtpServer::Url(url.clone())),
        (None, Some(host)) => Some(SmtpServer::Host {
            host: host.clone(),
            port: n.smtp_port,
            mode: SmtpMode::parse(&n.smtp_mode).unwrap_or(SmtpMode::StartTls),
        }),
        (None, None) => None,
    };
    let email = match server {
        Some(server) => {
            let password = n
                .smtp_password_file
                .as_deref()
                .map(read_secret_file)
                .transpose()
                .context("reading notify.smtp_password_file")?;
            let mailer = SmtpMailer::new(SmtpSettings {
                server,
                username: n.smtp_username.clone(),
                password,
                from: n.from.clone(),
                issuer_name: config.issuer_name.clone(),
                timeout: n.send_timeout(),
            })?;
            Some(Arc::new(mailer) as Arc<dyn Transport>)
        }
        None => None,
    };
    let sms = match &n.sms_url {
        Some(url) => {
            let auth_header = n
                .sms_auth_header_file
                .as_deref()
                .map(read_secret_file)
                .transpose()
                .context("reading notify.sms_auth_header_file")?;
            let gateway = SmsGateway::new(SmsGatewaySettings {
                url: url.clone(),
                auth_header,
                format: match n.sms_format.as_str() {
                    "twilio" => SmsFormat::Twilio,
                    _ => SmsFormat::Json {
                        template: n.sms_json_template.clone(),
                    },
                },
                from: n.sms_from.clone(),
                timeout: n.send_timeout(),
            })?;
            Some(Arc::new(gateway) as Arc<dyn Transport>)
        }
        None => None,
    };
    if email.is_none() {
        tracing::warn!(
            "no email transport (notify.smtp_url or notify.smtp_host): email messages will fail"
        );
    }
    if sms.is_none() {
        tracing::warn!("no SMS gateway (notify.sms_url): text messages will fail");
    }
    Ok(Transports { email, sms })
}

/// A secret kept in a file, without its trailing newline.
fn read_secret_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// The two listeners a serving node binds.
pub struct Listeners {
    /// Pages, API, health.
    pub public: TcpListener,
    /// `/metrics`, `/healthz`, `/readyz` (`management_listen`).
    pub management: TcpListener,
}

impl Listeners {
    /// Binds `listen` and `management_listen`.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let public = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        Self::with_public(public, config).await
    }

    /// The public listener already bound (its port goes into the demo's public URL), and
    /// `management_listen` bound now.
    pub async fn with_public(public: TcpListener, config: &Config) -> anyhow::Result<Self> {
        let management = TcpListener::bind(&config.management_listen)
            .await
            .with_context(|| {
                format!(
                    "listening on {} (management_listen)",
                    config.management_listen
                )
            })?;
        Ok(Self { public, management })
    }
}

/// Connections the management listener keeps open at once: a few scrapers and probes.
const MANAGEMENT_CONNECTIONS: usize = 32;

/// Serves both listeners until `shutdown` resolves, then drains (bounded by
/// `limits.drain`): stops accepting, lets requests in flight finish, closes the rest. With
/// `tls`, both listeners speak HTTPS and the certificate files are watched for renewals.
pub async fn serve(
    listeners: Listeners,
    state: AppState,
    limits: ConnectionLimits,
    tls: Option<Arc<Tls>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The status prober runs for as long as this node serves.
    let prober = crate::status::spawn_prober(state.clone());
    let reloader = tls.as_ref().map(|t| {
        let reading = t.clone();
        state.metrics.set_tls(Box::new(move || reading.reading()));
        t.spawn_reloader()
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let management_limits = ConnectionLimits {
        max_connections: MANAGEMENT_CONNECTIONS,
        ..limits.clone()
    };
    let management = tokio::spawn(serve_on(
        listeners.management,
        tls.clone(),
        portcullis_web::management_router(state.clone()),
        Arc::new(portcullis_web::limits::Load::new(MANAGEMENT_CONNECTIONS)),
        management_limits,
        stopped(stop_rx.clone()),
    ));
    let load = state.load.clone();
    let public = serve_on(
        listeners.public,
        tls,
        portcullis_web::router(state.clone()),
        state.load.clone(),
        limits,
        async move {
            shutdown.await;
            load.draining
                .store(true, std::sync::atomic::Ordering::Relaxed);
        },
    );
    let served = public.await.context("serving HTTP");
    // Health and metrics stay answered through the drain, and end with it.
    let _ = stop_tx.send(true);
    let _ = management.await;
    prober.abort();
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    served
}

/// One listener, over TLS or plain TCP.
async fn serve_on(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    router: axum::Router,
    load: Arc<portcullis_web::limits::Load>,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    match tls {
        Some(tls) => {
            crate::serve::serve(
                listener,
                Arc::new(tls.acceptor()),
                router,
                load,
                limits,
                shutdown,
            )
            .await
        }
        None => {
            crate::serve::serve(listener, Arc::new(PlainTcp), router, load, limits, shutdown).await
        }
    }
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

/// The same-time rule with imported accounts: while accounts migrated from an earlier login
/// system still carry their old hashes, an unknown User ID is checked against a dummy in the
/// most common of those forms (a sample of up to 1,000), so it costs what they cost. Read at
/// start: after an import, restart the nodes (docs/operations.md, "Migrate accounts").
async fn unknown_user_hash(store: &SqlStore, hasher: &HashPool) {
    use portcullis_core::ports::AccountImportReads;
    let p = hasher.params();
    let current = format!(
        "$argon2id$v=19$m={},t={},p={}$%",
        p.memory_kib, p.iterations, p.parallelism
    );
    match store.imported_hash_sample(&current, 1_000).await {
        Ok(sample) => {
            let dummy =
                portcullis_crypto::legacy::unknown_user_hash(sample.iter().map(String::as_str));
            if let Some(form) = dummy
                .as_deref()
                .and_then(|d| portcullis_crypto::legacy::parse(d).ok())
            {
                tracing::info!(
                    scheme = form.scheme.as_str(),
                    "unknown User IDs are checked at the cost of the most common imported hash"
                );
            }
            hasher.set_unknown_user_hash(dummy);
        }
        Err(e) => tracing::warn!(error = %e, "could not read the imported accounts' hash forms"),
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
