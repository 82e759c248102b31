//! Figure 12: the argon2id kernel candidates side by side, each checked before it is timed.
//!
//! Every candidate hashes at the production parameters on one thread per core, each thread
//! reusing one memory block where the candidate allows it (as the server's pool does), and is
//! checked against the RFC 9106 §5.3 argon2id vector (with secret and associated data) and
//! against hashes argon2-cffi made in this run (fresh passwords and salts, three parameter
//! sets). argon2-cffi itself runs one process per core in the same run, and each candidate's
//! rate is divided by its. A candidate that fails a check is reported and never "fastest".

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context};

use crate::hash::{self, Cost, Hasher, Rate};
use crate::report::ms;
use crate::suite::{progress, Ctx, MAX_PER_CONNECTION};

/// The tag RFC 9106 §5.3 publishes for argon2id (m=32, t=3, p=4, password 32 × 0x01,
/// salt 16 × 0x02, secret 8 × 0x03, associated data 12 × 0x04).
const RFC9106_TAG: &str = "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659";
const RFC9106_COST: Cost = Cost {
    memory_kib: 32,
    iterations: 3,
    parallelism: 4,
};
const RFC9106_KEY: [u8; 8] = [3; 8];
const RFC9106_AD: [u8; 12] = [4; 12];

/// argon2-cffi's side (vectors and its rate), run by the venv's Python with `-c`.
const CFFI_SCRIPT: &str = include_str!("../kernels_cffi.py");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Candidate {
    /// The `argon2` crate (workspace version; the server's kernel until figure 12 chose the
    /// reference C, and still its kernel for imported argon2i/argon2d hashes).
    Crate,
    /// The `argon2` crate's next release.
    CrateNext,
    /// `rust-argon2`, the other maintained pure-Rust implementation.
    RustArgon2,
    /// The reference C implementation through `portcullis-argon2`, with one of its fill
    /// loops; the widest this CPU runs (`Kernel::best`) is the server's kernel.
    ReferenceC(portcullis_argon2::Kernel),
}

/// Every candidate this machine runs: the Rust crates, and each build of the reference C's
/// fill loop the CPU supports.
fn candidates() -> Vec<Candidate> {
    let mut all = vec![
        Candidate::Crate,
        Candidate::CrateNext,
        Candidate::RustArgon2,
    ];
    all.extend(
        portcullis_argon2::Kernel::ALL
            .into_iter()
            .filter(|k| k.runs())
            .map(Candidate::ReferenceC),
    );
    all
}

/// One thread's hasher from a release of the `argon2` crate (0.5 and 0.6 share this API but
/// not their types), reusing its memory block.
macro_rules! crate_hasher {
    ($argon2:ident, $cost:expr, $key:expr, $ad:expr) => {{
        use $argon2::{Algorithm, Argon2, AssociatedData, Block, ParamsBuilder, Version};
        let params = ParamsBuilder::new()
            .m_cost($cost.memory_kib)
            .t_cost($cost.iterations)
            .p_cost($cost.parallelism)
            .output_len(32)
            .data(AssociatedData::new($ad).map_err(anyhow::Error::msg)?)
            .build()
            .map_err(anyhow::Error::msg)?;
        let argon = Argon2::new_with_secret($key, Algorithm::Argon2id, Version::V0x13, params)
            .map_err(anyhow::Error::msg)?;
        let mut memory = vec![Block::default(); argon.params().block_count()];
        Box::new(move |password: &[u8], salt: &[u8], out: &mut [u8]| {
            argon
                .hash_password_into_with_memory(password, salt, out, &mut memory)
                .map_err(anyhow::Error::msg)
        })
    }};
}

impl Candidate {
    fn name(self) -> String {
        match self {
            Self::Crate => "argon2 0.5.3, AVX2 chosen at run time".into(),
            Self::CrateNext => "argon2 0.6.0, AVX2 chosen at run time".into(),
            Self::RustArgon2 => "rust-argon2 3.0.0 (portable, allocates per hash)".into(),
            Self::ReferenceC(kernel) => format!(
                "reference C (portcullis-argon2), {}{}",
                kernel.describe(),
                if kernel == portcullis_argon2::Kernel::best() {
                    ": the server's kernel, chosen at run time"
                } else {
                    ""
                }
            ),
        }
    }

