//! Shared helpers for the fuzz targets: each target feeds outside input to one real
//! parser and checks the invariants that must hold for every input.

use std::io::Write;
use std::path::PathBuf;

use portcullis::import::{validate_file, ImportError};
use portcullis_crypto::{KeyRing, KeyedHasher};

pub enum Format {
    Csv,
    JsonLines,
}

/// A fixed key: the fuzz targets check parsing, not secrecy.
pub fn keys() -> KeyedHasher {
    KeyedHasher::new(zeroize::Zeroizing::new([7u8; 32]))
}

/// The same fixed key as a keyring of one key (id 1), for what takes a ring.
pub fn ring() -> KeyRing {
    KeyRing::single(zeroize::Zeroizing::new([7u8; 32]))
}

fn scratch(format: &Format) -> PathBuf {
    let ext = match format {
        Format::Csv => "csv",
        Format::JsonLines => "jsonl",
    };
    std::env::temp_dir().join(format!("portcullis-fuzz-{}.{ext}", std::process::id()))
}

/// Runs the import's parser over `data` as a file of `format`. The parser reads a path
/// (it streams files of millions of lines), so the input goes through a scratch file.
pub fn check_import(data: &[u8], format: Format) {
    let path = scratch(&format);
    let Ok(mut file) = std::fs::File::create(&path) else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    drop(file);
    match validate_file(&path, &ring()) {
        Ok(_) => {}
        Err(e) => {
            let message = e.to_string();
            if let ImportError::Invalid(lines) = &e {
                assert!(!lines.is_empty(), "an Invalid error lists its lines");
            }
            assert_no_long_digit_run_echoed(data, &message);
        }
    }
}

/// No run of 10 or more digits (a card or merchant number) from the input may appear in
/// an error message.
pub fn assert_no_long_digit_run_echoed(input: &[u8], message: &str) {
    // Examples the messages themselves give ("like +15550100100"): not echoes of the input.
    const EXAMPLES: &[&str] = &["15550100100", "15550100123"];
    let text = String::from_utf8_lossy(input);
    for run in text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| r.len() >= 10)
        .filter(|r| !EXAMPLES.iter().any(|e| e.contains(r)))
    {
        assert!(
            !message.contains(run),
            "an error message repeats a number from the input: {message}"
        );
    }
}
