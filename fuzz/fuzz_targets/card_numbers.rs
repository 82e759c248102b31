//! Card numbers, card IDs, merchant numbers and codes, the Luhn check, and whole registry
//! records: never a panic, and no error text repeats the input's digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::card::{
    luhn_valid, CardId, CardNumber, Credential, MerchantCode, MerchantNumber,
};
use portcullis_core::ids::AccountType;
use portcullis_core::registry::{RawRecord, RegistryRecord};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = CardNumber::parse(s) {
        assert!(luhn_valid(n.digits()), "a parsed card number passes Luhn");
        assert_eq!(n.last4().len(), 4);
    }
    let _ = CardId::parse(s);
    if let Ok(m) = MerchantNumber::parse(s) {
        let _ = m.last4();
    }
    let _ = MerchantCode::parse(s);
    let _ = luhn_valid(s);
    let (number, verification) = s.split_once('|').unwrap_or((s, ""));
    for kind in ["personal", "corporate", "merchant"] {
        let Some(kind) = AccountType::parse(kind) else {
            continue;
        };
        if let Err(errors) = Credential::parse(kind, number, verification) {
            for e in errors {
                portcullis_fuzz::assert_no_long_digit_run_echoed(data, &e.message);
            }
        }
    }
    let mut cells = s.split('|').map(str::to_owned);
    let mut next = || cells.next().unwrap_or_default();
    let raw = RawRecord {
        account_type: next(),
        number: next(),
        verification: next(),
        expiry: next(),
        holder_name: next(),
        email: next(),
        phone: next(),
        product: next(),
        balance: next(),
        credit_limit: next(),
        payment_due_date: next(),
        minimum_due: next(),
        status: next(),
        replaces: next(),
    };
    match RegistryRecord::parse(&raw) {
        Ok(record) => drop(record.hashed(&portcullis_fuzz::keys())),
        Err(errors) => {
            for e in errors {
                portcullis_fuzz::assert_no_long_digit_run_echoed(data, &e.message);
            }
        }
    }
});
