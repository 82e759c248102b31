//! Messages per destination: what an anonymous request (forgot User ID, forgot password)
//! can make the service send is limited per phone number or email address, and texts per
//! country prefix and in all, *before* the message reaches the SMS gateway's own quotas.
//! Those quotas stay above these limits (`Config::policies` caps them below), so strangers
//! can use up only their own allowance and never the owner's: a sign-in code the owner
//! asks for after their password never passes through here.
//!
//! Each limit is a throttle bucket (one atomic statement, [`crate::ports::Claims`]) keyed by
//! a keyed hash of the destination, so no phone number or address is stored in clear for
//! it. A message is claimed on every bucket or none: a refusal gives back the places taken
//! before it.
//!
//! The keyed buckets are counted under **every** key of the registry keyring
//! (docs/design/keys.md, "The registry key"): after a rotation each message takes a place
//! under the old key's buckets, which carry the count from before it, and under the new
//! key's, which start from the rotation; once the longest window (a day) has passed since
//! the rotation, the new key's buckets hold the whole count and the old key is needed no
//! more for them.

use portcullis_crypto::KeyedHasher;

use super::Portcullis;
use crate::clock::UnixTime;
use crate::contact::{country_prefix, CodeChannel};
use crate::throttle;
use crate::ServiceError;

const DESTINATION_DOMAIN: &str = "portcullis/destination/v1";
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// The bucket keys of one destination, as (bucket, window, limit).
pub(crate) fn destination_buckets(
    keys: &KeyedHasher,
    policy: &throttle::ThrottlePolicy,
    channel: CodeChannel,
    to: &str,
) -> Vec<(String, i64, u32)> {
    let normalised = match channel {
        CodeChannel::Email => to.trim().to_lowercase(),
        CodeChannel::Sms => to.trim().to_owned(),
    };
    let digest = keys.hash(
        DESTINATION_DOMAIN,
        &[channel.as_str().as_bytes(), normalised.as_bytes()],
    );
    let id: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let mut buckets = vec![
        (
            format!("dest-hour:{id}"),
            HOUR,
            policy.per_destination_per_hour,
        ),
        (
            format!("dest-day:{id}"),
            DAY,
            policy.per_destination_per_day,
        ),
    ];
    if channel == CodeChannel::Sms {
        buckets.push((
            format!("texts-prefix:{}", country_prefix(&normalised)),
            DAY,
            policy.texts_per_prefix_per_day,
        ));
        buckets.push((
            "texts-anonymous".to_owned(),
            DAY,
            policy.anonymous_texts_per_day,
        ));
    }
    buckets
}

impl Portcullis {
    /// The buckets of one destination under every key of the registry ring, the current
    /// key's first; the buckets that are not keyed (texts per prefix, in all) once.
    fn destination_buckets_every_key(
        &self,
        policy: &throttle::ThrottlePolicy,
        channel: CodeChannel,
        to: &str,
    ) -> Vec<(String, i64, u32)> {
        let mut out: Vec<(String, i64, u32)> = Vec::new();
        for (_, key) in self.registry_keys() {
            for bucket in destination_buckets(&key, policy, channel, to) {
                if !out.iter().any(|b| b.0 == bucket.0) {
                    out.push(bucket);
                }
            }
        }
        out
    }

    /// Claims a place for one message an anonymous request causes to `to`: `None` when it
    /// may go, `Some(retry_after)` when a limit is reached (then nothing stays claimed).
    pub(crate) async fn destination_claim(
        &self,
        channel: CodeChannel,
        to: &str,
        now: UnixTime,
    ) -> Result<Option<u64>, ServiceError> {
        let policy = self.policies.throttle;
        if !policy.enabled {
            return Ok(None);
        }
        let buckets = self.destination_buckets_every_key(&policy, channel, to);
        let mut taken: Vec<&str> = Vec::with_capacity(buckets.len());
        for (bucket, window, limit) in &buckets {
            match self
                .ports
                .claims
                .throttle_claim(bucket, now, *window, *limit)
                .await?
            {
                None => taken.push(bucket),
                Some(window_start) => {
                    for bucket in taken {
                        if let Err(e) = self.ports.claims.throttle_release(bucket).await {
                            tracing::warn!(error = %e, "destination release failed");
                        }
                    }
                    tracing::info!(
                        channel = channel.as_str(),
                        limit = bucket.split(':').next().unwrap_or_default(),
                        "message to a destination held back: its limit for anonymous requests \
                         is reached"
                    );
                    return Ok(Some(throttle::retry_after(window_start, *window, now.0)));
                }
            }
        }
        Ok(None)
    }

    /// Gives back the places of a message that was claimed but not sent after all.
    pub(crate) async fn destination_release(&self, channel: CodeChannel, to: &str) {
        let policy = self.policies.throttle;
        if !policy.enabled {
            return;
        }
        for (bucket, _, _) in self.destination_buckets_every_key(&policy, channel, to) {
            if let Err(e) = self.ports.claims.throttle_release(&bucket).await {
                tracing::warn!(error = %e, "destination release failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    #[test]
    fn destinations_are_keyed_and_never_in_clear() {
        let keys = KeyedHasher::new(Zeroizing::new([7; 32]));
        let policy = throttle::ThrottlePolicy::default();
        let sms = destination_buckets(&keys, &policy, CodeChannel::Sms, "+15555550100");
        assert_eq!(sms.len(), 4);
        assert!(sms.iter().all(|(b, _, _)| !b.contains("5555550100")));
        assert_eq!(sms[2].0, "texts-prefix:+1");
        let email = destination_buckets(&keys, &policy, CodeChannel::Email, "Ann@Example.com");
        assert_eq!(email.len(), 2, "emails are limited per address only");
        assert!(email.iter().all(|(b, _, _)| !b.contains("example")));
        assert_eq!(
            email,
            destination_buckets(&keys, &policy, CodeChannel::Email, "ann@example.com")
        );
        let other = KeyedHasher::new(Zeroizing::new([8; 32]));
        assert_ne!(
            email,
            destination_buckets(&other, &policy, CodeChannel::Email, "ann@example.com"),
            "keyed: another key gives other buckets"
        );
    }
}
