//! The token endpoint (code with PKCE S256, refresh with rotation and reuse detection),
//! ID tokens, userinfo, revocation (RFC 7009) and introspection (RFC 7662). Access and
//! refresh tokens are opaque random values stored as their SHA-256; an access token works
//! only while the session it came from is open.

use portcullis_crypto::{ct_eq, jws, sha256, Token};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::{AuditEvent, AuditKind};
use crate::clock::UnixTime;
use crate::ids::AccountType;
use crate::oidc::{
    amr, ClientAuth, OidcClient, OidcError, ACCESS_TTL_SECS, ID_TOKEN_TTL_SECS, REFRESH_TTL_SECS,
};
use crate::ports::{GrantUse, NewOidcToken, OidcCodeRow, OidcTokenRow, TokenKind};
use crate::service::Portcullis;

use super::authorize::IssuedFor;
use super::client_auth::{claimed_client_id, client_actor, ClientCredentials};
use super::dpop::DpopProof;

/// What the token endpoint read with the client, for the grant the form asks for.
enum GrantRead {
    Code(Option<(OidcCodeRow, bool)>),
    /// The refresh token's hash, and the token.
    Refresh([u8; 32], Option<(OidcTokenRow, bool)>),
    Nothing,
}

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

/// The tokens of one exchange, before they are stored.
struct Minted {
    access: Token,
    refresh: Option<Token>,
}

impl Minted {
    fn new(g: &Grant<'_>) -> Self {
        Minted {
            access: Token::generate(),
            refresh: g
                .scope
                .split(' ')
                .any(|s| s == "offline_access")
                .then(Token::generate),
        }
    }

    fn rows<'a>(&self, g: &'a Grant<'a>, now: UnixTime) -> Vec<NewOidcToken<'a>> {
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
        let mut rows = vec![new(self.access.hash, TokenKind::Access, ACCESS_TTL_SECS)];
        if let Some(refresh) = &self.refresh {
            rows.push(new(refresh.hash, TokenKind::Refresh, REFRESH_TTL_SECS));
        }
        rows
    }

    fn response(&self, g: &Grant<'_>) -> TokenResponse {
        TokenResponse {
            access_token: self.access.expose().to_owned(),
            token_type: if g.jkt.is_some() { "DPoP" } else { "Bearer" },
            expires_in: ACCESS_TTL_SECS,
            refresh_token: self.refresh.as_ref().map(|r| r.expose().to_owned()),
            id_token: None,
            scope: g.scope.to_owned(),
        }
    }
}

