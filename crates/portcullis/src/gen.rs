//! Synthetic issuer registry files for demos, tests and benchmarks: valid, unique and
//! deterministic for a seed, in the contract's import format.
//!
//! Numbers are unique by construction rather than by remembering them: the n-th card's
//! 12-digit account part is `n * a + b (mod 10^12)` for an `a` coprime to 10, which is a
//! permutation, so a million rows need no set and still look scattered. The randomness is a
//! small self-contained SplitMix64 so that a seed gives the same file on every platform and
//! version.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use portcullis_core::card::luhn_check_digit;
use portcullis_core::registry::COLUMNS;

/// 15-digit card numbers: a 2-digit prefix, this many account digits, a check digit.
const CARD_ACCOUNT_SPACE: u64 = 1_000_000_000_000;
/// 12-digit merchant numbers: a leading 8, then this many digits.
const MERCHANT_SPACE: u64 = 100_000_000_000;
/// Rows per hundred that are merchant accounts.
const MERCHANT_PERCENT: u64 = 5;
/// Rows per hundred that are corporate cards (the rest are personal).
const CORPORATE_PERCENT: u64 = 30;

const FIRST_NAMES: [&str; 12] = [
    "Ann", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Keiko",
    "Liam",
];
const LAST_NAMES: [&str; 10] = [
    "Example",
    "Sample",
    "Tester",
    "Demo",
    "Placeholder",
    "Fictive",
    "Model",
    "Mock",
    "Trial",
    "Specimen",
];
const PERSONAL_PRODUCTS: [&str; 4] = ["Green Card", "Gold Card", "Platinum Card", "Blue Cash"];
const CORPORATE_PRODUCTS: [&str; 3] = ["Corporate Green", "Corporate Gold", "Business Platinum"];
const SHOP_WORDS: [&str; 8] = [
    "Corner",
    "Harbour",
    "Maple",
    "Station",
    "Riverside",
    "Summit",
    "Old Town",
    "Market",
];
const SHOP_KINDS: [&str; 6] = ["Shop", "Bakery", "Books", "Garage", "Cafe", "Pharmacy"];
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Writes `count` registry rows to `path`: CSV with the contract's header, or JSON Lines when
/// the name ends in `.jsonl` or `.ndjson`. About 5% are merchant accounts, the rest personal
/// and corporate cards with 15-digit Luhn-valid numbers starting 34 or 37 and 4-digit card
/// IDs. The same `seed` always gives the same file.
pub fn write_demo_registry(path: &Path, count: u64, seed: u64) -> io::Result<()> {
    if count > MERCHANT_SPACE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("at most {MERCHANT_SPACE} rows can be generated"),
        ));
    }
    let json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"));
    let mut out = BufWriter::with_capacity(1 << 16, File::create(path)?);
    if !json {
        writeln!(out, "{}", COLUMNS.join(","))?;
    }
    let mut rng = SplitMix64(seed);
    let cards = Permutation::new(&mut rng, CARD_ACCOUNT_SPACE);
    let merchants = Permutation::new(&mut rng, MERCHANT_SPACE);
    let (mut card_index, mut merchant_index) = (0u64, 0u64);
    let mut cells: Vec<String> = Vec::with_capacity(COLUMNS.len());
    for row in 0..count {
        cells.clear();
        let kind = rng.below(100);
        if kind < MERCHANT_PERCENT {
            merchant_row(&mut rng, merchants.at(merchant_index), row, &mut cells);
            merchant_index += 1;
        } else {
            let corporate = kind < MERCHANT_PERCENT + CORPORATE_PERCENT;
            card_row(&mut rng, cards.at(card_index), corporate, row, &mut cells);
            card_index += 1;
        }
        if json {
            write_json_line(&mut out, &cells)?;
        } else {
            writeln!(out, "{}", cells.join(","))?;
        }
    }
    out.flush()
}

fn card_row(
    rng: &mut SplitMix64,
    account: u64,
    corporate: bool,
    row: u64,
    cells: &mut Vec<String>,
) {
    let prefix = if rng.below(2) == 0 { "34" } else { "37" };
    let payload = format!("{prefix}{account:012}");
    let number = format!("{payload}{}", luhn_check_digit(&payload));
    let (first, last) = (pick(rng, &FIRST_NAMES), pick(rng, &LAST_NAMES));
    let products: &[&str] = if corporate {
        &CORPORATE_PRODUCTS
    } else {
        &PERSONAL_PRODUCTS
    };
    let credit_limit = (rng.below(60) + 1) * 500;
    let balance_cents = rng.below(credit_limit * 100);
    let minimum_cents = balance_cents / 50;
    cells.extend([
        (if corporate { "corporate" } else { "personal" }).to_owned(),
        number,
        format!("{:04}", rng.below(10_000)),
        format!("{}-{:02}", 2027 + rng.below(6), 1 + rng.below(12)),
        format!("{first} {last}"),
        format!(
            "{}.{}{row}@example.com",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase()
        ),
        format!("+1555{:07}", rng.below(10_000_000)),
        pick(rng, products).to_owned(),
        cents(balance_cents),
        credit_limit.to_string(),
        format!("2026-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28)),
        cents(minimum_cents),
    ]);
}

fn merchant_row(rng: &mut SplitMix64, account: u64, row: u64, cells: &mut Vec<String>) {
    let code: String = (0..6)
        .map(|_| {
            let i = usize::try_from(rng.below(CODE_ALPHABET.len() as u64)).unwrap_or_default();
            char::from(CODE_ALPHABET.get(i).copied().unwrap_or(b'A'))
        })
        .collect();
    cells.extend([
        "merchant".to_owned(),
        format!("8{account:011}"),
        code,
        String::new(),
        format!("{} {}", pick(rng, &SHOP_WORDS), pick(rng, &SHOP_KINDS)),
        format!("billing{row}@merchant.example"),
        String::new(),
        "Merchant Account".to_owned(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ]);
}

/// The generated values hold no quotes, backslashes or control characters, so no escaping.
fn write_json_line(out: &mut impl Write, cells: &[String]) -> io::Result<()> {
    out.write_all(b"{")?;
    for (i, (column, value)) in COLUMNS.iter().zip(cells).enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write!(out, "\"{column}\":\"{value}\"")?;
    }
    out.write_all(b"}\n")
}

fn cents(total: u64) -> String {
    format!("{}.{:02}", total / 100, total % 100)
}

fn pick<'a>(rng: &mut SplitMix64, items: &[&'a str]) -> &'a str {
    let i = usize::try_from(rng.below(items.len() as u64)).unwrap_or_default();
    items.get(i).copied().unwrap_or_default()
}

