//! Money as integer minor units (cents), parsed from and shown as decimal strings.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(pub i64);

impl Money {
    /// Parses `1234`, `1234.5`, `-12.34`. At most two decimals; no thousands separators.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim();
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
        if whole.is_empty()
            || whole.len() > 15
            || frac.len() > 2
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || (body.contains('.') && frac.is_empty())
        {
            return Err("An amount is a decimal number with at most two decimals, like 1234.56.");
        }
        let whole: i64 = whole.parse().map_err(|_| "The amount is too large.")?;
        let cents: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().map_err(|_| "bad decimals")? * 10,
            _ => frac.parse::<i64>().map_err(|_| "bad decimals")?,
        };
        let total = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(cents))
            .ok_or("The amount is too large.")?;
        Ok(Money(if negative { -total } else { total }))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!(Money::parse("1234.56").unwrap(), Money(123_456));
        assert_eq!(Money::parse("12.5").unwrap(), Money(1250));
        assert_eq!(Money::parse("-0.05").unwrap(), Money(-5));
        assert_eq!(Money::parse("7").unwrap().to_string(), "7.00");
        assert_eq!(Money(-5).to_string(), "-0.05");
        for bad in ["", "1,000", "1.234", "abc", "1.", ".5", "--1"] {
            assert!(Money::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(cents in -10_000_000_000i64..10_000_000_000i64) {
            let m = Money(cents);
            prop_assert_eq!(Money::parse(&m.to_string()).unwrap(), m);
        }
    }
}
