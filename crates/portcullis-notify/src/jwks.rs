//! Fetches `private_key_jwt` clients' key sets from their `jwks_uri`
//! (`portcullis_core::ports::JwksFetcher`), with the same care as webhook deliveries: no
//! redirects followed, no proxy from the environment, host names resolved to public
//! addresses only ([`PublicOnly`]), one timeout for the whole exchange, and a cap on the
//! body read (the answer is read chunk by chunk and dropped once over the cap).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::oidc::JWKS_MAX_BYTES;
use portcullis_core::ports::{JwksFetchError, JwksFetcher};
use serde_json::Value;

use crate::worker::webhooks::PublicOnly;

/// The `reqwest` client that fetches key sets.
pub struct HttpJwksFetcher {
    client: reqwest::Client,
    max_bytes: usize,
}

impl HttpJwksFetcher {
    /// `timeout` bounds connecting, sending and reading the whole answer. Host names always
    /// resolve to public addresses only: a loopback `jwks_uri` is allowed only as an IP
    /// literal (`oidc.jwks_allow_http_loopback`, checked by `check_jwks_uri` before every
    /// fetch), which the client connects to without resolving, so a name that resolves (or
    /// is rebound) to a loopback address is never fetched, whatever the setting.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PublicOnly {
                allow_loopback: false,
            }))
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent("portcullis-jwks")
            .build()
            .map_err(|e| format!("the JWKS HTTP client: {e}"))?;
        Ok(Self {
            client,
            max_bytes: JWKS_MAX_BYTES,
        })
    }
}

#[async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn fetch_jwks(&self, uri: &str) -> Result<Value, JwksFetchError> {
        let unreachable = |e: reqwest::Error| {
            JwksFetchError::Unreachable(if e.is_timeout() {
                "timed out".into()
            } else {
                e.without_url().to_string()
            })
        };
        let mut res = self
            .client
            .get(uri)
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(unreachable)?;
        // A redirect is not followed: it is an answer like any other non-2xx.
        if !res.status().is_success() {
            return Err(JwksFetchError::Status(res.status().as_u16()));
        }
        let media = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if media != "application/json" && media != "application/jwk-set+json" {
            return Err(JwksFetchError::ContentType);
        }
        if res
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(JwksFetchError::TooLarge(self.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(JwksFetchError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        let doc: Value = serde_json::from_slice(&body).map_err(|_| JwksFetchError::NotJwks)?;
        if !doc.get("keys").is_some_and(Value::is_array) {
            return Err(JwksFetchError::NotJwks);
        }
        Ok(doc)
    }
}