/// The audit event of tokens issued for a grant: its scope and how they are bound.
fn grant_event(kind: AuditKind, g: &Grant<'_>) -> AuditEvent {
    let bound = if g.jkt.is_some() {
        "DPoP-bound"
    } else {
        "bearer"
    };
    AuditEvent::new(kind, Some(g.account_id))
        .actor(client_actor(&g.client.client_id))
        .detail(format!("scope {}; {bound}", g.scope))
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
        form: TokenForm,
        dpop: Option<DpopProof>,
    ) -> Result<TokenResponse, OidcError> {
        // The client and the code or refresh token named are read together, before the
        // client is authenticated; nothing about them is used or answered until it is.
        let read_at = self.oidc_now();
        let client_id = claimed_client_id(&creds)?;
        let policy = self.policies.session;
        let named = |t: &Option<String>| {
            t.as_deref()
                .filter(|t| t.len() <= 128)
                .map(|t| sha256(t.as_bytes()))
        };
        let oidc = &self.ports.oidc;
        let (client, read) = match (
            form.grant_type.as_deref(),
            named(&form.code),
            named(&form.refresh_token),
        ) {
            (Some("authorization_code"), Some(hash), _) => {
                let (client, code) = oidc
                    .oidc_client_and_code(&client_id, &hash, policy, read_at)
                    .await?;
                (client, GrantRead::Code(code))
            }
            (Some("refresh_token"), _, Some(hash)) => {
                let (client, token) = oidc
                    .oidc_client_and_token(&client_id, &hash, policy, read_at)
                    .await?;
                (client, GrantRead::Refresh(hash, token))
            }
            _ => (oidc.oidc_client(&client_id).await?, GrantRead::Nothing),
        };
        let client = self
            .authenticate_read_client(creds, &client_id, client)
            .await?;
        // The grant's expiry is judged, and its tokens stamped, once the client is proven
        // (which may have waited for its `jwks_uri`), as before the reads were joined.
        let now = self.oidc_now();
        let jkt = match &dpop {
            Some(proof) => Some(self.check_dpop(proof, None).await?),
            None => None,
        };
        if client.fapi2 && jkt.is_none() {
            return Err(OidcError::invalid_dpop(
                "this client must send a DPoP proof",
            ));
        }
        match (form.grant_type.as_deref(), read) {
            (Some("authorization_code"), GrantRead::Code(row)) => {
                self.code_grant(&client, form, jkt, (row, now)).await
            }
            (Some("refresh_token"), GrantRead::Refresh(hash, row)) => {
                self.refresh_grant(&client, jkt, (hash, row), now).await
            }
            (Some("authorization_code"), _) => Err(OidcError::invalid_grant("code is required")),
            (Some("refresh_token"), _) => {
                Err(OidcError::invalid_grant("refresh_token is required"))
            }
            _ => Err(OidcError::new(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
                400,
            )),
        }
    }

    /// `read`: the code as `oidc_client_and_code` read it (`None`: unknown); `now`: the time
    /// the grant is judged at.
    async fn code_grant(
        &self,
        client: &OidcClient,
        form: TokenForm,
        jkt: Option<String>,
        (read, now): (Option<(OidcCodeRow, bool)>, UnixTime),
    ) -> Result<TokenResponse, OidcError> {
        let bad = OidcError::invalid_grant;
        // Every check runs before the code is used, so a caller that fails one (another
        // client, a wrong verifier or DPoP key) cannot burn someone else's code.
        let (row, session_open) = read.ok_or(bad("unknown code"))?;
        if row.client_id != client.client_id {
            return Err(bad("code was issued to another client"));
        }
        if row.used {
            return Err(self.code_replayed(&row, client, now).await);
        }
        if row.expires_at.0 < now.0 {
            return Err(bad("code expired"));
        }
        let IssuedFor { request: req, amr } = serde_json::from_str(&row.request)
            .map_err(|_| OidcError::new("server_error", "unreadable code", 500))?;
        let amr = amr.unwrap_or_else(|| amr::PASSWORD.to_owned());
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
        if !session_open {
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
        let account_type = row.account_type.ok_or(bad("the account is gone"))?;
        let id_token = self.id_token(&grant, req.nonce.as_deref(), (&amr, account_type), now)?;
        let minted = Minted::new(&grant);
        let tokens = minted.rows(&grant, now);
        let issued = grant_event(AuditKind::OidcTokenIssued, &grant);
        if !self
            .begin(now)
            .use_grant_then_commit(GrantUse::Code(row.id), &tokens, issued)
            .await?
        {
            // Another exchange of the same code won the race: a replay.
            return Err(self.code_replayed(&row, client, now).await);
        }
        let mut response = minted.response(&grant);
        response.id_token = Some(id_token);
        Ok(response)
    }

    /// RFC 6749 §4.1.2: a code used twice revokes what its first use issued. Only the
    /// client the code was issued to gets here (another client's call changes nothing).
    /// The tokens of an exchange are stored in the transaction that uses the code, so once
    /// the use is visible so are they.
    async fn code_replayed(
        &self,
        code: &OidcCodeRow,
        client: &OidcClient,
        now: UnixTime,
    ) -> OidcError {
        let mut work = self.begin(now);
        let revoked = match work.revoke_oidc_code_tokens(code.id).await {
            Ok(n) => n,
            Err(e) => return e.into(),
        };
        work.audit(
            AuditEvent::new(AuditKind::OidcCodeReplayed, Some(code.account_id))
                .actor(client_actor(&client.client_id))
                .detail(format!("{revoked} tokens revoked")),
        );
        if let Err(e) = work.commit().await {
            return e.into();
        }
        tracing::warn!(client = %client.client_id, revoked, "oidc: authorization code replayed");
        OidcError::invalid_grant("code already used")
    }

    /// `read`: the token's hash and the token as `oidc_client_and_token` read it (`None`:
    /// unknown); `now`: the time the grant is judged at.
    async fn refresh_grant(
        &self,
        client: &OidcClient,
        jkt: Option<String>,
        (hash, read): ([u8; 32], Option<(OidcTokenRow, bool)>),
        now: UnixTime,
    ) -> Result<TokenResponse, OidcError> {
        let bad = OidcError::invalid_grant;
        // Every check runs before the token is used (another client or DPoP key cannot
        // burn it); the use and the new tokens are then one transaction. The token and its
        // session's openness were one read, with the client.
        let (row, session_open) = match read {
            Some((r, open)) if r.kind == TokenKind::Refresh && r.client_id == client.client_id => {
                (r, open)
            }
            _ => return Err(bad("unknown refresh token")),
        };
        if row.revoked_at.is_some() {
            return Err(bad("refresh token revoked"));
        }
        if row.dpop_jkt.is_some() && row.dpop_jkt != jkt {
            return Err(OidcError::invalid_dpop(
                "the refresh token is bound to another DPoP key",
            ));
        }
        if row.used_at.is_some() {
            self.refresh_reused(&row, now).await?;
            return Err(bad("refresh token already used"));
        }
        if row.expires_at.0 < now.0 {
            return Err(bad("refresh token expired"));
        }
        if !session_open {
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
        let minted = Minted::new(&grant);
        let tokens = minted.rows(&grant, now);
        let rotated = grant_event(AuditKind::OidcRefreshRotated, &grant);
        if !self
            .begin(now)
            .use_grant_then_commit(GrantUse::Refresh(&hash), &tokens, rotated)
            .await?
        {
            // Used (or revoked) by a concurrent call since it was read.
            let again = self.ports.oidc.oidc_token(&hash).await?;
            if again.as_ref().is_some_and(|r| r.used_at.is_some()) {
                self.refresh_reused(&row, now).await?;
                return Err(bad("refresh token already used"));
            }
            return Err(bad("refresh token revoked"));
        }
        Ok(minted.response(&grant))
    }

    /// A token by its hash, with whether the sign-in session behind it is still open now
    /// (neither idle nor past its absolute lifetime: the same policy as the sign-in
    /// session itself), in one read.
    async fn token_in_session(
        &self,
        hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<(OidcTokenRow, bool)>, OidcError> {
        Ok(self
            .ports
            .oidc
            .oidc_token_in_session(hash, self.policies.session, now)
            .await?)
    }

    /// A refresh token used twice: someone holds a stolen copy. The whole family is
    /// revoked and the session behind it ended.
    async fn refresh_reused(&self, row: &OidcTokenRow, now: UnixTime) -> Result<(), OidcError> {
        let mut work = self.begin(now);
        let n = work.revoke_oidc_family(&row.family).await?;
        work.delete_session(row.session_id).await?;
        work.audit(
            AuditEvent::new(AuditKind::OidcRefreshReused, Some(row.account_id))
                .actor(client_actor(&row.client_id))
                .detail(format!("{n} tokens revoked; session ended")),
        );
        work.commit().await?;
        tracing::warn!(client = %row.client_id, revoked = n, "oidc: refresh token reused; family revoked, session ended");
        Ok(())
    }

    /// The ID token of a code's exchange: `session` is how the person signed in (`amr`)
    /// and the account's type, both read with the code.
    fn id_token(
        &self,
        g: &Grant<'_>,
        nonce: Option<&str>,
        (session_amr, account_type): (&str, AccountType),
        now: UnixTime,
    ) -> Result<String, OidcError> {
        let mut claims = json!({
            "iss": self.oidc_issuer(),
            "sub": self.oidc_subject(g.account_id),
            "aud": g.client.client_id,
            "iat": now.0,
            "exp": now.0 + ID_TOKEN_TTL_SECS,
            "auth_time": g.auth_time.0,
            "amr": amr::claim(session_amr),
            "acr": amr::acr(session_amr),
            "account_type": account_type.as_str(),
        });
        if let (Some(nonce), Value::Object(m)) = (nonce, &mut claims) {
            m.insert("nonce".into(), Value::String(nonce.to_owned()));
        }
        self.oidc_sign(g.client.id_token_alg, "JWT", &claims)
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
        let (row, session_open) = match self
            .token_in_session(&sha256(token.as_bytes()), now)
            .await?
        {
            Some((r, open)) if r.kind == TokenKind::Access => (r, open),
            _ => return Err(bad("unknown token")),
        };
        if row.revoked_at.is_some() || row.expires_at.0 < now.0 {
            return Err(bad("token expired or revoked"));
        }
        match (&row.dpop_jkt, scheme.to_ascii_lowercase().as_str()) {
            (Some(bound), "dpop") => {
                // RFC 9449 §7.1: a resource answers a bad proof with 401 and a challenge.
                let unauthorized = |e: OidcError| match e.status {
                    400 => OidcError { status: 401, ..e },
                    _ => e,
                };
                let proof = dpop.ok_or(unauthorized(OidcError::invalid_dpop(
                    "a DPoP proof is required",
                )))?;
                let jkt = self
                    .check_dpop(&proof, Some(token))
                    .await
                    .map_err(unauthorized)?;
                if jkt != *bound {
                    return Err(bad("the token is bound to another key"));
                }
            }
            (None, "bearer") => {}
            _ => return Err(bad("wrong authorization scheme for this token")),
        }
        if !session_open {
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
        token: &str,
    ) -> Result<(), OidcError> {
        let client = self.authenticate_oidc_client(creds).await?;
        let now = self.oidc_now();
        let hash = sha256(token.as_bytes());
        let Some(row) = self.ports.oidc.oidc_token(&hash).await? else {
            return Ok(());
        };
        if row.client_id != client.client_id {
            return Ok(());
        }
        let mut work = self.begin(now);
        let revoked = match row.kind {
            TokenKind::Refresh => work.revoke_oidc_family(&row.family).await?,
            TokenKind::Access => u64::from(work.revoke_oidc_token(&hash).await?),
        };
        if revoked > 0 {
            work.audit(
                AuditEvent::new(AuditKind::OidcTokenRevoked, Some(row.account_id))
                    .actor(client_actor(&row.client_id))
                    .detail(format!("{} token; {revoked} revoked", row.kind.as_str())),
            );
            work.commit().await?;
        }
        Ok(())
    }

    /// `POST /oidc/introspect` (RFC 7662), for confidential clients only: active only for
    /// the client the token was issued to, while unexpired, unrevoked and its session open.
    pub async fn oidc_introspect(
        &self,
        creds: ClientCredentials,
        token: &str,
    ) -> Result<Value, OidcError> {
        let client = self.authenticate_oidc_client(creds).await?;
        // Introspection is for confidential clients (RFC 7662 §4): a public client, which
        // proves nothing but its id, may not ask.
        if client.auth == ClientAuth::None {
            return Err(OidcError::invalid_client());
        }
        let now = self.oidc_now();
        let inactive = json!({"active": false});
        let Some((row, session_open)) = self
            .token_in_session(&sha256(token.as_bytes()), now)
            .await?
        else {
            return Ok(inactive);
        };
        let live = row.client_id == client.client_id
            && row.revoked_at.is_none()
            && row.expires_at.0 >= now.0
            && (row.kind == TokenKind::Access || row.used_at.is_none())
            && session_open;
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
