//! Password hashes made by an issuer's earlier login system, kept as they are at an accounts
//! import and checked at sign-in until the first success replaces them with our argon2id.
//!
//! Forms understood (contract "Accounts import"):
//!
//! | form | example prefix | checked with |
//! | --- | --- | --- |
//! | bcrypt | `$2a$` `$2b$` `$2y$` + cost | the `bcrypt` crate |
//! | passlib PBKDF2 | `$pbkdf2-sha256$rounds$salt$dk`, `$pbkdf2-sha512$…` (adapted base64) | `ring::pbkdf2` |
//! | Django PBKDF2 | `pbkdf2_sha256$iterations$salt$dk` (salt as text, dk standard base64) | `ring::pbkdf2` |
//! | passlib scrypt | `$scrypt$ln=…,r=…,p=…$salt$dk` (standard base64, no padding) | the `scrypt` crate |
//! | argon2 PHC | `$argon2id$v=19$m=…,t=…,p=…$salt$hash` (also argon2i/argon2d) | the `argon2` crate |
//!
//! [`parse`] reads a hash's form and cost without computing anything: the import refuses an
//! unknown form, and a cost above the configured [`Ceilings`], with the line it is on, so an
//! imported hash can never be used to make one sign-in occupy a hashing worker for long.
//! [`verify`] runs on the hashing pool's workers (see `hashing.rs`); every comparison of
//! derived bytes is constant-time.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use std::num::NonZeroU32;
use zeroize::Zeroizing;

use crate::ct::ct_eq;

/// The schemes an imported hash can be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Bcrypt,
    PasslibPbkdf2Sha256,
    PasslibPbkdf2Sha512,
    DjangoPbkdf2Sha256,
    PasslibScrypt,
    Argon2,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Bcrypt => "bcrypt",
            Scheme::PasslibPbkdf2Sha256 => "passlib pbkdf2-sha256",
            Scheme::PasslibPbkdf2Sha512 => "passlib pbkdf2-sha512",
            Scheme::DjangoPbkdf2Sha256 => "django pbkdf2_sha256",
            Scheme::PasslibScrypt => "passlib scrypt",
            Scheme::Argon2 => "argon2",
        }
    }
}

/// The cost a hash asks of a worker, as its form states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// bcrypt's log2 rounds (4–31).
    BcryptCost(u32),
    /// PBKDF2 iterations.
    Iterations(u32),
    /// scrypt: N = 2^log_n, block size r, parallelism p.
    Scrypt { log_n: u8, r: u32, p: u32 },
    /// argon2: memory in KiB, passes, lanes.
    Argon2 {
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
}

/// The highest cost an imported hash may ask for (configuration `accounts_import.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceilings {
    pub bcrypt_cost: u32,
    pub pbkdf2_iterations: u32,
    pub scrypt_log_n: u8,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
}

impl Default for Ceilings {
    /// Above the usual defaults of the libraries that make these hashes (bcrypt 12, Django's
    /// 1,000,000 PBKDF2-SHA256 iterations, passlib's scrypt ln=16, argon2-cffi's 64 MiB, t=3),
    /// with little room beyond: each is about a quarter to a half second of one core.
    fn default() -> Self {
        Self {
            bcrypt_cost: 13,
            pbkdf2_iterations: 1_200_000,
            scrypt_log_n: 17,
            argon2_memory_kib: 131_072,
            argon2_iterations: 4,
        }
    }
}

/// scrypt's block size and parallelism beyond which a hash is refused whatever the ceilings
/// (passlib's defaults are r=8, p=1).
const SCRYPT_MAX_R: u32 = 32;
const SCRYPT_MAX_P: u32 = 4;
/// argon2 lanes beyond which a hash is refused (argon2-cffi's default is 4).
const ARGON2_MAX_LANES: u32 = 16;

/// Why a stored string is not an importable hash. The messages never echo the hash.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error(
        "not a supported hash form (bcrypt, passlib or Django PBKDF2, passlib scrypt, argon2 PHC)"
    )]
    Unknown,
    #[error("a {0} hash that is not well formed")]
    Malformed(&'static str),
    #[error("{0} above the configured ceiling of {1}")]
    OverCeiling(&'static str, u64),
}

/// A parsed imported hash: its scheme and what it costs to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Form {
    pub scheme: Scheme,
    pub cost: Cost,
}

