//! `private_key_jwt` clients whose keys are published at a `jwks_uri`: a real HTTP key
//! server started here on a random port answers as each test asks (a key set, a rotated
//! one, nothing, too much) and counts its hits, so the tests see every fetch the provider
//! makes: the first assertion fetches, a fresh set is reused, an unknown `kid` refetches at
//! most once per interval, a dead server costs at most the timeout and a fresh enough
//! cached set still works.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use portcullis_core::clock::Clock;
use portcullis_testkit::{both, Backend, Jar, TestApp};
use serde_json::{json, Value};

use super::assertions::with_assertion;
use super::clients::{admin_token, api};
use super::support::*;

/// How the key server answers.
#[derive(Clone)]
enum Answer {
    Keys(Value),
    /// A valid key set padded past the provider's 64 KiB cap.
    Oversized(Value),
    /// The key set as `text/html`.
    WrongType(Value),
    /// A redirect to a URL that serves the key set (never followed).
    Redirect(String),
    Unavailable,
    /// Accepts the request and never answers.
    Hang,
}

struct KeyServer {
    uri: String,
    hits: Arc<AtomicUsize>,
    answer: Arc<Mutex<Answer>>,
}

impl KeyServer {
    async fn start(answer: Answer) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(Mutex::new(answer));
        let (h, a) = (hits.clone(), answer.clone());
        let handler = move || {
            let (h, a) = (h.clone(), a.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let now = a.lock().unwrap().clone();
                respond(now).await
            }
        };
        let router = axum::Router::new().route("/jwks.json", axum::routing::get(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            uri: format!("http://{addr}/jwks.json"),
            hits,
            answer,
        }
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn respond(answer: Answer) -> Response {
    let json = |body: String| ([(header::CONTENT_TYPE, "application/json")], body);
    match answer {
        Answer::Keys(set) => json(set.to_string()).into_response(),
        Answer::Oversized(mut set) => {
            set["padding"] = json!("x".repeat(70 * 1024));
            json(set.to_string()).into_response()
        }
        Answer::WrongType(set) => {
            ([(header::CONTENT_TYPE, "text/html")], set.to_string()).into_response()
        }
        Answer::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)], "").into_response(),
        Answer::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK.into_response()
        }
    }
}

const TIMEOUT_MS: u64 = 500;
const TTL: i64 = 300;
const INTERVAL: i64 = 60;
const MAX_AGE: i64 = 3600;

async fn jwks_app(backend: Backend) -> TestApp {
    app_with(backend, |c| {
        c.oidc.jwks_allow_http_loopback = true;
        c.oidc.jwks_timeout_ms = TIMEOUT_MS;
        c.oidc.jwks_ttl_secs = TTL;
        c.oidc.jwks_refetch_interval_secs = INTERVAL;
        c.oidc.jwks_max_age_secs = MAX_AGE;
    })
    .await
}

