//! The keys a `private_key_jwt` client's assertion is checked against: its registered JWKS
//! document, or the key set fetched from its `jwks_uri` and cached in the database (every
//! node shares it).
//!
//! A cached set is used until it is `ttl_secs` old. A stale set, a missing one, or an
//! assertion naming a `kid` the set lacks (the client rotated its key) asks for a refetch
//! at once, but only the one request that wins the database claim fetches, at most once
//! per client every `refetch_interval_secs` across every node: an attacker sending random
//! `kid`s cannot make us hammer the client's server. When no fetch is made or it fails
//! (down, slow past the timeout, too large, not a JWKS), the cached set is still used
//! until it is `max_age_secs` old; past that the client is `invalid_client` until its
//! server answers again. Nothing here waits longer than the fetcher's timeout.

use serde_json::Value;

use crate::clock::UnixTime;
use crate::oidc::{check_jwks_uri, kid_of, usable_keys, OidcClient, OidcError};
use crate::ports::CachedJwks;
use crate::service::Portcullis;

impl Portcullis {
    /// The usable keys of `client` for an assertion naming `kid` (if it names one).
    pub(super) async fn client_keys(
        &self,
        client: &OidcClient,
        kid: Option<&str>,
        now: UnixTime,
    ) -> Result<Vec<Value>, OidcError> {
        let Some(uri) = client.jwks_uri.as_deref() else {
            return Ok(client.jwks.as_ref().map(usable_keys).unwrap_or_default());
        };
        let policy = self.policies.oidc_jwks;
        let cache = &self.ports.jwks_cache;
        let id = client.client_id.as_str();
        let row = cache.oidc_jwks_cached(id).await?;
        let claimed_at = row.as_ref().map(|r| r.attempted_at);
        let cached = row.and_then(|r| r.set);
        let keys = cached.as_ref().map(|c| usable_keys(&c.jwks));
        let age = |c: &CachedJwks| now.0.saturating_sub(c.fetched_at.0);
        let fresh = cached.as_ref().is_some_and(|c| age(c) < policy.ttl_secs);
        let has_kid = keys.as_ref().is_some_and(|keys| match kid {
            Some(kid) => keys.iter().any(|k| kid_of(k) == Some(kid)),
            None => !keys.is_empty(),
        });
        if let (true, true, Some(keys)) = (fresh, has_kid, &keys) {
            return Ok(keys.clone());
        }
        let not_since = UnixTime(now.0.saturating_sub(policy.refetch_interval_secs));
        // A fetch claimed within the interval (by any node, whether it succeeded or the key
        // server was down) means a claim now would lose: skip the write, so a flood of
        // unknown kids costs reads, not row locks, even while the key server is down.
        let claimed_lately = claimed_at.is_some_and(|at| at.0 > not_since.0);
        if !claimed_lately && cache.claim_oidc_jwks_fetch(id, now, not_since).await? {
            match self
                .fetch_client_jwks(uri, policy.allow_http_loopback)
                .await
            {
                Ok(jwks) => {
                    // Only the usable keys are kept: the cache holds nothing else.
                    let keys = usable_keys(&jwks);
                    let kept = serde_json::json!({ "keys": keys });
                    cache.save_oidc_jwks(id, &kept, now).await?;
                    return Ok(keys);
                }
                Err(why) => {
                    tracing::warn!(client = %id, error = %why, "oidc: the client's jwks_uri could not be fetched");
                }
            }
        }
        // No fetch this time (another request fetched within the interval, perhaps on
        // another node: read what it stored), or it failed: the cached set, if not too old.
        let latest = match cached {
            Some(c) if age(&c) < policy.refetch_interval_secs => Some(c),
            _ => cache.oidc_jwks_cached(id).await?.and_then(|r| r.set),
        };
        match latest {
            Some(c) if age(&c) < policy.max_age_secs => Ok(usable_keys(&c.jwks)),
            _ => Err(OidcError::invalid_client()),
        }
    }

    async fn fetch_client_jwks(&self, uri: &str, allow_loopback: bool) -> Result<Value, String> {
        // The rules may have changed since the client was registered.
        check_jwks_uri(uri, allow_loopback).map_err(str::to_owned)?;
        let fetcher = self
            .jwks_fetcher
            .as_ref()
            .ok_or("no JWKS fetcher is configured")?;
        fetcher.fetch_jwks(uri).await.map_err(|e| e.to_string())
    }
}