/// `index -> index * a + b (mod space)` with `a` coprime to `space` (a power of ten), a
/// bijection on `0..space`.
struct Permutation {
    a: u64,
    b: u64,
    space: u64,
}

impl Permutation {
    fn new(rng: &mut SplitMix64, space: u64) -> Self {
        // Ending in 1, 3, 7 or 9 makes `a` coprime to every power of ten.
        let last_digit = match rng.below(4) {
            0 => 1,
            1 => 3,
            2 => 7,
            _ => 9,
        };
        let a = rng.below(space / 10) * 10 + last_digit;
        Self {
            a,
            b: rng.below(space),
            space,
        }
    }

    fn at(&self, index: u64) -> u64 {
        let value =
            (u128::from(index) * u128::from(self.a) + u128::from(self.b)) % u128::from(self.space);
        u64::try_from(value).unwrap_or_default()
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast and good enough for test data; not
/// for anything secret.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`); the modulo bias is irrelevant for test data.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use portcullis_core::card::luhn_valid;
    use portcullis_core::registry::{RawRecord, RegistryRecord};

    use super::*;

    fn read_csv(path: &Path) -> Vec<RawRecord> {
        let mut reader = csv::Reader::from_path(path).unwrap();
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            COLUMNS
        );
        reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                let c = |i: usize| r.get(i).unwrap().to_owned();
                RawRecord {
                    account_type: c(0),
                    number: c(1),
                    verification: c(2),
                    expiry: c(3),
                    holder_name: c(4),
                    email: c(5),
                    phone: c(6),
                    product: c(7),
                    balance: c(8),
                    credit_limit: c(9),
                    payment_due_date: c(10),
                    minimum_due: c(11),
                    ..RawRecord::default()
                }
            })
            .collect()
    }

    #[test]
    fn rows_are_valid_unique_and_the_right_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.csv");
        write_demo_registry(&path, 5_000, 7).unwrap();
        let rows = read_csv(&path);
        assert_eq!(rows.len(), 5_000);
        let mut numbers = HashSet::new();
        let mut merchants = 0;
        for row in &rows {
            assert!(RegistryRecord::parse(row).is_ok(), "{:?}", row.account_type);
            assert!(numbers.insert(row.number.clone()), "duplicate number");
            if row.account_type == "merchant" {
                merchants += 1;
            } else {
                assert_eq!(row.number.len(), 15);
                assert!(row.number.starts_with("34") || row.number.starts_with("37"));
                assert!(luhn_valid(&row.number));
                assert_eq!(row.verification.len(), 4);
            }
        }
        assert!((150..350).contains(&merchants), "{merchants} merchants");
    }

    #[test]
    fn a_seed_always_gives_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a.csv"),
            dir.path().join("b.csv"),
            dir.path().join("c.csv"),
        );
        write_demo_registry(&a, 300, 42).unwrap();
        write_demo_registry(&b, 300, 42).unwrap();
        write_demo_registry(&c, 300, 43).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    }

    #[test]
    fn json_lines_carry_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (csv_path, json_path) = (dir.path().join("r.csv"), dir.path().join("r.jsonl"));
        write_demo_registry(&csv_path, 50, 1).unwrap();
        write_demo_registry(&json_path, 50, 1).unwrap();
        let rows = read_csv(&csv_path);
        let text = std::fs::read_to_string(&json_path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 50);
        for (row, line) in rows.iter().zip(&lines) {
            assert_eq!(line["number"], row.number.as_str());
            assert_eq!(line["expiry"], row.expiry.as_str());
        }
    }

    #[test]
    fn check_digits_match_the_core() {
        let mut rng = SplitMix64(3);
        for _ in 0..1_000 {
            let payload = format!("37{:012}", rng.below(CARD_ACCOUNT_SPACE));
            assert!(luhn_valid(&format!(
                "{payload}{}",
                luhn_check_digit(&payload)
            )));
        }
        assert_eq!(luhn_check_digit("37828224631000"), 5);
    }

    #[test]
    fn the_permutation_is_a_bijection_on_a_small_space() {
        let mut rng = SplitMix64(11);
        let p = Permutation::new(&mut rng, 1_000);
        let seen: HashSet<u64> = (0..1_000).map(|i| p.at(i)).collect();
        assert_eq!(seen.len(), 1_000);
    }
}
