//! The issuer registry: the cards and merchant accounts an issuer has issued, as loaded by
//! the operator. A record is validated here; the store keeps only its keyed hashes.

use portcullis_crypto::keyring::KeyRing;
use portcullis_crypto::KeyedHasher;

use crate::card::{
    CardNumber, Credential, MerchantNumber, NUMBER_DOMAIN_CARD, NUMBER_DOMAIN_MERCHANT,
    VERIFICATION_DOMAIN,
};
use crate::contact::{Email, Phone};
use crate::ids::AccountType;
use crate::money::Money;
use crate::FieldError;

/// The import columns, in the order the contract fixes.
pub const COLUMNS: [&str; 12] = [
    "account_type",
    "number",
    "verification",
    "expiry",
    "holder_name",
    "email",
    "phone",
    "product",
    "balance",
    "credit_limit",
    "payment_due_date",
    "minimum_due",
];

/// The two optional columns that follow a card's life at the issuer (contract: "Registry
/// import columns"); a file or push without them means `active` and no replacement.
pub const OPTIONAL_COLUMNS: [&str; 2] = ["status", "replaces"];

/// A card's status at the issuer. Only an `active` card proves anything online: the others
/// cannot be used to register, link or recover, and answer exactly as an unknown card does
/// (docs/design/cards.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CardStatus {
    #[default]
    Active,
    Blocked,
    LostStolen,
    Closed,
}

impl CardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Blocked => "blocked",
            Self::LostStolen => "lost_stolen",
            Self::Closed => "closed",
        }
    }

    /// A cell's value; empty is `active`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "" | "active" => Some(Self::Active),
            "blocked" => Some(Self::Blocked),
            "lost_stolen" => Some(Self::LostStolen),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// One row as text, before validation; `None` or empty for a missing cell.
#[derive(Clone, Debug, Default)]
pub struct RawRecord {
    pub account_type: String,
    pub number: String,
    pub verification: String,
    pub expiry: String,
    pub holder_name: String,
    pub email: String,
    pub phone: String,
    pub product: String,
    pub balance: String,
    pub credit_limit: String,
    pub payment_due_date: String,
    pub minimum_due: String,
    /// `active` (or empty), `blocked`, `lost_stolen` or `closed`.
    pub status: String,
    /// The number of the card this one replaces, or empty.
    pub replaces: String,
}

/// A validated registry record. Holds the card number and card ID only until it is hashed.
#[derive(Clone, Debug)]
pub struct RegistryRecord {
    pub account_type: AccountType,
    pub credential: Credential,
    pub expiry: Option<String>,
    pub holder_name: String,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub product: String,
    pub balance: Option<Money>,
    pub credit_limit: Option<Money>,
    pub payment_due_date: Option<String>,
    pub minimum_due: Option<Money>,
    pub status: CardStatus,
    /// The number this card replaces, as its keyed-hash material (domain, digits): held
    /// only until it is hashed.
    replaces: Option<ReplacedNumber>,
}

/// The number a card replaces, as its keyed-hash material; never shown by `Debug`.
#[derive(Clone)]
struct ReplacedNumber {
    domain: &'static str,
    digits: String,
}

impl std::fmt::Debug for ReplacedNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplacedNumber(hidden)")
    }
}

/// What the store keeps of a record: keyed hashes instead of the number and card ID.
#[derive(Clone, Debug)]
pub struct HashedRecord {
    pub account_type: AccountType,
    pub number_hash: [u8; 32],
    pub verification_hash: [u8; 32],
    pub last4: String,
    pub expiry: Option<String>,
    pub holder_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub product: String,
    pub balance: Option<i64>,
    pub credit_limit: Option<i64>,
    pub payment_due_date: Option<String>,
    pub minimum_due: Option<i64>,
    /// The registry key id both hashes are under (the ring's current key).
    pub key_id: i64,
    /// The number's HMAC under each other key of the ring: the import moves a row found
    /// under an old key to `key_id` (docs/design/keys.md, "The registry key").
    pub old_number_hashes: Vec<(i64, [u8; 32])>,
    pub status: CardStatus,
    /// The keyed hash of the replaced card's number (as its `number_hash`), current key.
    pub replaces_hash: Option<[u8; 32]>,
    /// The replaced card's number HMAC under each other key of the ring: the import moves
    /// a replaced row still under an old key to `key_id`, so `replaces_hash` finds it.
    pub old_replaces_hashes: Vec<(i64, [u8; 32])>,
}

