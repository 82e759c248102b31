//! Passwords and the password policy.
//!
//! A [`Password`] is NFKC-normalised on the way in and compared exactly (case-sensitive)
//! after that. The [`PasswordPolicy`] has three named profiles:
//!
//! | profile | length | composition | other |
//! |---|---|---|---|
//! | `issuer` (default) | 8–128 | a letter, a capital letter, a symbol | blocklist, no User ID |
//! | `nist-800-63b` | 15–128, or 8–128 with a second factor | none | blocklist, no User ID |
//! | `pci-dss-4` | 12–128 | letters and digits | blocklist, no User ID, not one of the last 4 |
//!
//! Every failed rule is reported, each with words a person can act on.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use crate::ids::UserId;

pub const PASSWORD_MAX: usize = 128;

/// A password as typed, NFKC-normalised. Never printed.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Normalises (NFKC). Length and content rules belong to the policy, not here, so that
    /// sign-in accepts any password that was once valid.
    pub fn new(input: &str) -> Self {
        Self(SecretString::from(input.nfkc().collect::<String>()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn char_count(&self) -> usize {
        self.expose().chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PasswordProfile {
    #[serde(rename = "issuer")]
    Issuer,
    #[serde(rename = "nist-800-63b")]
    Nist80063b,
    #[serde(rename = "pci-dss-4")]
    PciDss4,
}

impl PasswordProfile {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "issuer" => Some(Self::Issuer),
            "nist-800-63b" => Some(Self::Nist80063b),
            "pci-dss-4" => Some(Self::PciDss4),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::Nist80063b => "nist-800-63b",
            Self::PciDss4 => "pci-dss-4",
        }
    }

    /// How many earlier passwords may not be reused.
    pub fn history(self) -> usize {
        match self {
            Self::PciDss4 => 4,
            _ => 0,
        }
    }
}

/// One rule a password broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordRule {
    TooShort { min: usize },
    TooLong,
    NeedsLetter,
    NeedsCapital,
    NeedsSymbol,
    NeedsDigit,
    Common,
    ContainsUserId,
    RecentlyUsed { count: usize },
}

impl PasswordRule {
    /// A stable machine-readable name.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooShort { .. } => "too_short",
            Self::TooLong => "too_long",
            Self::NeedsLetter => "needs_letter",
            Self::NeedsCapital => "needs_capital",
            Self::NeedsSymbol => "needs_symbol",
            Self::NeedsDigit => "needs_digit",
            Self::Common => "common",
            Self::ContainsUserId => "contains_user_id",
            Self::RecentlyUsed { .. } => "recently_used",
        }
    }

    /// The rule as a checklist item, before anything is typed.
    pub fn hint(self) -> String {
        match self {
            Self::TooShort { min } => format!("At least {min} characters"),
            Self::TooLong => format!("At most {PASSWORD_MAX} characters"),
            Self::NeedsLetter => "A letter".into(),
            Self::NeedsCapital => "A capital letter".into(),
            Self::NeedsSymbol => "A symbol, like ! or #".into(),
            Self::NeedsDigit => "A number".into(),
            Self::Common => "Not a common or easily guessed password".into(),
            Self::ContainsUserId => "Not containing your User ID".into(),
            Self::RecentlyUsed { count } if count <= 1 => "Not your current password".into(),
            Self::RecentlyUsed { count } => format!("Not one of your last {count} passwords"),
        }
    }

    pub fn message(self) -> String {
        match self {
            Self::TooShort { min } => format!("Use at least {min} characters."),
            Self::TooLong => format!("Use at most {PASSWORD_MAX} characters."),
            Self::NeedsLetter => "Include at least one letter.".into(),
            Self::NeedsCapital => "Include at least one capital letter.".into(),
            Self::NeedsSymbol => "Include at least one symbol, like ! or #.".into(),
            Self::NeedsDigit => "Include at least one number.".into(),
            Self::Common => "This password is too common and easy to guess. Choose another.".into(),
            Self::ContainsUserId => "Your password must not contain your User ID.".into(),
            Self::RecentlyUsed { count } if count <= 1 => {
                "Choose a password different from your current one.".into()
            }
            Self::RecentlyUsed { count } => {
                format!("Choose a password you have not used for your last {count} passwords.")
            }
        }
    }
}

