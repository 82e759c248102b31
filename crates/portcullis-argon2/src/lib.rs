//! The reference C implementation of argon2id (the P-H-C `phc-winner-argon2` sources, CC0 or
//! Apache-2.0, compiled by the `argon2-sys` crate with `cc`), behind a safe API that reuses a
//! memory block the caller owns, as the server's hashing workers do with the `argon2` crate.
//!
//! It exists to be measured against the `argon2` crate (the benchmark's figure 12, the
//! candidates table). Its unsafe calls live in the private `ffi` module, the only place in
//! the workspace where `unsafe` is allowed; everything public here is safe.

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

/// Which of the reference's two fill loops this build compiled: `opt.c` (SIMD, with the
/// build machine's instruction set) or `ref.c` (portable).
pub const BUILD: &str = if cfg!(feature = "opt-native") {
    "opt.c, -march=native"
} else {
    "ref.c, portable"
};

/// [`BUILD`], and the `CFLAGS` the C code was compiled with when some were set (a measurement
/// can narrow `-march=native` with e.g. `CFLAGS=-mno-avx512f`).
pub fn build() -> String {
    match option_env!("CFLAGS").filter(|f| !f.trim().is_empty()) {
        Some(flags) => format!("{BUILD}, CFLAGS={flags}"),
        None => BUILD.to_owned(),
    }
}

/// argon2id (version 0x13) of `secret` with `salt` into `out`, filling `memory` (grown when
/// too small, then reused).
pub fn hash_into(
    params: Params,
    secret: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Memory,
) -> Result<(), Error> {
    hash_into_keyed(params, secret, salt, &[], &[], out, memory)
}

/// [`hash_into`] with RFC 9106's optional inputs: a `key` (the "secret" K) and associated
/// data `ad` (X).
pub fn hash_into_keyed(
    params: Params,
    secret: &[u8],
    salt: &[u8],
    key: &[u8],
    ad: &[u8],
    out: &mut [u8],
    memory: &mut Memory,
) -> Result<(), Error> {
    let blocks = params.block_count();
    if memory.blocks.len() < blocks {
        memory.blocks.resize(blocks, [0u64; 128]);
    }
    let region = memory.blocks.get_mut(..blocks).ok_or_else(|| Error {
        code: ffi::MEMORY_ALLOCATION_ERROR,
        message: "memory block too small".into(),
    })?;
    ffi::argon2id(
        ffi::Inputs {
            params,
            secret,
            salt,
            key,
            ad,
        },
        out,
        region.as_flattened_mut(),
    )
}

#[cfg(test)]
mod tests;
