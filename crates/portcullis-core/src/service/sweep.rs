//! The background sweep, run by the node that holds the scheduled job's lease: rows that
//! have outlived their use are deleted ([`crate::ports::Claims::sweep_expired`]).
//!
//! | rows | deleted when |
//! |---|---|
//! | flow steps | expired |
//! | one-time codes | expired a day ago (their step is long gone: a live step keeps its code for a resend) |
//! | throttle and destination buckets | their window opened more than a day ago (the longest window) |
//! | devices | not seen for 400 days (browsers drop the device cookie by then) |
//! | replaced contact details | older than a "not me" link lives (`mfa.not_me_secs`): nothing can revert to them |
//! | registry push `Idempotency-Key`s | kept 7 days (a retry comes within minutes; issue 17) |
//! | API `Idempotency-Key`s (registration) | kept a day (the registration step lives minutes; issue 16) |
//! | sent webhook deliveries | sent 3 days ago (a receiver de-duplicates within minutes; the counts in `webhooks list` cover the recent past) |
//! | failed webhook deliveries | their event is 30 days old (long enough to see and act on in `webhooks list`) |
//! | OpenID Connect requests, codes, access and refresh tokens | expired a day ago (a refresh token's reuse is detected while it lives; once expired it is refused anyway) |
//! | DPoP proof and client assertion ids | expired (a proof or assertion that old is refused by its time) |

use super::Portcullis;
use crate::ports::{SweepCutoffs, Swept};
use crate::ServiceError;

const DAY: i64 = 86_400;
/// Browsers keep a cookie at most 400 days: a device unseen that long cannot come back.
pub const DEVICE_FORGOTTEN_SECS: i64 = 400 * DAY;
/// How long a registry push's `Idempotency-Key` answers a retry.
pub const PUSH_KEY_KEPT_SECS: i64 = 7 * DAY;
/// How long an API request's `Idempotency-Key` (registration) answers a retry: far longer
/// than the registration step it completes lives, so a retry of a step that could still
/// succeed always finds its answer.
pub const IDEMPOTENCY_KEY_KEPT_SECS: i64 = DAY;
/// How long a sent webhook delivery is kept after it was sent.
pub const WEBHOOK_SENT_KEPT_SECS: i64 = 3 * DAY;
/// How long a given-up webhook delivery is kept after its event (it is given up a day
/// after by default: `webhooks.give_up_after_secs`).
pub const WEBHOOK_FAILED_KEPT_SECS: i64 = 30 * DAY;

impl Portcullis {
    /// Deletes what has expired by now.
    pub async fn sweep_expired(&self) -> Result<Swept, ServiceError> {
        let now = self.clock.now();
        let longest_window = self.policies.throttle.window_secs.max(DAY);
        let swept = self
            .ports
            .claims
            .sweep_expired(SweepCutoffs {
                steps_before: now,
                codes_before: now.plus_secs(-DAY),
                throttle_before: now.plus_secs(-longest_window),
                devices_before: now.plus_secs(-DEVICE_FORGOTTEN_SECS),
                contacts_before: now.plus_secs(-self.policies.mfa.not_me_secs),
                push_keys_before: now.plus_secs(-PUSH_KEY_KEPT_SECS),
                idempotency_keys_before: now.plus_secs(-IDEMPOTENCY_KEY_KEPT_SECS),
                webhooks_sent_before: now.plus_secs(-WEBHOOK_SENT_KEPT_SECS),
                webhooks_failed_before: now.plus_secs(-WEBHOOK_FAILED_KEPT_SECS),
                oidc_before: now.plus_secs(-DAY),
            })
            .await?;
        Ok(swept)
    }
}
