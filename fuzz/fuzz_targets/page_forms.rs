//! Every form the pages accept, decoded as axum's `Form` decodes it
//! (`application/x-www-form-urlencoded`): a value or a rejection, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_web::pages::{account, recover, register, signin};

fuzz_target!(|input: &[u8]| {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    match which % 11 {
        0 => drop(serde_urlencoded::from_bytes::<signin::SignInForm>(data)),
        1 => drop(serde_urlencoded::from_bytes::<signin::SignInQuery>(data)),
        2 => drop(serde_urlencoded::from_bytes::<register::CardForm>(data)),
        3 => drop(serde_urlencoded::from_bytes::<register::AccountForm>(data)),
        4 => drop(serde_urlencoded::from_bytes::<recover::StartForm>(data)),
        5 => drop(serde_urlencoded::from_bytes::<recover::VerifyForm>(data)),
        6 => drop(serde_urlencoded::from_bytes::<recover::CodeForm>(data)),
        7 => drop(serde_urlencoded::from_bytes::<recover::ResetForm>(data)),
        8 => drop(serde_urlencoded::from_bytes::<recover::UserIdForm>(data)),
        9 => drop(serde_urlencoded::from_bytes::<account::PasswordForm>(data)),
        _ => drop(serde_urlencoded::from_bytes::<account::CsrfForm>(data)),
    }
});
