//! Sets the `portcullis_postgres` cfg when `PORTCULLIS_TEST_POSTGRES` names a server, so the
//! PostgreSQL variants of the tests (`portcullis_testkit::both!`) run; without it they are
//! built `#[ignore]`d and reported as skipped, never as passed.

fn main() {
    println!("cargo:rerun-if-env-changed=PORTCULLIS_TEST_POSTGRES");
    println!("cargo:rustc-check-cfg=cfg(portcullis_postgres)");
    if std::env::var("PORTCULLIS_TEST_POSTGRES").is_ok_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=portcullis_postgres");
    }
}