impl RegistryRecord {
    /// Validates a row, naming every bad column.
    pub fn parse(raw: &RawRecord) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err = |field: &str, msg: &str| errors.push(FieldError::new(field, msg));

        let account_type = AccountType::parse(&raw.account_type);
        if account_type.is_none() {
            err("account_type", "must be personal, merchant or corporate");
        }
        let credential = account_type.and_then(|t| {
            Credential::parse(t, &raw.number, &raw.verification)
                .map_err(|es| {
                    for e in es {
                        err(&e.field, &e.message);
                    }
                })
                .ok()
        });
        let expiry = optional(&raw.expiry);
        if let Some(e) = &expiry {
            if !valid_expiry(e) {
                err("expiry", "must be YYYY-MM");
            }
        } else if account_type.is_some_and(AccountType::uses_cards) {
            err("expiry", "a card record needs its expiry (YYYY-MM)");
        }
        let holder_name = raw.holder_name.trim().to_owned();
        if holder_name.is_empty() || holder_name.chars().count() > 200 {
            err("holder_name", "must be 1 to 200 characters");
        }
        let email = optional(&raw.email).and_then(|s| {
            Email::parse(&s)
                .map_err(|_| err("email", "is not a valid email address"))
                .ok()
        });
        let phone = optional(&raw.phone).and_then(|s| {
            Phone::parse(&s)
                .map_err(|_| err("phone", "must be E.164, like +15550100100"))
                .ok()
        });
        if optional(&raw.email).is_none() && optional(&raw.phone).is_none() {
            err("email", "a record needs an email address or a phone number");
        }
        let product = raw.product.trim().to_owned();
        if product.chars().count() > 200 {
            err("product", "must be at most 200 characters");
        }
        let mut money = |field: &str, value: &str| {
            optional(value).and_then(|s| {
                Money::parse(&s)
                    .map_err(|_| err(field, "must be a decimal amount like 1234.56"))
                    .ok()
            })
        };
        let balance = money("balance", &raw.balance);
        let credit_limit = money("credit_limit", &raw.credit_limit);
        let minimum_due = money("minimum_due", &raw.minimum_due);
        let payment_due_date = optional(&raw.payment_due_date);
        if let Some(d) = &payment_due_date {
            if !valid_date(d) {
                err("payment_due_date", "must be a date YYYY-MM-DD");
            }
        }
        let status = CardStatus::parse(&raw.status).unwrap_or_else(|| {
            err("status", "must be active, blocked, lost_stolen or closed");
            CardStatus::Active
        });
        let replaces = optional(&raw.replaces).and_then(|s| {
            let parsed = match account_type {
                Some(AccountType::Merchant) => MerchantNumber::parse(&s)
                    .map(|n| ReplacedNumber {
                        domain: NUMBER_DOMAIN_MERCHANT,
                        digits: n.digits().to_owned(),
                    })
                    .map_err(|_| "must be the merchant number this one replaces"),
                _ => CardNumber::parse(&s)
                    .map(|n| ReplacedNumber {
                        domain: NUMBER_DOMAIN_CARD,
                        digits: n.digits().to_owned(),
                    })
                    .map_err(|_| {
                        "must be the number (13 to 19 digits) of the card this one replaces"
                    }),
            };
            parsed.map_err(|m| err("replaces", m)).ok()
        });
        if let (Some(old), Some(c)) = (&replaces, &credential) {
            if c.number_material().1 == old.digits {
                err("replaces", "a card cannot replace itself");
            }
        }
        match (account_type, credential) {
            (Some(account_type), Some(credential)) if errors.is_empty() => Ok(Self {
                account_type,
                credential,
                expiry,
                holder_name,
                email,
                phone,
                product,
                balance,
                credit_limit,
                payment_due_date,
                minimum_due,
                status,
                replaces,
            }),
            _ => Err(errors),
        }
    }

    /// The record under one key, taken as key id 1 (a ring of one key).
    pub fn hashed(&self, keys: &KeyedHasher) -> HashedRecord {
        self.hashed_as(keys, 1, &[])
    }

    /// The record under the ring's current key, with the number's HMAC under every old key
    /// (so the import can move a row written under one of them).
    pub fn hashed_under(&self, ring: &KeyRing) -> HashedRecord {
        self.hashed_with(&RecordKeys::of(ring))
    }

    /// The record under `keys.current`, with the number's HMAC under each old key.
    pub fn hashed_with(&self, keys: &RecordKeys) -> HashedRecord {
        self.hashed_as(&keys.current, keys.current_id, &keys.old)
    }

    fn hashed_as(
        &self,
        keys: &KeyedHasher,
        key_id: i64,
        old_keys: &[(i64, KeyedHasher)],
    ) -> HashedRecord {
        let (number_hash, verification_hash) = credential_hashes(keys, &self.credential);
        let (domain, number) = self.credential.number_material();
        let old_number_hashes = old_keys
            .iter()
            .map(|(id, k)| (*id, k.hash(domain, &[number.as_bytes()])))
            .collect();
        let old_replaces_hashes = match &self.replaces {
            Some(r) => old_keys
                .iter()
                .map(|(id, k)| (*id, k.hash(r.domain, &[r.digits.as_bytes()])))
                .collect(),
            None => Vec::new(),
        };
        let last4 = match &self.credential {
            Credential::Card { number, .. } => number.last4(),
            Credential::Merchant { number, .. } => number.last4(),
        };
        HashedRecord {
            account_type: self.account_type,
            number_hash,
            verification_hash,
            last4,
            expiry: self.expiry.clone(),
            holder_name: self.holder_name.clone(),
            email: self.email.as_ref().map(|e| e.as_str().to_owned()),
            phone: self.phone.as_ref().map(|p| p.as_str().to_owned()),
            product: self.product.clone(),
            balance: self.balance.map(|m| m.0),
            credit_limit: self.credit_limit.map(|m| m.0),
            payment_due_date: self.payment_due_date.clone(),
            minimum_due: self.minimum_due.map(|m| m.0),
            key_id,
            old_number_hashes,
            status: self.status,
            replaces_hash: self
                .replaces
                .as_ref()
                .map(|r| keys.hash(r.domain, &[r.digits.as_bytes()])),
            old_replaces_hashes,
        }
    }
}