    /// One thread's argon2id at `cost` with the RFC's optional `key` and `ad`, reusing its
    /// memory block where the candidate's API allows.
    fn hasher(self, cost: Cost, key: &'static [u8], ad: &'static [u8]) -> anyhow::Result<Hasher> {
        Ok(match self {
            Self::Crate => crate_hasher!(argon2, cost, key, ad),
            Self::CrateNext => crate_hasher!(argon2_next, cost, key, ad),
            Self::RustArgon2 => {
                let config = rust_argon2::Config {
                    ad,
                    hash_length: 32,
                    lanes: cost.parallelism,
                    mem_cost: cost.memory_kib,
                    secret: key,
                    thread_mode: rust_argon2::ThreadMode::Sequential,
                    time_cost: cost.iterations,
                    variant: rust_argon2::Variant::Argon2id,
                    version: rust_argon2::Version::Version13,
                };
                Box::new(move |password, salt, out| {
                    let tag = rust_argon2::hash_raw(password, salt, &config)
                        .map_err(anyhow::Error::msg)?;
                    ensure!(
                        tag.len() == out.len(),
                        "rust-argon2: tag of {} bytes",
                        tag.len()
                    );
                    out.copy_from_slice(&tag);
                    Ok(())
                })
            }
            Self::ReferenceC(kernel) => {
                let params = portcullis_argon2::Params {
                    memory_kib: cost.memory_kib,
                    iterations: cost.iterations,
                    parallelism: cost.parallelism,
                };
                let mut memory = portcullis_argon2::Memory::new();
                Box::new(move |password, salt, out| {
                    let input = portcullis_argon2::Input {
                        secret: password,
                        salt,
                        key,
                        ad,
                    };
                    portcullis_argon2::hash_with(kernel, params, input, out, &mut memory)
                        .map_err(anyhow::Error::msg)
                })
            }
        })
    }
}

/// A hash argon2-cffi made: its inputs and raw tag.
struct CffiHash {
    cost: Cost,
    password: Vec<u8>,
    salt: Vec<u8>,
    tag: Vec<u8>,
}

/// What argon2-cffi gave: its hashes, its RFC 9106 tag, its version.
struct Cffi {
    python: String,
    version: String,
    rfc9106_ok: bool,
    hashes: Vec<CffiHash>,
}

/// The venv scripts/test-deps makes (argon2-cffi is pinned there).
pub fn python() -> String {
    std::env::var("PORTCULLIS_BENCH_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into())
}

fn cffi_vectors() -> anyhow::Result<Cffi> {
    let python = python();
    let output = Command::new(&python)
        .args(["-c", CFFI_SCRIPT, "vectors"])
        .output()
        .with_context(|| format!("running {python} (make it with scripts/test-deps)"))?;
    ensure!(
        output.status.success(),
        "argon2-cffi vectors: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut cffi = Cffi {
        python,
        version: String::new(),
        rfc9106_ok: false,
        hashes: Vec::new(),
    };
    for line in String::from_utf8(output.stdout)?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if let Some(tag) = v.get("rfc9106").and_then(serde_json::Value::as_str) {
            cffi.rfc9106_ok =
                tag == RFC9106_TAG && v.get("rc").and_then(serde_json::Value::as_i64) == Some(0);
            cffi.version = v
                .get("version")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?")
                .to_owned();
            continue;
        }
        let num = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .with_context(|| format!("argon2-cffi vector without {k}"))
        };
        let bytes = |k: &str| -> anyhow::Result<Vec<u8>> {
            Ok(hex::decode(
                v.get(k)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default(),
            )?)
        };
        cffi.hashes.push(CffiHash {
            cost: Cost {
                memory_kib: num("m")?,
                iterations: num("t")?,
                parallelism: num("p")?,
            },
            password: bytes("password")?,
            salt: bytes("salt")?,
            tag: bytes("tag")?,
        });
    }
    ensure!(
        !cffi.hashes.is_empty() && !cffi.version.is_empty(),
        "argon2-cffi made no vectors"
    );
    Ok(cffi)
}

