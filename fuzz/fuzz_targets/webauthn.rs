//! The WebAuthn (passkey) answers a browser sends: registration and assertion JSON, and the
//! clientDataJSON, CBOR attestation object and authenticator data inside them, through the
//! same `PasskeyRp` the service uses. Never a panic; a registration is accepted only when it
//! answers this relying party's challenge from its origin; no assertion ever verifies (no
//! input here holds a signature by the registered key); and an accepted registration's
//! credential is usable for a later sign-in.
//!
//! Input: one mode byte, then parts separated by `|#|` (fuzz/seeds/make_webauthn_seeds.py
//! writes the seeds and explains the layout).
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use portcullis_crypto::passkey::PasskeyRp;

const SEP: &[u8] = b"|#|";
const ORIGIN: &str = "http://localhost:8080";

struct Fixture {
    rp: PasskeyRp,
    registration_state: String,
    authentication_state: String,
    discoverable_state: String,
    passkey: String,
}

/// Replaces every `challenge` in a ceremony's state with 32 zero bytes, the challenge the
/// seeds answer, so the fuzzer can reach the checks behind the challenge comparison.
fn fixed_challenge(state_json: &str) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if k == "challenge" {
                        *v = serde_json::Value::String(URL_SAFE_NO_PAD.encode([0u8; 32]));
                    } else {
                        walk(v);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(state_json).expect("state is JSON");
    walk(&mut v);
    v.to_string()
}

fn parts(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEP.len()).position(|w| w == SEP) {
        out.push(&rest[..at]);
        rest = &rest[at + SEP.len()..];
    }
    out.push(rest);
    out
}

fn registration_json(p: &[&[u8]]) -> String {
    let get = |i: usize| URL_SAFE_NO_PAD.encode(p.get(i).copied().unwrap_or_default());
    serde_json::json!({
        "id": get(2), "rawId": get(2), "type": "public-key",
        "response": { "clientDataJSON": get(0), "attestationObject": get(1) },
        "extensions": {}
    })
    .to_string()
}

fn assertion_json(p: &[&[u8]]) -> String {
    let get = |i: usize| URL_SAFE_NO_PAD.encode(p.get(i).copied().unwrap_or_default());
    serde_json::json!({
        "id": get(4), "rawId": get(4), "type": "public-key",
        "response": {
            "clientDataJSON": get(0), "authenticatorData": get(1),
            "signature": get(2), "userHandle": get(3)
        },
        "extensions": {}
    })
    .to_string()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rp = PasskeyRp::new(ORIGIN, "Fuzz Bank", false).expect("relying party");
        let started = rp
            .start_registration([1u8; 16], "fuzz", &[])
            .expect("registration starts");
        let registration_state = fixed_challenge(&started.state_json);
        // The committed seed must register, or the assertions below would fuzz nothing.
        let seed = include_bytes!("../seeds/webauthn/registration");
        let registered = rp
            .finish_registration(&registration_json(&parts(&seed[1..])), &registration_state)
            .expect("the registration seed verifies (rerun make_webauthn_seeds.py)");
        let passkey = registered.passkey_json;
        let authentication_state = fixed_challenge(
            &rp.start_authentication(std::slice::from_ref(&passkey))
                .expect("authentication starts")
                .state_json,
        );
        let discoverable_state =
            fixed_challenge(&rp.start_discoverable().expect("starts").state_json);
        Fixture {
            rp,
            registration_state,
            authentication_state,
            discoverable_state,
            passkey,
        }
    })
}

fn register(f: &Fixture, json: &str) {
    if let Ok(registered) = f.rp.finish_registration(json, &f.registration_state) {
        // Only an answer to our challenge, from our origin, can register ...
        let v: serde_json::Value = serde_json::from_str(json).expect("accepted JSON");
        let client = v["response"]["clientDataJSON"].as_str().unwrap_or_default();
        let client = URL_SAFE_NO_PAD.decode(client).unwrap_or_default();
        let client: serde_json::Value = serde_json::from_slice(&client).expect("client data");
        let origin = client["origin"].as_str().and_then(|o| url::Url::parse(o).ok());
        assert_eq!(
            origin.map(|o| o.origin()),
            Some(url::Url::parse(ORIGIN).expect("origin").origin()),
            "registered from another origin"
        );
        assert_eq!(client["type"], "webauthn.create");
        // ... and what it registers can start a sign-in.
        f.rp.start_authentication(&[registered.passkey_json])
            .expect("a registered passkey is usable");
    }
}

fn assert_never_verifies(f: &Fixture, json: &str) {
    let _ = f.rp.identify(json);
    assert!(
        f.rp
            .finish_authentication(json, &f.authentication_state, &f.passkey)
            .is_err(),
        "an assertion verified without the key"
    );
    assert!(
        f.rp
            .finish_discoverable(json, &f.discoverable_state, &f.passkey)
            .is_err(),
        "a discoverable assertion verified without the key"
    );
}

fuzz_target!(|input: &[u8]| {
    let f = fixture();
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let json = String::from_utf8_lossy(data);
            register(f, &json);
            assert_never_verifies(f, &json);
        }
        1 => register(f, &registration_json(&parts(data))),
        _ => assert_never_verifies(f, &assertion_json(&parts(data))),
    }
});