impl Form {
    /// Refuses a cost above `ceilings` (the import's check).
    pub fn within(self, ceilings: &Ceilings) -> Result<Self, FormError> {
        match self.cost {
            Cost::BcryptCost(c) if c > ceilings.bcrypt_cost => Err(FormError::OverCeiling(
                "bcrypt cost",
                ceilings.bcrypt_cost.into(),
            )),
            Cost::Iterations(n) if n > ceilings.pbkdf2_iterations => Err(FormError::OverCeiling(
                "PBKDF2 iteration count",
                ceilings.pbkdf2_iterations.into(),
            )),
            Cost::Scrypt { log_n, .. } if log_n > ceilings.scrypt_log_n => Err(
                FormError::OverCeiling("scrypt ln (log2 N)", ceilings.scrypt_log_n.into()),
            ),
            // Memory and work grow with r × p as with N: the ceiling's N at passlib's r = 8,
            // p = 1 bounds them all (r = 32, p = 4 at the ceiling's N would be 16 times that).
            Cost::Scrypt { log_n, r, p }
                if (u64::from(r) * u64::from(p)) << log_n > 8u64 << ceilings.scrypt_log_n =>
            {
                Err(FormError::OverCeiling(
                    "scrypt work (r × p × N, as N at r = 8, p = 1)",
                    ceilings.scrypt_log_n.into(),
                ))
            }
            Cost::Argon2 { memory_kib, .. } if memory_kib > ceilings.argon2_memory_kib => Err(
                FormError::OverCeiling("argon2 memory (KiB)", ceilings.argon2_memory_kib.into()),
            ),
            Cost::Argon2 { iterations, .. } if iterations > ceilings.argon2_iterations => Err(
                FormError::OverCeiling("argon2 passes (t)", ceilings.argon2_iterations.into()),
            ),
            _ => Ok(self),
        }
    }
}

/// Reads the form and cost of `stored` without computing anything.
pub fn parse(stored: &str) -> Result<Form, FormError> {
    if let Some(rest) = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|p| stored.strip_prefix(p))
    {
        return parse_bcrypt(rest);
    }
    if let Some(rest) = stored.strip_prefix("$pbkdf2-sha256$") {
        return Passlib::parse(rest, 32, "passlib PBKDF2-SHA256")
            .map(|p| form(Scheme::PasslibPbkdf2Sha256, Cost::Iterations(p.rounds)));
    }
    if let Some(rest) = stored.strip_prefix("$pbkdf2-sha512$") {
        return Passlib::parse(rest, 64, "passlib PBKDF2-SHA512")
            .map(|p| form(Scheme::PasslibPbkdf2Sha512, Cost::Iterations(p.rounds)));
    }
    if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        return Django::parse(rest)
            .map(|d| form(Scheme::DjangoPbkdf2Sha256, Cost::Iterations(d.iterations)));
    }
    if let Some(rest) = stored.strip_prefix("$scrypt$") {
        return PasslibScrypt::parse(rest).map(|s| {
            form(
                Scheme::PasslibScrypt,
                Cost::Scrypt {
                    log_n: s.log_n,
                    r: s.r,
                    p: s.p,
                },
            )
        });
    }
    if stored.starts_with("$argon2") {
        return parse_argon2(stored);
    }
    Err(FormError::Unknown)
}

fn form(scheme: Scheme, cost: Cost) -> Form {
    Form { scheme, cost }
}

/// Checks `secret` against an imported hash. `Ok(false)` for a wrong secret; `Err` for a
/// string that is not an importable hash (never a match).
pub fn verify(secret: &[u8], stored: &str) -> Result<bool, FormError> {
    let parsed = parse(stored)?;
    match parsed.scheme {
        Scheme::Bcrypt => {
            bcrypt::verify(secret, stored).map_err(|_| FormError::Malformed("bcrypt"))
        }
        Scheme::DjangoPbkdf2Sha256 => {
            let rest = stored.strip_prefix("pbkdf2_sha256$").unwrap_or_default();
            let d = Django::parse(rest)?;
            Ok(pbkdf2_matches(
                ring::pbkdf2::PBKDF2_HMAC_SHA256,
                d.iterations,
                d.salt.as_bytes(),
                secret,
                &d.dk,
            ))
        }
        Scheme::PasslibPbkdf2Sha256 => {
            let rest = stored.strip_prefix("$pbkdf2-sha256$").unwrap_or_default();
            let p = Passlib::parse(rest, 32, "passlib PBKDF2-SHA256")?;
            Ok(pbkdf2_matches(
                ring::pbkdf2::PBKDF2_HMAC_SHA256,
                p.rounds,
                &p.salt,
                secret,
                &p.dk,
            ))
        }
        Scheme::PasslibPbkdf2Sha512 => {
            let rest = stored.strip_prefix("$pbkdf2-sha512$").unwrap_or_default();
            let p = Passlib::parse(rest, 64, "passlib PBKDF2-SHA512")?;
            Ok(pbkdf2_matches(
                ring::pbkdf2::PBKDF2_HMAC_SHA512,
                p.rounds,
                &p.salt,
                secret,
                &p.dk,
            ))
        }
        Scheme::PasslibScrypt => {
            let rest = stored.strip_prefix("$scrypt$").unwrap_or_default();
            let s = PasslibScrypt::parse(rest)?;
            let params = scrypt::Params::new(s.log_n, s.r, s.p, s.dk.len())
                .map_err(|_| FormError::Malformed("passlib scrypt"))?;
            let mut out = Zeroizing::new(vec![0u8; s.dk.len()]);
            scrypt::scrypt(secret, &s.salt, &params, &mut out)
                .map_err(|_| FormError::Malformed("passlib scrypt"))?;
            Ok(ct_eq(&out, &s.dk))
        }
        Scheme::Argon2 => {
            use argon2::password_hash::{PasswordHash, PasswordVerifier};
            let hash = PasswordHash::new(stored).map_err(|_| FormError::Malformed("argon2"))?;
            // The argon2 crate takes the algorithm, version and parameters from the string
            // and compares the output in constant time.
            match argon2::Argon2::default().verify_password(secret, &hash) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::Password) => Ok(false),
                Err(_) => Err(FormError::Malformed("argon2")),
            }
        }
    }
}

