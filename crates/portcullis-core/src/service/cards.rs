//! Flow 9: linking more cards of the same holder (card number + card ID, checked against
//! the registry exactly like registration and throttled with its card checks), and
//! unlinking one, never the last.

use portcullis_crypto::ct_eq;

use super::sessions::SessionContext;
use super::{ClientInfo, Portcullis};
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
        let now = self.clock.now();
        let account = self.session_account(ctx).await?;
        let credential = Credential::parse(account.account_type, number, verification)
            .map_err(ServiceError::Invalid)?;
        // Failed card checks are throttled like registration's (the same bucket).
        let throttle = self
            .throttle_claim(ThrottleAction::CardCheck, client, now)
            .await?;
        let (number_hash, verification_hash) = credential_hashes(&self.keys, &credential);
        let record = match self.ports.registry.find_record(&number_hash).await? {
            Some(r)
                if ct_eq(&r.verification_hash, &verification_hash)
                    && r.account_type == account.account_type =>
            {
                r
            }
            _ => {
                self.audit_alone(
                    now,
                    AuditEvent::new(AuditKind::CardVerificationFailed, Some(account.id))
                        .ip(client.ip.as_deref())
                        .detail("linking a card: details not recognised"),
                )
                .await;
                return Err(ServiceError::CardNotRecognised);
            }
        };
        let linked = self.ports.registry.linked_records(account.id).await?;
        let holder = holder_key(&record.holder_name);
        if !linked.iter().any(|r| holder_key(&r.holder_name) == holder) {
            // Counts as a failed check: the bucket place is not given back.
            self.audit_alone(
                now,
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
        let mut work = self.begin(now);
        if !work.link_card(account.id, record.id).await? {
            return Err(ServiceError::CardAlreadyRegistered);
        }
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
        let account = self.session_account(ctx).await?;
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