/// The registry keys a record is hashed under ([`RegistryRecord::hashed_with`]): the
/// keyring's current key and each other one, with their ids.
#[derive(Clone)]
pub struct RecordKeys {
    pub current_id: i64,
    pub current: KeyedHasher,
    pub old: Vec<(i64, KeyedHasher)>,
}

impl RecordKeys {
    /// The keys of `ring`.
    pub fn of(ring: &KeyRing) -> Self {
        Self {
            current_id: i64::from(ring.current_id()),
            current: KeyedHasher::new(ring.current().clone()),
            old: ring
                .old_ids()
                .into_iter()
                .filter_map(|id| {
                    let key = ring.get(id)?;
                    Some((i64::from(id), KeyedHasher::new(key.clone())))
                })
                .collect(),
        }
    }
}

/// The keyed hashes that find a record (`number_hash`) and check its verification value.
pub fn credential_hashes(keys: &KeyedHasher, credential: &Credential) -> ([u8; 32], [u8; 32]) {
    let (domain, number) = credential.number_material();
    let number_hash = keys.hash(domain, &[number.as_bytes()]);
    let verification_hash = keys.hash(
        VERIFICATION_DOMAIN,
        &[&number_hash, credential.verification_value().as_bytes()],
    );
    (number_hash, verification_hash)
}

