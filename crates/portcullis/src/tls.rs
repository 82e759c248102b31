//! HTTPS on both listeners (issue 18): rustls with the `ring` provider (no OpenSSL), the
//! certificate chain and key read from PEM files, HTTP/2 and HTTP/1.1 offered by ALPN, and
//! the files reloaded when they change, without a restart.
//!
//! ```text
//!   tls.cert_file + tls.key_file ─► parse, key matches? ─► CertStore (RwLock<Arc<CertifiedKey>>)
//!                                                              │ resolve(): every handshake
//!   every tls.reload_interval_secs: the files' digest changed? ─┘ parse; swap on success;
//!                                     on failure keep serving the old pair and log an error
//! ```
//!
//! A renewal (certbot's deploy hook, cert-manager, a copy by hand) only has to replace the two
//! files. Replacing them one at a time is fine: the pair in between does not match, is logged
//! once and skipped, and the next poll loads the complete pair.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use portcullis_web::metrics::TlsReading;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use crate::serve::Acceptor;

/// `[tls]` in the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key: PKCS#8, RSA (PKCS#1) or SEC1 (EC).
    pub key_file: Option<PathBuf>,
    /// Seconds between two looks at the files for a renewed certificate.
    pub reload_interval_secs: f64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            reload_interval_secs: 5.0,
        }
    }
}

impl TlsConfig {
    /// The certificate and key files, when both are set (the listeners speak HTTPS then).
    pub fn files(&self) -> Option<(&Path, &Path)> {
        Some((self.cert_file.as_deref()?, self.key_file.as_deref()?))
    }

    pub fn enabled(&self) -> bool {
        self.files().is_some()
    }

    /// `http` or `https`, as the listeners speak.
    pub fn scheme(&self) -> &'static str {
        if self.enabled() {
            "https"
        } else {
            "http"
        }
    }

    pub fn reload_interval(&self) -> Duration {
        Duration::try_from_secs_f64(self.reload_interval_secs).unwrap_or(Duration::from_secs(5))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            bail!(
                "tls.cert_file and tls.key_file go together: set both (HTTPS) or neither \
                 (plain HTTP)"
            );
        }
        let s = self.reload_interval_secs;
        if !(s.is_finite() && (0.1..=3600.0).contains(&s)) {
            bail!("tls.reload_interval_secs must be between 0.1 and 3600");
        }
        Ok(())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM chain and key and checks that the key is the certificate's.
pub fn parse_pair(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("tls.cert_file is not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        bail!("tls.cert_file holds no CERTIFICATE block");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| anyhow!("tls.key_file is not a PEM private key (PKCS#8, RSA or SEC1): {e}"))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow!("tls.key_file holds a key this server cannot use: {e}"))?;
    let pair = CertifiedKey::new(chain, signing);
    match pair.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(_)) => bail!(
            "tls.key_file is not the key of the certificate in tls.cert_file (a renewal \
             replaces both)"
        ),
        Err(e) => bail!("tls.cert_file holds a certificate that cannot be used: {e}"),
    }
    Ok(pair)
}

/// Reads both files and checks them as [`parse_pair`] does.
pub fn load_pair(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let (cert_pem, key_pem) = read_pair(cert, key)?;
    parse_pair(&cert_pem, &key_pem)
}

fn read_pair(cert: &Path, key: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let cert_pem = std::fs::read(cert)
        .with_context(|| format!("tls.cert_file = {:?} cannot be read", cert.display()))?;
    let key_pem = std::fs::read(key)
        .with_context(|| format!("tls.key_file = {:?} cannot be read", key.display()))?;
    Ok((cert_pem, key_pem))
}

fn digest(cert_pem: &[u8], key_pem: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert_pem.len() as u64).to_be_bytes());
    h.update(cert_pem);
    h.update(key_pem);
    h.finalize().into()
}

