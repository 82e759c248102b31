//! Helpers of the OpenID Connect tests: the relying party's HTTP client, the browser that
//! follows an authorization request through the sign-in page, PKCE, and a P-256 key that
//! signs client assertions and DPoP proofs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use portcullis_core::oidc::ClientAuth;
use portcullis_core::service::oidc::ClientRegistration;
use portcullis_testkit::{input_value, spawn_app_with, Backend, Jar, TestApp, ANN, PASSWORD};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The issuer (`public_url`) the server is configured with; requests to it are sent to
/// the test server's real address.
pub const ISSUER: &str = "http://localhost:1";
pub const RP: &str = "https://rp.example/cb";

pub async fn app(backend: Backend) -> TestApp {
    app_with(backend, |_| {}).await
}

/// As `app`, with more configuration.
pub async fn app_with(
    backend: Backend,
    tweak: impl FnOnce(&mut portcullis::config::Config),
) -> TestApp {
    let app = spawn_app_with(backend, |c| {
        c.public_url = Some(ISSUER.into());
        tweak(c);
    })
    .await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    app
}

pub fn real(app: &TestApp, url: &str) -> String {
    url.replacen(ISSUER, &app.base, 1)
}

/// The relying party's HTTP client for `openidconnect`: the issuer's URLs, sent to the test
/// server; no redirects followed.
pub async fn send(
    base: String,
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let url = req.uri().to_string().replacen(ISSUER, &base, 1);
    let mut rb = client.request(req.method().clone(), url);
    for (k, v) in req.headers() {
        rb = rb.header(k, v);
    }
    let res = rb.body(req.body().clone()).send().await?;
    let mut out = openidconnect::http::Response::builder().status(res.status());
    for (k, v) in res.headers() {
        out = out.header(k, v);
    }
    Ok(out.body(res.bytes().await?.to_vec()).unwrap())
}

/// `portcullis oidc client add …` as an operator runs it: one JSON line.
pub fn cli_client_add(app: &TestApp, args: &[&str]) -> (std::process::Output, Value) {
    cli_client_add_with(app, args, &[])
}

/// As `cli_client_add`, with more environment (configuration keys).
pub fn cli_client_add_with(
    app: &TestApp,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (std::process::Output, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "--database-url",
            &app.config.database_url,
            "oidc",
            "client",
            "add",
        ])
        .args(args)
        .env("PORTCULLIS_SECRETS_DIR", &app.config.secrets_dir)
        .env("PORTCULLIS_PUBLIC_URL", ISSUER)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let value = serde_json::from_str(line.trim()).unwrap_or(Value::Null);
    (out, value)
}

pub async fn register(app: &TestApp, auth: ClientAuth, jwks: Option<Value>, fapi2: bool) -> String {
    register_client(
        app,
        ClientRegistration {
            name: "Statements".into(),
            redirect_uris: vec![RP.into()],
            post_logout_uris: vec![],
            auth,
            jwks,
            jwks_uri: None,
            first_party: true,
            fapi2,
            id_token_alg: Default::default(),
        },
    )
    .await
    .0
}

/// Registers a client as given: its id and, for `client_secret_basic`, its secret.
pub async fn register_client(app: &TestApp, r: ClientRegistration) -> (String, String) {
    let done = app.built.app.register_oidc_client(r).await.unwrap();
    let secret = done
        .client_secret
        .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned())
        .unwrap_or_default();
    (done.client_id, secret)
}

/// The browser: follows an authorization URL through the real sign-in page and back;
/// answers the final `Location` (the relying party's redirect URI with the result).
pub async fn browser(app: &TestApp, jar: &mut Jar, authorize_url: &str) -> String {
    browser_slow(app, jar, authorize_url, 0).await
}

/// As `browser`, with `secs` passing on the sign-in page (a slow person, a slow network).
pub async fn browser_slow(app: &TestApp, jar: &mut Jar, authorize_url: &str, secs: i64) -> String {
    let res = follow(app, jar, authorize_url, secs).await;
    landing(res).await
}

/// Where an answer sends the browser back to the client: a redirect's `Location`, or the
/// "Taking you back" page's link (the end of a form's journey: sign-in, consent, sign-out).
pub async fn landing(res: reqwest::Response) -> String {
    if let Some(l) = res.headers().get("location") {
        return l.to_str().unwrap().to_owned();
    }
    let html = res.text().await.unwrap();
    let start = html
        .find(r#"<meta http-equiv="refresh" content="0;url="#)
        .unwrap_or_else(|| panic!("neither a redirect nor the way back: {html}"));
    let rest = &html[start..];
    let link = rest
        .split("id=\"continue\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no link back: {html}"));
    // HTML character references as the templates write them (numeric, or named).
    [
        ("&#38;", "&"),
        ("&amp;", "&"),
        ("&#34;", "\""),
        ("&#39;", "'"),
    ]
    .iter()
    .fold(link.to_owned(), |l, (from, to)| l.replace(from, to))
}

