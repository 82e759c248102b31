//! Contact channels: email addresses and mobile phone numbers (E.164).

use std::fmt;

/// An email address, lower-cased for lookups. Deliberately simple: one `@`, a non-empty
/// local part, a domain with a dot, no spaces, at most 254 characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim();
        if s.is_empty() {
            return Err("Enter an email address.");
        }
        if s.len() > 254 {
            return Err("An email address has at most 254 characters.");
        }
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or("An email address looks like name@example.com.")?;
        let ok = !local.is_empty()
            && local.len() <= 64
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && !local.contains('@');
        if !ok {
            return Err("An email address looks like name@example.com.");
        }
        Ok(Self(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `a•••@example.com`: enough for the owner to recognise, too little for anyone else.
    pub fn masked(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}•••@{domain}")
            }
            None => "•••".into(),
        }
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

/// A mobile number in E.164: `+` then 8 to 15 digits, not starting with 0.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let compact: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
            .collect();
        if compact.is_empty() {
            return Err("Enter a mobile number.");
        }
        let digits = compact.strip_prefix('+').ok_or(
            "Enter the number in international form, starting with + and the country code.",
        )?;
        if !(8..=15).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(
                "Enter the number in international form, starting with + and the country code.",
            );
        }
        Ok(Self(compact))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `•••• 0100`
    pub fn masked(&self) -> String {
        let tail = self.0.get(self.0.len().saturating_sub(4)..).unwrap_or("");
        format!("•••• {tail}")
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

/// Where one-time codes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeChannel {
    Email,
    Sms,
}

impl CodeChannel {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "email" => Some(Self::Email),
            "sms" | "text" => Some(Self::Sms),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }
}

/// An address, masked for showing (`a•••@example.com`, `•••• 0100`); `•••` when it does not
/// parse. The one masking rule: the pages, the API answers and the audit details all use it.
pub fn mask(channel: CodeChannel, to: &str) -> String {
    match channel {
        CodeChannel::Email => Email::parse(to).map_or_else(|_| "•••".into(), |e| e.masked()),
        CodeChannel::Sms => Phone::parse(to).map_or_else(|_| "•••".into(), |p| p.masked()),
    }
}

/// Where a message to a holder goes: a text to the phone when text is `preferred` and there
/// is a phone, else an email when there is an address, else a text to the phone; `None`
/// when there is neither. The one channel choice: registration, codes and notices use it.
pub fn destination(
    preferred: CodeChannel,
    email: Option<&str>,
    phone: Option<&str>,
) -> Option<(CodeChannel, String)> {
    match (preferred, email, phone) {
        (CodeChannel::Sms, _, Some(p)) => Some((CodeChannel::Sms, p.to_owned())),
        (_, Some(e), _) => Some((CodeChannel::Email, e.to_owned())),
        (_, None, Some(p)) => Some((CodeChannel::Sms, p.to_owned())),
        (_, None, None) => None,
    }
}

/// The country calling code of an E.164 number, with its `+` (`+1`, `+44`, `+353`): the
/// prefix the per-prefix quotas count (the gateway's, and the limit on texts anonymous requests
/// cause). Calling codes are prefix-free, one to three digits;
/// which length applies follows from the ITU-T E.164 assignment, zone by zone.
pub fn country_prefix(number: &str) -> String {
    let digits: String = number
        .trim_start_matches('+')
        .chars()
        .take_while(char::is_ascii_digit)
        .take(3)
        .collect();
    let mut it = digits.chars();
    let len = match (it.next(), it.next()) {
        (Some('1'), _) | (Some('7'), _) => 1,
        (Some('2'), Some('0' | '7')) => 2,
        (Some('3'), Some('0'..='4' | '6' | '9')) => 2,
        (Some('4'), Some(d)) if d != '2' => 2,
        (Some('5'), Some('1'..='8')) => 2,
        (Some('6'), Some('0'..='6')) => 2,
        (Some('8'), Some('1' | '2' | '4' | '6')) => 2,
        (Some('9'), Some('0'..='5' | '8')) => 2,
        _ => 3,
    };
    let code: String = digits.chars().take(len).collect();
    format!("+{code}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        assert!(Email::parse("ann@example").is_err());
        assert!(Email::parse("ann example.com").is_err());
        assert!(Email::parse("@example.com").is_err());
        assert_eq!(
            Email::parse("ann@example.com").unwrap().masked(),
            "a•••@example.com"
        );
    }

    #[test]
    fn phones() {
        assert_eq!(
            Phone::parse("+1 (555) 010-0100").unwrap().as_str(),
            "+15550100100"
        );
        assert!(Phone::parse("5550100100").is_err());
        assert!(Phone::parse("+0123456789").is_err());
        assert!(Phone::parse("+1234567").is_err());
        assert_eq!(Phone::parse("+15550100100").unwrap().masked(), "•••• 0100");
    }

    #[test]
    fn masking_and_channel_choice() {
        assert_eq!(
            mask(CodeChannel::Email, "ann@example.com"),
            "a•••@example.com"
        );
        assert_eq!(mask(CodeChannel::Sms, "+15550100100"), "•••• 0100");
        assert_eq!(mask(CodeChannel::Email, "not an address"), "•••");
        let (e, p) = (Some("ann@example.com"), Some("+15550100100"));
        assert_eq!(
            destination(CodeChannel::Sms, e, p),
            Some((CodeChannel::Sms, "+15550100100".into()))
        );
        assert_eq!(
            destination(CodeChannel::Email, e, p),
            Some((CodeChannel::Email, "ann@example.com".into()))
        );
        assert_eq!(
            destination(CodeChannel::Sms, e, None),
            Some((CodeChannel::Email, "ann@example.com".into()))
        );
        assert_eq!(
            destination(CodeChannel::Email, None, p),
            Some((CodeChannel::Sms, "+15550100100".into()))
        );
        assert_eq!(destination(CodeChannel::Email, None, None), None);
    }

    proptest! {
        #[test]
        fn never_panic(s in "\\PC{0,80}") {
            let _ = Email::parse(&s).map(|e| e.masked());
            let _ = Phone::parse(&s).map(|p| p.masked());
        }
    }
}
