//! A paused card's own way back (issue 13): the holder asks with the card number, a one-time
//! code goes to the registry's email (or phone) on file for that card, and the code with the
//! right card ID clears the pause and the count of wrong card IDs. Support's clear
//! (`service/card_guard.rs`) stays the other way.
//!
//! Nothing here tells a stranger anything about a card: the first step answers the same for
//! an unknown card number, a card that is not paused and a paused one, after the same claims
//! (the client address's bucket, one destination's limits) and the same statements (a step
//! holding a code's keyed hash, an audit event); only a paused card's holder gets the code.
//! Where no code goes out (not paused, unknown, or the destination has had its share), the
//! step holds the hash of a code nobody was sent, so the second step refuses every code.
//!
//! Every try of the code counts on the step (5); codes go out no more than the destination
//! limits allow (3 an hour and a day), so a card gets few codes to guess. The card ID is
//! checked only after the right code, one card ID per code (the step is used up), and counts
//! on the paused card's own limit ([`crate::card_guard::CardGuard::unpause_claim`]): after
//! `limits.card_id_failures` wrong ones only support clears the card.

use portcullis_crypto::{ct_eq, sha256, Token};
use secrecy::{ExposeSecret, SecretString};

use super::card_guard::registry_notice;
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::card::{
    CardId, CardNumber, MerchantCode, MerchantNumber, NUMBER_DOMAIN_CARD, NUMBER_DOMAIN_MERCHANT,
    VERIFICATION_DOMAIN,
};
use crate::contact::{self, CodeChannel};
use crate::ids::AccountType;
use crate::otp::{self, CodePolicy};
use crate::ports::{Outgoing, RegistryRow};
use crate::steps::StepKind;
use crate::throttle::ThrottleAction;
use crate::ServiceError;

