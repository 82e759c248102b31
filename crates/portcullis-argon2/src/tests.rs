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

/// The RFC 9106 §5.3 inputs hashed in `memory`, as hex.
fn rfc_tag(memory: &mut Memory) -> String {
    let mut out = [0u8; 32];
    hash_into_keyed(
        rfc_params(),
        &[1u8; 32],
        &[2u8; 16],
        &[3u8; 8],
        &[4u8; 12],
        &mut out,
        memory,
    )
    .unwrap();
    hex::encode(out)
}

#[test]
fn rfc9106_argon2id_test_vector() {
    assert_eq!(rfc_tag(&mut Memory::new()), RFC9106_TAG);
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
