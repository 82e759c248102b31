//! `Idempotency-Key`s for the API's requests that create something (issue 16): a client
//! whose connection broke after it sent a registration cannot know whether the account was
//! made, and retrying it blindly would meet its own consumed step (410) or its own account
//! (409). With a key, the first request keeps the key, a hash of the request and its answer
//! in the same unit of work as the account, so either both are committed or neither; a
//! retry with the same key and request gets the same answer without being applied again,
//! and the same key with another request is refused. Keys are kept a day
//! ([`super::sweep::IDEMPOTENCY_KEY_KEPT_SECS`]), far longer than a registration step
//! lives.

use portcullis_crypto::ct_eq;

use super::{ClientInfo, Portcullis, Registration};
use crate::ids::UserId;
use crate::ports::KeptAnswer;
use crate::ServiceError;

/// The longest `Idempotency-Key` kept (the registry push API allows the same).
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 200;

/// The scope a registration's key is kept under (a key names one request of one kind).
const REGISTRATION: &str = "registration";

/// A key to keep with the answer, in the write's own unit of work.
#[derive(Clone, Copy)]
pub(crate) struct Keep<'a> {
    pub scope: &'static str,
    pub key: &'a str,
    pub request_hash: &'a [u8; 32],
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
    let mut bytes = Vec::new();
    let mut field = |b: &[u8]| {
        bytes.extend_from_slice(&(b.len() as u64).to_be_bytes());
        bytes.extend_from_slice(b);
    };
    field(input.token.as_bytes());
    field(input.user_id.as_bytes());
    field(input.password.as_bytes());
    for (question, answer) in input.security_answers {
        field(&question.to_be_bytes());
        field(answer.as_bytes());
    }
    field(input.code_channel.as_bytes());
    portcullis_crypto::sha256(&bytes)
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
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX_LEN {
            return Err(ServiceError::field(
                "Idempotency-Key",
                "Use 1 to 200 visible ASCII characters.",
            ));
        }
        let request_hash = registration_hash(&input);
        if let Some(kept) = self
            .ports
            .steps
            .find_idempotency_key(REGISTRATION, key)
            .await?
        {
            return replay(kept, &request_hash);
        }
        let keep = Keep {
            scope: REGISTRATION,
            key,
            request_hash: &request_hash,
        };
        match self.register_account(input, client, Some(keep)).await {
            Ok(user_id) => Ok(Keyed::Applied(user_id)),
            Err(e) => {
                // A request with the same key may have committed while this one ran (a retry
                // sent before the first answered): then this one failed on the first's
                // account or consumed step, and the first's answer is the answer.
                match self
                    .ports
                    .steps
                    .find_idempotency_key(REGISTRATION, key)
                    .await
                {
                    Ok(Some(kept)) => replay(kept, &request_hash),
                    _ => Err(e),
                }
            }
        }
    }
}
