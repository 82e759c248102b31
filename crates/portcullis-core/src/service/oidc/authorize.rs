//! The authorization endpoint and PAR: a request is checked once (at PAR, or when it
//! arrives at the authorization endpoint of a client not held to FAPI 2.0), kept in the
//! database while the person signs in, and ends in a single-use code sent to the exact
//! registered redirect URI with `state` and `iss` (RFC 9207).

use portcullis_crypto::{sha256, Token};
use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::oidc::{
    amr, AuthRequest, OidcClient, OidcError, RawAuthRequest, CODE_TTL_SECS, LOGIN_TTL_SECS,
    PAR_TTL_SECS, REQUEST_URI_PREFIX,
};
use crate::ports::{NewOidcCode, StoredRequest};
use crate::service::{Portcullis, SessionContext};

use super::client_auth::ClientCredentials;
use super::dpop::DpopProof;

/// A stored request: the checked request; after `prompt=login` or `max_age`, the time the
/// password must have been entered after; once the consent page was shown, the account it
/// was shown to.
#[derive(Serialize, Deserialize)]
pub(super) struct Pending {
    pub(super) request: AuthRequest,
    pub(super) login_after: Option<i64>,
    /// The account the consent page was shown to: only its session may answer it.
    #[serde(default)]
    pub(super) consent_for: Option<i64>,
}

impl Pending {
    /// At the request's arrival at the authorization endpoint: `prompt=login` wants a
    /// password entered after now; `max_age` one entered within that many seconds of now.
    /// Not recomputed on resume (else `max_age=0` could never be met: the sign-in always
    /// precedes the resume).
    fn arrived(mut self, now: UnixTime) -> Self {
        let mut after = self.login_after;
        if self.request.prompt.as_deref() == Some("login") {
            after = Some(after.map_or(now.0, |a| a.max(now.0)));
        }
        if let Some(max_age) = self.request.max_age {
            let since = now.0.saturating_sub(max_age);
            after = Some(after.map_or(since, |a| a.max(since)));
        }
        self.login_after = after;
        self
    }

    /// Without a session, its one answer is the sign-in (no `prompt=none`), and that
    /// answer is this request unchanged: nothing in it depends on when it arrives (no
    /// `prompt=login`, no `max_age`, the only things [`Pending::arrived`] reads).
    fn login_as_is(&self) -> bool {
        self.login_after.is_none()
            && self.consent_for.is_none()
            && self.request.max_age.is_none()
            && matches!(self.request.prompt.as_deref(), None | Some("consent"))
    }

    /// A stored request read back (`None` if it does not parse, as if unknown).
    pub(super) fn of(stored: &StoredRequest) -> Option<Self> {
        serde_json::from_str(&stored.request).ok()
    }
}

/// The stored form of a request's handle; `None` for one no request can have.
pub(super) fn pending_hash(handle: &str) -> Option<[u8; 32]> {
    (!handle.is_empty() && handle.len() <= 128).then(|| sha256(handle.as_bytes()))
}

/// What a code was issued for: the request and how the person signed in (kept with the
/// code; codes stored before `amr` was recorded have none and read as the password).
#[derive(Serialize, Deserialize)]
pub(super) struct IssuedFor {
    #[serde(flatten)]
    pub request: AuthRequest,
    #[serde(default)]
    pub amr: Option<String>,
}

/// Where the browser goes next.
#[derive(Debug)]
pub enum AuthorizeStep {
    /// To the client's registered redirect URI (a code, or an error it may be told).
    Redirect(String),
    /// To the sign-in page, then back to the request (`handle`).
    Login(LoginNeeded),
    /// The person is signed in with the password alone and the request asks for a second
    /// factor (`acr_values`): the second step only (`oidc_second_step`), then back to the
    /// request (`handle`).
    SecondFactor(LoginNeeded),
    /// The request cannot go back to the client (unknown client, unregistered redirect
    /// URI): shown on a page, never redirected.
    Refused(OidcError),
    /// A client not registered first-party, without a grant covering the scopes asked
    /// (or `prompt=consent`): the consent page.
    Consent(ConsentNeeded),
}