/// The SHA-256 of the served certificate, hex, for the logs.
fn fingerprint(pair: &CertifiedKey) -> String {
    pair.cert
        .first()
        .map(|c| {
            Sha256::digest(c.as_ref())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .unwrap_or_default()
}

/// When the pair's certificate expires (Unix seconds; 0 when it cannot be read).
fn not_after(pair: &CertifiedKey) -> i64 {
    pair.cert
        .first()
        .and_then(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
        .map_or(0, |(_, cert)| cert.validity().not_after.timestamp())
}

/// What a look at the files found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded,
    /// The files changed but do not make a usable pair: the old one is still served.
    Kept(String),
}

/// The pair every handshake is answered with, swapped when the files change.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The digest of the files last looked at (`None`: they could not be read).
    seen: Mutex<Option<[u8; 32]>>,
    not_after: AtomicI64,
    reloads: AtomicU64,
    failures: AtomicU64,
}

impl CertStore {
    /// Loads the pair; an error here stops the start.
    pub fn open(cert_file: &Path, key_file: &Path) -> anyhow::Result<Self> {
        let (cert_pem, key_pem) = read_pair(cert_file, key_file)?;
        let pair = parse_pair(&cert_pem, &key_pem)?;
        tracing::info!(sha256 = %fingerprint(&pair), cert_file = %cert_file.display(), "TLS certificate loaded");
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            not_after: AtomicI64::new(not_after(&pair)),
            current: RwLock::new(Arc::new(pair)),
            seen: Mutex::new(Some(digest(&cert_pem, &key_pem))),
            reloads: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// For `/metrics`: the served certificate's expiry and the reloads so far.
    pub fn reading(&self) -> TlsReading {
        TlsReading {
            not_after_unix: self.not_after.load(Ordering::Relaxed),
            reloads: self.reloads.load(Ordering::Relaxed),
            reload_failures: self.failures.load(Ordering::Relaxed),
        }
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Looks at the files once: loads them when they changed since the last look, keeps the
    /// served pair when they are unreadable or do not make a pair (logged once per change).
    pub fn check(&self) -> Reload {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (cert_pem, key_pem) = match read_pair(&self.cert_file, &self.key_file) {
            Ok(files) => files,
            Err(e) => {
                let why = format!("{e:#}");
                if seen.take().is_some() {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %why, "TLS certificate not reloaded: still serving the previous one");
                }
                return Reload::Kept(why);
            }
        };
        let now = digest(&cert_pem, &key_pem);
        if *seen == Some(now) {
            return Reload::Unchanged;
        }
        *seen = Some(now);
        match parse_pair(&cert_pem, &key_pem) {
            Ok(pair) => {
                tracing::info!(sha256 = %fingerprint(&pair), "TLS certificate reloaded");
                self.not_after.store(not_after(&pair), Ordering::Relaxed);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(pair);
                Reload::Reloaded
            }
            Err(e) => {
                let why = format!("{e:#}");
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %why, "TLS certificate not reloaded: still serving the previous one");
                Reload::Kept(why)
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The TLS side of both listeners: one certificate store, one rustls configuration.
pub struct Tls {
    store: Arc<CertStore>,
    acceptor: tokio_rustls::TlsAcceptor,
    interval: Duration,
}

impl Tls {
    /// `None` without `tls.cert_file` and `tls.key_file`; an error when they do not load.
    pub fn from_config(config: &TlsConfig) -> anyhow::Result<Option<Arc<Self>>> {
        let Some((cert, key)) = config.files() else {
            return Ok(None);
        };
        let store = Arc::new(CertStore::open(cert, key)?);
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        // HTTP/2 first; hyper's auto builder serves whichever the client picked.
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Arc::new(Self {
            store,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            interval: config.reload_interval(),
        })))
    }

    /// Looks at the files every `tls.reload_interval_secs` until aborted.
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let every = self.interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let store = store.clone();
                let _ = tokio::task::spawn_blocking(move || store.check()).await;
            }
        })
    }

    /// For `/metrics`: the served certificate's expiry and the reloads so far.
    pub fn reading(&self) -> TlsReading {
        self.store.reading()
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor(self.acceptor.clone())
    }
}

/// The TLS handshake as the serve loop's [`Acceptor`] (it runs under the header read
/// timeout: a client that never sends a ClientHello is closed then).
pub struct TlsAcceptor(tokio_rustls::TlsAcceptor);

impl Acceptor for TlsAcceptor {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;

    fn accept(
        &self,
        stream: TcpStream,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Io>> + Send + 'static>> {
        Box::pin(self.0.accept(stream))
    }

    fn secure(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
