//! The card ID limit per card, as the three flows that check a card ID use it
//! (registration, linking a card, forgot password), and support clearing a paused card.
//! The rule is [`crate::card_guard`]; its storage is the store's `card_guard.rs`.
//!
//! Every check goes the same way: claim a try on the card's guard, compare, then
//! [`Portcullis::card_checked`] acts on the verdict — gives the try back (right), audits the
//! wrong one naming the card and the account, or, at the limit, pauses the card and tells
//! the holder at the registry's email or phone, in one unit of work. A paused card answers
//! exactly as a wrong card ID does.

use super::support::reason;
use super::Portcullis;
use crate::audit::{AuditEvent, AuditKind};
use crate::card::{CardNumber, MerchantNumber, NUMBER_DOMAIN_CARD, NUMBER_DOMAIN_MERCHANT};
use crate::card_guard::{verdict, GuardClaim, Verdict};
use crate::clock::UnixTime;
use crate::contact::{self, CodeChannel};
use crate::ports::{Message, Outgoing, RegistryRow};
use crate::support::{SupportAuthority, SupportScope};
use crate::ServiceError;

/// Which flow checked a card ID, and for whom: named in the audit rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CardCheck<'a> {
    /// "registration", "linking a card", "forgot password".
    pub flow: &'static str,
    /// The online account the check concerns (the card's, or the one asking), if any.
    pub account_id: Option<i64>,
    pub ip: Option<&'a str>,
}

/// What support clearing a card did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClearCardOutcome {
    /// The card was paused; it accepts card IDs again and its holder was told.
    Cleared,
    /// The card was not paused; its count of wrong card IDs was cleared.
    NotPaused,
    NoSuchCard,
}

impl Portcullis {
    /// Claims a try on the card's guard, before its card ID is compared.
    pub(crate) async fn card_claim(
        &self,
        record_id: i64,
        now: UnixTime,
    ) -> Result<GuardClaim, ServiceError> {
        Ok(self
            .ports
            .claims
            .card_guard_claim(record_id, now, self.policies.card_guard)
            .await?)
    }

    /// Acts on a card ID check of `record` whose claim was `claim` and whose card ID was
    /// `right`; returns the verdict ([`Verdict::Accepted`] is the only one that may go on).
    ///
    /// `unusable` says why a right card ID cannot be used here (the card already has an
    /// online account, is another holder's, …), decided from the record alone, whatever the
    /// card ID. Such a right card ID is answered and counted exactly as a wrong one — the
    /// same claim, the same one unit of work — and its holder is told instead.
    pub(crate) async fn card_checked(
        &self,
        record: &RegistryRow,
        claim: GuardClaim,
        right: bool,
        unusable: Option<&str>,
        check: CardCheck<'_>,
        now: UnixTime,
    ) -> Result<Verdict, ServiceError> {
        let policy = self.policies.card_guard;
        let v = verdict(claim, right && unusable.is_none(), policy);
        let account = record.account_id.or(check.account_id);
        let failed = |what: String| {
            AuditEvent::new(AuditKind::CardVerificationFailed, account)
                .ip(check.ip)
                .detail(format!("{}: card ••••{}: {what}", check.flow, record.last4))
        };
        let issuer = &self.policies.issuer_name;
        match v {
            Verdict::Accepted => {
                if let Err(e) = self.ports.claims.card_guard_release(record.id).await {
                    tracing::warn!(error = %e, "card guard release failed");
                }
            }
            Verdict::Refused => {
                self.audit_alone(now, failed("paused, card ID not checked".into()))
                    .await;
            }
            Verdict::Wrong { pause } => {
                let n = match claim {
                    GuardClaim::Granted(n) => n,
                    GuardClaim::Refused => 0,
                };
                let mut work = self.begin(now);
                let paused = pause && work.pause_card(record.id).await?;
                match unusable.filter(|_| right) {
                    Some(what) => {
                        work.audit(failed(format!(
                            "right card ID, refused: {what} ({n} of {})",
                            policy.failures
                        )));
                        if let Some(notice) = registry_notice(
                            record,
                            format!("Someone used your {issuer} card details"),
                            format!(
                                "Someone entered the number and card ID of your card ending {} \
                                 and tried {what}. It was refused. If this was you, no action \
                                 is needed. If not, call {} at once: your card details may be \
                                 known to someone else.",
                                record.last4, self.policies.support_phone
                            ),
                        ) {
                            work.send(notice);
                        }
                    }
                    None => work.audit(failed(format!(
                        "wrong card ID ({n} of {})",
                        policy.failures
                    ))),
                }
                if paused {
                    work.audit(
                        AuditEvent::new(AuditKind::CardPaused, account)
                            .ip(check.ip)
                            .detail(format!(
                                "card ••••{} takes no card ID online: {} tries in {} h ({})",
                                record.last4,
                                policy.failures,
                                policy.window_secs / 3600,
                                check.flow
                            )),
                    );
                    if let Some(notice) = registry_notice(
                        record,
                        format!("Someone is trying to guess your {issuer} card ID"),
                        format!(
                            "The card ID of your card ending {} was tried {} times within {} \
                             hours (while {}). To protect you, the card no longer accepts its \
                             card ID online. Your card itself still works. To use it online \
                             again, ask for a code at {}/recover/card (we send it here), or \
                             call {}.",
                            record.last4,
                            policy.failures,
                            policy.window_secs / 3600,
                            check.flow,
                            self.policies.public_url.trim_end_matches('/'),
                            self.policies.support_phone
                        ),
                    ) {
                        work.send(notice);
                    }
                }
                work.commit().await?;
            }
        }
        Ok(v)
    }

