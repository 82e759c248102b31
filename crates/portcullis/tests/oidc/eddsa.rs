//! EdDSA ID tokens (RFC 8037) for a client registered with `--id-token-alg EdDSA`, verified
//! by the independent `openidconnect` client against the published JWKS.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    RedirectUrl, TokenResponse,
};
use portcullis_testkit::{both, Backend, Jar};
use serde_json::{json, Value};

use super::support::*;

async fn eddsa(backend: Backend) {
    let app = app(backend).await;
    let add = |alg: &str| {
        cli_client_add(
            &app,
            &[
                "--name",
                "Payments",
                "--redirect-uri",
                RP,
                "--first-party",
                "--id-token-alg",
                alg,
            ],
        )
    };
    let (out, _) = add("HS256");
    assert!(!out.status.success(), "only ES256 and EdDSA are offered");
    let (out, line) = add("EdDSA");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client_id = line["client_id"].as_str().unwrap().to_owned();
    let secret = line["client_secret"].as_str().unwrap().to_owned();

    let http = {
        let base = app.base.clone();
        move |req: openidconnect::HttpRequest| send(base.clone(), req)
    };
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(ISSUER.into()).unwrap(), &http)
        .await
        .unwrap();
    let algs: Vec<Value> = meta
        .id_token_signing_alg_values_supported()
        .iter()
        .map(|a| serde_json::to_value(a).unwrap())
        .collect();
    assert_eq!(algs, [json!("ES256"), json!("EdDSA")]);
    let okp = meta
        .jwks()
        .keys()
        .iter()
        .filter(|k| serde_json::to_value(k).unwrap()["kty"] == "OKP")
        .count();
    assert_eq!(okp, 1, "the JWKS publishes an Ed25519 key");
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(client_id),
        Some(ClientSecret::new(secret)),
    )
    .set_redirect_uri(RedirectUrl::new(RP.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let mut jar = Jar::default();
    let back = browser(&app, &mut jar, url.as_str()).await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(query(&back, "code").unwrap()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let header: Value = {
        use base64::Engine;
        let text = id_token.to_string();
        let part = text.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header["alg"], "EdDSA");
    let es256_only = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    assert!(id_token.claims(&es256_only, &nonce).is_err());
    let eddsa = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EdDsa]);
    let claims = id_token
        .claims(&eddsa, &nonce)
        .expect("the EdDSA ID token verifies against the JWKS");
    assert_eq!(claims.issuer().as_str(), ISSUER);
}
both!(
    eddsa_id_tokens_for_clients_that_ask_verify_with_an_independent_client,
    eddsa
);
