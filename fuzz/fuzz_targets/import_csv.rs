//! The registry import's CSV reader and record checks (`portcullis registry import x.csv`).
//! Any input must give records or line errors, never a panic, and no error message may
//! repeat a card number from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_fuzz::{check_import, Format};

fuzz_target!(|data: &[u8]| check_import(data, Format::Csv));
