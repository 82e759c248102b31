//! The ID-token signing key (`oidc-signing.key`) rotates while code flows run: every ID
//! token issued before, during and after `portcullis oidc keys rotate` verifies against
//! the published JWKS (the previous key is kept), the running server signs with the new
//! key within moments and without a restart, and no flow fails. Signatures are checked
//! here with the `p256` crate against the JWKS document, not with the server's JWS code.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use portcullis_core::oidc::ClientAuth;
use portcullis_testkit::{both, Backend, Jar, TestApp};
use serde_json::Value;

use crate::support::*;

/// One whole authorization-code flow of a public client through the sign-in page; its ID
/// token.
async fn flow(app: &TestApp, client_id: &str) -> String {
    let (verifier, challenge) = pkce();
    let mut jar = Jar::default();
    let back = browser(
        app,
        &mut jar,
        &authorize_url(client_id, RP, &challenge, "&nonce=rotation"),
    )
    .await;
    let code = query(&back, "code").expect("a code");
    let res = token(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP),
            ("client_id", client_id),
            ("code_verifier", &verifier),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["id_token"].as_str().expect("an ID token").to_owned()
}

async fn jwks(app: &TestApp) -> Value {
    app.client
        .get(app.url("/oidc/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The ids of the ES256 keys of a JWKS (each ring key is also published as an Ed25519
/// key, for clients registered with EdDSA).
fn kids(set: &Value) -> Vec<String> {
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// The `kid` of a compact JWS, and whether its ES256 signature verifies under that key of
/// `set`.
fn verify(jwt: &str, set: &Value) -> (String, bool) {
    let parts: Vec<&str> = jwt.split('.').collect();
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].as_str().unwrap().to_owned();
    let Some(jwk) = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
    else {
        return (kid, false);
    };
    let mut point = vec![4u8];
    point.extend(B64.decode(jwk["x"].as_str().unwrap()).unwrap());
    point.extend(B64.decode(jwk["y"].as_str().unwrap()).unwrap());
    let key = VerifyingKey::from_sec1_bytes(&point).unwrap();
    let signature = Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
    let signed = format!("{}.{}", parts[0], parts[1]);
    (kid, key.verify(signed.as_bytes(), &signature).is_ok())
}

/// `portcullis oidc keys rotate` with `flags`, as an operator runs it.
fn rotate(app: &TestApp, flags: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "--database-url",
            &app.config.database_url,
            "oidc",
            "keys",
            "rotate",
        ])
        .args(flags)
        .env("PORTCULLIS_SECRETS_DIR", &app.config.secrets_dir)
        .env("PORTCULLIS_PUBLIC_URL", ISSUER)
        .output()
        .unwrap()
}

async fn signing_key_rotates_under_flows(backend: Backend) {
    let app = Arc::new(app(backend).await);
    let client_id = register(&app, ClientAuth::None, None, false).await;
    let before = flow(&app, &client_id).await;
    let first = jwks(&app).await;
    assert_eq!(kids(&first).len(), 1, "{first}");
    let (old_kid, ok) = verify(&before, &first);
    assert!(ok, "an ID token verifies under the published key");

    // Flows keep running through the rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let load = {
        let (app, stop, tokens, client_id) =
            (app.clone(), stop.clone(), tokens.clone(), client_id.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let t = flow(&app, &client_id).await;
                tokens.lock().unwrap().push(t);
            }
        })
    };

    let out = rotate(&app, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The running server publishes both keys within moments, without a restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    let both_keys = loop {
        let set = jwks(&app).await;
        if kids(&set).len() == 2 {
            break set;
        }
        assert!(Instant::now() < deadline, "the new key was never published");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        kids(&both_keys).contains(&old_kid),
        "the previous key stays published"
    );
    let new_kid = kids(&both_keys)
        .into_iter()
        .find(|k| *k != old_kid)
        .unwrap();

    // A flow started now is signed with the new key.
    let after = flow(&app, &client_id).await;
    stop.store(true, Ordering::SeqCst);
    load.await.expect("a flow failed during the rotation");

    let (kid, ok) = verify(&after, &both_keys);
    assert_eq!(kid, new_kid, "signed with the new key after the rotation");
    assert!(ok);
    let (kid, ok) = verify(&before, &both_keys);
    assert_eq!(kid, old_kid);
    assert!(ok, "a token signed before the rotation still verifies");
    let during = tokens.lock().unwrap().clone();
    assert!(!during.is_empty(), "flows ran during the rotation");
    for t in &during {
        let (kid, ok) = verify(t, &both_keys);
        assert!(ok, "a token signed with key {kid} during the rotation");
    }
    eprintln!(
        "{backend:?}: {} flows during the rotation, keys {old_kid} -> {new_kid}",
        during.len()
    );
}
both!(
    the_signing_key_rotates_while_flows_run_and_every_id_token_verifies,
    signing_key_rotates_under_flows
);

async fn prepared_key(backend: Backend) {
    let app = app(backend).await;
    let client_id = register(&app, ClientAuth::None, None, false).await;
    let first = jwks(&app).await;
    let (old_kid, ok) = verify(&flow(&app, &client_id).await, &first);
    assert!(ok);
    let out = rotate(&app, &["--activate"]);
    assert!(!out.status.success(), "nothing was prepared");

    // Prepared: published within moments, but the old key still signs.
    assert!(rotate(&app, &["--prepare"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let published = loop {
        let set = jwks(&app).await;
        if kids(&set).len() == 2 {
            break set;
        }
        assert!(
            Instant::now() < deadline,
            "the prepared key was never published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let new_kid = kids(&published)
        .into_iter()
        .find(|k| *k != old_kid)
        .unwrap();
    for _ in 0..3 {
        let (kid, ok) = verify(&flow(&app, &client_id).await, &published);
        assert_eq!(kid, old_kid, "a prepared key signs nothing");
        assert!(ok);
    }

    // Activated: the prepared key signs, and relying parties already had it.
    assert!(rotate(&app, &["--activate"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (kid, ok) = verify(&flow(&app, &client_id).await, &published);
        assert!(ok, "verifies under the JWKS fetched before the activation");
        if kid == new_kid {
            break;
        }
        assert!(Instant::now() < deadline, "the prepared key never signed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = jwks(&app).await;
    assert_eq!(kids(&after).len(), 2, "the previous key stays published");
    assert!(kids(&after).contains(&old_kid));
}
both!(
    a_prepared_signing_key_is_published_before_it_signs,
    prepared_key
);
