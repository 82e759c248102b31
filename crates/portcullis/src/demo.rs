//! Demo registry records: well-known test card numbers (published by card networks for
//! testing; they can never be charged) with made-up holders.

use portcullis_core::clock::UnixTime;
use portcullis_core::ports::Store;
use portcullis_core::ports::StoreResult;
use portcullis_core::registry::{RawRecord, RegistryRecord};
use portcullis_crypto::KeyRing;

/// A demo card, as printed at start.
pub struct DemoCard {
    pub account_type: &'static str,
    pub number: &'static str,
    pub verification: &'static str,
    pub holder: &'static str,
    pub product: &'static str,
}

pub static DEMO_CARDS: [DemoCard; 5] = [
    DemoCard {
        account_type: "personal",
        number: "378282246310005",
        verification: "1234",
        holder: "Ann Example",
        product: "Platinum Card",
    },
    DemoCard {
        account_type: "personal",
        number: "371449635398431",
        verification: "5678",
        holder: "Ben Sample",
        product: "Gold Card",
    },
    DemoCard {
        account_type: "corporate",
        number: "378734493671000",
        verification: "2468",
        holder: "Cara Corporate",
        product: "Corporate Green Card",
    },
    DemoCard {
        account_type: "merchant",
        number: "1234567890",
        verification: "SHOP42",
        holder: "Corner Coffee Ltd",
        product: "Merchant Services",
    },
    // Ann's second card: "link another card" (flow 9) needs one of the same holder.
    DemoCard {
        account_type: "personal",
        number: "5555555555554444",
        verification: "321",
        holder: "Ann Example",
        product: "Blue Cash Card",
    },
];

impl DemoCard {
    /// The account type in the product's words (what the sign-in page offers).
    pub fn account_type_name(&self) -> &'static str {
        match self.account_type {
            "merchant" => "Merchant Account",
            "corporate" => "at Work",
            _ => "Card – My Account",
        }
    }

    /// One line for the start-up banner: the type, then what step 1 of registration asks.
    pub fn describe(&self) -> String {
        let (number, verification) = if self.account_type == "merchant" {
            ("merchant number", "verification code")
        } else {
            ("card number", "card ID")
        };
        format!(
            "{:<17} {:<11}  {number} {}  {verification} {}  ({}, {})",
            self.account_type_name(),
            format!("({})", self.account_type),
            self.number,
            self.verification,
            self.holder,
            self.product
        )
    }
}

/// The first demo card of each account type, in the sign-in page's order.
pub fn one_of_each_type() -> impl Iterator<Item = &'static DemoCard> {
    ["personal", "merchant", "corporate"]
        .into_iter()
        .filter_map(|kind| DEMO_CARDS.iter().find(|c| c.account_type == kind))
}

fn raw(card: &DemoCard, index: usize) -> RawRecord {
    let uses_card = card.account_type != "merchant";
    RawRecord {
        account_type: card.account_type.into(),
        number: card.number.into(),
        verification: card.verification.into(),
        expiry: if uses_card {
            "2029-08".into()
        } else {
            String::new()
        },
        holder_name: card.holder.into(),
        email: format!(
            "{}@example.com",
            card.holder
                .split(' ')
                .next()
                .unwrap_or("demo")
                .to_lowercase()
        ),
        phone: format!("+1555010010{index}"),
        product: card.product.into(),
        balance: if uses_card {
            format!("{}.{:02}", 1234 + index * 311, (index * 37) % 100)
        } else {
            String::new()
        },
        credit_limit: if uses_card {
            "15000.00".into()
        } else {
            String::new()
        },
        payment_due_date: if uses_card {
            "2026-12-20".into()
        } else {
            String::new()
        },
        minimum_due: if uses_card {
            "35.00".into()
        } else {
            String::new()
        },
        ..RawRecord::default()
    }
}

/// Loads the demo records (an upsert, so starting the demo twice is harmless), under the
/// registry keyring's current key (a record under an old key is moved, like an import).
pub async fn load(
    store: &dyn Store,
    keys: &KeyRing,
    audit: &portcullis_core::audit::ChainKey,
    now: UnixTime,
) -> StoreResult<()> {
    let mut records = Vec::new();
    for (i, card) in DEMO_CARDS.iter().enumerate() {
        match RegistryRecord::parse(&raw(card, i)) {
            Ok(r) => records.push(r.hashed_under(keys)),
            Err(errors) => {
                return Err(portcullis_core::ports::StoreError::Internal(format!(
                    "demo record {i} is invalid: {errors:?}"
                )))
            }
        }
    }
    let mut import = store.begin_import(now).await?;
    import.upsert(&records).await?;
    import.commit(audit).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_shows_one_card_of_each_account_type() {
        let lines: Vec<String> = one_of_each_type().map(DemoCard::describe).collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("(personal) ") && lines[0].contains("card ID 1234"));
        assert!(lines[1].contains("(merchant) ") && lines[1].contains("verification code SHOP42"));
        assert!(lines[2].contains("(corporate) ") && lines[2].contains("card ID 2468"));
    }

    #[test]
    fn demo_records_are_valid() {
        for (i, c) in DEMO_CARDS.iter().enumerate() {
            assert!(RegistryRecord::parse(&raw(c, i)).is_ok(), "{}", c.holder);
        }
    }
}
