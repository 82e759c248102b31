//! How figures read on the pages: dates a person can read at a glance, money with thousands
//! separators. (The JSON API keeps RFC 3339 and plain decimal strings.)

use portcullis_core::clock::UnixTime;
use portcullis_core::money::Money;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `28 Nov 2026, 09:54 UTC`
pub fn when(t: UnixTime) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t.0) {
        Ok(d) => {
            let month = MONTHS
                .get(usize::from(u8::from(d.month())).saturating_sub(1))
                .copied()
                .unwrap_or("");
            format!(
                "{} {} {}, {:02}:{:02} UTC",
                d.day(),
                month,
                d.year(),
                d.hour(),
                d.minute()
            )
        }
        Err(_) => t.to_rfc3339(),
    }
}

/// `2026-12-20` → `20 Dec 2026`; anything else unchanged.
pub fn date(iso: &str) -> String {
    let parts: Vec<&str> = iso.split('-').collect();
    match parts.as_slice() {
        [y, m, d] => match (m.parse::<usize>(), d.parse::<u8>()) {
            (Ok(m), Ok(d)) if (1..=12).contains(&m) => {
                format!("{d} {} {y}", MONTHS.get(m - 1).copied().unwrap_or(""))
            }
            _ => iso.to_owned(),
        },
        _ => iso.to_owned(),
    }
}

/// `$12,345.60`, `-$5.00`
pub fn money(m: Money) -> String {
    let plain = m.to_string();
    let (sign, rest) = match plain.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", plain.as_str()),
    };
    let (whole, cents) = rest.split_once('.').unwrap_or((rest, "00"));
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}${grouped}.{cents}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_dates() {
        assert_eq!(when(UnixTime(1_796_032_440)), "30 Nov 2026, 09:54 UTC");
        assert_eq!(date("2026-12-20"), "20 Dec 2026");
        assert_eq!(date("soon"), "soon");
    }

    #[test]
    fn money_groups_thousands() {
        assert_eq!(money(Money(1_234_567_890)), "$12,345,678.90");
        assert_eq!(money(Money(123_400)), "$1,234.00");
        assert_eq!(money(Money(99)), "$0.99");
        assert_eq!(money(Money(-500)), "-$5.00");
        assert_eq!(money(Money(100_000)), "$1,000.00");
    }
}
