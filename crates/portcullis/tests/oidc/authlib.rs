//! The provider against authlib, an OpenID Connect client library that is not part of this
//! repository (Python; pinned in scripts/test-deps, installed into .venv): the script
//! `py/authlib_rp.py` runs discovery, PAR + PKCE + `private_key_jwt` + DPoP, the sign-in by
//! form posts, ID-token validation against the JWKS, userinfo, refresh rotation and reuse
//! detection, introspection and revocation, then a public client, against this server.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use portcullis_core::oidc::ClientAuth;
use portcullis_core::service::oidc::ClientRegistration;
use portcullis_testkit::smtp::venv_python;
use portcullis_testkit::{both, Backend, PASSWORD};
use serde_json::json;

use super::support::*;

/// The venv's python when it has authlib; otherwise a LOUD skip line and `None` — or a
/// failure, when the run promised the venv (`PORTCULLIS_TEST_VENV=required`, as
/// `scripts/test` sets once scripts/test-deps installed it).
fn authlib_python() -> Option<std::path::PathBuf> {
    let skip = |why: &str| {
        portcullis_testkit::smtp::skip_without_venv(&format!(
            "the authlib relying-party test ({why}; scripts/test-deps installs the pinned Authlib)"
        ));
        None
    };
    let Some(python) = venv_python() else {
        return skip("no usable .venv");
    };
    let has = std::process::Command::new(&python)
        .args(["-c", "import authlib, joserfc, requests"])
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        return skip(".venv has no authlib");
    }
    Some(python)
}

/// Where the app lands after RP-Initiated Logout (registered for it).
const AFTER_LOGOUT: &str = "https://rp.example/signed-out";

async fn authlib_rp(backend: Backend) {
    let Some(python) = authlib_python() else {
        return;
    };
    let app = app(backend).await;
    let rp = RpKey::new("site-1");
    let fapi = register(
        &app,
        ClientAuth::PrivateKeyJwt,
        Some(json!({"keys": [rp.jwk.clone()]})),
        true,
    )
    .await;
    // The mobile app, with a registered place to land after signing out.
    let (public, _) = register_client(
        &app,
        ClientRegistration {
            name: "Mobile app".into(),
            redirect_uris: vec![RP.into()],
            post_logout_uris: vec![AFTER_LOGOUT.into()],
            auth: ClientAuth::None,
            jwks: None,
            jwks_uri: None,
            first_party: true,
            fapi2: false,
            id_token_alg: Default::default(),
        },
    )
    .await;
    let mut private = rp.jwk.clone();
    private["d"] = json!(B64.encode(rp.key.to_bytes()));
    let config = json!({
        "fapi_client": fapi,
        "fapi_key": private,
        "public_client": public,
        "redirect_uri": RP,
        "post_logout_redirect_uri": AFTER_LOGOUT,
        "user_id": "ann.example",
        "password": PASSWORD,
        "account_type": "personal",
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/py/authlib_rp.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([ISSUER, &app.base, &config.to_string()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("authlib relying party: all checks passed"),
        "authlib relying party failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // Every step ran (a check that silently stopped early would not print all of them).
    assert!(stdout.matches("ok: ").count() >= 40, "{stdout}");
    eprintln!("{stdout}");
}
both!(
    an_authlib_relying_party_runs_par_pkce_private_key_jwt_dpop_and_a_public_client,
    authlib_rp
);
