//! The checklist of password rules beside every field that takes a new password.
//!
//! The rules come from the active [`PasswordPolicy`]; each item carries, besides its words, a
//! description a script can check as the person types (`data-check`, `data-value`), made here
//! by an exhaustive match on [`PasswordRule`], so a new rule cannot reach the page without a
//! decision about how (or whether) the browser checks it. What only the server can know (the
//! list of common passwords, earlier passwords, a User ID the page does not have) is marked
//! "checked when you submit", with or without JavaScript.

use portcullis_core::password::{PasswordPolicy, PasswordRule, PASSWORD_MAX};

use crate::text;

/// Where the page can find the User ID the password must not contain.
pub enum UserIdSource {
    /// The form's own User ID field (registration), by element id.
    Field(&'static str),
    /// The signed-in person's User ID.
    Known(String),
    /// Not on this page: the server checks it on submit.
    Unknown,
}

pub struct Checklist {
    /// The list's element id, which the password field names in `aria-describedby`.
    pub id: &'static str,
    pub items: Vec<ChecklistItem>,
    pub user_id_field: Option<&'static str>,
    pub user_id: Option<String>,
}

pub struct ChecklistItem {
    pub text: String,
    /// What the script checks: `min-length`, `max-length`, `letter`, `capital`, `digit`,
    /// `symbol`, `not-user-id`, or `on-submit` (only the server can tell).
    pub check: &'static str,
    pub value: Option<usize>,
}

impl Checklist {
    pub fn new(policy: &PasswordPolicy, id: &'static str, user_id: UserIdSource) -> Self {
        let user_id_known = !matches!(user_id, UserIdSource::Unknown);
        let items = policy
            .describe(false)
            .into_iter()
            .map(|r| item(r.rule, user_id_known))
            .collect();
        let (user_id_field, user_id) = match user_id {
            UserIdSource::Field(f) => (Some(f), None),
            UserIdSource::Known(u) => (None, Some(u)),
            UserIdSource::Unknown => (None, None),
        };
        Self {
            id,
            items,
            user_id_field,
            user_id,
        }
    }
}

/// A rule as a person reads it, before anything is typed.
pub fn rule_text(rule: PasswordRule) -> String {
    let t = text::en();
    match rule {
        PasswordRule::TooShort { min } => t.fill("password.rule.too_short", &[("min", &min)]),
        PasswordRule::TooLong => t.fill("password.rule.too_long", &[("max", &PASSWORD_MAX)]),
        PasswordRule::NeedsLetter => t.t("password.rule.needs_letter").into(),
        PasswordRule::NeedsCapital => t.t("password.rule.needs_capital").into(),
        PasswordRule::NeedsSymbol => t.t("password.rule.needs_symbol").into(),
        PasswordRule::NeedsDigit => t.t("password.rule.needs_digit").into(),
        PasswordRule::Common => t.t("password.rule.common").into(),
        PasswordRule::ContainsUserId => t.t("password.rule.contains_user_id").into(),
        PasswordRule::RecentlyUsed { count } if count <= 1 => {
            t.t("password.rule.recently_used_one").into()
        }
        PasswordRule::RecentlyUsed { count } => {
            t.fill("password.rule.recently_used", &[("count", &count)])
        }
    }
}

fn item(rule: PasswordRule, user_id_known: bool) -> ChecklistItem {
    let live = |check, value| ChecklistItem {
        text: rule_text(rule),
        check,
        value,
    };
    let on_submit = || ChecklistItem {
        text: text::en().fill("password.rule.on_submit", &[("rule", &rule_text(rule))]),
        check: "on-submit",
        value: None,
    };
    match rule {
        PasswordRule::TooShort { min } => live("min-length", Some(min)),
        PasswordRule::TooLong => live("max-length", Some(PASSWORD_MAX)),
        PasswordRule::NeedsLetter => live("letter", None),
        PasswordRule::NeedsCapital => live("capital", None),
        PasswordRule::NeedsSymbol => live("symbol", None),
        PasswordRule::NeedsDigit => live("digit", None),
        PasswordRule::ContainsUserId if user_id_known => live("not-user-id", None),
        PasswordRule::ContainsUserId | PasswordRule::Common | PasswordRule::RecentlyUsed { .. } => {
            on_submit()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::ids::UserId;
    use portcullis_core::password::{Password, PasswordProfile};

    fn checks(c: &Checklist) -> Vec<(&str, Option<usize>)> {
        c.items.iter().map(|i| (i.check, i.value)).collect()
    }

    #[test]
    fn each_profile_describes_its_own_rules() {
        let issuer = Checklist::new(
            &PasswordPolicy::new(PasswordProfile::Issuer),
            "rules",
            UserIdSource::Field("user_id"),
        );
        assert_eq!(
            checks(&issuer),
            [
                ("min-length", Some(8)),
                ("max-length", Some(128)),
                ("letter", None),
                ("capital", None),
                ("symbol", None),
                ("not-user-id", None),
                ("on-submit", None),
            ]
        );
        let pci = Checklist::new(
            &PasswordPolicy::new(PasswordProfile::PciDss4),
            "rules",
            UserIdSource::Unknown,
        );
        assert_eq!(
            checks(&pci),
            [
                ("min-length", Some(12)),
                ("max-length", Some(128)),
                ("letter", None),
                ("digit", None),
                ("on-submit", None),
                ("on-submit", None),
                ("on-submit", None),
            ]
        );
        let nist = Checklist::new(
            &PasswordPolicy::new(PasswordProfile::Nist80063b),
            "rules",
            UserIdSource::Known("ann.example".into()),
        );
        assert_eq!(nist.items.first().map(|i| i.value), Some(Some(15)));
        assert_eq!(nist.user_id.as_deref(), Some("ann.example"));
    }

    #[test]
    fn what_only_the_server_knows_says_so() {
        let c = Checklist::new(&PasswordPolicy::default(), "rules", UserIdSource::Unknown);
        let later: Vec<&str> = c
            .items
            .iter()
            .filter(|i| i.check == "on-submit")
            .map(|i| i.text.as_str())
            .collect();
        assert_eq!(later.len(), 2, "{later:?}");
        for text in later {
            assert!(text.contains("when you submit"), "{text}");
        }
    }

    /// The checks the page describes agree with the policy's own `check`: a password the
    /// checklist would mark all done breaks only rules marked on-submit, and each live rule
    /// broken is one the policy reports. (The script mirrors these character classes.)
    #[test]
    fn live_checks_agree_with_the_policy() {
        fn judged(check: &str, value: Option<usize>, pw: &str, uid: &str) -> bool {
            let n = pw.chars().count();
            match check {
                "min-length" => n >= value.unwrap_or(0),
                "max-length" => n <= value.unwrap_or(0),
                "letter" => pw.chars().any(char::is_alphabetic),
                "capital" => pw.chars().any(char::is_uppercase),
                "digit" => pw.chars().any(char::is_numeric),
                "symbol" => pw
                    .chars()
                    .any(|c| !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control()),
                "not-user-id" => !pw.to_lowercase().contains(uid),
                _ => true,
            }
        }
        let uid = UserId::parse("ann.example").unwrap();
        for profile in [
            PasswordProfile::Issuer,
            PasswordProfile::PciDss4,
            PasswordProfile::Nist80063b,
        ] {
            let policy = PasswordPolicy::new(profile);
            let list = Checklist::new(&policy, "rules", UserIdSource::Field("user_id"));
            for pw in [
                "",
                "short",
                "Tr0ub4dor&3",
                "correct horse battery staple",
                "ANN.EXAMPLE-is-me-42!",
                "ÄÖÜ straße ½ 12345678",
                "no capitals or symbols 123",
                &"Ab1!".repeat(40),
            ] {
                let broken = policy.check(&Password::new(pw), Some(&uid), false);
                let broken_codes: Vec<&str> = broken.iter().map(|r| r.code()).collect();
                for (item, rule) in list.items.iter().zip(policy.describe(false)) {
                    if item.check == "on-submit" {
                        continue;
                    }
                    let normalised = Password::new(pw);
                    let met = judged(item.check, item.value, normalised.expose(), uid.canonical());
                    assert_eq!(
                        met,
                        !broken_codes.contains(&rule.code),
                        "{profile:?} {pw:?} {}",
                        rule.code
                    );
                }
            }
        }
    }
}
