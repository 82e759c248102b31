//! Hashes made by the Python libraries an earlier login system would have used (passlib
//! 1.7.4, bcrypt 5.0.0, Django 5.2.8's make_password, argon2-cffi 25.1.0), for the
//! password below; the API tests (accounts_import.rs) make fresh ones at every run.

use super::*;
use crate::hashing::{HashParams, HashPool, Verification};

const PASSWORD: &str = "Tr0ub4dor&3 pässword";

const BCRYPT_2B: &str = "$2b$04$F9RP/7EwMVz/Pdspc4VFAeFvp1KLB2bZvihYovlB9FSDAQjhq0RRC";
const BCRYPT_2A: &str = "$2a$04$AIF8Ma9k85TU4wZfamf9oueIBl2h4.i27dBuA.8xoywuf9YZ5GVwO";
const PASSLIB_SHA256: &str =
    "$pbkdf2-sha256$1000$U.q9N8b4f09prdX63xvjHA$LZ9WjfPuO6AxtlvP7EzRAHETmc3Ahpi1/8eLDqLlS7s";
const PASSLIB_SHA512: &str = "$pbkdf2-sha512$1000$HINQSolx7r0XwljLeY/xvg$aDyoCyYEeO0hyfyWOibuj4mMsCou5XlqGmBQ/zSmRD7yVloID6gsozZZU5XZfSHV//5FkeuhT8yz5Cu0gqnfXg";
const PASSLIB_SCRYPT: &str =
    "$scrypt$ln=4,r=8,p=1$vbfWWut9L4UwJsTYG+Pcuw$li69SB2DVgy+II3XLtXbaEHDhHdQXJXwV2hUqqeq6Ak";
const DJANGO: &str =
    "pbkdf2_sha256$1000000$CDF4YrEXlTQiqNKp1yIQ8q$XMX7Py/IqN9qevMcUWqwJ6hW8cGyaP6JZ1kDEKKuTqo=";
const ARGON2ID: &str =
    "$argon2id$v=19$m=64,t=1,p=1$pgpDsJsuqUj22sbvnbqUBw$d13e5EL9rSkDxqtqR7q7S3Z9f4y88Ig/QsABVxk5QSc";
const ARGON2I_P2_SHORT: &str =
    "$argon2i$v=19$m=64,t=1,p=2$AkIB1VT9sp/GGYuPeQ2tcQ$cpSBC/vIjhvK0+p+HUO6VA";

const ALL: [(&str, Scheme); 8] = [
    (BCRYPT_2B, Scheme::Bcrypt),
    (BCRYPT_2A, Scheme::Bcrypt),
    (PASSLIB_SHA256, Scheme::PasslibPbkdf2Sha256),
    (PASSLIB_SHA512, Scheme::PasslibPbkdf2Sha512),
    (PASSLIB_SCRYPT, Scheme::PasslibScrypt),
    (DJANGO, Scheme::DjangoPbkdf2Sha256),
    (ARGON2ID, Scheme::Argon2),
    (ARGON2I_P2_SHORT, Scheme::Argon2),
];

#[test]
fn every_form_verifies_its_password_and_refuses_others() {
    for (stored, scheme) in ALL {
        assert_eq!(parse(stored).unwrap().scheme, scheme, "{stored}");
        assert!(verify(PASSWORD.as_bytes(), stored).unwrap(), "{stored}");
        assert!(
            !verify(b"Tr0ub4dor&3 password", stored).unwrap(),
            "{stored}"
        );
        assert!(!verify(b"", stored).unwrap(), "{stored}");
    }
}

#[test]
fn a_changed_digest_never_matches() {
    for (stored, _) in ALL {
        // Flip one character of the digest (the last one, inside the encoded bytes).
        let mut chars: Vec<char> = stored.chars().collect();
        let i = chars.len() - 2;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let changed: String = chars.into_iter().collect();
        assert!(
            !matches!(verify(PASSWORD.as_bytes(), &changed), Ok(true)),
            "{changed}"
        );
    }
}

#[test]
fn costs_are_read_from_the_form() {
    assert_eq!(parse(BCRYPT_2B).unwrap().cost, Cost::BcryptCost(4));
    assert_eq!(parse(DJANGO).unwrap().cost, Cost::Iterations(1_000_000));
    assert_eq!(parse(PASSLIB_SHA512).unwrap().cost, Cost::Iterations(1000));
    assert_eq!(
        parse(PASSLIB_SCRYPT).unwrap().cost,
        Cost::Scrypt {
            log_n: 4,
            r: 8,
            p: 1
        }
    );
    assert_eq!(
        parse(ARGON2I_P2_SHORT).unwrap().cost,
        Cost::Argon2 {
            memory_kib: 64,
            iterations: 1,
            parallelism: 2
        }
    );
}

