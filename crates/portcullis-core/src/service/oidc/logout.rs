//! RP-Initiated Logout 1.0 (issue 15). A relying party sends the browser to the end-session
//! endpoint with, ideally, the ID token it got (`id_token_hint`). With a valid hint whose
//! `sub` is the signed-in person, the session ends at once; without one the person is asked
//! on a page (never a sign-out by a bare cross-site link). The browser then goes to the
//! `post_logout_redirect_uri` only when it is registered, exactly, for the client the
//! request names (by `client_id` or by the hint's `aud`); otherwise to a "signed out" page.
//! Ending the session ends every token issued from it (they are valid only while it is
//! open).

use portcullis_crypto::jws;
use serde::Deserialize;
use serde_json::Value;

use crate::oidc::{OidcClient, OidcError};
use crate::service::{ClientInfo, Portcullis, SessionContext};

use super::authorize::append_query;

/// The end-session request's parameters (query or form).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
    pub ui_locales: Option<String>,
}

/// What the browser sees next.
#[derive(Debug)]
pub enum LogoutStep {
    /// Signed out (or nobody was signed in): to `redirect` when it was registered, else
    /// the "signed out" page.
    Done { redirect: Option<String> },
    /// No valid hint and a session: ask the person. The confirm form carries these back
    /// (checked again when it is posted).
    Confirm {
        client_name: Option<String>,
        client_id: Option<String>,
        post_logout_redirect_uri: Option<String>,
        state: Option<String>,
    },
    /// Shown on a page; nothing signed out, no redirect.
    Refused(OidcError),
}

/// A checked request: the client it names and where to go afterwards.
struct Checked {
    client: Option<OidcClient>,
    redirect: Option<String>,
    /// The hint's `sub`, when a hint was sent and is ours.
    hint_sub: Option<String>,
}

fn refuse(description: &'static str) -> Result<Checked, OidcError> {
    Err(OidcError::invalid_request(description))
}

/// One answer for an unknown or revoked client and for a URI not registered for a real one,
/// so this unauthenticated endpoint tells no one which client ids exist.
const NOT_REGISTERED: &str = "the client or its post_logout_redirect_uri is not registered";

impl Portcullis {
    /// Verifies an ID token we issued: our signature (current or previous key) and our
    /// `iss`. An expired one is accepted, as the specification allows. Its `sub` and `aud`.
    fn check_id_token_hint(&self, hint: &str) -> Option<(String, String)> {
        let jwt = jws::decode(hint).ok()?;
        let jwks = self.oidc_jwks();
        let keys = jwks.get("keys").and_then(Value::as_array)?;
        if !keys.iter().any(|k| jwt.verify(k).is_ok()) {
            return None;
        }
        if jwt.claims.get("iss").and_then(Value::as_str) != Some(self.oidc_issuer().as_str()) {
            return None;
        }
        let sub = jwt.claims.get("sub").and_then(Value::as_str)?.to_owned();
        let aud = match jwt.claims.get("aud")? {
            Value::String(a) => a.clone(),
            Value::Array(list) if list.len() == 1 => list.first()?.as_str()?.to_owned(),
            _ => return None,
        };
        Some((sub, aud))
    }

    async fn check_logout(&self, r: &LogoutRequest) -> Result<Checked, OidcError> {
        let hint = match r.id_token_hint.as_deref() {
            Some(h) => match self.check_id_token_hint(h) {
                Some(found) => Some(found),
                None => return refuse("the id_token_hint is not a valid ID token of ours"),
            },
            None => None,
        };
        let client_id = match (r.client_id.as_deref(), hint.as_ref()) {
            (Some(id), Some((_, aud))) if id != aud => {
                return refuse("client_id does not match the id_token_hint")
            }
            (Some(id), _) => Some(id.to_owned()),
            (None, Some((_, aud))) => Some(aud.clone()),
            (None, None) => None,
        };
        let client = match client_id.as_deref().filter(|c| c.len() <= 128) {
            Some(id) => match self.live_oidc_client(id).await? {
                Some(c) => Some(c),
                None => return refuse(NOT_REGISTERED),
            },
            None if client_id.is_some() => return refuse(NOT_REGISTERED),
            None => None,
        };
        let redirect = match r.post_logout_redirect_uri.as_deref() {
            None => None,
            Some(uri) => match &client {
                Some(c) if c.post_logout_registered(uri) => {
                    let mut params = Vec::new();
                    if let Some(state) = r.state.as_deref().filter(|s| !s.is_empty()) {
                        params.push(("state", state));
                    }
                    Some(append_query(uri, &params))
                }
                Some(_) => return refuse(NOT_REGISTERED),
                None => return refuse("post_logout_redirect_uri needs client_id or id_token_hint"),
            },
        };
        Ok(Checked {
            client,
            redirect,
            hint_sub: hint.map(|(sub, _)| sub),
        })
    }

    /// The end-session endpoint (GET or POST): `session` is the browser's, when it has one.
    pub async fn oidc_end_session(
        &self,
        r: &LogoutRequest,
        session: Option<SessionContext>,
        client_info: &ClientInfo,
    ) -> Result<LogoutStep, OidcError> {
        let checked = match self.check_logout(r).await {
            Ok(c) => c,
            Err(e) if e.status == 503 => return Err(e),
            Err(e) => return Ok(LogoutStep::Refused(e)),
        };
        let Some(session) = session else {
            return Ok(LogoutStep::Done {
                redirect: checked.redirect,
            });
        };
        match &checked.hint_sub {
            Some(sub) if *sub == self.oidc_subject(session.account_id) => {
                self.end_oidc_session(&session, client_info).await?;
                Ok(LogoutStep::Done {
                    redirect: checked.redirect,
                })
            }
            Some(_) => Ok(LogoutStep::Refused(OidcError::invalid_request(
                "the id_token_hint is for someone other than the person signed in",
            ))),
            None => Ok(LogoutStep::Confirm {
                client_name: checked.client.as_ref().map(|c| c.name.clone()),
                client_id: checked.client.map(|c| c.client_id),
                post_logout_redirect_uri: r.post_logout_redirect_uri.clone(),
                state: r.state.clone(),
            }),
        }
    }

    /// The person pressed "Sign out" on the confirmation page (its form is CSRF-checked by
    /// the web layer). The request is checked again; no hint is carried.
    pub async fn oidc_confirm_end_session(
        &self,
        r: &LogoutRequest,
        session: Option<SessionContext>,
        client_info: &ClientInfo,
    ) -> Result<LogoutStep, OidcError> {
        let r = LogoutRequest {
            id_token_hint: None,
            ..r.clone()
        };
        let checked = match self.check_logout(&r).await {
            Ok(c) => c,
            Err(e) if e.status == 503 => return Err(e),
            Err(e) => return Ok(LogoutStep::Refused(e)),
        };
        if let Some(session) = session {
            self.end_oidc_session(&session, client_info).await?;
        }
        Ok(LogoutStep::Done {
            redirect: checked.redirect,
        })
    }

    async fn end_oidc_session(
        &self,
        session: &SessionContext,
        client_info: &ClientInfo,
    ) -> Result<(), OidcError> {
        // A failure is logged and answered 503 by `From<ServiceError> for OidcError`.
        Ok(self.sign_out(session, client_info).await?)
    }
}