/// The rules one profile applies, as shown in the live checklist on the page.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RuleDescription {
    pub code: &'static str,
    pub text: String,
    /// The rule itself, with its numbers, so a page can describe it to a script that checks
    /// it as the person types (and so cannot drift from the policy).
    #[serde(skip)]
    pub rule: PasswordRule,
}

#[derive(Clone, Copy, Debug)]
pub struct PasswordPolicy {
    pub profile: PasswordProfile,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            profile: PasswordProfile::Issuer,
        }
    }
}

impl PasswordPolicy {
    pub fn new(profile: PasswordProfile) -> Self {
        Self { profile }
    }

    pub fn min_length(&self, has_second_factor: bool) -> usize {
        match self.profile {
            PasswordProfile::Issuer => 8,
            PasswordProfile::Nist80063b if has_second_factor => 8,
            PasswordProfile::Nist80063b => 15,
            PasswordProfile::PciDss4 => 12,
        }
    }

    /// Every rule `password` breaks (empty when it is acceptable). Password history is
    /// checked by the caller, which holds the earlier hashes.
    pub fn check(
        &self,
        password: &Password,
        user_id: Option<&UserId>,
        has_second_factor: bool,
    ) -> Vec<PasswordRule> {
        let pw = password.expose();
        let mut broken = Vec::new();
        let len = password.char_count();
        let min = self.min_length(has_second_factor);
        if len < min {
            broken.push(PasswordRule::TooShort { min });
        }
        if len > PASSWORD_MAX {
            broken.push(PasswordRule::TooLong);
        }
        let has_letter = pw.chars().any(char::is_alphabetic);
        match self.profile {
            PasswordProfile::Issuer => {
                if !has_letter {
                    broken.push(PasswordRule::NeedsLetter);
                }
                if !pw.chars().any(char::is_uppercase) {
                    broken.push(PasswordRule::NeedsCapital);
                }
                if !pw.chars().any(is_symbol) {
                    broken.push(PasswordRule::NeedsSymbol);
                }
            }
            PasswordProfile::PciDss4 => {
                if !has_letter {
                    broken.push(PasswordRule::NeedsLetter);
                }
                if !pw.chars().any(|c| c.is_numeric()) {
                    broken.push(PasswordRule::NeedsDigit);
                }
            }
            PasswordProfile::Nist80063b => {}
        }
        if is_common(pw) {
            broken.push(PasswordRule::Common);
        }
        if let Some(user_id) = user_id {
            if pw.to_lowercase().contains(user_id.canonical()) {
                broken.push(PasswordRule::ContainsUserId);
            }
        }
        broken
    }

    /// The checklist shown beside the password field.
    pub fn describe(&self, has_second_factor: bool) -> Vec<RuleDescription> {
        let mut rules = vec![
            PasswordRule::TooShort {
                min: self.min_length(has_second_factor),
            },
            PasswordRule::TooLong,
        ];
        match self.profile {
            PasswordProfile::Issuer => rules.extend([
                PasswordRule::NeedsLetter,
                PasswordRule::NeedsCapital,
                PasswordRule::NeedsSymbol,
            ]),
            PasswordProfile::PciDss4 => {
                rules.extend([PasswordRule::NeedsLetter, PasswordRule::NeedsDigit]);
            }
            PasswordProfile::Nist80063b => {}
        }
        rules.extend([PasswordRule::ContainsUserId, PasswordRule::Common]);
        if self.profile.history() > 0 {
            rules.push(PasswordRule::RecentlyUsed {
                count: self.profile.history(),
            });
        }
        rules
            .into_iter()
            .map(|r| RuleDescription {
                code: r.code(),
                text: r.hint(),
                rule: r,
            })
            .collect()
    }
}

/// A symbol is anything printable that is neither a letter, a digit nor white space.
fn is_symbol(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control()
}

static COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

fn blocklist() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON_PASSWORDS.lines().filter(|l| !l.is_empty()).collect())
}

/// Number of entries in the shipped blocklist.
pub fn blocklist_len() -> usize {
    blocklist().len()
}