#[test]
fn ceilings_refuse_what_is_above_them() {
    let low = Ceilings {
        bcrypt_cost: 4,
        pbkdf2_iterations: 999_999,
        scrypt_log_n: 3,
        argon2_memory_kib: 63,
        argon2_iterations: 1,
    };
    assert!(parse(BCRYPT_2B).unwrap().within(&low).is_ok());
    assert!(parse(PASSLIB_SHA256).unwrap().within(&low).is_ok());
    for over in [DJANGO, PASSLIB_SCRYPT, ARGON2ID] {
        assert!(
            matches!(
                parse(over).unwrap().within(&low),
                Err(FormError::OverCeiling(..))
            ),
            "{over}"
        );
    }
    let bcrypt14 = "$2b$14$F9RP/7EwMVz/Pdspc4VFAeFvp1KLB2bZvihYovlB9FSDAQjhq0RRC";
    assert_eq!(
        parse(bcrypt14).unwrap().within(&Ceilings::default()),
        Err(FormError::OverCeiling("bcrypt cost", 13))
    );
}

#[test]
fn unknown_and_malformed_forms_are_refused() {
    for unknown in [
        "",
        "hunter2",
        "5f4dcc3b5aa765d61d8327deb882cf99",
        "$1$saltsalt$abcdefghijklmnopqrstuv",
        "$6$rounds=5000$salt$hash",
        "pbkdf2_sha1$1000$salt$aGFzaA==",
        "$pbkdf2$1000$salt$hash",
    ] {
        assert_eq!(parse(unknown), Err(FormError::Unknown), "{unknown}");
        assert!(verify(b"x", unknown).is_err());
    }
    for malformed in [
        "$2b$4$F9RP/7EwMVz/Pdspc4VFAeFvp1KLB2bZvihYovlB9FSDAQjhq0RRC",
        "$2b$04$short",
        "$pbkdf2-sha256$0$U.q9N8b4f09prdX63xvjHA$LZ9WjfPuO6AxtlvP7EzRAHETmc3Ahpi1/8eLDqLlS7s",
        "$pbkdf2-sha256$1000$U.q9N8b4f09prdX63xvjHA$LZ9Wjf",
        "$pbkdf2-sha256$1000$U+q9N8b4f09prdX63xvjHA$LZ9WjfPuO6AxtlvP7EzRAHETmc3Ahpi1/8eLDqLlS7s",
        "pbkdf2_sha256$x$salt$XMX7Py/IqN9qevMcUWqwJ6hW8cGyaP6JZ1kDEKKuTqo=",
        "$scrypt$ln=4,r=8$vbfWWut9L4UwJsTYG+Pcuw$li69SB2DVgy+II3XLtXbaEHDhHdQXJXwV2hUqqeq6Ak",
        "$argon2id$v=19$m=64,t=1,p=1$pgpDsJsuqUj22sbvnbqUBw",
        "$argon2x$v=19$m=64,t=1,p=1$pgpDsJsuqUj22sbvnbqUBw$d13e5EL9rSkDxqtqR7q7S3Z9f4y88Ig/QsABVxk5QSc",
    ] {
        assert!(
            matches!(parse(malformed), Err(FormError::Malformed(_))),
            "{malformed}: {:?}",
            parse(malformed)
        );
    }
}

#[test]
fn messages_never_echo_the_hash() {
    for bad in ["$2b$04$short", "hunter2", DJANGO] {
        let message = match parse(bad).and_then(|f| {
            f.within(&Ceilings {
                pbkdf2_iterations: 1,
                ..Ceilings::default()
            })
        }) {
            Err(e) => e.to_string(),
            Ok(_) => unreachable!("{bad} was accepted"),
        };
        assert!(
            !message.contains("short") && !message.contains("hunter2") && !message.contains("CDF4")
        );
    }
}

#[test]
fn dummies_keep_the_form_and_cost_and_match_nothing() {
    for (stored, _) in ALL {
        let form = parse(stored).unwrap();
        let dummy = dummy_like(form);
        assert_eq!(parse(&dummy).unwrap().cost, form.cost, "{dummy}");
        assert!(
            !matches!(verify(PASSWORD.as_bytes(), &dummy), Ok(true)),
            "{dummy}"
        );
    }
}

#[test]
fn the_unknown_user_hash_follows_the_most_common_form() {
    let sample = [BCRYPT_2B, PASSLIB_SHA256, BCRYPT_2A, "not a hash"];
    let dummy = unknown_user_hash(sample).unwrap();
    assert_eq!(parse(&dummy).unwrap().cost, Cost::BcryptCost(4));
    assert_eq!(unknown_user_hash(["not a hash"]), None);
    assert_eq!(unknown_user_hash([]), None);
}