fn optional(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn valid_expiry(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 7 || b.get(4) != Some(&b'-') {
        return false;
    }
    let (year, month) = (s.get(0..4), s.get(5..7));
    match (
        year.and_then(|y| y.parse::<u16>().ok()),
        month.and_then(|m| m.parse::<u8>().ok()),
    ) {
        (Some(y), Some(m)) => {
            (2000..=2099).contains(&y)
                && (1..=12).contains(&m)
                && s.get(0..4)
                    .is_some_and(|y| y.bytes().all(|c| c.is_ascii_digit()))
        }
        _ => false,
    }
}

fn valid_date(s: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    s.len() == 10 && time::Date::parse(s, &format).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn card_row() -> RawRecord {
        RawRecord {
            account_type: "personal".into(),
            number: "378282246310005".into(),
            verification: "1234".into(),
            expiry: "2029-08".into(),
            holder_name: "Ann Example".into(),
            email: "ann@example.com".into(),
            phone: "+15550100100".into(),
            product: "Gold Card".into(),
            balance: "1234.56".into(),
            credit_limit: "10000".into(),
            payment_due_date: "2026-12-20".into(),
            minimum_due: "35".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_card_row_parses() {
        let r = RegistryRecord::parse(&card_row()).unwrap();
        assert_eq!(r.account_type, AccountType::Personal);
        assert_eq!(r.balance, Some(Money(123_456)));
    }

    #[test]
    fn every_bad_column_is_named() {
        let mut row = card_row();
        row.number = "378282246310006".into();
        row.expiry = "2029-13".into();
        row.phone = "555".into();
        row.balance = "1,234".into();
        row.payment_due_date = "2026-02-30".into();
        let fields: Vec<String> = RegistryRecord::parse(&row)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["number", "expiry", "phone", "balance", "payment_due_date"]
        );
    }

    #[test]
    fn merchants_need_no_expiry() {
        let row = RawRecord {
            account_type: "merchant".into(),
            number: "1234567890".into(),
            verification: "AB12CD".into(),
            holder_name: "Corner Shop".into(),
            email: "shop@example.com".into(),
            ..Default::default()
        };
        assert!(RegistryRecord::parse(&row).is_ok());
    }

    #[test]
    fn hashes_are_keyed_and_bound_to_the_number() {
        let keys = KeyedHasher::new(Zeroizing::new([9; 32]));
        let a = RegistryRecord::parse(&card_row()).unwrap().hashed(&keys);
        let mut other = card_row();
        other.number = "371449635398431".into();
        let b = RegistryRecord::parse(&other).unwrap().hashed(&keys);
        assert_ne!(a.number_hash, b.number_hash);
        // Same card ID, different card: different verification hash.
        assert_ne!(a.verification_hash, b.verification_hash);
        assert_eq!(a.last4, "0005");
    }

    #[test]
    fn status_and_replaces_parse_and_hash_like_a_number() {
        let keys = KeyedHasher::new(Zeroizing::new([9; 32]));
        let old = RegistryRecord::parse(&card_row()).unwrap().hashed(&keys);
        assert_eq!(old.status, CardStatus::Active);
        assert_eq!(old.replaces_hash, None);
        let mut row = card_row();
        row.number = "371449635398431".into();
        row.status = "lost_stolen".into();
        row.replaces = "3782 8224 6310 005".into();
        let new = RegistryRecord::parse(&row).unwrap().hashed(&keys);
        assert_eq!(new.status, CardStatus::LostStolen);
        assert_eq!(new.replaces_hash, Some(old.number_hash));
    }

    #[test]
    fn bad_status_and_replaces_are_named() {
        let mut row = card_row();
        row.status = "stolen".into();
        row.replaces = "378282246310005".into();
        let fields: Vec<String> = RegistryRecord::parse(&row)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["status", "replaces"]);
        row.status = "closed".into();
        row.replaces = "1234".into();
        assert_eq!(
            RegistryRecord::parse(&row).unwrap_err()[0].field,
            "replaces"
        );
    }
}
