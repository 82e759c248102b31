//! Every JSON request body of the API, through the decoder the `ApiJson` extractor uses:
//! a value or a 400, never a panic, and the 400's text never repeats a long number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_web::api::extract::{bearer_token, decode_json, is_json_type};
use portcullis_web::api::{admin, factors, me, recovery, registration, sessions, status};

fn check<T: serde::de::DeserializeOwned>(data: &[u8]) {
    if let Err(detail) = decode_json::<T>(data) {
        portcullis_fuzz::assert_no_long_digit_run_echoed(data, &detail);
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    match which % 28 {
        0 => check::<registration::VerifyCardIn>(data),
        1 => check::<registration::CompleteIn>(data),
        2 => check::<recovery::StartIn>(data),
        3 => check::<recovery::VerifyIn>(data),
        4 => check::<recovery::ResendIn>(data),
        5 => check::<recovery::ResetIn>(data),
        6 => check::<recovery::UserIdStartIn>(data),
        7 => check::<recovery::UserIdVerifyIn>(data),
        8 => check::<me::ChangePasswordIn>(data),
        9 => check::<me::ContactChangeIn>(data),
        10 => check::<me::ContactConfirmIn>(data),
        11 => check::<me::ContactResendIn>(data),
        12 => check::<me::LinkCardIn>(data),
        13 => check::<admin::UnlockIn>(data),
        14 => check::<sessions::MfaSendIn>(data),
        15 => check::<sessions::MfaIn>(data),
        16 => check::<sessions::ChallengeIn>(data),
        17 => check::<sessions::PasskeySignInIn>(data),
        18 => check::<factors::ReauthIn>(data),
        19 => check::<factors::CodeIn>(data),
        20 => check::<factors::CodeFactorIn>(data),
        21 => check::<factors::NotMeIn>(data),
        22 => check::<factors::PasskeyIn>(data),
        23 => check::<factors::NameIn>(data),
        24 => check::<status::IncidentIn>(data),
        25 => check::<status::IncidentUpdateIn>(data),
        26 => check::<admin::ClearCardIn>(data),
        _ => check::<sessions::SignInIn>(data),
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = is_json_type(Some(s));
        let token = bearer_token(Some(s));
        assert!(token.len() <= s.len());
    }
});