/// A hash of the same form and cost as `form` that no password matches: what an unknown
/// User ID is checked against while most imported accounts still carry that form, so that
/// a sign-in costs the same for both (the same-time rule; docs/abuse.md).
pub fn dummy_like(form: Form) -> String {
    let zeros = |n: usize| STANDARD_NO_PAD.encode(vec![0u8; n]);
    let ab = |n: usize| zeros(n).replace('+', ".");
    match (form.scheme, form.cost) {
        (Scheme::Bcrypt, Cost::BcryptCost(c)) => format!("$2b${c:02}${}", ".".repeat(53)),
        (Scheme::PasslibPbkdf2Sha256, Cost::Iterations(n)) => {
            format!("$pbkdf2-sha256${n}${}${}", ab(16), ab(32))
        }
        (Scheme::PasslibPbkdf2Sha512, Cost::Iterations(n)) => {
            format!("$pbkdf2-sha512${n}${}${}", ab(16), ab(64))
        }
        (Scheme::DjangoPbkdf2Sha256, Cost::Iterations(n)) => {
            format!(
                "pbkdf2_sha256${n}$unknownuserdummysalt${}",
                STANDARD.encode([0u8; 32])
            )
        }
        (Scheme::PasslibScrypt, Cost::Scrypt { log_n, r, p }) => {
            format!("$scrypt$ln={log_n},r={r},p={p}${}${}", zeros(16), zeros(32))
        }
        (
            _,
            Cost::Argon2 {
                memory_kib,
                iterations,
                parallelism,
            },
        ) => format!(
            "$argon2id$v=19$m={memory_kib},t={iterations},p={parallelism}${}${}",
            zeros(16),
            zeros(32)
        ),
        // A scheme with another scheme's cost cannot come out of `parse`.
        _ => format!("$2b$10${}", ".".repeat(53)),
    }
}

/// The dummy for the most common form among `sample` (hashes of imported accounts not yet
/// signed in to); `None` when none of them parses (an unknown User ID then costs the
/// current argon2id, as before any import).
pub fn unknown_user_hash<'a>(sample: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut counts: Vec<(Form, u64)> = Vec::new();
    for stored in sample {
        let Ok(form) = parse(stored) else { continue };
        match counts.iter_mut().find(|(f, _)| *f == form) {
            Some((_, n)) => *n += 1,
            None => counts.push((form, 1)),
        }
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(form, _)| dummy_like(form))
}

fn pbkdf2_matches(
    algorithm: ring::pbkdf2::Algorithm,
    iterations: u32,
    salt: &[u8],
    secret: &[u8],
    expected: &[u8],
) -> bool {
    let Some(iterations) = NonZeroU32::new(iterations) else {
        return false;
    };
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    ring::pbkdf2::derive(algorithm, iterations, salt, secret, &mut out);
    ct_eq(&out, expected)
}

fn parse_bcrypt(rest: &str) -> Result<Form, FormError> {
    let bad = FormError::Malformed("bcrypt");
    let (cost, body) = rest.split_once('$').ok_or(bad.clone())?;
    if cost.len() != 2 || body.len() != 53 || !body.bytes().all(is_bcrypt_char) {
        return Err(bad);
    }
    let cost: u32 = cost.parse().map_err(|_| bad.clone())?;
    if !(4..=31).contains(&cost) {
        return Err(bad);
    }
    Ok(form(Scheme::Bcrypt, Cost::BcryptCost(cost)))
}

fn is_bcrypt_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'/'
}