    /// Support: the card with `number` accepts card IDs online again (scope
    /// `accounts:unlock`), its count of wrong card IDs forgotten; the holder is told when it
    /// was paused. `reason` is required and kept in the audit log.
    pub async fn support_clear_card(
        &self,
        authority: &SupportAuthority,
        number: &str,
        reason_input: &str,
    ) -> Result<ClearCardOutcome, ServiceError> {
        let now = self.clock.now();
        self.require(authority, SupportScope::AccountsUnlock, now)
            .await?;
        let reason = reason(reason_input)?;
        let number_hash = if let Ok(n) = CardNumber::parse(number) {
            self.keys.hash(NUMBER_DOMAIN_CARD, &[n.digits().as_bytes()])
        } else if let Ok(n) = MerchantNumber::parse(number) {
            self.keys
                .hash(NUMBER_DOMAIN_MERCHANT, &[n.digits().as_bytes()])
        } else {
            return Err(ServiceError::field(
                "number",
                "Enter the card number (13 to 19 digits) or the merchant number.",
            ));
        };
        let Some(record) = self.ports.registry.find_record(&number_hash).await? else {
            return Ok(ClearCardOutcome::NoSuchCard);
        };
        let mut work = self.begin(now);
        let was_paused = work.clear_card_guard(record.id).await?;
        self.card_cleared(&mut work, &record, was_paused, authority, &reason);
        work.commit().await?;
        Ok(if was_paused {
            ClearCardOutcome::Cleared
        } else {
            ClearCardOutcome::NotPaused
        })
    }

    /// The audit events (and, when it was paused, the holder's notice) of clearing a card.
    pub(crate) fn card_cleared(
        &self,
        work: &mut super::Work<'_>,
        record: &RegistryRow,
        was_paused: bool,
        authority: &SupportAuthority,
        reason: &str,
    ) {
        work.audit(
            authority
                .event(AuditKind::SupportAction, record.account_id)
                .detail(format!(
                    "clear card ••••{} ({}): {reason}",
                    record.last4,
                    if was_paused {
                        "was paused"
                    } else {
                        "was not paused"
                    }
                )),
        );
        if !was_paused {
            return;
        }
        work.audit(
            authority
                .event(AuditKind::CardCleared, record.account_id)
                .detail(format!(
                    "card ••••{} accepts its card ID again, by {}",
                    record.last4,
                    authority.actor()
                )),
        );
        let issuer = &self.policies.issuer_name;
        if let Some(notice) = registry_notice(
            record,
            format!("Your {issuer} card works online again"),
            format!(
                "Our customer support team set your card ending {} to accept its card ID \
                 online again. If you did not ask for this, call {} at once.",
                record.last4, self.policies.support_phone
            ),
        ) {
            work.send(notice);
        }
    }
}

/// A notice to the card holder at the registry's email (or phone when there is none).
pub(crate) fn registry_notice(
    record: &RegistryRow,
    subject: String,
    body: String,
) -> Option<Outgoing> {
    let (channel, to) = contact::destination(
        CodeChannel::Email,
        record.email.as_deref(),
        record.phone.as_deref(),
    )?;
    Some(Outgoing::from(Message {
        channel,
        to,
        subject,
        body,
        sensitive: false,
    }))
}