/// How a candidate did on the checks.
struct Checks {
    rfc9106: bool,
    cffi_matched: usize,
    cffi_total: usize,
}

impl Checks {
    fn pass(&self) -> bool {
        self.rfc9106 && self.cffi_total > 0 && self.cffi_matched == self.cffi_total
    }

    fn describe(&self) -> String {
        format!(
            "RFC 9106 {}, argon2-cffi {}/{}",
            if self.rfc9106 { "pass" } else { "FAIL" },
            self.cffi_matched,
            self.cffi_total
        )
    }
}

fn check(candidate: Candidate, cffi: Option<&Cffi>) -> Checks {
    let mut out = [0u8; 32];
    let rfc9106 = candidate
        .hasher(RFC9106_COST, &RFC9106_KEY, &RFC9106_AD)
        .and_then(|mut h| h(&[1; 32], &[2; 16], &mut out))
        .is_ok()
        && hex::encode(out) == RFC9106_TAG;
    let hashes = cffi.map_or(&[][..], |c| &c.hashes[..]);
    let cffi_matched = hashes
        .iter()
        .filter(|v| {
            let mut out = vec![0u8; v.tag.len()];
            candidate
                .hasher(v.cost, &[], &[])
                .and_then(|mut h| h(&v.password, &v.salt, &mut out))
                .is_ok()
                && out == v.tag
        })
        .count();
    Checks {
        rfc9106,
        cffi_matched,
        cffi_total: hashes.len(),
    }
}

