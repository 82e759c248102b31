//! `Idempotency-Key`s for the API's requests that create something (issue 16): a client
//! whose connection broke after it sent a registration cannot know whether the account was
//! made, and retrying it blindly would meet its own consumed step (410) or its own account
//! (409); an operator's tool retrying an incident it posted would post it twice. With a key, the first request keeps the key, a hash of the request and its answer
//! in the same unit of work as the account, so either both are committed or neither; a
//! retry with the same key and request gets the same answer without being applied again,
//! and the same key with another request is refused. Keys are kept a day
//! ([`super::sweep::IDEMPOTENCY_KEY_KEPT_SECS`]), far longer than a registration step
//! lives.

use portcullis_crypto::ct_eq;

use super::status::{require_status_write, IncidentInput};
use super::{ClientInfo, Portcullis, Registration};
use crate::ids::UserId;
use crate::ports::{IdempotencyKeep as Keep, IncidentRow, KeptAnswer};
use crate::support::SupportAuthority;
use crate::ServiceError;

/// The longest `Idempotency-Key` kept (the registry push API allows the same).
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 200;

/// The scope a registration's key is kept under: `registration:` + SHA-256 of the
/// registration token (hex), so a key names one request of one client; another client using
/// the same key is a separate key, and no one without the token can probe or block it.
fn registration_scope(token: &str) -> String {
    format!(
        "registration:{}",
        hex(&portcullis_crypto::sha256(token.as_bytes()))
    )
}

