//! The calls into the C library. The only module of the workspace where `unsafe` is allowed:
//! the reference implementation is C, and calling it is unsafe by nature. Each block states
//! why it is sound.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::CStr;

use argon2_sys as sys;

use crate::{Error, Input, Kernel, Params};

// This crate's own build of the vendored C (build.rs), every global symbol prefixed
// (c/portcullis_prefix.h). The types and constants are argon2-sys's, made from the same header.
unsafe extern "C" {
    fn portcullis_a2_argon2_ctx(
        context: *mut sys::argon2_context,
        kind: sys::argon2_type,
    ) -> libc::c_int;
    fn portcullis_a2_argon2_error_message(code: libc::c_int) -> *const libc::c_char;
    /// Which fill loop `fill_segment` calls on this thread (c/dispatch.c).
    fn portcullis_a2_use(kernel: libc::c_int);
}

pub const MEMORY_ALLOCATION_ERROR: i32 = sys::ARGON2_MEMORY_ALLOCATION_ERROR;
pub const INCORRECT_PARAMETER: i32 = sys::ARGON2_INCORRECT_PARAMETER;

thread_local! {
    /// The caller's block, lent to the C library for one `argon2_ctx` call on this thread.
    /// The C allocator callback has no user-data argument, so the loan goes through here; it
    /// is taken (and the cell emptied) by the one allocation the call makes.
    static LENT: Cell<(*mut u8, usize)> = const { Cell::new((std::ptr::null_mut(), 0)) };
}

/// The C library's allocator callback: hands over the lent block when it is big enough, else
/// null (which the library answers with `ARGON2_MEMORY_ALLOCATION_ERROR`).
unsafe extern "C" fn lend(memory: *mut *mut u8, bytes: libc::size_t) -> libc::c_int {
    let (ptr, len) = LENT.with(|cell| cell.replace((std::ptr::null_mut(), 0)));
    let granted = if !ptr.is_null() && bytes <= len {
        ptr
    } else {
        std::ptr::null_mut()
    };
    // SAFETY: `memory` is the library's own out-pointer (`&instance.memory` in core.c's
    // allocate_memory), valid for one write.
    unsafe { *memory = granted };
    if granted.is_null() {
        sys::ARGON2_MEMORY_ALLOCATION_ERROR
    } else {
        sys::ARGON2_OK
    }
}

/// The matching free callback: the block belongs to the caller, so nothing is freed (the
/// library has already wiped it, `clear_internal_memory`).
unsafe extern "C" fn give_back(_memory: *mut u8, _bytes: libc::size_t) {}

fn len32(what: &str, bytes: &[u8]) -> Result<u32, Error> {
    u32::try_from(bytes.len()).map_err(|_| Error {
        code: sys::ARGON2_INCORRECT_PARAMETER,
        message: format!("{what} longer than 2^32 - 1 bytes"),
    })
}

/// argon2id v0x13 into `out`, in `memory` (at least `params.block_count()` KiB).
pub fn argon2id(
    kernel: Kernel,
    params: Params,
    input: Input<'_>,
    out: &mut [u8],
    memory: &mut [u64],
) -> Result<(), Error> {
    // The library takes `uint8_t *` for inputs it only reads (it writes to them only with
    // the ARGON2_FLAG_CLEAR_* flags, which stay off), so copies are not needed.
    let mut ctx = sys::argon2_context {
        out: out.as_mut_ptr(),
        outlen: len32("output", out)?,
        pwd: input.secret.as_ptr().cast_mut(),
        pwdlen: len32("password", input.secret)?,
        salt: input.salt.as_ptr().cast_mut(),
        saltlen: len32("salt", input.salt)?,
        secret: input.key.as_ptr().cast_mut(),
        secretlen: len32("key", input.key)?,
        ad: input.ad.as_ptr().cast_mut(),
        adlen: len32("associated data", input.ad)?,
        t_cost: params.iterations,
        m_cost: params.memory_kib,
        lanes: params.parallelism,
        // The lanes are filled one after another on this thread: the fill loop is chosen per
        // thread (c/dispatch.c), and the server's pool gives the parallelism across hashes.
        // The tag depends on the lanes (p), not on how many threads fill them (RFC 9106).
        threads: 1,
        version: sys::ARGON2_VERSION_13,
        allocate_cbk: Some(lend),
        free_cbk: Some(give_back),
        flags: sys::ARGON2_DEFAULT_FLAGS,
    };
    LENT.with(|cell| cell.set((memory.as_mut_ptr().cast::<u8>(), memory.len() * 8)));
    // SAFETY: sets a thread-local int the dispatcher reads; `Kernel::code` is one of the
    // values it knows, and the caller only passes a kernel this CPU runs (`Kernel::runs`).
    unsafe { portcullis_a2_use(kernel.code()) };
    // SAFETY: every pointer in `ctx` points into a live slice of the stated length for the
    // whole call (`out` and `memory` are exclusive borrows; the inputs are only read, as the
    // clear flags are off); the lent block stays borrowed until the call returns and the
    // library frees it through `give_back`, which keeps no pointer. Empty slices give
    // dangling but non-null pointers with length 0, which the library never dereferences.
    let code = unsafe { portcullis_a2_argon2_ctx(&mut ctx, sys::Argon2_id) };
    // A call that failed before allocating leaves the loan here: end it.
    LENT.with(|cell| cell.set((std::ptr::null_mut(), 0)));
    if code == sys::ARGON2_OK {
        return Ok(());
    }
    // SAFETY: argon2_error_message returns a pointer to a static NUL-terminated string for
    // every code (a generic one for unknown codes), never null.
    let message = unsafe { CStr::from_ptr(portcullis_a2_argon2_error_message(code)) }
        .to_string_lossy()
        .into_owned();
    Err(Error { code, message })
}