#[tokio::test]
async fn imported_hashes_verify_on_the_pool_and_ask_for_rehash() {
    // Made by Python's bcrypt 5.0.0 and passlib 1.7.4 (see legacy/tests.rs).
    let pool = HashPool::start(HashParams::insecure_for_tests(), 1, 4).unwrap();
    let password = "Tr0ub4dor&3 pässword".as_bytes();
    for stored in [
        "$2b$04$F9RP/7EwMVz/Pdspc4VFAeFvp1KLB2bZvihYovlB9FSDAQjhq0RRC",
        "$pbkdf2-sha256$1000$U.q9N8b4f09prdX63xvjHA$LZ9WjfPuO6AxtlvP7EzRAHETmc3Ahpi1/8eLDqLlS7s",
    ] {
        assert_eq!(
            pool.verify(password, Some(stored)).await.unwrap(),
            Verification::Match { needs_rehash: true }
        );
        assert_eq!(
            pool.verify(b"wrong", Some(stored)).await.unwrap(),
            Verification::Mismatch
        );
    }
    assert!(pool.verify(password, Some("plaintext")).await.is_err());
}

#[tokio::test]
async fn an_unknown_user_can_be_checked_against_an_imported_form() {
    let pool = HashPool::start(HashParams::insecure_for_tests(), 1, 4).unwrap();
    let bcrypt = "$2b$04$F9RP/7EwMVz/Pdspc4VFAeFvp1KLB2bZvihYovlB9FSDAQjhq0RRC";
    // Even a dummy the password would match answers Mismatch.
    pool.set_unknown_user_hash(Some(bcrypt.to_owned()));
    let password = "Tr0ub4dor&3 pässword".as_bytes();
    assert_eq!(
        pool.reserve()
            .unwrap()
            .verify_unknown_user(password)
            .await
            .unwrap(),
        Verification::Mismatch
    );
    pool.set_unknown_user_hash(Some("garbage".to_owned()));
    assert_eq!(
        pool.reserve()
            .unwrap()
            .verify_unknown_user(password)
            .await
            .unwrap(),
        Verification::Mismatch
    );
    pool.set_unknown_user_hash(None);
    assert_eq!(
        pool.reserve()
            .unwrap()
            .verify_unknown_user(password)
            .await
            .unwrap(),
        Verification::Mismatch
    );
    // Known users are unaffected.
    assert!(pool
        .verify(password, Some(bcrypt))
        .await
        .unwrap()
        .is_match());
}

/// What one check costs per scheme at the libraries' usual settings, against the argon2id
/// an unknown User ID costs (docs/abuse.md, "Imported accounts and the same-time rule").
/// Run: `cargo nextest run -p portcullis-crypto measure_check_costs --run-ignored only
/// --no-capture`. The digests are dummies: a wrong digest costs the full computation.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_check_costs() {
    use std::time::Instant;
    let salt16 = STANDARD_NO_PAD.encode([7u8; 16]);
    let ab = |bytes: &[u8]| STANDARD_NO_PAD.encode(bytes).replace('+', ".");
    let cases = [
        ("bcrypt cost 10", bcrypt::hash("x", 10).unwrap()),
        ("bcrypt cost 12", bcrypt::hash("x", 12).unwrap()),
        (
            "passlib pbkdf2-sha256 29000 (passlib default)",
            format!("$pbkdf2-sha256$29000${}${}", ab(&[7u8; 16]), ab(&[1u8; 32])),
        ),
        (
            "passlib pbkdf2-sha512 25000 (passlib default)",
            format!("$pbkdf2-sha512$25000${}${}", ab(&[7u8; 16]), ab(&[1u8; 64])),
        ),
        (
            "django pbkdf2_sha256 1000000 (Django 5.2 default)",
            format!(
                "pbkdf2_sha256$1000000$abcdefghijklmnopqrstuv${}",
                STANDARD.encode([1u8; 32])
            ),
        ),
        (
            "passlib scrypt ln=16,r=8,p=1 (passlib default)",
            format!(
                "$scrypt$ln=16,r=8,p=1${salt16}${}",
                STANDARD_NO_PAD.encode([1u8; 32])
            ),
        ),
        (
            "argon2-cffi argon2id m=65536,t=3,p=4 (its default)",
            format!(
                "$argon2id$v=19$m=65536,t=3,p=4${salt16}${}",
                STANDARD_NO_PAD.encode([1u8; 32])
            ),
        ),
    ];
    let time = |f: &dyn Fn()| {
        f();
        let runs = 5;
        let start = Instant::now();
        for _ in 0..runs {
            f();
        }
        start.elapsed().as_secs_f64() * 1000.0 / f64::from(runs)
    };
    // The unknown-User-ID cost: argon2id at the default parameters (19 MiB, t=2, p=1).
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(19_456, 2, 1, Some(32)).unwrap(),
    );
    let dummy = time(&|| {
        let mut out = [0u8; 32];
        argon
            .hash_password_into(b"x", &[7u8; 16], &mut out)
            .unwrap();
    });
    println!("argon2id m=19456,t=2,p=1 (unknown User ID): {dummy:.1} ms");
    for (name, stored) in cases {
        let ms = time(&|| {
            let _ = verify(b"y", &stored);
        });
        println!(
            "{name}: {ms:.1} ms ({:+.0}% against the unknown User ID)",
            (ms / dummy - 1.0) * 100.0
        );
    }
}
