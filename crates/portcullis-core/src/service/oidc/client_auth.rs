//! Client authentication at the token, PAR, revocation and introspection endpoints:
//! `client_secret_basic`, `private_key_jwt` (RFC 7523, with `aud`, `exp` and `jti` replay
//! checked) and public clients.

use portcullis_crypto::{ct_eq, jws, sha256};
use serde_json::Value;

use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::oidc::{
    kid_of, ClientAuth, OidcClient, OidcError, ASSERTION_MAX_LIFE_SECS, JWT_IAT_WINDOW_SECS,
};
use crate::service::Portcullis;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a request presented to say which client it is.
pub enum ClientCredentials {
    /// HTTP Basic (`client_id:client_secret`, form-urlencoded then base64, RFC 6749 §2.3.1).
    Basic {
        client_id: String,
        secret: String,
    },
    /// `client_assertion` and its type, with the `client_id` of the form when given.
    Assertion {
        client_id: Option<String>,
        assertion_type: Option<String>,
        assertion: String,
    },
    /// Only a `client_id`: a public client.
    Public {
        client_id: String,
    },
    Nothing,
}

impl Portcullis {
    /// Authenticates the calling client (an assertion's `aud` must be the issuer). Every
    /// failure is the same `invalid_client`.
    pub async fn authenticate_oidc_client(
        &self,
        creds: ClientCredentials,
    ) -> Result<OidcClient, OidcError> {
        let client_id = claimed_client_id(&creds)?;
        let client = self.ports.oidc.oidc_client(&client_id).await?;
        self.authenticate_read_client(creds, &client_id, client)
            .await
    }

    /// Authenticates the calling client against `client`, its registration as read for
    /// `client_id` (the id the credentials claim: [`claimed_client_id`]) with what the call
    /// reads beside it.
    pub(super) async fn authenticate_read_client(
        &self,
        creds: ClientCredentials,
        client_id: &str,
        client: Option<OidcClient>,
    ) -> Result<OidcClient, OidcError> {
        let now = self.oidc_now();
        let registered = client.is_some();
        let outcome = self.check_credentials(creds, client, now).await;
        if registered && outcome.as_ref().is_err_and(|e| e.code == "invalid_client") {
            self.client_auth_failed(client_id, now).await;
        }
        outcome
    }

    /// A registered client's failed authentication, audited at most once per client a
    /// minute across every node (the minute is claimed like a one-time JWT id), so a
    /// flood of bad credentials cannot flood the audit chain.
    async fn client_auth_failed(&self, client_id: &str, now: UnixTime) {
        let minute = now.0.div_euclid(60);
        let key = sha256(format!("client-auth-failed\0{client_id}\0{minute}").as_bytes());
        let first = self
            .ports
            .oidc
            .claim_oidc_jti(&key, UnixTime((minute + 1) * 60), now)
            .await;
        if matches!(first, Ok(true)) {
            self.audit_alone(
                now,
                AuditEvent::new(AuditKind::OidcClientAuthFailed, None)
                    .actor(client_actor(client_id))
                    .detail("the first failure of this client in this minute"),
            )
            .await;
        }
    }

    async fn check_credentials(
        &self,
        creds: ClientCredentials,
        client: Option<OidcClient>,
        now: UnixTime,
    ) -> Result<OidcClient, OidcError> {
        match (creds, client) {
            (ClientCredentials::Basic { secret, .. }, client) => {
                // The hash is computed whether or not the client exists: no timing tell.
                let presented = self.oidc_secret_hash(&secret);
                match client {
                    Some(c)
                        if c.auth == ClientAuth::SecretBasic
                            && !c.revoked
                            && c.secret_hash
                                .as_deref()
                                .is_some_and(|h| ct_eq(h, &presented)) =>
                    {
                        Ok(c)
                    }
                    _ => Err(OidcError::invalid_client()),
                }
            }
            (
                ClientCredentials::Assertion {
                    assertion_type,
                    assertion,
                    ..
                },
                Some(c),
            ) if c.auth == ClientAuth::PrivateKeyJwt && !c.revoked => {
                if assertion_type.as_deref() != Some(ASSERTION_TYPE) {
                    return Err(OidcError::invalid_client());
                }
                self.check_assertion(&c, &assertion, now).await?;
                Ok(c)
            }
            (ClientCredentials::Public { .. }, Some(c))
                if c.auth == ClientAuth::None && !c.revoked =>
            {
                Ok(c)
            }
            _ => Err(OidcError::invalid_client()),
        }
    }

    async fn check_assertion(
        &self,
        client: &OidcClient,
        assertion: &str,
        now: UnixTime,
    ) -> Result<(), OidcError> {
        let bad = OidcError::invalid_client;
        let jwt = jws::decode(assertion).map_err(|_| bad())?;
        let claim = |name: &str| jwt.claims.get(name);
        let text = |name: &str| claim(name).and_then(Value::as_str);
        if text("iss") != Some(client.client_id.as_str())
            || text("sub") != Some(client.client_id.as_str())
        {
            return Err(bad());
        }
        // The issuer identifier as the sole audience, a JSON string: never an endpoint URL
        // and never an array (FAPI 2.0 Security Profile 5.3.2.1; draft-ietf-oauth-rfc7523bis:
        // an assertion made for another server's endpoint must not be replayable here).
        let issuer = self.oidc_issuer();
        if !matches!(claim("aud"), Some(Value::String(a)) if *a == issuer) {
            return Err(bad());
        }
        let exp = claim("exp").and_then(Value::as_i64).ok_or(bad())?;
        if exp <= now.0 || exp > now.0 + ASSERTION_MAX_LIFE_SECS + JWT_IAT_WINDOW_SECS {
            return Err(bad());
        }
        if let Some(iat) = claim("iat").and_then(Value::as_i64) {
            if iat > now.0 + JWT_IAT_WINDOW_SECS {
                return Err(bad());
            }
        }
        // The signature last but one (it may need a fetch from the client's jwks_uri), and
        // the `jti` claimed only once the assertion is proven the client's.
        let kid = jwt.header.get("kid").and_then(Value::as_str);
        let keys = self.client_keys(client, kid, now).await?;
        let verified = keys
            .iter()
            .filter(|k| kid.is_none() || kid_of(k) == kid)
            .any(|k| jwt.verify(k).is_ok());
        if !verified {
            return Err(bad());
        }
        let jti = text("jti")
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or(bad())?;
        let key = sha256(format!("assertion\0{}\0{jti}", client.client_id).as_bytes());
        if !self
            .ports
            .oidc
            .claim_oidc_jti(&key, UnixTime(exp), now)
            .await?
        {
            return Err(bad());
        }
        Ok(())
    }
}

/// The client the credentials say the caller is (not yet proven): `invalid_client` when
/// they name none.
pub(super) fn claimed_client_id(creds: &ClientCredentials) -> Result<String, OidcError> {
    let client_id = match creds {
        ClientCredentials::Basic { client_id, .. } | ClientCredentials::Public { client_id } => {
            Some(client_id.clone())
        }
        ClientCredentials::Assertion {
            client_id,
            assertion,
            ..
        } => client_id.clone().or_else(|| {
            jws::decode(assertion).ok().and_then(|u| {
                u.claims
                    .get("iss")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
        }),
        ClientCredentials::Nothing => None,
    };
    client_id
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .ok_or(OidcError::invalid_client())
}

/// Who acts in an OpenID Connect audit entry: the client.
pub(super) fn client_actor(client_id: &str) -> String {
    format!("oidc-client:{client_id}")
}
