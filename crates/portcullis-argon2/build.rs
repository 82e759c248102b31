//! Compiles the vendored reference argon2 (`c/`, upstream P-H-C/phc-winner-argon2 at commit
//! f57e61e, the same sources argon2-sys 0.1.0 ships) with every global symbol prefixed
//! (`c/portcullis_prefix.h`), and its fill loop several times: upstream's `opt.c` for
//! AVX-512F, AVX2 and the x86-64 baseline, and `ref.c`, one of which `c/dispatch.c` calls as
//! the caller chose at run time (the Rust side picks what the CPU supports). The binary
//! therefore runs on any x86-64 and uses the widest vectors the machine it runs on has.

use std::path::PathBuf;

fn build(name: &str) -> cc::Build {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let c = root.join("c");
    let mut b = cc::Build::new();
    b.include(c.join("include"))
        .include(c.join("src"))
        .flag("-include")
        .flag(c.join("portcullis_prefix.h").to_string_lossy().as_ref())
        .flag_if_supported("-pthread")
        .warnings(false)
        .extra_warnings(false)
        .opt_level(3);
    // Each compilation gets its own folder: `opt.c` is compiled more than once.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join(name);
    let _ = std::fs::create_dir_all(&out);
    b.out_dir(out);
    b
}

fn fill_loop(name: &str, source: &str, flags: &[&str]) {
    let mut b = build(name);
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    b.file(root.join("c/src").join(source)).define(
        "PORTCULLIS_A2_FILL_SEGMENT",
        format!("portcullis_a2_fill_segment_{name}").as_str(),
    );
    for flag in flags {
        b.flag(flag);
    }
    b.compile(&format!("portcullis_a2_{name}"));
}

fn main() {
    println!("cargo:rerun-if-changed=c");
    let x86 = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "x86_64");

    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut common = build("common");
    common.files(
        [
            "src/argon2.c",
            "src/core.c",
            "src/encoding.c",
            "src/thread.c",
            "src/blake2/blake2b.c",
            "dispatch.c",
        ]
        .map(|f| root.join("c").join(f)),
    );
    common.flag_if_supported("-std=gnu11");
    if x86 {
        common.define("PORTCULLIS_A2_X86", None);
    }
    common.compile("portcullis_a2");

    fill_loop("ref", "ref.c", &[]);
    if x86 {
        // The baseline build must not pick up the build machine's extensions from CFLAGS.
        fill_loop(
            "sse2",
            "opt.c",
            &["-mno-avx", "-mno-avx2", "-mno-avx512f", "-mno-ssse3"],
        );
        fill_loop("avx2", "opt.c", &["-mavx2", "-mno-avx512f"]);
        fill_loop("avx512f", "opt.c", &["-mavx512f"]);
    }
}