const KIND: StepKind = StepKind::CardUnpause;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What a step holds: the code's keyed hash, the card number's keyed hash (to check the
/// card ID against) and whether the number was typed as a merchant's (the form of the second
/// step's code comes from what the person typed, never from what the registry holds: else a
/// shape error would tell a paused merchant account from an unknown number, for free).
fn step_data(code_hash: &[u8; 32], number_hash: &[u8; 32], merchant: bool) -> String {
    let kind = if merchant { "m" } else { "c" };
    format!("{} {} {kind}", hex(code_hash), hex(number_hash))
}

fn parse_step_data(data: &str) -> Option<([u8; 32], [u8; 32], bool)> {
    let mut parts = data.split(' ');
    let code = unhex32(parts.next()?)?;
    let number = unhex32(parts.next()?)?;
    let merchant = match parts.next()? {
        "m" => true,
        "c" => false,
        _ => return None,
    };
    parts.next().is_none().then_some((code, number, merchant))
}

impl Portcullis {
    /// A paused card's way back, step 1: a code to the registry's contact for the card. The
    /// same answer (a token) and the same work for any card number.
    pub async fn start_card_unpause(
        &self,
        account_type: &str,
        number: &str,
        client: &ClientInfo,
    ) -> Result<SecretString, ServiceError> {
        let now = self.clock.now();
        let account_type = AccountType::parse(account_type).ok_or_else(|| {
            ServiceError::field("account_type", "Choose personal, merchant or corporate.")
        })?;
        let (domain, digits) = if account_type.uses_cards() {
            let n = CardNumber::parse(number).map_err(|m| ServiceError::field("number", m))?;
            (NUMBER_DOMAIN_CARD, n.digits().to_owned())
        } else {
            let n = MerchantNumber::parse(number).map_err(|m| ServiceError::field("number", m))?;
            (NUMBER_DOMAIN_MERCHANT, n.digits().to_owned())
        };
        // Every start counts: it can send a message.
        let _ = self
            .throttle_claim(ThrottleAction::Recovery, client, now)
            .await?;
        // Under every registry key (the card's row may be under an old one); the step keeps
        // the number's HMAC under the row's key, the bucket the one under key 1.
        let bucket_hash = self.keys.hash(domain, &[digits.as_bytes()]);
        let found = self.find_by_number(domain, &digits).await?;
        let number_hash = found.as_ref().map_or(bucket_hash, |(_, _, hash)| *hash);
        let record = found.map(|(row, _, _)| row);
        // The same read for an unknown card (record 0 has no guard row).
        let paused = self
            .ports
            .registry
            .card_paused(record.as_ref().map_or(0, |r| r.id))
            .await?;
        // A card that proves nothing any more (not active at the issuer, or replaced: issue
        // 17) has no way back: it is answered as a card that is not paused.
        let holder = record.filter(|r| paused && r.account_type == account_type && r.usable());
        let destination = holder.as_ref().and_then(|r| {
            contact::destination(CodeChannel::Email, r.email.as_deref(), r.phone.as_deref())
        });
        // One destination's limits either way: the registry's contact of a paused card, or
        // a bucket of the card number typed.
        let held = match &destination {
            Some((channel, to)) => self.destination_claim(*channel, to, now).await?,
            None => {
                self.destination_claim(
                    CodeChannel::Email,
                    &format!("card:{}", hex(&bucket_hash)),
                    now,
                )
                .await?
            }
        };
        let token = Token::generate();
        // A code is made either way; only a paused card's holder is sent it.
        let code = otp::generate();
        let code_hash = self.code_hash(&token.hash, code.expose_secret());
        let send = destination.filter(|_| held.is_none());
        let subject = holder.as_ref().filter(|_| send.is_some());
        let policy = CodePolicy::default();
        let mut work = self.begin(now);
        work.create_step(
            &token.hash,
            KIND,
            subject.map_or(-1, |r| r.id),
            &step_data(&code_hash, &number_hash, !account_type.uses_cards()),
            now.plus_secs(policy.ttl_secs),
        )
        .await?;
        work.audit(match (&holder, &send) {
            (Some(r), Some(_)) => AuditEvent::new(AuditKind::RecoveryStarted, r.account_id)
                .ip(client.ip.as_deref())
                .detail(format!(
                    "paused card ••••{}: code to the registry's contact",
                    r.last4
                )),
            (Some(r), None) => AuditEvent::new(AuditKind::RecoveryStarted, r.account_id)
                .ip(client.ip.as_deref())
                .detail(format!(
                    "paused card ••••{}: no code (the registry's contact has had its share)",
                    r.last4
                )),
            (None, _) => AuditEvent::new(AuditKind::RecoveryStarted, None)
                .ip(client.ip.as_deref())
                .detail("paused card: not a paused card, no code"),
        });
        if let Some((channel, to)) = send {
            self.queue_code(
                &mut work,
                Outgoing::from(self.code_message(channel, to, &code)),
            );
        }
        work.commit().await?;
        Ok(token.secret)
    }

    /// A paused card's way back, step 2: the code, then the right card ID (or merchant
    /// code). The pause and the count of wrong card IDs are cleared, audited, and the
    /// holder told, in one unit of work. One card ID per code.
    pub async fn finish_card_unpause(
        &self,
        token: &str,
        code: &str,
        verification: &str,
        client: &ClientInfo,
    ) -> Result<(), ServiceError> {
        let step_hash = sha256(token.as_bytes());
        let now = self.clock.now();
        let step = self
            .ports
            .steps
            .find_step(&step_hash, KIND, now)
            .await?
            .ok_or(ServiceError::StepExpired)?;
        let (stored_code, number_hash, merchant) =
            parse_step_data(&step.data).ok_or(ServiceError::StepExpired)?;
        // The same read whether or not a code was sent (no record has id 0).
        let record = self
            .ports
            .registry
            .record_by_id(step.subject_id.max(0))
            .await?;
        // Shape errors first: they cost no try.
        let code = otp::normalise(code)
            .ok_or_else(|| ServiceError::field("code", "The code is the 6 digits we sent you."))?;
        let value: String = if merchant {
            MerchantCode::parse(verification)
                .map_err(|m| ServiceError::field("verification", m))?
                .value()
                .to_owned()
        } else {
            CardId::parse(verification)
                .map_err(|m| ServiceError::field("verification", m))?
                .digits()
                .to_owned()
        };
        let throttle = self
            .throttle_claim(ThrottleAction::Recovery, client, now)
            .await?;
        let policy = CodePolicy::default();
        let Some(tries) = self
            .ports
            .claims
            .step_attempt(&step_hash, KIND, policy.max_tries)
            .await?
        else {
            return Err(ServiceError::CodeSpent);
        };
        let right = self.code_matches(&step_hash, &code, &stored_code);
        let Some(record) = record.filter(|_| right) else {
            let left = policy.max_tries.saturating_sub(tries);
            let mut work = self.begin(now);
            work.audit(
                AuditEvent::new(AuditKind::RecoveryCodeFailed, None)
                    .ip(client.ip.as_deref())
                    .detail("paused card: wrong code"),
            );
            if left == 0 {
                work.consume_step(&step_hash, KIND).await?;
            }
            work.commit().await?;
            return Err(if left == 0 {
                ServiceError::CodeSpent
            } else {
                ServiceError::CodeRejected { tries_left: left }
            });
        };
        // The right code: the card ID, counted on the paused card's own limit.
        let card_policy = self.policies.card_guard;
        let claim = self
            .ports
            .claims
            .card_unpause_claim(record.id, card_policy)
            .await?;
        // Under the key the card's row names (moved since the start: no match, start again).
        let key = self.registry_key(record.key_id);
        let candidate = key
            .as_ref()
            .unwrap_or(&self.keys)
            .hash(VERIFICATION_DOMAIN, &[&number_hash, value.as_bytes()]);
        // A card reported (blocked, lost, closed) or replaced since the start proves nothing:
        // its right card ID answers as a wrong one.
        let right =
            key.is_some() && record.usable() && ct_eq(&candidate, &record.verification_hash);
        let mut work = self.begin(now);
        if !work.consume_step(&step_hash, KIND).await? {
            return Err(ServiceError::StepExpired);
        }
        match claim {
            Some(_) if right => {
                let was_paused = work.clear_card_guard(record.id).await?;
                self.card_unpaused(&mut work, &record, was_paused, client);
                work.commit().await?;
                self.throttle_release(throttle).await;
                Ok(())
            }
            Some(n) => {
                work.audit(
                    AuditEvent::new(AuditKind::CardVerificationFailed, record.account_id)
                        .ip(client.ip.as_deref())
                        .detail(format!(
                            "paused card's way back: card ••••{}: wrong card ID ({n} of {})",
                            record.last4, card_policy.failures
                        )),
                );
                if n >= card_policy.failures {
                    if let Some(notice) = registry_notice(
                        &record,
                        format!(
                            "Your {} card needs a call to work online",
                            self.policies.issuer_name
                        ),
                        format!(
                            "A wrong card ID was entered {} times to make your card ending {} \
                             work online again. Only our customer support team can do it now: \
                             call {}.",
                            card_policy.failures, record.last4, self.policies.support_phone
                        ),
                    ) {
                        work.send(notice);
                    }
                }
                work.commit().await?;
                Err(ServiceError::CardNotRecognised)
            }
            None => {
                work.audit(
                    AuditEvent::new(AuditKind::CardVerificationFailed, record.account_id)
                        .ip(client.ip.as_deref())
                        .detail(format!(
                            "paused card's way back: card ••••{}: not checked (no longer paused, \
                             or support only)",
                            record.last4
                        )),
                );
                work.commit().await?;
                Err(ServiceError::CardNotRecognised)
            }
        }
    }

    /// The audit events and the holder's notice of a card the holder cleared.
    fn card_unpaused(
        &self,
        work: &mut super::Work<'_>,
        record: &RegistryRow,
        was_paused: bool,
        client: &ClientInfo,
    ) {
        work.audit(
            AuditEvent::new(AuditKind::CardCleared, record.account_id)
                .ip(client.ip.as_deref())
                .detail(format!(
                    "card ••••{} accepts its card ID again, by the holder: a code to the \
                     registry's contact and the card ID{}",
                    record.last4,
                    if was_paused {
                        ""
                    } else {
                        " (it was no longer paused)"
                    }
                )),
        );
        let issuer = &self.policies.issuer_name;
        if let Some(notice) = registry_notice(
            record,
            format!("Your {issuer} card works online again"),
            format!(
                "Your card ending {} accepts its card ID online again: it was set so with the \
                 code we sent you and the card ID. If you did not do this, call {} at once.",
                record.last4, self.policies.support_phone
            ),
        ) {
            work.send(notice);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_data_round_trips() {
        let (a, b) = ([7u8; 32], [200u8; 32]);
        assert_eq!(
            parse_step_data(&step_data(&a, &b, true)),
            Some((a, b, true))
        );
        assert_eq!(
            parse_step_data(&step_data(&a, &b, false)),
            Some((a, b, false))
        );
        assert_eq!(parse_step_data(""), None);
        assert_eq!(parse_step_data("zz 00"), None);
        assert_eq!(
            parse_step_data(&format!("{} x", step_data(&a, &b, true))),
            None
        );
    }
}
