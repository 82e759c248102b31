//! Flow 9: linking more cards of the same holder (card number + card ID, checked against
//! the registry exactly like registration, throttled with its card checks and limited per
//! card with them), and unlinking one, never the last. A card that cannot be linked here
//! answers exactly as a wrong card ID does; its holder is told.

use portcullis_crypto::ct_eq;

use super::card_guard::CardCheck;
use super::sessions::SessionContext;
use super::{ClientInfo, Portcullis};
use crate::audit::{AuditEvent, AuditKind};
use crate::card::Credential;
use crate::card_guard::Verdict;
use crate::ports::{AccountRow, CardSummary, Outgoing, Unlink};
use crate::throttle::ThrottleAction;
use crate::ServiceError;

/// A holder's name as compared: case, spacing and punctuation do not count.
fn holder_key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

impl Portcullis {
    /// Links the card with `number` and `verification` (card ID, or a merchant's code) to
    /// the signed-in account: it must be in the registry, of the account's type, in the
    /// same holder's name, and not back another online account.
    pub async fn link_card(
        &self,
        ctx: &SessionContext,
        number: &str,
        verification: &str,
        client: &ClientInfo,
    ) -> Result<CardSummary, ServiceError> {
        let now = self.clock.now();
        let account = self.session_account(ctx).await?;
        let credential = Credential::parse(account.account_type, number, verification)
            .map_err(ServiceError::Invalid)?;
        // Failed card checks are throttled like registration's (the same bucket), and wrong
        // card IDs count on the card itself, whichever flow they come through.
        let throttle = self
            .throttle_claim(ThrottleAction::CardCheck, client, now)
            .await?;
        let found = self.find_card(&credential).await?;
        let verification_hash = found.verification_hash;
        // Not active at the issuer, or replaced by a reissue: the unknown card's path.
        let Some(record) = found.record.as_ref().filter(|r| r.usable()).cloned() else {
            self.audit_alone(
                now,
                AuditEvent::new(AuditKind::CardVerificationFailed, Some(account.id))
                    .ip(client.ip.as_deref())
                    .detail(super::registration::unusable_detail(
                        "linking a card",
                        found.record.as_ref(),
                    )),
            )
            .await;
            return Err(ServiceError::CardNotRecognised);
        };
        // Whether a right card ID could be linked here, decided from the record and the
        // account alone (the same reads whatever the card ID): one that cannot (another
        // account type, another holder's card, a card with an online account) is answered
        // as a wrong one (no card-ID oracle) and the card's holder is told.
        let linked = self.ports.registry.linked_records(account.id).await?;
        let holder = holder_key(&record.holder_name);
        let own = record.account_id == Some(account.id);
        let unusable = if own {
            None
        } else if record.account_type != account.account_type {
            Some("to link it to an online account of another type")
        } else if !linked.iter().any(|r| holder_key(&r.holder_name) == holder) {
            Some("to link it to another person's online account")
        } else if record.account_id.is_some() {
            Some("to link it to a second online account")
        } else {
            None
        };
        let claim = self.card_claim(record.id, now).await?;
        let right = ct_eq(&record.verification_hash, &verification_hash);
        let check = CardCheck {
            flow: "linking a card",
            account_id: Some(account.id),
            ip: client.ip.as_deref(),
        };
        if self
            .card_checked(&record, claim, right, unusable, check, now)
            .await?
            != Verdict::Accepted
        {
            return Err(ServiceError::CardNotRecognised);
        }
        // Already this account's card: nothing to hide from its own holder.
        if own {
            self.throttle_release(throttle).await;
            return Err(ServiceError::CardAlreadyRegistered);
        }
        self.throttle_release(throttle).await;
        let mut work = self.begin(now);
        if !work.link_card(account.id, record.id).await? {
            // Linked elsewhere meanwhile: the same answer as any card that cannot be used.
            return Err(ServiceError::CardNotRecognised);
        }
        // A card under an old registry key moves to the current one (its number is here).
        self.move_card(&mut work, &record, &found).await?;
        if let Some(notice) = self.card_notice(
            &account,
            format!(
                "The card ending {} was linked to your online account {}.",
                record.last4, account.user_id
            ),
        ) {
            work.send(notice);
        }
        work.audit(
            AuditEvent::new(AuditKind::CardLinked, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!("card ••••{}", record.last4)),
        );
        work.commit().await?;
        self.ports
            .accounts
            .cards_for_account(account.id)
            .await?
            .into_iter()
            .find(|c| c.id == record.id)
            .ok_or_else(|| ServiceError::Internal("a linked card is missing".into()))
    }

    /// Unlinks one of the account's cards, never the last.
    pub async fn unlink_card(
        &self,
        ctx: &SessionContext,
        card: i64,
        client: &ClientInfo,
    ) -> Result<Unlink, ServiceError> {
        let now = self.clock.now();
        let account = self.writable_account(ctx).await?;
        let Some(record) = self
            .ports
            .registry
            .linked_records(account.id)
            .await?
            .into_iter()
            .find(|r| r.id == card)
        else {
            return Ok(Unlink::NotLinked);
        };
        let mut work = self.begin(now);
        let outcome = work.unlink_card(account.id, card).await?;
        if outcome != Unlink::Unlinked {
            return Ok(outcome);
        }
        if let Some(notice) = self.card_notice(
            &account,
            format!(
                "The card ending {} was unlinked from your online account {}.",
                record.last4, account.user_id
            ),
        ) {
            work.send(notice);
        }
        work.audit(
            AuditEvent::new(AuditKind::CardUnlinked, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!("card ••••{}", record.last4)),
        );
        work.commit().await?;
        Ok(outcome)
    }

    fn card_notice(&self, account: &AccountRow, what: String) -> Option<Outgoing> {
        let issuer = &self.policies.issuer_name;
        account.notice(
            format!("Your {issuer} cards changed"),
            format!(
                "{what} If this was not you, call {} at once.",
                self.policies.support_phone
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::holder_key;

    #[test]
    fn holders_compare_without_case_or_punctuation() {
        assert_eq!(holder_key("Ann  Example"), holder_key("ANN EXAMPLE"));
        assert_eq!(holder_key("O'Brien, Ann"), holder_key("OBrien Ann"));
        assert_ne!(holder_key("Ann Example"), holder_key("Ben Sample"));
    }
}
