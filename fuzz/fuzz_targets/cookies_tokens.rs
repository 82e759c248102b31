//! Cookie headers, CSRF tokens, cross-site checks and bearer tokens: never a panic, a
//! CSRF token verifies only against its own cookie, and a token's storage hash is stable.
#![no_main]

use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis_web::api::extract::bearer_token;
use portcullis_web::{cookies, csrf};

fuzz_target!(|data: &[u8]| {
    let keys = portcullis_fuzz::ring();
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        headers.insert("cookie", v.clone());
        headers.insert("origin", v.clone());
        headers.insert("host", v.clone());
        headers.insert("sec-fetch-site", v.clone());
        headers.insert("authorization", v);
    }
    for name in [cookies::SESSION, cookies::CSRF, cookies::DEVICE] {
        for secure in [false, true] {
            let full = cookies::name(name, secure);
            if let Some(value) = cookies::get(&headers, &full) {
                // What is read back is usable as a cookie value again.
                let _ = cookies::set(&full, &value, Some(60), cookies::SameSite::Strict, secure);
            }
        }
    }
    let _ = csrf::cross_site(&headers);
    let s = String::from_utf8_lossy(data);
    let (anchor, submitted) = s.split_once('|').unwrap_or((&s, ""));
    let good = csrf::token_for(&keys, anchor);
    assert_eq!(csrf::verify(&keys, Some(anchor), &good), !anchor.is_empty());
    if submitted != good {
        assert!(!csrf::verify(&keys, Some(anchor), submitted));
    }
    assert!(!csrf::verify(&keys, None, submitted));
    let token = bearer_token(Some(&s));
    assert_eq!(
        portcullis_crypto::token::sha256(token.as_bytes()),
        portcullis_crypto::token::sha256(token.as_bytes())
    );
});
