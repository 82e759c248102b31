//! Card and merchant credentials: the card number (PAN), the card ID (CID), the merchant
//! number and the merchant verification code. None of them prints its value in `Debug`.

use std::fmt;

use zeroize::Zeroizing;

use crate::ids::AccountType;

/// A card number: 13 to 19 digits passing the Luhn check. Spaces and dashes are ignored.
#[derive(Clone)]
pub struct CardNumber(Zeroizing<String>);

impl CardNumber {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let digits = digits_only(input).ok_or("A card number has only digits.")?;
        if digits.is_empty() {
            return Err("Enter the card number.");
        }
        if digits.len() < 13 || digits.len() > 19 {
            return Err("A card number has 13 to 19 digits.");
        }
        if !luhn_valid(&digits) {
            return Err("This card number is not valid. Check the digits on your card.");
        }
        Ok(Self(digits))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> String {
        let d = self.0.as_str();
        d.get(d.len().saturating_sub(4)..).unwrap_or("").to_owned()
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(••••{})", self.last4())
    }
}

/// The 3- or 4-digit card ID printed on the card.
#[derive(Clone)]
pub struct CardId(Zeroizing<String>);

impl CardId {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim();
        if s.is_empty() {
            return Err("Enter the card ID.");
        }
        if !(3..=4).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err("The card ID is the 3 or 4 digits printed on your card.");
        }
        Ok(Self(Zeroizing::new(s.to_owned())))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardId(•••)")
    }
}

/// A merchant number: 8 to 15 digits.
#[derive(Clone)]
pub struct MerchantNumber(Zeroizing<String>);

impl MerchantNumber {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let digits = digits_only(input).ok_or("A merchant number has only digits.")?;
        if digits.is_empty() {
            return Err("Enter the merchant number.");
        }
        if digits.len() < 8 || digits.len() > 15 {
            return Err("A merchant number has 8 to 15 digits.");
        }
        Ok(Self(digits))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> String {
        let d = self.0.as_str();
        d.get(d.len().saturating_sub(4)..).unwrap_or("").to_owned()
    }
}

impl fmt::Debug for MerchantNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MerchantNumber(••••{})", self.last4())
    }
}

/// The merchant verification code: 4 to 8 letters or digits, case-insensitive.
#[derive(Clone)]
pub struct MerchantCode(Zeroizing<String>);

impl MerchantCode {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim();
        if s.is_empty() {
            return Err("Enter the verification code.");
        }
        if !(4..=8).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("The verification code is 4 to 8 letters or digits.");
        }
        Ok(Self(Zeroizing::new(s.to_ascii_uppercase())))
    }

    pub fn value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MerchantCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MerchantCode(•••)")
    }
}

/// What a person presents to prove they hold a registry record.
#[derive(Clone, Debug)]
pub enum Credential {
    Card {
        number: CardNumber,
        card_id: CardId,
    },
    Merchant {
        number: MerchantNumber,
        code: MerchantCode,
    },
}

impl Credential {
    /// Parses the number and verification fields for `account_type`, naming the field that
    /// failed.
    pub fn parse(
        account_type: AccountType,
        number: &str,
        verification: &str,
    ) -> Result<Self, Vec<crate::FieldError>> {
        let mut errors = Vec::new();
        let cred = if account_type.uses_cards() {
            let n = CardNumber::parse(number)
                .map_err(|m| errors.push(crate::FieldError::new("number", m)))
                .ok();
            let v = CardId::parse(verification)
                .map_err(|m| errors.push(crate::FieldError::new("verification", m)))
                .ok();
            n.zip(v)
                .map(|(number, card_id)| Credential::Card { number, card_id })
        } else {
            let n = MerchantNumber::parse(number)
                .map_err(|m| errors.push(crate::FieldError::new("number", m)))
                .ok();
            let v = MerchantCode::parse(verification)
                .map_err(|m| errors.push(crate::FieldError::new("verification", m)))
                .ok();
            n.zip(v)
                .map(|(number, code)| Credential::Merchant { number, code })
        };
        cred.ok_or(errors)
    }

    /// The keyed-hash domain and value that identify the record.
    pub fn number_material(&self) -> (&'static str, &str) {
        match self {
            Credential::Card { number, .. } => (NUMBER_DOMAIN_CARD, number.digits()),
            Credential::Merchant { number, .. } => (NUMBER_DOMAIN_MERCHANT, number.digits()),
        }
    }

    /// The verification value (card ID or merchant code).
    pub fn verification_value(&self) -> &str {
        match self {
            Credential::Card { card_id, .. } => card_id.digits(),
            Credential::Merchant { code, .. } => code.value(),
        }
    }
}