/// passlib's "adapted base64": standard alphabet with `.` for `+`, no padding.
fn ab64_decode(s: &str) -> Option<Vec<u8>> {
    if s.contains('+') || s.contains('=') {
        return None;
    }
    STANDARD_NO_PAD.decode(s.replace('.', "+")).ok()
}

/// `rounds$salt$dk` of passlib's `$pbkdf2-sha256$` / `$pbkdf2-sha512$`.
struct Passlib {
    rounds: u32,
    salt: Vec<u8>,
    dk: Vec<u8>,
}

impl Passlib {
    fn parse(rest: &str, dk_len: usize, name: &'static str) -> Result<Self, FormError> {
        let bad = || FormError::Malformed(name);
        let mut parts = rest.split('$');
        let rounds: u32 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let salt = ab64_decode(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
        let dk = ab64_decode(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
        if parts.next().is_some() || rounds == 0 || dk.len() != dk_len || salt.is_empty() {
            return Err(bad());
        }
        Ok(Self { rounds, salt, dk })
    }
}

/// `iterations$salt$dk` of Django's `pbkdf2_sha256$`: the salt is used as its text.
struct Django {
    iterations: u32,
    salt: String,
    dk: Vec<u8>,
}

impl Django {
    fn parse(rest: &str) -> Result<Self, FormError> {
        let bad = || FormError::Malformed("Django PBKDF2-SHA256");
        let mut parts = rest.split('$');
        let iterations: u32 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let salt = parts.next().ok_or_else(bad)?.to_owned();
        let dk = STANDARD
            .decode(parts.next().ok_or_else(bad)?)
            .map_err(|_| bad())?;
        if parts.next().is_some() || iterations == 0 || dk.len() != 32 || salt.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            iterations,
            salt,
            dk,
        })
    }
}

/// `ln=…,r=…,p=…$salt$dk` of passlib's `$scrypt$`.
struct PasslibScrypt {
    log_n: u8,
    r: u32,
    p: u32,
    salt: Vec<u8>,
    dk: Vec<u8>,
}

impl PasslibScrypt {
    fn parse(rest: &str) -> Result<Self, FormError> {
        let bad = || FormError::Malformed("passlib scrypt");
        let mut parts = rest.split('$');
        let (mut log_n, mut r, mut p) = (None, None, None);
        for kv in parts.next().ok_or_else(bad)?.split(',') {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            let v: u32 = v.parse().map_err(|_| bad())?;
            match k {
                "ln" => log_n = Some(v),
                "r" => r = Some(v),
                "p" => p = Some(v),
                _ => return Err(bad()),
            }
        }
        let (Some(log_n), Some(r), Some(p)) = (log_n, r, p) else {
            return Err(bad());
        };
        // passlib writes scrypt's salt and key in standard base64 without padding (its
        // PBKDF2 forms use the adapted alphabet).
        let salt = STANDARD_NO_PAD
            .decode(parts.next().ok_or_else(bad)?)
            .map_err(|_| bad())?;
        let dk = STANDARD_NO_PAD
            .decode(parts.next().ok_or_else(bad)?)
            .map_err(|_| bad())?;
        let log_n = u8::try_from(log_n).map_err(|_| bad())?;
        if parts.next().is_some()
            || !(1..=63).contains(&log_n)
            || r == 0
            || p == 0
            || dk.len() < 16
            || dk.len() > 64
        {
            return Err(bad());
        }
        if r > SCRYPT_MAX_R {
            return Err(FormError::OverCeiling("scrypt r", SCRYPT_MAX_R.into()));
        }
        if p > SCRYPT_MAX_P {
            return Err(FormError::OverCeiling("scrypt p", SCRYPT_MAX_P.into()));
        }
        Ok(Self {
            log_n,
            r,
            p,
            salt,
            dk,
        })
    }
}

fn parse_argon2(stored: &str) -> Result<Form, FormError> {
    use argon2::password_hash::PasswordHash;
    let bad = || FormError::Malformed("argon2");
    let hash = PasswordHash::new(stored).map_err(|_| bad())?;
    if !matches!(hash.algorithm.as_str(), "argon2id" | "argon2i" | "argon2d")
        || hash.hash.is_none()
        || hash.salt.is_none()
    {
        return Err(bad());
    }
    let params = argon2::Params::try_from(&hash).map_err(|_| bad())?;
    if params.p_cost() > ARGON2_MAX_LANES {
        return Err(FormError::OverCeiling(
            "argon2 lanes (p)",
            ARGON2_MAX_LANES.into(),
        ));
    }
    Ok(form(
        Scheme::Argon2,
        Cost::Argon2 {
            memory_kib: params.m_cost(),
            iterations: params.t_cost(),
            parallelism: params.p_cost(),
        },
    ))
}

#[cfg(test)]
mod tests;
