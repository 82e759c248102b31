use super::*;

/// RFC 9106 §5.3, the argon2id test vector (with a secret key and associated data).
const RFC9106_TAG: &str = "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659";

fn rfc_params() -> Params {
    Params {
        memory_kib: 32,
        iterations: 3,
        parallelism: 4,
    }
}

/// The RFC 9106 §5.3 inputs hashed in `memory` by `kernel`, as hex.
fn rfc_tag_with(kernel: Kernel, memory: &mut Memory) -> String {
    let mut out = [0u8; 32];
    let input = Input {
        secret: &[1u8; 32],
        salt: &[2u8; 16],
        key: &[3u8; 8],
        ad: &[4u8; 12],
    };
    hash_with(kernel, rfc_params(), input, &mut out, memory).unwrap();
    hex::encode(out)
}

fn rfc_tag(memory: &mut Memory) -> String {
    rfc_tag_with(Kernel::best(), memory)
}

fn runnable() -> Vec<Kernel> {
    Kernel::ALL.into_iter().filter(|k| k.runs()).collect()
}

#[test]
fn rfc9106_argon2id_test_vector_on_every_kernel_this_machine_runs() {
    let kernels = runnable();
    assert!(kernels.contains(&Kernel::Portable));
    #[cfg(target_arch = "x86_64")]
    assert!(kernels.contains(&Kernel::Sse2), "x86-64 always has SSE2");
    for kernel in kernels {
        assert_eq!(
            rfc_tag_with(kernel, &mut Memory::new()),
            RFC9106_TAG,
            "{kernel:?}"
        );
    }
    assert_eq!(rfc_tag(&mut Memory::new()), RFC9106_TAG);
}

#[test]
fn every_kernel_gives_the_same_tags_at_the_servers_parameters() {
    // The production shape (m = 19 MiB, t = 2, p = 1) and a two-lane one, several inputs each:
    // the kernels are the same algorithm, so any difference is a build defect.
    let shapes = [
        Params {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        },
        Params {
            memory_kib: 256,
            iterations: 3,
            parallelism: 2,
        },
    ];
    let mut memory = Memory::new();
    for params in shapes {
        for (secret, salt) in [
            (
                &b"correct horse battery staple"[..],
                &b"0123456789abcdef"[..],
            ),
            (b"", b"saltsalt"),
            (&[0xffu8; 200][..], &[7u8; 32][..]),
        ] {
            let tags: Vec<(Kernel, [u8; 32])> = runnable()
                .into_iter()
                .map(|kernel| {
                    let mut out = [0u8; 32];
                    hash_with(
                        kernel,
                        params,
                        Input::new(secret, salt),
                        &mut out,
                        &mut memory,
                    )
                    .unwrap();
                    (kernel, out)
                })
                .collect();
            let first = tags[0].1;
            for (kernel, tag) in &tags {
                assert_eq!(*tag, first, "{kernel:?} differs at {params:?}");
            }
        }
    }
}

#[test]
fn the_best_kernel_is_one_this_machine_runs_and_the_widest() {
    let best = Kernel::best();
    assert!(best.runs());
    for kernel in Kernel::ALL {
        if kernel.runs() {
            assert!(
                kernel.code() <= best.code(),
                "{kernel:?} is wider than {best:?}"
            );
        }
    }
}

#[test]
fn a_kernel_this_machine_lacks_is_refused_not_called() {
    // The refusal itself, on any machine: a kernel the CPU lacks is an error, never a call.
    for kernel in Kernel::ALL {
        let err = refuse_unless_runs(kernel, false).unwrap_err();
        assert_eq!(err.code, ffi::INCORRECT_PARAMETER);
        assert!(err.message.contains(kernel.describe()), "{err}");
        assert!(refuse_unless_runs(kernel, true).is_ok());
    }
    // And through `hash_with`, for each kernel this machine really lacks (none on one with
    // AVX-512F).
    let mut out = [0u8; 32];
    for kernel in Kernel::ALL.into_iter().filter(|k| !k.runs()) {
        let err = hash_with(
            kernel,
            rfc_params(),
            Input::new(b"pw", b"somesalt"),
            &mut out,
            &mut Memory::new(),
        )
        .unwrap_err();
        assert_eq!(err.code, ffi::INCORRECT_PARAMETER);
    }
}

#[test]
fn a_reused_block_gives_the_same_tags_as_a_fresh_one() {
    // A big hash first leaves the block dirty and larger than the next hash needs.
    let mut reused = Memory::new();
    let big = Params {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    let mut out = [0u8; 32];
    hash_into(big, b"first", b"somesalt", &mut out, &mut reused).unwrap();
    assert_eq!(reused.bytes(), 256 * 1024);
    assert_eq!(rfc_tag(&mut reused), RFC9106_TAG);
    assert_eq!(
        reused.bytes(),
        256 * 1024,
        "no new block for a smaller hash"
    );
}

#[test]
fn the_c_library_errors_come_back_as_errors() {
    let mut memory = Memory::new();
    let mut out = [0u8; 32];
    // A salt under 8 bytes is refused by the library (ARGON2_SALT_TOO_SHORT).
    let err = hash_into(rfc_params(), b"pw", b"short", &mut out, &mut memory).unwrap_err();
    assert_eq!(err.code, -6, "{err}");
    // And the thread's loan was ended: the next hash works.
    hash_into(rfc_params(), b"pw", b"somesalt", &mut out, &mut memory).unwrap();
}

#[test]
fn block_count_follows_rfc9106() {
    let p = |m, p| Params {
        memory_kib: m,
        iterations: 1,
        parallelism: p,
    };
    assert_eq!(p(19_456, 1).block_count(), 19_456);
    assert_eq!(p(33, 4).block_count(), 32);
    assert_eq!(p(1, 1).block_count(), 8);
}