/// As `browser_slow`, answering the last response: a redirect to the relying party, or a
/// page (the consent page, a refusal).
pub async fn follow(
    app: &TestApp,
    jar: &mut Jar,
    authorize_url: &str,
    secs: i64,
) -> reqwest::Response {
    let get = |url: String, jar: &Jar| app.client.get(url).header("cookie", jar.header()).send();
    let mut res = get(real(app, authorize_url), jar).await.unwrap();
    jar.absorb(&res);
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    if location.starts_with('/') {
        // The sign-in page, the same one as for Portcullis itself.
        res = get(app.url(&location), jar).await.unwrap();
        jar.absorb(&res);
        let html = res.text().await.unwrap();
        assert!(html.contains("User ID"), "{html}");
        let csrf = input_value(&html, "csrf").unwrap();
        app.clock.advance(secs);
        res = app
            .client
            .post(app.url("/"))
            .header("cookie", jar.header())
            .form(&[
                ("csrf", csrf.as_str()),
                ("user_id", "ann.example"),
                ("password", PASSWORD),
                ("account_type", "personal"),
            ])
            .send()
            .await
            .unwrap();
        // The sign-in's answer goes on with the request: no redirect to `/oidc/resume`.
        jar.absorb(&res);
        assert!(
            res.headers().get("location").is_none(),
            "{:?}",
            res.headers()
        );
    }
    res
}

/// A public client's code with `offline_access`, after signing in in `jar`.
pub async fn offline_code(app: &TestApp, jar: &mut Jar, client_id: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let url = authorize_url(client_id, RP, &challenge, "")
        .replace("scope=openid", "scope=openid%20offline_access");
    let back = browser(app, jar, &url).await;
    (query(&back, "code").unwrap(), verifier)
}

pub fn query(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            let v = v.replace('+', " ");
            let mut out = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        })
}

pub fn claims_of(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

/// A public client's authorization URL with PKCE, built by hand.
pub fn authorize_url(client_id: &str, redirect: &str, challenge: &str, extra: &str) -> String {
    format!(
        "{ISSUER}/oidc/authorize?response_type=code&client_id={client_id}&redirect_uri={}\
         &scope=openid&state=st&code_challenge={challenge}&code_challenge_method=S256{extra}",
        urlencode(redirect)
    )
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn pkce() -> (String, String) {
    let verifier = B64.encode(random32());
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn random32() -> [u8; 32] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    b
}

pub async fn token(
    app: &TestApp,
    form: &[(&str, &str)],
    dpop: Option<String>,
) -> reqwest::Response {
    let mut rb = app.client.post(app.url("/oidc/token")).form(form);
    if let Some(p) = dpop {
        rb = rb.header("DPoP", p);
    }
    rb.send().await.unwrap()
}

/// A code exchanged at the token endpoint by a public client.
pub async fn exchange(
    app: &TestApp,
    client_id: &str,
    code: &str,
    verifier: &str,
    dpop: Option<String>,
) -> reqwest::Response {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", client_id),
        ("code_verifier", verifier),
        ("redirect_uri", RP),
    ];
    token(app, &form, dpop).await
}

/// `/metrics`' count of the token endpoint's uses of codes and refresh tokens, by how they
/// were written: (one statement list, unit of work).
pub async fn grant_uses(app: &TestApp) -> (u64, u64) {
    let text = app.metrics_text().await;
    let way = |name: &str| {
        let prefix = format!("portcullis_oidc_grant_uses_total{{way=\"{name}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix}in /metrics"))
            .parse::<u64>()
            .unwrap()
    };
    (way("one_list"), way("unit_of_work"))
}

/// A refresh grant by a public client.
pub async fn refresh(
    app: &TestApp,
    client_id: &str,
    refresh_token: &str,
    dpop: Option<String>,
) -> reqwest::Response {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
    ];
    token(app, &form, dpop).await
}

/// The status and the `error` of a refused request.
pub async fn error_of(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The status of the account page with the browser's cookies (200 signed in, 303 not).
pub async fn account_status(app: &TestApp, jar: &Jar) -> u16 {
    app.client
        .get(app.url("/account"))
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A P-256 key of the relying party (its JWKS entry and its thumbprint).
pub struct RpKey {
    pub key: SigningKey,
    pub jwk: Value,
}

impl RpKey {
    pub fn new(kid: &str) -> Self {
        let key = SigningKey::from_slice(&random32()).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap()),
        });
        Self { key, jwk }
    }

    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().unwrap(),
            self.jwk["y"].as_str().unwrap()
        );
        B64.encode(Sha256::digest(canonical.as_bytes()))
    }

    pub fn sign(&self, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig.to_bytes()))
    }

    pub fn assertion(&self, client_id: &str, aud: &str, now: i64) -> String {
        self.sign(
            json!({"alg": "ES256", "typ": "JWT", "kid": self.jwk["kid"]}),
            json!({"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 60,
                   "iat": now, "jti": B64.encode(random32())}),
        )
    }

    pub fn proof(&self, method: &str, url: &str, now: i64, ath: Option<&str>) -> String {
        self.proof_with_nonce(method, url, now, ath, None)
    }

    /// A proof carrying the server's `nonce` (RFC 9449 §8) when given.
    pub fn proof_with_nonce(
        &self,
        method: &str,
        url: &str,
        now: i64,
        ath: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        let mut claims =
            json!({"htm": method, "htu": url, "iat": now, "jti": B64.encode(random32())});
        if let Some(token) = ath {
            claims["ath"] = json!(B64.encode(Sha256::digest(token.as_bytes())));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let mut public = self.jwk.clone();
        public.as_object_mut().unwrap().remove("kid");
        self.sign(
            json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": public}),
            claims,
        )
    }
}

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
