//! Hashes made by the Python libraries an earlier login system would have used (passlib
//! 1.7.4, bcrypt 5.0.0, Django 5.2.8's make_password, argon2-cffi 25.1.0), for the
//! password below; the API tests (accounts_import.rs) make fresh ones at every run.

use super::*;

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