/// Whether the whole password (case-insensitively) is on the shipped list of common and
/// breached passwords. One hash-set probe: the cost does not depend on the list's size.
pub fn is_common(password: &str) -> bool {
    blocklist().contains(password.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn issuer() -> PasswordPolicy {
        PasswordPolicy::new(PasswordProfile::Issuer)
    }

    fn uid() -> UserId {
        UserId::parse("ann.example").unwrap()
    }

    #[test]
    fn issuer_profile_rules() {
        let p = issuer();
        assert!(p
            .check(&Password::new("Tr0ub4dor&3"), Some(&uid()), false)
            .is_empty());
        assert_eq!(
            p.check(&Password::new("Ab!1"), None, false),
            [PasswordRule::TooShort { min: 8 }]
        );
        assert_eq!(
            p.check(&Password::new("lowercase!only"), None, false),
            [PasswordRule::NeedsCapital]
        );
        assert_eq!(
            p.check(&Password::new("NoSymbolsHere1"), None, false),
            [PasswordRule::NeedsSymbol]
        );
        assert_eq!(
            p.check(&Password::new("12345678!A"), None, false),
            Vec::<PasswordRule>::new()
        );
        assert_eq!(
            p.check(&Password::new("1234567!"), None, false),
            [PasswordRule::NeedsLetter, PasswordRule::NeedsCapital]
        );
        assert_eq!(
            p.check(&Password::new(&"Aa!".repeat(43)), None, false),
            [PasswordRule::TooLong]
        );
    }

    #[test]
    fn user_id_inside_the_password_is_refused() {
        let broken = issuer().check(&Password::new("My-Ann.Example!"), Some(&uid()), false);
        assert_eq!(broken, [PasswordRule::ContainsUserId]);
    }

    #[test]
    fn common_passwords_are_refused() {
        assert!(is_common("password1"));
        assert!(is_common("PASSWORD1"));
        // ASVS 6.2.4: at least the top 3000.
        assert!(blocklist_len() >= 3000, "{}", blocklist_len());
        assert!(issuer()
            .check(&Password::new("Password1!"), None, false)
            .contains(&PasswordRule::Common));
    }

    #[test]
    fn nist_profile_has_no_composition_rules() {
        let p = PasswordPolicy::new(PasswordProfile::Nist80063b);
        assert!(p
            .check(&Password::new("correct horse battery"), None, false)
            .is_empty());
        assert_eq!(
            p.check(&Password::new("short words"), None, false),
            [PasswordRule::TooShort { min: 15 }]
        );
        assert!(p
            .check(&Password::new("short words"), None, true)
            .is_empty());
    }

    #[test]
    fn pci_profile_needs_twelve_letters_and_digits() {
        let p = PasswordPolicy::new(PasswordProfile::PciDss4);
        assert!(p
            .check(&Password::new("plum-harbor-77"), None, false)
            .is_empty());
        assert_eq!(
            p.check(&Password::new("plum-harbor-xy"), None, false),
            [PasswordRule::NeedsDigit]
        );
        assert_eq!(
            p.check(&Password::new("plumhar7"), None, false),
            [PasswordRule::TooShort { min: 12 }]
        );
        assert_eq!(p.profile.history(), 4);
    }

    #[test]
    fn nfkc_normalisation() {
        // Fullwidth letters and the "ﬁ" ligature normalise to their plain forms.
        assert_eq!(Password::new("Ｐａｓｓ").expose(), "Pass");
        assert_eq!(Password::new("ﬁne").expose(), "fine");
        // Case is preserved.
        assert_ne!(
            Password::new("Secret").expose(),
            Password::new("secret").expose()
        );
    }

    #[test]
    fn debug_is_redacted() {
        assert!(!format!("{:?}", Password::new("hunter2")).contains("hunter2"));
    }

    #[test]
    fn profiles_parse() {
        for p in [
            PasswordProfile::Issuer,
            PasswordProfile::Nist80063b,
            PasswordProfile::PciDss4,
        ] {
            assert_eq!(PasswordProfile::parse(p.as_str()), Some(p));
        }
    }

    proptest! {
        #[test]
        fn check_never_panics(s in "\\PC{0,200}") {
            let _ = issuer().check(&Password::new(&s), Some(&uid()), false);
        }

        #[test]
        fn normalisation_is_idempotent(s in "\\PC{0,50}") {
            let once = Password::new(&s);
            let twice = Password::new(once.expose());
            prop_assert_eq!(twice.expose(), once.expose());
        }
    }
}
