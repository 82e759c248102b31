//! Client authentication by `private_key_jwt`: the assertion's `aud` is the issuer as a
//! single string (an array or an endpoint URL is refused), ES256 only (HS256 and `none`
//! refused); introspection refuses public clients.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use portcullis_core::clock::Clock;
use portcullis_core::oidc::ClientAuth;
use portcullis_testkit::{both, Backend, TestApp};
use serde_json::{json, Value};
use sha2::Sha256;

use super::support::*;

/// A refresh grant with an unknown token: `invalid_grant` (400) once the client is
/// authenticated, `invalid_client` (401) when the assertion is refused.
pub(super) async fn with_assertion(app: &TestApp, assertion: &str) -> (u16, String) {
    let res = token(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "no-such-token"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
        None,
    )
    .await;
    error_of(res).await
}

async fn assertions(backend: Backend) {
    let app = app(backend).await;
    let rp = RpKey::new("rp-1");
    let client_id = register(
        &app,
        ClientAuth::PrivateKeyJwt,
        Some(json!({"keys": [rp.jwk.clone()]})),
        false,
    )
    .await;
    let now = app.clock.now().0;
    let claims = |aud: Value| {
        json!({"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 60,
               "iat": now, "jti": B64.encode(random32())})
    };
    let es256 = json!({"alg": "ES256", "typ": "JWT", "kid": "rp-1"});
    let authenticated = (400, "invalid_grant".to_owned());
    let refused = (401, "invalid_client".to_owned());

    // The issuer as a string: accepted (the grant itself then fails).
    let good = rp.sign(es256.clone(), claims(json!(ISSUER)));
    assert_eq!(with_assertion(&app, &good).await, authenticated);
    // The issuer inside an array, the token endpoint URL, both: refused.
    for aud in [
        json!([ISSUER]),
        json!(format!("{ISSUER}/oidc/token")),
        json!([ISSUER, format!("{ISSUER}/oidc/token")]),
    ] {
        let assertion = rp.sign(es256.clone(), claims(aud.clone()));
        assert_eq!(with_assertion(&app, &assertion).await, refused, "{aud}");
    }
    // HS256 keyed with the client's public key (algorithm confusion), and alg=none.
    let input = format!(
        "{}.{}",
        B64.encode(json!({"alg": "HS256", "typ": "JWT", "kid": "rp-1"}).to_string()),
        B64.encode(claims(json!(ISSUER)).to_string())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(rp.jwk.to_string().as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let hs256 = format!("{input}.{}", B64.encode(mac.finalize().into_bytes()));
    assert_eq!(with_assertion(&app, &hs256).await, refused, "HS256");
    let none = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        B64.encode(claims(json!(ISSUER)).to_string())
    );
    assert_eq!(with_assertion(&app, &none).await, refused, "alg none");

    // Introspection: a confidential client may ask; a public client may not.
    let public = register(&app, ClientAuth::None, None, false).await;
    let res = app
        .client
        .post(app.url("/oidc/introspect"))
        .form(&[("token", "anything"), ("client_id", public.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a public client cannot introspect");
    let res = app
        .client
        .post(app.url("/oidc/introspect"))
        .form(&[
            ("token", "anything"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &rp.sign(es256, claims(json!(ISSUER)))),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["active"], false);
}
both!(
    client_assertions_need_the_issuer_as_sole_audience_and_es256,
    assertions
);