/// argon2-cffi's rate: one Python process per core, started together.
/// Whether the venv's Python has argon2-cffi (figure 1 divides sign-ins by its rate too).
pub fn cffi_ready() -> bool {
    Command::new(python())
        .args(["-c", "import argon2"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// argon2-cffi's hashes/s at `cost`, one process per core, for about `run_for`.
pub fn cffi_rate(cost: Cost, cores: usize, run_for: Duration, most: u64) -> anyhow::Result<Rate> {
    let python = python();
    let args = [
        cost.memory_kib.to_string(),
        cost.iterations.to_string(),
        cost.parallelism.to_string(),
        run_for.as_secs_f64().to_string(),
        most.to_string(),
    ];
    let children = (0..cores.max(1))
        .map(|_| {
            Command::new(&python)
                .args(["-c", CFFI_SCRIPT, "rate"])
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {python}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut hashes = 0;
    let mut longest = 0f64;
    for child in children {
        let output = child.wait_with_output()?;
        ensure!(output.status.success(), "an argon2-cffi process failed");
        let v: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        hashes += v
            .get("hashes")
            .and_then(serde_json::Value::as_u64)
            .context("argon2-cffi rate without hashes")?;
        longest = longest.max(
            v.get("seconds")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0),
        );
    }
    Ok(Rate {
        hashes,
        elapsed: Duration::from_secs_f64(longest),
    })
}

/// Figure 12.
pub async fn figure(ctx: &mut Ctx) -> anyhow::Result<()> {
    let (cost, cores) = (ctx.cost, ctx.cores);
    let (run_for, rounds) = (ctx.sizes.kernel_chunk, ctx.sizes.rounds);
    progress("figure 12: argon2id kernel candidates");
    let measured = tokio::task::spawn_blocking(move || run(cost, cores, run_for, rounds)).await??;
    let Measured {
        cffi,
        cffi_rate,
        rows,
    } = measured;
    let per_core = |r: &Rate| r.per_second() / cores as f64;
    let cffi_per_core = cffi_rate.as_ref().map(per_core);
    match (&cffi, &cffi_rate) {
        (Some(c), Some(rate)) => ctx.report.check(
            "12",
            format!(
                "argon2-cffi {} (reference C, one process per core)",
                c.version
            ),
            format!(
                "{:.1} hashes/s per core ({} a hash); RFC 9106 {}",
                per_core(rate),
                ms(1000.0 / per_core(rate).max(1e-9)),
                if c.rfc9106_ok { "pass" } else { "FAIL" }
            ),
            "vectors pass",
            c.rfc9106_ok,
        ),
        _ => ctx.report.note(
            "12",
            format!(
                "SKIPPED argon2-cffi (no ratios, no cross-check): {} has no argon2-cffi; run \
                 scripts/test-deps",
                python()
            ),
        ),
    }
    let mut fastest: Option<(Candidate, f64)> = None;
    let mut server_rate = None;
    for (candidate, checks, rate) in &rows {
        let rate = per_core(rate);
        let ratio = cffi_per_core.map_or_else(
            || "no argon2-cffi".to_owned(),
            |c| format!("{:.2}× argon2-cffi", rate / c.max(1e-9)),
        );
        ctx.report.check(
            "12",
            candidate.name(),
            format!(
                "{rate:.1} hashes/s per core ({} a hash), {ratio}; {}",
                ms(1000.0 / rate.max(1e-9)),
                checks.describe()
            ),
            "vectors pass",
            checks.pass(),
        );
        if *candidate == Candidate::ReferenceC(portcullis_argon2::Kernel::best()) {
            server_rate = Some(rate);
        }
        if checks.pass() && fastest.is_none_or(|(_, best)| rate > best) {
            fastest = Some((*candidate, rate));
        }
    }
    if let (Some((best, rate)), Some(server_rate)) = (fastest, server_rate) {
        ctx.report.info(
            "12",
            "fastest candidate that passes ÷ the server's kernel",
            format!("{:.3} ({})", rate / server_rate.max(1e-9), best.name()),
        );
    }
    ctx.report.note(
        "12",
        format!(
            "argon2id m={} t={} p={}, rounds: {rounds}, each {:.2} s of argon2-cffi then each \
             candidate in turn, {cores} threads (one per core), each reusing one memory block \
             except rust-argon2 (its API allocates); argon2-cffi: {cores} processes of {}; vectors: RFC 9106 §5.3 (argon2id with secret \
             and associated data) and {} hashes argon2-cffi made in this run (m=64/256/19456)",
            cost.memory_kib,
            cost.iterations,
            cost.parallelism,
            run_for.as_secs_f64(),
            cffi.as_ref().map_or_else(python, |c| c.python.clone()),
            cffi.as_ref().map_or(0, |c| c.hashes.len()),
        ),
    );
    Ok(())
}

struct Measured {
    cffi: Option<Cffi>,
    cffi_rate: Option<Rate>,
    rows: Vec<(Candidate, Checks, Rate)>,
}

fn run(cost: Cost, cores: usize, run_for: Duration, rounds: usize) -> anyhow::Result<Measured> {
    let cffi = match cffi_vectors() {
        Ok(c) => Some(c),
        Err(e) => {
            progress(&format!("argon2-cffi unavailable: {e:#}"));
            None
        }
    };
    let candidates = candidates();
    let checks: Vec<Checks> = candidates
        .iter()
        .map(|&c| check(c, cffi.as_ref()))
        .collect();
    // Rounds of every contender in turn, so a disturbance late in the run hits all alike.
    let mut cffi_total = cffi.as_ref().map(|_| Rate::ZERO);
    let mut totals: Vec<Rate> = candidates.iter().map(|_| Rate::ZERO).collect();
    for _ in 0..rounds.max(1) {
        if let Some(total) = cffi_total.as_mut() {
            total.add(cffi_rate(cost, cores, run_for, MAX_PER_CONNECTION)?);
        }
        for (candidate, total) in candidates.iter().zip(totals.iter_mut()) {
            let make = |_: usize| candidate.hasher(cost, &[], &[]);
            let rate = hash::measure_kernel(cores, run_for, MAX_PER_CONNECTION, &make)
                .with_context(|| format!("measuring {}", candidate.name()))?;
            total.add(rate);
        }
    }
    let rows = candidates
        .into_iter()
        .zip(checks)
        .zip(totals)
        .map(|((c, k), r)| (c, k, r))
        .collect();
    Ok(Measured {
        cffi,
        cffi_rate: cffi_total,
        rows,
    })
}