/// The scope of a status incident's key (`POST /admin/status/incidents`): `incident:` +
/// SHA-256 of the actor (the admin token's or operator's name), so one admin's keys neither
/// block nor are answered to another's.
fn incident_scope(authority: &SupportAuthority) -> String {
    format!(
        "incident:{}",
        hex(&portcullis_crypto::sha256(authority.actor().as_bytes()))
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a request with an `Idempotency-Key` got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keyed<T> {
    /// Applied now.
    Applied(T),
    /// Applied before under this key, with this request: the answer kept then.
    Replayed(T),
    /// The key was used with another request: nothing was applied.
    KeyConflict,
}

/// A hash of everything a registration request says, each field length-prefixed so no two
/// requests share one. It includes the password, but also the registration token's 256
/// random bits, so the hash tells nothing about the password.
fn registration_hash(input: &Registration<'_>) -> [u8; 32] {
    let questions: Vec<[u8; 8]> = input
        .security_answers
        .iter()
        .map(|(q, _)| q.to_be_bytes())
        .collect();
    let mut fields: Vec<&[u8]> = vec![
        input.token.as_bytes(),
        input.user_id.as_bytes(),
        input.password.as_bytes(),
    ];
    for (q, (_, answer)) in questions.iter().zip(input.security_answers) {
        fields.push(q);
        fields.push(answer.as_bytes());
    }
    fields.push(input.code_channel.as_bytes());
    fields_hash(&fields)
}

/// Each field length-prefixed, hashed.
fn fields_hash(fields: &[&[u8]]) -> [u8; 32] {
    let mut bytes = Vec::new();
    for f in fields {
        bytes.extend_from_slice(&(f.len() as u64).to_be_bytes());
        bytes.extend_from_slice(f);
    }
    portcullis_crypto::sha256(&bytes)
}

/// An incident post's hash: who posts it (another operator reusing a key is refused, never
/// answered with someone else's incident) and everything it says.
fn incident_hash(authority: &SupportAuthority, input: &IncidentInput) -> [u8; 32] {
    let time =
        |t: Option<crate::clock::UnixTime>| t.map_or(Vec::new(), |t| t.0.to_be_bytes().to_vec());
    fields_hash(&[
        authority.actor().as_bytes(),
        input.kind.as_bytes(),
        input.title.as_bytes(),
        input.message.as_bytes(),
        input.state.as_deref().unwrap_or("").as_bytes(),
        &time(input.starts_at),
        &time(input.ends_at),
    ])
}

fn check_key(key: &str) -> Result<(), ServiceError> {
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX_LEN {
        return Err(ServiceError::field(
            "Idempotency-Key",
            "Use 1 to 200 visible ASCII characters.",
        ));
    }
    Ok(())
}

fn replay(kept: KeptAnswer, request_hash: &[u8; 32]) -> Result<Keyed<UserId>, ServiceError> {
    if !ct_eq(&kept.request_hash, request_hash) {
        return Ok(Keyed::KeyConflict);
    }
    let user_id = UserId::parse(&kept.response)
        .map_err(|_| ServiceError::Internal("a kept registration answer is no User ID".into()))?;
    Ok(Keyed::Replayed(user_id))
}

impl Portcullis {
    /// Registration step 2 ([`Self::complete_registration`]) under an `Idempotency-Key`.
    pub async fn complete_registration_keyed(
        &self,
        input: Registration<'_>,
        client: &ClientInfo,
        key: &str,
    ) -> Result<Keyed<UserId>, ServiceError> {
        check_key(key)?;
        // The per-address limit before the key is looked up: a replay counts like any call.
        self.claim_registration_complete(client).await?;
        let request_hash = registration_hash(&input);
        let scope = registration_scope(input.token);
        if let Some(kept) = self.ports.steps.find_idempotency_key(&scope, key).await? {
            return replay(kept, &request_hash);
        }
        let keep = Keep {
            scope: &scope,
            key,
            request_hash: &request_hash,
        };
        match self.register_account(input, client, Some(keep)).await {
            Ok(user_id) => Ok(Keyed::Applied(user_id)),
            Err(e) => {
                // A request with the same key may have committed while this one ran (a retry
                // sent before the first answered): then this one failed on the first's
                // account or consumed step, and the first's answer is the answer.
                match self.ports.steps.find_idempotency_key(&scope, key).await {
                    Ok(Some(kept)) => replay(kept, &request_hash),
                    _ => Err(e),
                }
            }
        }
    }

    /// Posting a status incident ([`Self::create_incident`]) under an `Idempotency-Key`:
    /// a replay answers with the incident the first request made, as it is now.
    pub async fn create_incident_keyed(
        &self,
        authority: &SupportAuthority,
        input: IncidentInput,
        key: &str,
    ) -> Result<Keyed<IncidentRow>, ServiceError> {
        // Who may post is checked before a key is looked at: no one else learns of keys.
        require_status_write(authority)?;
        check_key(key)?;
        let request_hash = incident_hash(authority, &input);
        let scope = incident_scope(authority);
        if let Some(kept) = self.ports.steps.find_idempotency_key(&scope, key).await? {
            return self.incident_replay(kept, &request_hash).await;
        }
        let keep = Keep {
            scope: &scope,
            key,
            request_hash: &request_hash,
        };
        match self.post_incident(authority, input, Some(keep)).await {
            Ok(row) => Ok(Keyed::Applied(row)),
            Err(e) => match self.ports.steps.find_idempotency_key(&scope, key).await {
                // A copy of this request committed first (its key blocked this one's).
                Ok(Some(kept)) => self.incident_replay(kept, &request_hash).await,
                _ => Err(e),
            },
        }
    }

    async fn incident_replay(
        &self,
        kept: KeptAnswer,
        request_hash: &[u8; 32],
    ) -> Result<Keyed<IncidentRow>, ServiceError> {
        if !ct_eq(&kept.request_hash, request_hash) {
            return Ok(Keyed::KeyConflict);
        }
        let id: i64 = kept
            .response
            .parse()
            .map_err(|_| ServiceError::Internal("a kept incident answer is no id".into()))?;
        let row = self
            .ports
            .status
            .incident_by_id(id)
            .await?
            .ok_or_else(|| ServiceError::Internal("a kept incident is gone".into()))?;
        Ok(Keyed::Replayed(row))
    }
}
