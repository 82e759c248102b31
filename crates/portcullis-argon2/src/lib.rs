//! The reference C implementation of argon2id (the P-H-C `phc-winner-argon2` sources, CC0 or
//! Apache-2.0, vendored unchanged in `c/` and compiled by `build.rs` with `cc`), behind a safe
//! API that reuses a memory block the caller owns, as the server's hashing workers do.
//!
//! The reference's fill loop is compiled four times: its SIMD `opt.c` for AVX-512F, for AVX2
//! and for the x86-64 baseline (SSE2), and its portable `ref.c`. [`Kernel::best`] picks the
//! widest this CPU runs, once; the same binary runs on any x86-64 (or, with `ref.c` only, any
//! other architecture). Everything else (BLAKE2b, the index computation, the finalisation)
//! is the reference's one build.
//!
//! Its unsafe calls live in the private `ffi` module, the only place in the workspace where
//! `unsafe` is allowed; everything public here is safe.

mod ffi;

/// argon2id cost parameters (the server's `HashParams` names them the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Params {
    /// The number of 1 KiB blocks the hash uses: `m` rounded down to a multiple of `4 p`
    /// (RFC 9106 §3.2), at least `8 p`.
    pub fn block_count(self) -> usize {
        let lanes = self.parallelism.max(1);
        let m = self.memory_kib.max(8 * lanes);
        usize::try_from(m / (4 * lanes) * 4 * lanes).unwrap_or(usize::MAX)
    }
}

/// The memory a hash fills, kept between hashes by its owner (one per hashing thread).
#[derive(Default)]
pub struct Memory {
    /// 1 KiB blocks of 128 words, so the block is 8-byte aligned as the C code expects.
    blocks: Vec<[u64; 128]>,
}

impl Memory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes currently held.
    pub fn bytes(&self) -> usize {
        self.blocks.len() * 1024
    }
}

/// What the C library answered instead of a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "argon2 (reference C): {} ({})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

/// One compilation of the reference's fill loop (c/dispatch.c numbers them the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// `ref.c`: portable C, no SIMD.
    Portable,
    /// `opt.c` at the x86-64 baseline (SSE2).
    Sse2,
    /// `opt.c` with AVX2.
    Avx2,
    /// `opt.c` with AVX-512F.
    Avx512f,
}

impl Kernel {
    /// Every kernel this build holds, narrowest first.
    pub const ALL: [Kernel; 4] = [
        Kernel::Portable,
        Kernel::Sse2,
        Kernel::Avx2,
        Kernel::Avx512f,
    ];

    pub(crate) fn code(self) -> i32 {
        match self {
            Kernel::Portable => 0,
            Kernel::Sse2 => 1,
            Kernel::Avx2 => 2,
            Kernel::Avx512f => 3,
        }
    }

    /// Whether this build holds the kernel and this CPU (and its operating system, for the
    /// wider registers) runs it.
    pub fn runs(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2 => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512f => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest kernel this machine runs, found once.
    pub fn best() -> Kernel {
        static BEST: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            Kernel::ALL
                .into_iter()
                .rev()
                .find(|k| k.runs())
                .unwrap_or(Kernel::Portable)
        })
    }

    /// How the kernel was built, for reports and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Kernel::Portable => "ref.c, portable",
            Kernel::Sse2 => "opt.c, x86-64 baseline (SSE2)",
            Kernel::Avx2 => "opt.c, AVX2",
            Kernel::Avx512f => "opt.c, AVX-512F",
        }
    }
}

/// What one hash reads: the password (or other secret), the salt, and RFC 9106's optional
/// key K and associated data X (empty unless set).
#[derive(Clone, Copy)]
pub struct Input<'a> {
    pub secret: &'a [u8],
    pub salt: &'a [u8],
    pub key: &'a [u8],
    pub ad: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(secret: &'a [u8], salt: &'a [u8]) -> Self {
        Self {
            secret,
            salt,
            key: &[],
            ad: &[],
        }
    }
}

/// argon2id (version 0x13) of `secret` with `salt` into `out`, filling `memory` (grown when
/// too small, then reused), with [`Kernel::best`].
pub fn hash_into(
    params: Params,
    secret: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Memory,
) -> Result<(), Error> {
    hash_with(
        Kernel::best(),
        params,
        Input::new(secret, salt),
        out,
        memory,
    )
}

/// The error for a kernel this machine does not run (`runs` is `Kernel::runs`, a parameter
/// so that the refusal is tested on every machine, not only on one that lacks a kernel).
fn refuse_unless_runs(kernel: Kernel, runs: bool) -> Result<(), Error> {
    if runs {
        return Ok(());
    }
    Err(Error {
        code: ffi::INCORRECT_PARAMETER,
        message: format!("{} is not available on this machine", kernel.describe()),
    })
}

/// [`hash_into`] with a chosen kernel and every input. A kernel this machine does not run is
/// refused (an `ARGON2_INCORRECT_PARAMETER` error), never called.
pub fn hash_with(
    kernel: Kernel,
    params: Params,
    input: Input<'_>,
    out: &mut [u8],
    memory: &mut Memory,
) -> Result<(), Error> {
    refuse_unless_runs(kernel, kernel.runs())?;
    let blocks = params.block_count();
    if memory.blocks.len() < blocks {
        memory.blocks.resize(blocks, [0u64; 128]);
    }
    let region = memory.blocks.get_mut(..blocks).ok_or_else(|| Error {
        code: ffi::MEMORY_ALLOCATION_ERROR,
        message: "memory block too small".into(),
    })?;
    ffi::argon2id(kernel, params, input, out, region.as_flattened_mut())
}

#[cfg(test)]
mod tests;
