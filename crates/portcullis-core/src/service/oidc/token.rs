//! The token endpoint (code with PKCE S256, refresh with rotation and reuse detection),
//! ID tokens, userinfo, revocation (RFC 7009) and introspection (RFC 7662). Access and
//! refresh tokens are opaque random values stored as their SHA-256; an access token works
//! only while the session it came from is open.

use portcullis_crypto::{ct_eq, jws, sha256, Token};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::UnixTime;
use crate::oidc::{
    AuthRequest, OidcClient, OidcError, ACCESS_TTL_SECS, ID_TOKEN_TTL_SECS, REFRESH_TTL_SECS,
};
use crate::ports::{CodeTake, NewOidcToken, OidcTokenRow, TokenKind};
use crate::service::Portcullis;

use super::client_auth::ClientCredentials;
use super::dpop::DpopProof;

/// The token endpoint's form (client credentials apart).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
}

/// A successful token answer.
#[derive(Debug, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
}

/// What the grant's tokens are issued for.
struct Grant<'a> {
    client: &'a OidcClient,
    family: String,
    code_id: Option<i64>,
    account_id: i64,
    session_id: i64,
    scope: &'a str,
    jkt: Option<String>,
    auth_time: UnixTime,
}

fn verifier_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl Portcullis {
    /// `POST /oidc/token`.
    pub async fn oidc_token(
        &self,
        creds: ClientCredentials,
        endpoint: &str,
        form: TokenForm,
        dpop: Option<DpopProof>,
    ) -> Result<TokenResponse, OidcError> {
        let client = self.authenticate_oidc_client(creds, endpoint).await?;
        let jkt = match &dpop {
            Some(proof) => Some(self.check_dpop(proof, None).await?),
            None => None,
        };
        if client.fapi2 && jkt.is_none() {
            return Err(OidcError::invalid_dpop(
                "this client must send a DPoP proof",
            ));
        }
        match form.grant_type.as_deref() {
            Some("authorization_code") => self.code_grant(&client, form, jkt).await,
            Some("refresh_token") => self.refresh_grant(&client, form, jkt).await,
            _ => Err(OidcError::new(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
                400,
            )),
        }
    }

    async fn code_grant(
        &self,
        client: &OidcClient,
        form: TokenForm,
        jkt: Option<String>,
    ) -> Result<TokenResponse, OidcError> {
        let now = self.oidc_now();
        let bad = OidcError::invalid_grant;
        let code = form
            .code
            .filter(|c| c.len() <= 128)
            .ok_or(bad("code is required"))?;
        let row = match self
            .ports
            .oidc
            .take_oidc_code(&sha256(code.as_bytes()), now)
            .await?
        {
            CodeTake::Taken(row) => row,
            CodeTake::Replayed(row) => {
                // RFC 6749 §4.1.2: a code used twice revokes what its first use issued.
                let n = self.ports.oidc.revoke_oidc_code_tokens(row.id, now).await?;
                tracing::warn!(client = %row.client_id, revoked = n, "oidc: authorization code replayed");
                return Err(bad("code already used"));
            }
            CodeTake::Unknown => return Err(bad("unknown code")),
        };
        if row.client_id != client.client_id {
            return Err(bad("code was issued to another client"));
        }
        if row.expires_at.0 < now.0 {
            return Err(bad("code expired"));
        }
        let req: AuthRequest = serde_json::from_str(&row.request)
            .map_err(|_| OidcError::new("server_error", "unreadable code", 500))?;
        if form.redirect_uri.as_deref() != Some(req.redirect_uri.as_str()) {
            return Err(bad("redirect_uri does not match the authorization request"));
        }
        let verifier = form.code_verifier.unwrap_or_default();
        if !verifier_ok(&verifier)
            || !ct_eq(
                jws::s256(&verifier).as_bytes(),
                req.code_challenge.as_bytes(),
            )
        {
            return Err(bad("PKCE verification failed"));
        }
        if let Some(bound) = &req.dpop_jkt {
            if jkt.as_deref() != Some(bound.as_str()) {
                return Err(OidcError::invalid_dpop(
                    "the code is bound to another DPoP key",
                ));
            }
        }
        if !self.ports.oidc.session_open(row.session_id).await? {
            return Err(bad("the sign-in session has ended"));
        }
        let grant = Grant {
            client,
            family: Token::generate().expose().chars().take(22).collect(),
            code_id: Some(row.id),
            account_id: row.account_id,
            session_id: row.session_id,
            scope: &req.scope,
            jkt,
            auth_time: row.auth_time,
        };
        let mut response = self.issue(&grant, now).await?;
        response.id_token = Some(self.id_token(&grant, req.nonce.as_deref(), now).await?);
        Ok(response)
    }

    async fn refresh_grant(
        &self,
        client: &OidcClient,
        form: TokenForm,
        jkt: Option<String>,
    ) -> Result<TokenResponse, OidcError> {
        let now = self.oidc_now();
        let bad = OidcError::invalid_grant;
        let token = form
            .refresh_token
            .filter(|t| t.len() <= 128)
            .ok_or(bad("refresh_token is required"))?;
        let hash = sha256(token.as_bytes());
        let row = match self.ports.oidc.oidc_token(&hash).await? {
            Some(r) if r.kind == TokenKind::Refresh && r.client_id == client.client_id => r,
            _ => return Err(bad("unknown refresh token")),
        };
        if row.revoked_at.is_some() {
            return Err(bad("refresh token revoked"));
        }
        if row.used_at.is_some() || !self.ports.oidc.use_oidc_refresh(&hash, now).await? {
            self.refresh_reused(&row, now).await?;
            return Err(bad("refresh token already used"));
        }
        if row.expires_at.0 < now.0 {
            return Err(bad("refresh token expired"));
        }
        if row.dpop_jkt.is_some() && row.dpop_jkt != jkt {
            return Err(OidcError::invalid_dpop(
                "the refresh token is bound to another DPoP key",
            ));
        }
        if !self.ports.oidc.session_open(row.session_id).await? {
            return Err(bad("the sign-in session has ended"));
        }
        let grant = Grant {
            client,
            family: row.family.clone(),
            code_id: None,
            account_id: row.account_id,
            session_id: row.session_id,
            scope: &row.scope,
            jkt: row.dpop_jkt.clone(),
            auth_time: row.auth_time,
        };
        self.issue(&grant, now).await
    }

    /// A refresh token used twice: someone holds a stolen copy. The whole family is
    /// revoked and the session behind it ended.
    async fn refresh_reused(&self, row: &OidcTokenRow, now: UnixTime) -> Result<(), OidcError> {
        let n = self.ports.oidc.revoke_oidc_family(&row.family, now).await?;
        let mut work = self.begin(now);
        work.delete_session(row.session_id)
            .await
            .map_err(OidcError::from)?;
        work.commit().await.map_err(|e| {
            tracing::error!(error = %e, "oidc: ending the session of a reused refresh token");
            OidcError::new("temporarily_unavailable", "try again later", 503)
        })?;
        tracing::warn!(client = %row.client_id, revoked = n, "oidc: refresh token reused; family revoked, session ended");
        Ok(())
    }

    async fn issue(&self, g: &Grant<'_>, now: UnixTime) -> Result<TokenResponse, OidcError> {
        let access = Token::generate();
        let new = |hash, kind, ttl| NewOidcToken {
            token_hash: hash,
            kind,
            family: &g.family,
            code_id: g.code_id,
            client_id: &g.client.client_id,
            account_id: g.account_id,
            session_id: g.session_id,
            scope: g.scope,
            dpop_jkt: g.jkt.as_deref(),
            auth_time: g.auth_time,
            now,
            expires_at: UnixTime(now.0 + ttl),
        };
        self.ports
            .oidc
            .put_oidc_token(new(access.hash, TokenKind::Access, ACCESS_TTL_SECS))
            .await?;
        let refresh = if g.scope.split(' ').any(|s| s == "offline_access") {
            let refresh = Token::generate();
            self.ports
                .oidc
                .put_oidc_token(new(refresh.hash, TokenKind::Refresh, REFRESH_TTL_SECS))
                .await?;
            Some(refresh.expose().to_owned())
        } else {
            None
        };
        Ok(TokenResponse {
            access_token: access.expose().to_owned(),
            token_type: if g.jkt.is_some() { "DPoP" } else { "Bearer" },
            expires_in: ACCESS_TTL_SECS,
            refresh_token: refresh,
            id_token: None,
            scope: g.scope.to_owned(),
        })
    }

    async fn id_token(
        &self,
        g: &Grant<'_>,
        nonce: Option<&str>,
        now: UnixTime,
    ) -> Result<String, OidcError> {
        let account = self
            .ports
            .accounts
            .account_by_id(g.account_id)
            .await?
            .ok_or(OidcError::invalid_grant("the account is gone"))?;
        let mut claims = json!({
            "iss": self.oidc_issuer(),
            "sub": self.oidc_subject(g.account_id),
            "aud": g.client.client_id,
            "iat": now.0,
            "exp": now.0 + ID_TOKEN_TTL_SECS,
            "auth_time": g.auth_time.0,
            "amr": ["pwd"],
            "acr": "urn:portcullis:acr:password",
            "account_type": account.account_type.as_str(),
        });
        if let (Some(nonce), Value::Object(m)) = (nonce, &mut claims) {
            m.insert("nonce".into(), Value::String(nonce.to_owned()));
        }
        Ok(self.oidc_signing_key()?.sign("JWT", &claims))
    }

    /// An access token presented to a resource (`userinfo`): `scheme` is `Bearer` or
    /// `DPoP`; a DPoP-bound token presented as Bearer is refused.
    async fn access_token(
        &self,
        scheme: &str,
        token: &str,
        dpop: Option<DpopProof>,
    ) -> Result<OidcTokenRow, OidcError> {
        let bad = OidcError::invalid_token;
        let now = self.oidc_now();
        let row = match self
            .ports
            .oidc
            .oidc_token(&sha256(token.as_bytes()))
            .await?
        {
            Some(r) if r.kind == TokenKind::Access => r,
            _ => return Err(bad("unknown token")),
        };
        if row.revoked_at.is_some() || row.expires_at.0 < now.0 {
            return Err(bad("token expired or revoked"));
        }
        match (&row.dpop_jkt, scheme.to_ascii_lowercase().as_str()) {
            (Some(bound), "dpop") => {
                let proof = dpop.ok_or(OidcError::invalid_dpop("a DPoP proof is required"))?;
                let jkt = self.check_dpop(&proof, Some(token)).await?;
                if jkt != *bound {
                    return Err(bad("the token is bound to another key"));
                }
            }
            (None, "bearer") => {}
            _ => return Err(bad("wrong authorization scheme for this token")),
        }
        if !self.ports.oidc.session_open(row.session_id).await? {
            return Err(bad("the session has ended"));
        }
        Ok(row)
    }

    /// `GET /oidc/userinfo`.
    pub async fn oidc_userinfo(
        &self,
        scheme: &str,
        token: &str,
        dpop: Option<DpopProof>,
    ) -> Result<Value, OidcError> {
        let row = self.access_token(scheme, token, dpop).await?;
        let account = self
            .ports
            .accounts
            .account_by_id(row.account_id)
            .await?
            .ok_or(OidcError::invalid_token("the account is gone"))?;
        let mut out = serde_json::Map::new();
        out.insert(
            "sub".into(),
            Value::String(self.oidc_subject(row.account_id)),
        );
        out.insert(
            "account_type".into(),
            Value::String(account.account_type.as_str().into()),
        );
        let scoped = |s: &str| row.scope.split(' ').any(|x| x == s);
        if let (true, Some(email)) = (scoped("email"), account.email) {
            out.insert("email".into(), Value::String(email));
        }
        if let (true, Some(phone)) = (scoped("phone"), account.phone) {
            out.insert("phone_number".into(), Value::String(phone));
        }
        Ok(Value::Object(out))
    }

    /// `POST /oidc/revoke` (RFC 7009): a refresh token revokes its whole grant. Unknown
    /// tokens and other clients' tokens are answered the same (success, nothing done).
    pub async fn oidc_revoke(
        &self,
        creds: ClientCredentials,
        endpoint: &str,
        token: &str,
    ) -> Result<(), OidcError> {
        let client = self.authenticate_oidc_client(creds, endpoint).await?;
        let now = self.oidc_now();
        let hash = sha256(token.as_bytes());
        if let Some(row) = self.ports.oidc.oidc_token(&hash).await? {
            if row.client_id == client.client_id {
                match row.kind {
                    TokenKind::Refresh => {
                        self.ports.oidc.revoke_oidc_family(&row.family, now).await?;
                    }
                    TokenKind::Access => self.ports.oidc.revoke_oidc_token(&hash, now).await?,
                }
            }
        }
        Ok(())
    }

    /// `POST /oidc/introspect` (RFC 7662): active only for the client the token was issued
    /// to, while unexpired, unrevoked and its session open.
    pub async fn oidc_introspect(
        &self,
        creds: ClientCredentials,
        endpoint: &str,
        token: &str,
    ) -> Result<Value, OidcError> {
        let client = self.authenticate_oidc_client(creds, endpoint).await?;
        let now = self.oidc_now();
        let inactive = json!({"active": false});
        let Some(row) = self
            .ports
            .oidc
            .oidc_token(&sha256(token.as_bytes()))
            .await?
        else {
            return Ok(inactive);
        };
        let live = row.client_id == client.client_id
            && row.revoked_at.is_none()
            && row.expires_at.0 >= now.0
            && (row.kind == TokenKind::Access || row.used_at.is_none())
            && self.ports.oidc.session_open(row.session_id).await?;
        if !live {
            return Ok(inactive);
        }
        let mut out = json!({
            "active": true,
            "client_id": row.client_id,
            "scope": row.scope,
            "sub": self.oidc_subject(row.account_id),
            "iss": self.oidc_issuer(),
            "iat": row.created_at.0,
            "exp": row.expires_at.0,
            "auth_time": row.auth_time.0,
            "token_type": match (row.kind, row.dpop_jkt.is_some()) {
                (TokenKind::Refresh, _) => "refresh_token",
                (TokenKind::Access, true) => "DPoP",
                (TokenKind::Access, false) => "Bearer",
            },
        });
        if let (Some(jkt), Value::Object(m)) = (&row.dpop_jkt, &mut out) {
            m.insert("cnf".into(), json!({ "jkt": jkt }));
        }
        Ok(out)
    }
}