fn set(keys: &[&RpKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// Registers a `private_key_jwt` client with `--jwks-uri`, as the operator does.
fn add_client(app: &TestApp, uri: &str) -> String {
    let (out, line) = cli_client_add_with(
        app,
        &[
            "--name",
            "Statements",
            "--redirect-uri",
            RP,
            "--auth",
            "private_key_jwt",
            "--jwks-uri",
            uri,
            "--first-party",
        ],
        &[("PORTCULLIS_OIDC_JWKS_ALLOW_HTTP_LOOPBACK", "true")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    line["client_id"].as_str().unwrap().to_owned()
}

/// A fresh assertion of `key` for `client_id` at the token endpoint: [`authenticated`] or
/// [`refused`].
async fn assert_with(app: &TestApp, key: &RpKey, client_id: &str) -> (u16, String) {
    let now = app.clock.now().0;
    with_assertion(app, &key.assertion(client_id, ISSUER, now)).await
}

fn authenticated() -> (u16, String) {
    (400, "invalid_grant".to_owned())
}

fn refused() -> (u16, String) {
    (401, "invalid_client".to_owned())
}

/// The code flow of a client whose key is fetched from its `jwks_uri`; then the client
/// rotates its key and the first assertion with the new `kid` fetches the new set.
async fn code_flow_and_rotation(backend: Backend) {
    let app = jwks_app(backend).await;
    let first = RpKey::new("rp-1");
    let server = KeyServer::start(Answer::Keys(set(&[&first]))).await;
    let client_id = add_client(&app, &server.uri);
    assert_eq!(server.hits(), 0, "nothing is fetched at registration");

    let mut jar = Jar::default();
    let (verifier, challenge) = pkce();
    let back = browser(
        &app,
        &mut jar,
        &authorize_url(&client_id, RP, &challenge, ""),
    )
    .await;
    let code = query(&back, "code").unwrap();
    let now = app.clock.now().0;
    let res = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", RP),
            ("client_assertion_type", ASSERTION_TYPE),
            (
                "client_assertion",
                &first.assertion(&client_id, ISSUER, now),
            ),
        ],
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["id_token"].is_string() && body["access_token"].is_string());
    assert_eq!(server.hits(), 1, "the first assertion fetched the key set");

    // A fresh set is used as it is: no fetch.
    assert_eq!(assert_with(&app, &first, &client_id).await, authenticated());
    assert_eq!(server.hits(), 1);

    // The client rotates: only its new key is published. Once the interval has passed
    // (the set itself still fresh), an assertion with the new kid refetches at once.
    let second = RpKey::new("rp-2");
    server.answer(Answer::Keys(set(&[&second])));
    app.clock.advance(INTERVAL + 1);
    assert_eq!(
        assert_with(&app, &second, &client_id).await,
        authenticated()
    );
    assert_eq!(server.hits(), 2, "the unknown kid refetched the set");
    // The retired key is gone from the cached set: refused, and no fetch (the interval).
    assert_eq!(assert_with(&app, &first, &client_id).await, refused());
    assert_eq!(
        assert_with(&app, &second, &client_id).await,
        authenticated()
    );
    assert_eq!(server.hits(), 2);

    // The list says where the keys come from.
    let token = admin_token(&app, "clients", &["clients:write"]);
    let (status, shown) = api(
        &app,
        reqwest::Method::GET,
        &format!("/admin/oidc/clients/{client_id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(shown["jwks"], "uri");
    assert_eq!(shown["jwks_uri"], server.uri.as_str());
}
both!(
    private_key_jwt_with_jwks_uri_code_flow_and_key_rotation,
    code_flow_and_rotation
);

/// A client whose key server serves its one key, after the assertion that fetched it.
async fn first_fetch(backend: Backend) -> (TestApp, RpKey, KeyServer, String) {
    let app = jwks_app(backend).await;
    let rp = RpKey::new("rp-1");
    let server = KeyServer::start(Answer::Keys(set(&[&rp]))).await;
    let client_id = add_client(&app, &server.uri);
    assert_eq!(assert_with(&app, &rp, &client_id).await, authenticated());
    assert_eq!(server.hits(), 1);
    (app, rp, server, client_id)
}

/// Assertions naming random kids, all at once: at most one refetch per interval.
async fn unknown_kid_flood(backend: Backend) {
    let (app, rp, server, client_id) = first_fetch(backend).await;

    for round in 1..=2 {
        app.clock.advance(INTERVAL + 1);
        let now = app.clock.now().0;
        let mut flood = tokio::task::JoinSet::new();
        for _ in 0..24 {
            let attacker = RpKey::new(&B64.encode(random32()));
            let assertion = attacker.assertion(&client_id, ISSUER, now);
            let (client, url) = (app.client.clone(), app.url("/oidc/token"));
            flood.spawn(async move {
                let res = client
                    .post(url)
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", "no-such-token"),
                        ("client_assertion_type", ASSERTION_TYPE),
                        ("client_assertion", assertion.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                res.status().as_u16()
            });
        }
        while let Some(status) = flood.join_next().await {
            assert_eq!(status.unwrap(), 401);
        }
        assert_eq!(
            server.hits(),
            1 + round,
            "round {round}: one refetch for the whole flood"
        );
        // The client's own key still works, without another fetch.
        assert_eq!(assert_with(&app, &rp, &client_id).await, authenticated());
        assert_eq!(server.hits(), 1 + round);
    }
}
both!(
    unknown_kid_flood_refetches_at_most_once_per_interval,
    unknown_kid_flood
);

/// The key server stops answering: the token endpoint answers `invalid_client` within
/// the timeout; a cached set younger than the maximum age is still used.
async fn server_down(backend: Backend) {
    let (app, rp, server, client_id) = first_fetch(backend).await;

    // Stale (past the TTL) and the server hangs: the refetch times out, the cached set works.
    server.answer(Answer::Hang);
    app.clock.advance(TTL + 1);
    let started = Instant::now();
    assert_eq!(assert_with(&app, &rp, &client_id).await, authenticated());
    let waited = started.elapsed();
    assert_eq!(server.hits(), 2, "a refetch was tried");
    assert!(
        waited >= Duration::from_millis(TIMEOUT_MS - 50),
        "{waited:?}"
    );
    assert!(
        waited < Duration::from_millis(TIMEOUT_MS + 3000),
        "{waited:?}"
    );
    // Within the interval no other fetch is tried: no wait at all.
    let started = Instant::now();
    assert_eq!(assert_with(&app, &rp, &client_id).await, authenticated());
    assert!(
        started.elapsed() < Duration::from_millis(TIMEOUT_MS),
        "no second wait"
    );
    assert_eq!(server.hits(), 2);

    // Down (503), and the cached set past the maximum age: invalid_client.
    server.answer(Answer::Unavailable);
    app.clock.advance(MAX_AGE);
    assert_eq!(assert_with(&app, &rp, &client_id).await, refused());
    assert_eq!(server.hits(), 3);
    // The server is back: after the interval the set is fetched again.
    server.answer(Answer::Keys(set(&[&rp])));
    app.clock.advance(INTERVAL + 1);
    assert_eq!(assert_with(&app, &rp, &client_id).await, authenticated());
    assert_eq!(server.hits(), 4);

    // A client whose server never answered: invalid_client, within the timeout.
    let silent = KeyServer::start(Answer::Hang).await;
    let other = add_client(&app, &silent.uri);
    let started = Instant::now();
    assert_eq!(assert_with(&app, &rp, &other).await, refused());
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(TIMEOUT_MS + 3000),
        "{waited:?}"
    );
    assert_eq!(silent.hits(), 1);
}
both!(
    jwks_uri_down_invalid_client_within_timeout_cached_set_used,
    server_down
);

/// What a key server may not answer: a body over the cap, another media type, a redirect.
async fn refused_answers(backend: Backend) {
    let app = jwks_app(backend).await;
    let rp = RpKey::new("rp-1");
    let good = KeyServer::start(Answer::Keys(set(&[&rp]))).await;
    for answer in [
        Answer::Oversized(set(&[&rp])),
        Answer::WrongType(set(&[&rp])),
        Answer::Redirect(good.uri.clone()),
    ] {
        let server = KeyServer::start(answer).await;
        let client_id = add_client(&app, &server.uri);
        assert_eq!(assert_with(&app, &rp, &client_id).await, refused());
        assert_eq!(server.hits(), 1);
    }
    assert_eq!(good.hits(), 0, "the redirect was not followed");
    // The same key served properly works.
    let client_id = add_client(&app, &good.uri);
    assert_eq!(assert_with(&app, &rp, &client_id).await, authenticated());
}
both!(
    jwks_uri_oversized_wrong_type_or_redirect_refused,
    refused_answers
);

/// Registration: `https` only (`http` only to a loopback IP literal, when allowed); never
/// both a file and a URI; the admin API applies the same checks.
async fn registration(backend: Backend) {
    let app = app(backend).await;
    let add = |uri: &str| {
        let (out, _) = cli_client_add(
            &app,
            &[
                "--name",
                "S",
                "--redirect-uri",
                RP,
                "--auth",
                "private_key_jwt",
                "--jwks-uri",
                uri,
            ],
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for uri in [
        "http://rp.example/jwks.json",
        "http://203.0.113.9/jwks.json",
        "http://127.0.0.1:9/jwks.json",
        "http://localhost:9/jwks.json",
        "https://10.1.2.3/jwks.json",
    ] {
        let (ok, err) = add(uri);
        assert!(!ok, "{uri} was accepted");
        assert!(err.contains("jwks_uri"), "{err}");
    }
    assert!(add("https://rp.example/jwks.json").0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, set(&[&RpKey::new("k")]).to_string()).unwrap();
    let (out, _) = cli_client_add(
        &app,
        &[
            "--name",
            "S",
            "--redirect-uri",
            RP,
            "--auth",
            "private_key_jwt",
            "--jwks-uri",
            "https://rp.example/jwks.json",
            "--jwks-file",
            file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "a file and a URI both");

    let token = admin_token(&app, "clients", &["clients:write"]);
    let body = |uri: &str| {
        json!({"name": "S", "redirect_uris": [RP], "token_endpoint_auth_method": "private_key_jwt",
               "jwks_uri": uri})
    };
    let post = reqwest::Method::POST;
    let (status, problem) = api(
        &app,
        post.clone(),
        "/admin/oidc/clients",
        &token,
        Some(body("http://rp.example/k")),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    let (status, created) = api(
        &app,
        post,
        "/admin/oidc/clients",
        &token,
        Some(body("https://rp.example/k")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (code, listed, _) = super::clients::cli(&app, &["oidc", "client", "list"]);
    assert_eq!(code, 0);
    let row = listed
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["client_id"] == created["client_id"])
        .unwrap();
    assert_eq!(row["jwks"], "uri");
    assert_eq!(row["jwks_uri"], "https://rp.example/k");
}
both!(jwks_uri_registration_https_only, registration);
