//! Security questions: the list the service offers and how answers are normalised.
//!
//! Security answers are a weak secret (NIST SP 800-63B-4 forbids prompting for them; OWASP
//! ASVS 6.4.2 advises against them), so they are never enough on their own: recovery always
//! also needs a one-time code to the registered channel, and an issuer can switch them off.
//! Answers are stored only as argon2id hashes of their normalised form.

use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SecurityQuestion {
    pub id: i64,
    pub text: &'static str,
}

/// The questions offered, chosen to have answers that are memorable, stable and not
/// published on a social profile.
pub const QUESTIONS: [SecurityQuestion; 10] = [
    SecurityQuestion {
        id: 1,
        text: "What was the name of your first pet?",
    },
    SecurityQuestion {
        id: 2,
        text: "What was the make and model of your first car?",
    },
    SecurityQuestion {
        id: 3,
        text: "What is the middle name of your oldest sibling?",
    },
    SecurityQuestion {
        id: 4,
        text: "What was the name of the first school you attended?",
    },
    SecurityQuestion {
        id: 5,
        text: "What street did you live on when you were ten?",
    },
    SecurityQuestion {
        id: 6,
        text: "What was your childhood nickname?",
    },
    SecurityQuestion {
        id: 7,
        text: "In what city did your parents meet?",
    },
    SecurityQuestion {
        id: 8,
        text: "What was the first concert you attended?",
    },
    SecurityQuestion {
        id: 9,
        text: "What was the surname of your favourite teacher?",
    },
    SecurityQuestion {
        id: 10,
        text: "What was the name of your first employer?",
    },
];

pub const REQUIRED_ANSWERS: usize = 3;

pub fn question(id: i64) -> Option<SecurityQuestion> {
    QUESTIONS.iter().copied().find(|q| q.id == id)
}

/// An answer as compared: NFKC, trimmed, case-folded, inner white space collapsed.
pub fn normalise_answer(answer: &str) -> Zeroizing<String> {
    let folded: String = answer.nfkc().collect::<String>().to_lowercase();
    Zeroizing::new(folded.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Checks one answer's shape, returning a message for the person when it is unusable.
pub fn check_answer(answer: &str) -> Result<Zeroizing<String>, &'static str> {
    let normalised = normalise_answer(answer);
    let len = normalised.chars().count();
    if len == 0 {
        return Err("Enter an answer.");
    }
    if len < 2 {
        return Err("An answer has at least 2 characters.");
    }
    if len > 100 {
        return Err("An answer has at most 100 characters.");
    }
    Ok(normalised)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn answers_are_normalised() {
        assert_eq!(normalise_answer("  Mr   Whiskers ").as_str(), "mr whiskers");
        assert_eq!(normalise_answer("MR\tWHISKERS").as_str(), "mr whiskers");
        assert_eq!(normalise_answer("Ｍｒ Whiskers").as_str(), "mr whiskers");
    }

    #[test]
    fn question_ids_are_unique() {
        let mut ids: Vec<_> = QUESTIONS.iter().map(|q| q.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), QUESTIONS.len());
        assert!(question(3).is_some());
        assert!(question(99).is_none());
    }

    #[test]
    fn answer_shape() {
        assert!(check_answer(" ").is_err());
        assert!(check_answer("a").is_err());
        assert!(check_answer(&"a".repeat(101)).is_err());
        assert!(check_answer("Rex").is_ok());
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(s in "\\PC{0,60}") {
            let once = normalise_answer(&s);
            let twice = normalise_answer(&once);
            prop_assert_eq!(twice.as_str(), once.as_str());
        }
    }
}
