//! The OpenID Connect provider's outside input: the authorization request (query string or
//! PAR form) checked for a registered client, redirect URIs offered at registration, and
//! JWTs (DPoP proofs, client assertions) split, decoded and verified. The first byte picks
//! the parser; the rest is the input.
//!
//! Invariants beyond "no panic": a refused request is sent back to the client only when its
//! `redirect_uri` is registered (never an open redirect), and an accepted one carries that
//! registered URI, a 43-character S256 challenge and `openid` first; a registered redirect
//! URI has no fragment and no user information; no JWT from the fuzzer verifies with the
//! server's own signing key, and a key a JWT's header embeds verifies only what it signed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::oidc::{check_redirect_registration, ClientAuth, OidcClient, RawAuthRequest};
use portcullis_crypto::jws;

const RP: &str = "https://rp.example/cb";
const APP: &str = "com.bank.app:/cb";

fn client(auth: ClientAuth, fapi2: bool) -> OidcClient {
    OidcClient {
        client_id: "c1".into(),
        name: "RP".into(),
        auth,
        secret_hash: None,
        jwks: None,
        jwks_uri: None,
        redirect_uris: vec![RP.into(), APP.into(), "http://127.0.0.1:8080/cb".into()],
        post_logout_uris: vec![],
        first_party: true,
        fapi2,
        revoked: false,
        id_token_alg: Default::default(),
    }
}

fn authorization_request(input: &[u8]) {
    let Ok(raw) = serde_urlencoded::from_bytes::<RawAuthRequest>(input) else {
        return;
    };
    for c in [
        client(ClientAuth::None, false),
        client(ClientAuth::PrivateKeyJwt, true),
    ] {
        match raw.check(&c) {
            Ok(req) => {
                assert!(c.redirect_registered(&req.redirect_uri));
                assert_eq!(req.code_challenge.len(), 43);
                assert!(req.scope.starts_with("openid"));
                if let Some(jkt) = &req.dpop_jkt {
                    assert_eq!(jkt.len(), 43);
                }
            }
            Err(refused) => {
                if refused.redirect {
                    let uri = raw.redirect_uri.as_deref().unwrap_or_default();
                    assert!(c.redirect_registered(uri), "an error sent to {uri:?}");
                }
            }
        }
    }
}

fn redirect_registration(input: &str) {
    for public in [false, true] {
        if check_redirect_registration(input, public).is_ok() {
            assert!(!input.contains('#'));
            assert!(!input.chars().any(char::is_whitespace));
            if let Some(rest) = input.strip_prefix("https://") {
                let authority = rest.split(['/', '?']).next().unwrap_or_default();
                assert!(!authority.contains('@') && !authority.is_empty());
            }
            if !public {
                assert!(input.to_ascii_lowercase().starts_with("https:"));
            }
        }
    }
}

fn jwt(input: &str) {
    let server = jws::Es256Key::from_seed("1", &[7u8; 32]).expect("a fixed key");
    let Ok(token) = jws::decode(input) else {
        return;
    };
    assert!(
        token.verify(&server.public_jwk()).is_err(),
        "a fuzzed JWT verified with the server's key"
    );
    if let Some(embedded) = token.header.get("jwk") {
        if jws::verifying_key(embedded).is_ok() {
            let thumb = jws::thumbprint(embedded).expect("a usable key has a thumbprint");
            assert_eq!(thumb.len(), 43);
        }
        let _ = token.verify(embedded);
    }
    let _ = token.claims.get("jti");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => authorization_request(rest),
        1 => redirect_registration(&String::from_utf8_lossy(rest)),
        _ => jwt(&String::from_utf8_lossy(rest)),
    }
});