/// A request waiting for the person's "Allow" or "Deny".
#[derive(Debug)]
pub struct ConsentNeeded {
    /// Names the stored request; the consent form carries it back.
    pub handle: String,
    /// The client's registered name.
    pub client_name: String,
    /// The scopes asked, as sent.
    pub scopes: Vec<String>,
}

/// A request waiting for a sign-in.
#[derive(Debug)]
pub struct LoginNeeded {
    pub handle: String,
    /// The password must be entered again even with a session (`prompt=login`, `max_age`).
    pub force: bool,
}

pub(super) fn append_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&form_encode(v));
        sep = '&';
    }
    out
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub(crate) fn form_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Portcullis {
    pub(super) fn error_back(
        &self,
        req: &AuthRequest,
        code: &str,
        description: &str,
    ) -> AuthorizeStep {
        let iss = self.oidc_issuer();
        let mut params = vec![("error", code), ("error_description", description)];
        if let Some(state) = &req.state {
            params.push(("state", state));
        }
        params.push(("iss", &iss));
        AuthorizeStep::Redirect(append_query(&req.redirect_uri, &params))
    }

    /// A pushed authorization request (RFC 9126): the client authenticates, the request
    /// is checked in full, and a `request_uri` valid for 60 s and one use is returned. A
    /// DPoP proof sent with it binds the code to its key (RFC 9449 §10.1).
    pub async fn push_authorization(
        &self,
        creds: ClientCredentials,
        raw: RawAuthRequest,
        dpop: Option<DpopProof>,
    ) -> Result<(String, i64), OidcError> {
        let client = self.authenticate_oidc_client(creds).await?;
        if raw
            .client_id
            .as_deref()
            .is_some_and(|id| id != client.client_id)
        {
            return Err(OidcError::invalid_request("client_id does not match"));
        }
        if raw.request_uri.is_some() {
            return Err(OidcError::invalid_request(
                "request_uri is not allowed at PAR",
            ));
        }
        let mut request = raw.check(&client).map_err(|r| r.error)?;
        if let Some(proof) = dpop {
            let jkt = self.check_dpop(&proof, None).await?;
            if request.dpop_jkt.as_ref().is_some_and(|j| *j != jkt) {
                return Err(OidcError::invalid_dpop("dpop_jkt does not match the proof"));
            }
            request.dpop_jkt = Some(jkt);
        }
        if client.fapi2 && request.dpop_jkt.is_none() {
            return Err(OidcError::invalid_request(
                "this client must bind its tokens with DPoP (dpop_jkt or a DPoP proof)",
            ));
        }
        let now = self.oidc_now();
        let pending = Pending {
            request,
            login_after: None,
            consent_for: None,
        };
        let handle = self
            .store_pending(&pending, true, now, PAR_TTL_SECS)
            .await?;
        Ok((format!("{REQUEST_URI_PREFIX}{handle}"), PAR_TTL_SECS))
    }

    async fn store_pending(
        &self,
        pending: &Pending,
        pushed: bool,
        now: UnixTime,
        ttl: i64,
    ) -> Result<String, OidcError> {
        let handle = Token::generate();
        let request = &pending.request;
        let text = serde_json::to_string(pending)
            .map_err(|_| OidcError::new("server_error", "cannot store request", 500))?;
        self.ports
            .oidc
            .put_oidc_request(
                &handle.hash,
                &StoredRequest {
                    client_id: request.client_id.clone(),
                    request: text,
                    pushed,
                    expires_at: UnixTime(now.0 + ttl),
                    login_as_is: pushed && pending.login_as_is(),
                },
                now,
            )
            .await?;
        Ok(handle.expose().to_owned())
    }

    /// A registered client that is not revoked.
    pub(super) async fn live_oidc_client(
        &self,
        client_id: &str,
    ) -> Result<Option<OidcClient>, OidcError> {
        Ok(self
            .ports
            .oidc
            .oidc_client(client_id)
            .await?
            .filter(|c| !c.revoked))
    }

    /// Takes a stored request for one use, with its client if the client is registered
    /// and not revoked: unknown, used or expired is `None`.
    pub(super) async fn take_pending(
        &self,
        handle: &str,
        now: UnixTime,
    ) -> Result<Option<(Pending, Option<OidcClient>)>, OidcError> {
        let Some(hash) = pending_hash(handle) else {
            return Ok(None);
        };
        let Some((stored, client)) = self.ports.oidc.take_oidc_request(&hash, now).await? else {
            return Ok(None);
        };
        Ok(Pending::of(&stored).map(|p| (p, client.filter(|c| !c.revoked))))
    }

    /// The authorization endpoint: `session` is the browser's, when it has one.
    pub async fn authorize(
        &self,
        raw: RawAuthRequest,
        session: Option<SessionContext>,
    ) -> Result<AuthorizeStep, OidcError> {
        let refused = |d| Ok(AuthorizeStep::Refused(OidcError::invalid_request(d)));
        let Some(client_id) = raw.client_id.as_deref().filter(|c| c.len() <= 128) else {
            return refused("client_id is required");
        };
        let now = self.oidc_now();
        let (client, pending) = if let Some(uri) = raw.request_uri.as_deref() {
            let handle = uri.strip_prefix(REQUEST_URI_PREFIX).unwrap_or("");
            if session.is_none() {
                if let Some(login) = self.hand_to_sign_in(handle, client_id, now).await? {
                    return Ok(AuthorizeStep::Login(login));
                }
            }
            // The pushed request and its client in one read.
            match self.take_pending(handle, now).await? {
                Some((p, client)) if p.request.client_id == client_id => match client {
                    Some(c) => (c, p),
                    None => return refused("unknown client"),
                },
                _ => return refused("request_uri is unknown, used or expired"),
            }
        } else {
            let Some(client) = self.live_oidc_client(client_id).await? else {
                return refused("unknown client");
            };
            if client.fapi2 {
                return refused("this client must use pushed authorization requests");
            }
            match raw.check(&client) {
                Ok(request) => (
                    client,
                    Pending {
                        request,
                        login_after: None,
                        consent_for: None,
                    },
                ),
                Err(r) if r.redirect => {
                    // The redirect URI was checked as registered before any redirecting error.
                    let req = AuthRequest {
                        client_id: client.client_id.clone(),
                        redirect_uri: raw.redirect_uri.clone().unwrap_or_default(),
                        scope: String::new(),
                        state: raw.state.clone(),
                        nonce: None,
                        code_challenge: String::new(),
                        prompt: None,
                        max_age: None,
                        dpop_jkt: None,
                        mfa: false,
                    };
                    return Ok(self.error_back(&req, r.error.code, r.error.description));
                }
                Err(r) => return Ok(AuthorizeStep::Refused(r.error)),
            }
        };
        let pending = pending.arrived(now);
        self.continue_authorization(&client, pending, session, now, false)
            .await
    }

    /// A browser without a session, with a pushed request that waits for a sign-in as it
    /// is (`Pending::login_as_is`): the request moves to a new handle for the sign-in in
    /// one statement, where using it and storing it again would take two. What
    /// `continue_authorization` would answer: the sign-in, not forced. `None` when the
    /// request is not such a one (or is unknown, used, expired, another client's, or its
    /// client's is revoked): the caller goes the long way, which tells those apart.
    async fn hand_to_sign_in(
        &self,
        handle: &str,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<LoginNeeded>, OidcError> {
        let Some(old) = pending_hash(handle) else {
            return Ok(None);
        };
        let new = Token::generate();
        let moved = self
            .ports
            .oidc
            .rekey_oidc_request(
                (&old, &new.hash),
                client_id,
                now,
                UnixTime(now.0 + LOGIN_TTL_SECS),
            )
            .await?;
        Ok(moved.then(|| LoginNeeded {
            handle: new.expose().to_owned(),
            force: false,
        }))
    }

    /// Back from the sign-in page: the request kept under `handle`.
    pub async fn resume_authorization(
        &self,
        handle: &str,
        session: Option<SessionContext>,
    ) -> Result<AuthorizeStep, OidcError> {
        let now = self.oidc_now();
        let refused = || {
            Ok(AuthorizeStep::Refused(OidcError::invalid_request(
                "the sign-in took too long; start again from the site you came from",
            )))
        };
        let Some((pending, Some(client))) = self.take_pending(handle, now).await? else {
            return refused();
        };
        self.continue_authorization(&client, pending, session, now, false)
            .await
    }

    /// Sign-in, then consent, then the code. `consented`: the person has just pressed
    /// "Allow" on the consent page for this request.
    pub(super) async fn continue_authorization(
        &self,
        client: &OidcClient,
        pending: Pending,
        session: Option<SessionContext>,
        now: UnixTime,
        consented: bool,
    ) -> Result<AuthorizeStep, OidcError> {
        let req = &pending.request;
        let prompt_none = req.prompt.as_deref() == Some("none");
        let Some(session) = session else {
            if prompt_none {
                return Ok(self.error_back(req, "login_required", "no session"));
            }
            let handle = self
                .store_pending(&pending, false, now, LOGIN_TTL_SECS)
                .await?;
            return Ok(AuthorizeStep::Login(LoginNeeded {
                handle,
                force: false,
            }));
        };
        // Fixed once, when the request arrived (`Pending::arrived`): a sign-in made for this
        // request always satisfies it, however long the sign-in and resume took.
        let login_after = pending.login_after;
        if login_after.is_some_and(|after| session.auth_at.0 < after) {
            if prompt_none {
                return Ok(self.error_back(req, "login_required", "a new sign-in is needed"));
            }
            let handle = self
                .store_pending(&pending, false, now, LOGIN_TTL_SECS)
                .await?;
            return Ok(AuthorizeStep::Login(LoginNeeded {
                handle,
                force: true,
            }));
        }
        if req.mfa && !amr::is_mfa(&session.amr) {
            if prompt_none {
                return Ok(self.error_back(
                    req,
                    "interaction_required",
                    "a second factor is needed",
                ));
            }
            let factors = self.ports.factors.list_factors(session.account_id).await?;
            if !factors.iter().any(|f| f.confirmed) {
                // "OpenID Connect Core Error Code unmet_authentication_requirements 1.0": the
                // request's authentication cannot be met. Setting a factor up is for the
                // security page, not the middle of a relying party's sign-in.
                return Ok(self.error_back(
                    req,
                    "unmet_authentication_requirements",
                    "the account has no second factor set up",
                ));
            }
            let handle = self
                .store_pending(&pending, false, now, LOGIN_TTL_SECS)
                .await?;
            return Ok(AuthorizeStep::SecondFactor(LoginNeeded {
                handle,
                force: false,
            }));
        }
        if !client.first_party && !consented && self.needs_consent(client, req, &session).await? {
            if prompt_none {
                return Ok(self.error_back(req, "consent_required", "consent is needed"));
            }
            let shown = Pending {
                request: pending.request.clone(),
                login_after,
                consent_for: Some(session.account_id),
            };
            let handle = self
                .store_pending(&shown, false, now, LOGIN_TTL_SECS)
                .await?;
            return Ok(AuthorizeStep::Consent(ConsentNeeded {
                handle,
                client_name: client.name.clone(),
                scopes: req
                    .scope
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            }));
        }
        let code = Token::generate();
        let issued = IssuedFor {
            request: req.clone(),
            amr: Some(session.amr.clone()),
        };
        let request_text = serde_json::to_string(&issued)
            .map_err(|_| OidcError::new("server_error", "cannot store code", 500))?;
        self.ports
            .oidc
            .put_oidc_code(NewOidcCode {
                code_hash: code.hash,
                client_id: &client.client_id,
                account_id: session.account_id,
                session_id: session.session_id,
                request: &request_text,
                auth_time: session.auth_at,
                now,
                expires_at: UnixTime(now.0 + CODE_TTL_SECS),
            })
            .await?;
        let iss = self.oidc_issuer();
        let mut params = vec![("code", code.expose())];
        if let Some(state) = &req.state {
            params.push(("state", state));
        }
        params.push(("iss", &iss));
        Ok(AuthorizeStep::Redirect(append_query(
            &req.redirect_uri,
            &params,
        )))
    }
}
