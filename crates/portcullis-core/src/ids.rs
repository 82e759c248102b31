//! User IDs and account types.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A User ID: 6 to 32 characters of ASCII letters, digits, `.`, `_`, `-` and `@`. Compared
/// case-insensitively: [`UserId::canonical`] is the lowercase form every lookup uses, while
/// [`UserId::as_str`] keeps the spelling the person chose.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserId {
    display: String,
    canonical: String,
}

pub const USER_ID_MIN: usize = 6;
pub const USER_ID_MAX: usize = 32;

impl UserId {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim();
        if s.is_empty() {
            return Err("Enter your User ID.");
        }
        let len = s.chars().count();
        if len < USER_ID_MIN {
            return Err("A User ID has at least 6 characters.");
        }
        if len > USER_ID_MAX {
            return Err("A User ID has at most 32 characters.");
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        {
            return Err("A User ID may use only letters, digits, and . _ - @");
        }
        Ok(Self {
            display: s.to_owned(),
            canonical: s.to_ascii_lowercase(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.display)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// The kind of online account, taken from the registry record used to create it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    Personal,
    Merchant,
    Corporate,
}

impl AccountType {
    pub const ALL: [AccountType; 3] = [
        AccountType::Personal,
        AccountType::Merchant,
        AccountType::Corporate,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "personal" => Some(Self::Personal),
            "merchant" => Some(Self::Merchant),
            "corporate" => Some(Self::Corporate),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Merchant => "merchant",
            Self::Corporate => "corporate",
        }
    }

    /// The name people know it by.
    pub fn label(self) -> &'static str {
        match self {
            Self::Personal => "Card – My Account",
            Self::Merchant => "Merchant Account",
            Self::Corporate => "American Express @ Work",
        }
    }

    pub fn uses_cards(self) -> bool {
        !matches!(self, Self::Merchant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn user_id_rules() {
        assert!(UserId::parse("alice1").is_ok());
        assert!(UserId::parse("a.b_c-d@e").is_ok());
        assert!(UserId::parse("short").is_err());
        assert!(UserId::parse(&"x".repeat(33)).is_err());
        assert!(UserId::parse(&"x".repeat(32)).is_ok());
        assert!(UserId::parse("has space").is_err());
        assert!(UserId::parse("ünïcode1").is_err());
        assert!(UserId::parse("").is_err());
    }

    #[test]
    fn user_id_is_case_insensitive_but_keeps_spelling() {
        let a = UserId::parse("Alice.Smith").unwrap();
        let b = UserId::parse("alice.smith").unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.as_str(), "Alice.Smith");
    }

    #[test]
    fn account_types_round_trip() {
        for t in AccountType::ALL {
            assert_eq!(AccountType::parse(t.as_str()), Some(t));
        }
        assert_eq!(AccountType::parse("admin"), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_canonical_is_lowercase(s in "\\PC{0,40}") {
            if let Ok(id) = UserId::parse(&s) {
                prop_assert_eq!(id.canonical().to_ascii_lowercase(), id.canonical());
                prop_assert!(id.canonical().len() >= USER_ID_MIN && id.canonical().len() <= USER_ID_MAX);
            }
        }
    }
}
