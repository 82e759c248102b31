//! User ID and password normalisation and checks, plus the other typed fields people
//! type (one-time codes, email addresses, phone numbers): never a panic, and the
//! normalisations are idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::contact::{Email, Phone};
use portcullis_core::ids::{AccountType, UserId};
use portcullis_core::otp;
use portcullis_core::password::{is_common, Password, PasswordPolicy, PasswordProfile};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let user_id = UserId::parse(s).ok();
    if let Some(id) = &user_id {
        // Parsing what was parsed gives the same canonical form.
        let again = UserId::parse(id.as_str()).expect("a parsed User ID parses again");
        assert_eq!(again.canonical(), id.canonical());
    }
    let password = Password::new(s);
    let _ = password.char_count();
    let again = Password::new(password.expose());
    assert_eq!(
        again.expose(),
        password.expose(),
        "normalisation is idempotent"
    );
    for profile in ["issuer", "nist-800-63b", "pci-dss-4"]
        .into_iter()
        .filter_map(PasswordProfile::parse)
    {
        let policy = PasswordPolicy::new(profile);
        let _ = policy.check(&password, user_id.as_ref(), false);
        let _ = policy.check(&password, user_id.as_ref(), true);
    }
    let _ = is_common(s);
    if let Some(code) = otp::normalise(s) {
        assert_eq!(otp::normalise(&code).as_deref(), Some(code.as_str()));
    }
    let _ = Email::parse(s).map(|e| e.masked());
    let _ = Phone::parse(s).map(|p| p.masked());
    let _ = AccountType::parse(s);
});