/// Keyed-hash domains. The verification hash is bound to the number, so two cards with the
/// same card ID do not share a hash.
pub const NUMBER_DOMAIN_CARD: &str = "portcullis/card-number/v1";
pub const NUMBER_DOMAIN_MERCHANT: &str = "portcullis/merchant-number/v1";
pub const VERIFICATION_DOMAIN: &str = "portcullis/verification/v1";

fn digits_only(input: &str) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(input.len()));
    for c in input.trim().chars() {
        match c {
            '0'..='9' => out.push(c),
            ' ' | '-' => {}
            _ => return None,
        }
    }
    Some(out)
}

/// The Luhn (mod 10) check over a string of ASCII digits.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// The digit that makes `payload` (ASCII digits) followed by it pass the Luhn check.
pub fn luhn_check_digit(payload: &str) -> u32 {
    // The check digit takes the last place, so doubling starts at the payload's last digit.
    let mut sum = 0u32;
    for (i, b) in payload.bytes().rev().enumerate() {
        let mut d = u32::from(b.wrapping_sub(b'0'));
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    (10 - sum % 10) % 10
}

/// `payload` (ASCII digits) followed by its Luhn check digit: card numbers for generated
/// registries, benchmarks and tests.
pub fn with_luhn_check_digit(payload: &str) -> String {
    format!("{payload}{}", luhn_check_digit(payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_payload_with_its_check_digit_passes_luhn(payload in "[0-9]{1,18}") {
            let number = with_luhn_check_digit(&payload);
            prop_assert!(luhn_valid(&number));
            // Any other last digit fails.
            let last = luhn_check_digit(&payload);
            let other = format!("{payload}{}", (last + 1) % 10);
            prop_assert!(!luhn_valid(&other));
        }
    }

    #[test]
    fn well_known_test_numbers_pass_luhn() {
        for n in [
            "378282246310005",
            "371449635398431",
            "4111111111111111",
            "5555555555554444",
        ] {
            assert!(luhn_valid(n), "{n}");
            assert!(CardNumber::parse(n).is_ok());
        }
        assert!(!luhn_valid("378282246310006"));
        assert!(CardNumber::parse("3782 822463 10005").is_ok());
        assert!(CardNumber::parse("3782-822463-10005").is_ok());
    }

    #[test]
    fn card_number_errors_are_specific() {
        assert_eq!(CardNumber::parse("").unwrap_err(), "Enter the card number.");
        assert!(CardNumber::parse("37828224631000x")
            .unwrap_err()
            .contains("only digits"));
        assert!(CardNumber::parse("123456789012")
            .unwrap_err()
            .contains("13 to 19"));
        assert!(CardNumber::parse("378282246310006")
            .unwrap_err()
            .contains("not valid"));
    }

    #[test]
    fn debug_never_shows_the_number() {
        let n = CardNumber::parse("378282246310005").unwrap();
        let s = format!("{n:?}");
        assert!(!s.contains("3782822463"));
        assert!(s.contains("0005"));
        let c = CardId::parse("1234").unwrap();
        assert!(!format!("{c:?}").contains("1234"));
    }

    #[test]
    fn card_id_is_three_or_four_digits() {
        assert!(CardId::parse("123").is_ok());
        assert!(CardId::parse("1234").is_ok());
        assert!(CardId::parse("12").is_err());
        assert!(CardId::parse("12345").is_err());
        assert!(CardId::parse("12a").is_err());
    }

    #[test]
    fn credential_names_each_bad_field() {
        let errs = Credential::parse(AccountType::Personal, "1234", "1").unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["number", "verification"]);
        assert!(Credential::parse(AccountType::Merchant, "12345678", "AB12").is_ok());
    }

    /// Appends the Luhn check digit to a payload (reference implementation for the property).
    fn with_check_digit(payload: &str) -> String {
        for d in 0..10 {
            let candidate = format!("{payload}{d}");
            if luhn_valid(&candidate) {
                return candidate;
            }
        }
        unreachable!()
    }

    proptest! {
        #[test]
        fn exactly_one_check_digit_is_valid(payload in "[0-9]{12,18}") {
            let valid: Vec<u32> = (0..10).filter(|d| luhn_valid(&format!("{payload}{d}"))).collect();
            prop_assert_eq!(valid.len(), 1);
            prop_assert!(CardNumber::parse(&with_check_digit(&payload)).is_ok());
        }

        #[test]
        fn single_digit_errors_are_caught(payload in "[0-9]{12,18}", pos in 0usize..19, delta in 1u8..10) {
            let good = with_check_digit(&payload);
            let pos = pos % good.len();
            let mut bytes = good.clone().into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            prop_assert!(!luhn_valid(&String::from_utf8(bytes).unwrap()));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = CardNumber::parse(&s);
            let _ = CardId::parse(&s);
            let _ = MerchantNumber::parse(&s);
            let _ = MerchantCode::parse(&s);
        }
    }
}
