//! Flow 9: linking more cards of the same holder (card number + card ID, checked against
//! the registry exactly like registration and throttled with its card checks), and
//! unlinking one, never the last.

use portcullis_crypto::ct_eq;

use super::signin::contact_message;
use super::{ClientInfo, Portcullis, SessionContext};
use crate::audit::{AuditEvent, AuditKind};
use crate::card::Credential;
use crate::ports::{AccountRow, CardSummary, Outgoing, Unlink};
use crate::registry::credential_hashes;
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
        let account = self
            .store
            .account_by_id(ctx.account_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let credential = Credential::parse(account.account_type, number, verification)
            .map_err(ServiceError::Invalid)?;
        // Failed card checks are throttled like registration's (the same bucket).
        let throttle = self
            .throttle_claim(ThrottleAction::CardCheck, client)
            .await?;
        let (number_hash, verification_hash) = credential_hashes(&self.keys, &credential);
        let record = match self.store.find_record(&number_hash).await? {
            Some(r)
                if ct_eq(&r.verification_hash, &verification_hash)
                    && r.account_type == account.account_type =>
            {
                r
            }
            _ => {
                self.audit(
                    AuditEvent::new(AuditKind::CardVerificationFailed, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail("linking a card: details not recognised"),
                )
                .await;
                return Err(ServiceError::CardNotRecognised);
            }
        };
        let linked = self.store.linked_records(account.id).await?;
        let holder = holder_key(&record.holder_name);
        if !linked.iter().any(|r| holder_key(&r.holder_name) == holder) {
            // Counts as a failed check: the bucket place is not given back.
            self.audit(
                AuditEvent::new(AuditKind::CardVerificationFailed, Some(account.id))
                    .ip(client.ip.as_deref())
                    .detail(format!(
                        "linking a card: ••••{} is another holder's",
                        record.last4
                    )),
            )
            .await;
            return Err(ServiceError::field(
                "number",
                "This card is not in the name of this online account's holder. Each \
                 cardmember needs an online account of their own.",
            ));
        }
        self.throttle_release(throttle).await;
        if record.account_id.is_some() {
            return Err(ServiceError::CardAlreadyRegistered);
        }
        let now = self.clock.now();
        let notice = self.card_notice(
            &account,
            format!(
                "The card ending {} was linked to your online account {}.",
                record.last4, account.user_id
            ),
        );
        if !self
            .store
            .link_card(account.id, record.id, now, &notice)
            .await?
        {
            return Err(ServiceError::CardAlreadyRegistered);
        }
        self.notifier.wake();
        self.audit(
            AuditEvent::new(AuditKind::CardLinked, Some(account.id))
                .ip(client.ip.as_deref())
                .detail(format!("card ••••{}", record.last4)),
        )
        .await;
        self.store
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
        let account = self
            .store
            .account_by_id(ctx.account_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let Some(record) = self
            .store
            .linked_records(account.id)
            .await?
            .into_iter()
            .find(|r| r.id == card)
        else {
            return Ok(Unlink::NotLinked);
        };
        let notice = self.card_notice(
            &account,
            format!(
                "The card ending {} was unlinked from your online account {}.",
                record.last4, account.user_id
            ),
        );
        let outcome = self
            .store
            .unlink_card(account.id, card, self.clock.now(), &notice)
            .await?;
        if outcome == Unlink::Unlinked {
            self.notifier.wake();
            self.audit(
                AuditEvent::new(AuditKind::CardUnlinked, Some(account.id))
                    .ip(client.ip.as_deref())
                    .detail(format!("card ••••{}", record.last4)),
            )
            .await;
        }
        Ok(outcome)
    }

    fn card_notice(&self, account: &AccountRow, what: String) -> Vec<Outgoing> {
        let issuer = &self.policies.issuer_name;
        contact_message(
            account,
            format!("Your {issuer} cards changed"),
            format!(
                "{what} If this was not you, call {} at once.",
                self.policies.support_phone
            ),
        )
        .map(|m| Self::outgoing(account, m))
        .into_iter()
        .collect()
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
