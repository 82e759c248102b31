//! Three nodes, the OpenID Connect provider's single-use state: one authorization code
//! exchanged on the three at once gives exactly one token response (and the replays revoke
//! what it issued); one refresh token used on the three at once rotates exactly once and the
//! reuse ends the family and the session; one DPoP proof replayed on the three is accepted
//! once. Each [`ROUNDS`] times. The relying party's helpers are the OIDC tests' own.

use portcullis_core::oidc::ClientAuth;
use portcullis_testkit::{Jar, TestApp, ANN, PASSWORD};
use serde_json::Value;

use super::{at_once, on_three_nodes, sorted, Nodes, ROUNDS};

#[allow(dead_code)]
#[path = "../../oidc/support.rs"]
mod rp;

use rp::{authorize_url, browser, pkce, query, RpKey, ISSUER, RP};

async fn oidc_nodes() -> std::sync::Arc<Nodes> {
    let nodes = Nodes::start(|c| {
        c.public_url = Some(ISSUER.into());
        c.limits.enabled = false;
    })
    .await;
    nodes.node(0).register(&ANN, "ann.example", PASSWORD).await;
    nodes
}

/// A public client's code with `offline_access`, through node 0's sign-in page.
async fn code(app: &TestApp, jar: &mut Jar, client_id: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let url = authorize_url(client_id, RP, &challenge, "")
        .replace("scope=openid", "scope=openid%20offline_access");
    let back = browser(app, jar, &url).await;
    (query(&back, "code").unwrap(), verifier)
}

async fn post_token(app: &TestApp, form: Vec<(&'static str, String)>) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/oidc/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn exchange_form(client_id: &str, code: &str, verifier: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.into()),
        ("client_id", client_id.into()),
        ("code_verifier", verifier.into()),
        ("redirect_uri", RP.into()),
    ]
}

async fn userinfo(app: &TestApp, auth: &str, dpop: Option<&str>) -> u16 {
    let mut rb = app
        .client
        .get(app.url("/oidc/userinfo"))
        .header("authorization", auth);
    if let Some(p) = dpop {
        rb = rb.header("DPoP", p);
    }
    rb.send().await.unwrap().status().as_u16()
}

/// One code, three nodes at once: one 200, two `invalid_grant`; the replays revoke the
/// tokens the winner got.
async fn one_code_three_nodes() {
    let nodes = oidc_nodes().await;
    let client_id = rp::register(nodes.node(0), ClientAuth::None, None, false).await;
    let mut jar = Jar::default();
    for round in 0..ROUNDS {
        let (code, verifier) = code(nodes.node(0), &mut jar, &client_id).await;
        let answers = at_once(3, |i| {
            let nodes = nodes.clone();
            let form = exchange_form(&client_id, &code, &verifier);
            async move { post_token(nodes.node(i), form).await }
        })
        .await;
        let statuses = sorted(answers.iter().map(|(s, _)| *s).collect());
        assert_eq!(statuses, vec![200, 400, 400], "round {round}: {answers:?}");
        assert!(
            answers
                .iter()
                .filter(|(s, _)| *s == 400)
                .all(|(_, b)| b["error"] == "invalid_grant"),
            "round {round}: {answers:?}"
        );
        let (_, won) = answers.iter().find(|(s, _)| *s == 200).unwrap();
        let access = won["access_token"].as_str().unwrap();
        for node in nodes.all() {
            assert_eq!(
                userinfo(node, &format!("Bearer {access}"), None).await,
                401,
                "round {round}: a replayed code leaves no live token"
            );
        }
    }
}
on_three_nodes!(
    three_nodes_one_authorization_code_gives_exactly_one_token,
    one_code_three_nodes
);

/// One refresh token, three nodes at once: exactly one rotation; the others are reuse,
/// which ends the family (the new refresh token is refused) and the session behind it.
async fn one_refresh_three_nodes() {
    let nodes = oidc_nodes().await;
    let client_id = rp::register(nodes.node(0), ClientAuth::None, None, false).await;
    for round in 0..ROUNDS {
        // The reuse of the round before ended the session: sign in again.
        let mut jar = Jar::default();
        let (code, verifier) = code(nodes.node(0), &mut jar, &client_id).await;
        let (status, tokens) =
            post_token(nodes.node(1), exchange_form(&client_id, &code, &verifier)).await;
        assert_eq!(status, 200, "round {round}: {tokens}");
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        let answers = at_once(3, |i| {
            let nodes = nodes.clone();
            let form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", refresh.clone()),
                ("client_id", client_id.clone()),
            ];
            async move { post_token(nodes.node(i), form).await }
        })
        .await;
        let statuses = sorted(answers.iter().map(|(s, _)| *s).collect());
        assert_eq!(statuses, vec![200, 400, 400], "round {round}: {answers:?}");
        let (_, won) = answers.iter().find(|(s, _)| *s == 200).unwrap();
        let rotated = won["refresh_token"].as_str().unwrap();
        assert_ne!(rotated, refresh);
        for (i, node) in nodes.all().iter().enumerate() {
            let (status, body) = post_token(
                node,
                vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", rotated.into()),
                    ("client_id", client_id.clone()),
                ],
            )
            .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "round {round}, node {i}: the family has ended"
            );
        }
        let account = nodes
            .node(2)
            .client
            .get(nodes.node(2).url("/account"))
            .header("cookie", jar.header())
            .send()
            .await
            .unwrap();
        assert_eq!(
            account.status(),
            303,
            "round {round}: the session behind the family has ended"
        );
    }
}
on_three_nodes!(
    three_nodes_one_refresh_token_rotates_once_and_its_reuse_ends_the_family,
    one_refresh_three_nodes
);

/// One DPoP proof sent to the three nodes at once with a bound access token: the proof's
/// `jti` is accepted once (the replay cache is the shared database).
async fn one_dpop_proof_three_nodes() {
    let nodes = oidc_nodes().await;
    let client_id = rp::register(nodes.node(0), ClientAuth::None, None, false).await;
    let key = RpKey::new("app-dpop");
    let mut jar = Jar::default();
    let (code, verifier) = code(nodes.node(0), &mut jar, &client_id).await;
    let token_url = format!("{ISSUER}/oidc/token");
    let proof = key.proof("POST", &token_url, nodes.now(), None);
    let res = nodes
        .node(0)
        .client
        .post(nodes.node(0).url("/oidc/token"))
        .header("DPoP", proof)
        .form(&exchange_form(&client_id, &code, &verifier))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let userinfo_url = format!("{ISSUER}/oidc/userinfo");
    for round in 0..ROUNDS {
        let proof = key.proof("GET", &userinfo_url, nodes.now(), Some(&access));
        let answers = at_once(3, |i| {
            let nodes = nodes.clone();
            let auth = format!("DPoP {access}");
            let proof = proof.clone();
            async move { userinfo(nodes.node(i), &auth, Some(&proof)).await }
        })
        .await;
        // A refused proof is `invalid_dpop_proof` (400) or `invalid_token` (401).
        let refused = |s: &u16| *s == 400 || *s == 401;
        let ok = answers.iter().filter(|s| **s == 200).count();
        assert!(
            ok == 1 && answers.iter().filter(|s| refused(s)).count() == 2,
            "round {round}: {answers:?}"
        );
        // Replayed later, on any node, it is still refused.
        let later = userinfo(nodes.node(round), &format!("DPoP {access}"), Some(&proof)).await;
        assert!(refused(&later), "round {round}: {later}");
    }
}
on_three_nodes!(
    three_nodes_one_dpop_proof_is_accepted_once,
    one_dpop_proof_three_nodes
);
