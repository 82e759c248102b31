//! Three nodes, one account's guarantees: the lockout threshold, the per-card limit on card
//! IDs, throttling per address, single-use one-time codes, single-use recovery codes, one
//! online account per card, and a revoked session refused everywhere at once. Requests
//! from a client address go through `card_guard::post_from` (`X-Forwarded-For`, believed
//! where the nodes trust 127.0.0.1 as a proxy).

use portcullis_core::service::ClearCardOutcome;
use portcullis_core::support::SupportAuthority;
use portcullis_testkit::{TestApp, ANN, BEN, PASSWORD};
use serde_json::{json, Value};

use super::{at_once, count, on_three_nodes, sorted, Nodes, ROUNDS};
use crate::card_guard::post_from;
use crate::races::{complete, many_codes_to_one_address, recovery_token_with_code};
use crate::support::admin_token;

const WRONG: &str = "Wrong-Horse-42";

/// Nine wrong passwords at once, three a node: exactly the threshold is evaluated, the
/// account locks once, every node then refuses the right password; when the lock has run
/// out the right password works and the count starts again.
async fn lockout_threshold() {
    let nodes = Nodes::start(|c| c.limits.enabled = false).await;
    let threshold = nodes.node(0).config.lockout.lock_after_failures as usize;
    let lock_for = nodes.node(0).config.lockout.lock_for_secs;
    nodes.node(0).register(&ANN, "ann.example", PASSWORD).await;
    for round in 0..ROUNDS {
        let before = nodes.audit().await;
        let answers = at_once(9, |i| {
            let nodes = nodes.clone();
            async move {
                nodes
                    .node(i)
                    .sign_in("ann.example", WRONG, "personal")
                    .await
                    .status()
                    .as_u16()
            }
        })
        .await;
        assert!(
            answers.iter().all(|s| *s == 401 || *s == 423),
            "round {round}: {answers:?}"
        );
        let after = nodes.audit().await;
        let evaluated = |e: &[portcullis_core::audit::AuditEntry]| {
            e.iter()
                .filter(|e| e.kind == "signin.failed" && e.detail.starts_with("wrong password"))
                .count()
        };
        assert_eq!(
            evaluated(&after) - evaluated(&before),
            threshold,
            "round {round}: exactly the threshold evaluated ({answers:?})"
        );
        assert_eq!(
            count(&after, "account.locked", "") - count(&before, "account.locked", ""),
            1,
            "round {round}: locked once"
        );
        for node in nodes.all() {
            assert_eq!(
                node.sign_in("ann.example", PASSWORD, "personal")
                    .await
                    .status(),
                423,
                "round {round}: locked on every node"
            );
        }
        nodes.advance(lock_for + 1);
        assert_eq!(
            nodes
                .node(round)
                .sign_in("ann.example", PASSWORD, "personal")
                .await
                .status(),
            201,
            "round {round}: the lock ran out"
        );
    }
}
on_three_nodes!(
    three_nodes_lock_an_account_at_exactly_the_threshold,
    lockout_threshold
);

/// Twelve wrong card IDs for Ben's card at once, from twelve addresses, four a node: five
/// are evaluated, the card pauses once, every refusal alike; support clears it on another
/// node and the right card ID works on the third.
async fn card_limit() {
    let nodes = Nodes::start(|c| {
        c.limits.trusted_proxies = vec!["127.0.0.1".into()];
        c.limits.card_id_failures = 5;
    })
    .await;
    let operator = SupportAuthority::operator("cli:three.nodes");
    for round in 0..ROUNDS {
        let before = nodes.audit().await;
        let answers = at_once(12, |i| {
            let nodes = nodes.clone();
            async move {
                post_from(
                    nodes.node(i),
                    &format!("203.0.{round}.{}", 10 + i),
                    "/api/v1/registration/verify-card",
                    None,
                    &json!({"account_type": BEN.account_type, "number": BEN.number,
                            "verification": format!("{:04}", 1000 + i)}),
                )
                .await
            }
        })
        .await;
        let first = answers[0].clone();
        assert_eq!(first.0, 400, "round {round}: {}", first.1);
        assert_eq!(first.1["code"], "card-not-recognised");
        assert!(
            answers.iter().all(|a| *a == first),
            "round {round}: every refusal alike"
        );
        let after = nodes.audit().await;
        let wrong = "card ••••8431: wrong card ID";
        assert_eq!(
            count(&after, "registration.card_failed", wrong)
                - count(&before, "registration.card_failed", wrong),
            5,
            "round {round}: no more than the limit evaluated"
        );
        assert_eq!(
            count(&after, "card.paused", "••••8431") - count(&before, "card.paused", "••••8431"),
            1,
            "round {round}: paused once"
        );
        // Paused for every node: the right card ID fails alike on each.
        for (n, node) in nodes.all().iter().enumerate() {
            let right = post_from(
                node,
                &format!("198.51.{round}.{n}"),
                "/api/v1/registration/verify-card",
                None,
                &json!({"account_type": BEN.account_type, "number": BEN.number,
                        "verification": BEN.verification}),
            )
            .await;
            assert_eq!(right, first, "round {round}: node {n}");
        }
        let cleared = nodes
            .node(round + 1)
            .built
            .app
            .support_clear_card(&operator, BEN.number, "caller verified by phone")
            .await
            .unwrap();
        assert_eq!(cleared, ClearCardOutcome::Cleared, "round {round}");
        let (status, body) = post_from(
            nodes.node(round + 2),
            &format!("198.51.{round}.9"),
            "/api/v1/registration/verify-card",
            None,
            &json!({"account_type": BEN.account_type, "number": BEN.number,
                    "verification": BEN.verification}),
        )
        .await;
        assert_eq!(status, 200, "round {round}: {body}");
    }
}
on_three_nodes!(three_nodes_pause_a_card_after_exactly_its_limit, card_limit);

/// Twelve failed sign-ins from one address at once, four a node: five are evaluated (401),
/// seven throttled (429), and every node then throttles that address.
async fn throttling() {
    let nodes = Nodes::start(|c| {
        c.limits.trusted_proxies = vec!["127.0.0.1".into()];
        c.limits.failures_per_window = 5;
        c.limits.window_secs = 600;
    })
    .await;
    for round in 0..ROUNDS {
        let ip = format!("192.0.2.{}", 10 + round);
        let answers = at_once(12, |i| {
            let nodes = nodes.clone();
            let ip = ip.clone();
            async move {
                post_from(
                    nodes.node(i),
                    &ip,
                    "/api/v1/sessions",
                    None,
                    &json!({"user_id": format!("sprayed{i:02}"), "password": PASSWORD,
                            "account_type": "personal"}),
                )
                .await
                .0
            }
        })
        .await;
        assert_eq!(
            sorted(answers),
            [[401; 5].as_slice(), [429; 7].as_slice()].concat(),
            "round {round}"
        );
        for (n, node) in nodes.all().iter().enumerate() {
            let (status, _) = post_from(
                node,
                &ip,
                "/api/v1/sessions",
                None,
                &json!({"user_id": "sprayed99", "password": PASSWORD, "account_type": "personal"}),
            )
            .await;
            assert_eq!(status, 429, "round {round}: node {n}");
        }
    }
}
on_three_nodes!(
    three_nodes_throttle_an_address_at_exactly_its_limit,
    throttling
);

/// One recovery code used on the three nodes at once: one 200 (with a reset token), two 410.
async fn one_time_code() {
    let nodes = Nodes::start(|c| {
        many_codes_to_one_address(c);
        c.limits.enabled = false;
    })
    .await;
    nodes.node(0).register(&ANN, "ann.example", PASSWORD).await;
    for round in 0..ROUNDS {
        // A new recovery each round, an hour apart (no send limit is reached).
        nodes.advance(3600);
        let (token, code) = recovery_token_with_code(nodes.node(round), "ann.example").await;
        let answers = at_once(3, |i| {
            let nodes = nodes.clone();
            let body = json!({"recovery_token": token, "code": code});
            async move {
                let res = nodes
                    .node(i)
                    .post_json("/api/v1/recovery/password/verify", &body)
                    .await;
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                (status, body["reset_token"].is_string())
            }
        })
        .await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
        assert_eq!(sorted(statuses), [200, 410, 410], "round {round}");
        assert!(
            answers.iter().all(|(s, reset)| (*s == 200) == *reset),
            "round {round}: the winner, and only it, has a reset token"
        );
    }
}
on_three_nodes!(three_nodes_accept_a_one_time_code_once, one_time_code);

/// Ten fresh recovery codes, made with `session` (which signed in within five minutes).
async fn new_recovery_codes(app: &TestApp, session: &str) -> Vec<String> {
    let (status, body) = post_from(
        app,
        "127.0.0.1",
        "/api/v1/me/factors/recovery-codes",
        Some(session),
        &json!({}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    serde_json::from_value(body["codes"].clone()).unwrap()
}

/// One recovery code typed into three second steps at once (three sign-ins, one a node):
/// one session, two refusals, one code fewer.
async fn recovery_code() {
    let nodes = Nodes::start(|c| {
        many_codes_to_one_address(c);
        c.limits.enabled = false;
        // The refused second steps count towards the lock (40 here, at most); this test is
        // about the code. 100 is the highest the configuration allows.
        c.lockout.lock_after_failures = 100;
    })
    .await;
    let first = nodes.node(0);
    first.register(&ANN, "ann.example", PASSWORD).await;
    let mut session = first.token("ann.example", PASSWORD, "personal").await;
    let (status, body) = post_from(
        first,
        "127.0.0.1",
        "/api/v1/me/factors/code",
        Some(&session),
        &json!({"channel": "email"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let mut codes = Vec::new();
    for round in 0..ROUNDS {
        if round % 10 == 0 {
            codes = new_recovery_codes(nodes.node(round), &session).await;
        }
        let code = codes[round % 10].clone();
        let mut challenges = Vec::new();
        for node in nodes.all() {
            let res = node.sign_in("ann.example", PASSWORD, "personal").await;
            assert_eq!(res.status(), 200, "round {round}: a second step is asked");
            let body: Value = res.json().await.unwrap();
            challenges.push(body["challenge_token"].as_str().unwrap().to_owned());
        }
        let answers = at_once(3, |i| {
            let nodes = nodes.clone();
            let body = json!({"challenge_token": challenges[i], "method": "recovery_code",
                              "code": code, "trust_device": false});
            async move {
                let res = nodes.node(i).post_json("/api/v1/sessions/mfa", &body).await;
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                (status, body["session_token"].as_str().map(str::to_owned))
            }
        })
        .await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
        assert_eq!(sorted(statuses), [201, 400, 400], "round {round}");
        session = answers
            .iter()
            .find_map(|a| a.1.clone())
            .expect("the winner's session");
        let res = nodes
            .node(round + 1)
            .get_bearer("/api/v1/me/factors", &session)
            .await;
        assert_eq!(
            res.json::<Value>().await.unwrap()["recovery_codes_left"],
            9 - round % 10,
            "round {round}: one code used"
        );
    }
}
on_three_nodes!(three_nodes_accept_a_recovery_code_once, recovery_code);

/// A Luhn-valid 16-digit card number ending in `n` (before its check digit).
fn card_number(n: usize) -> String {
    let payload = format!("400000000000{n:03}");
    let sum: u32 = payload
        .chars()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = c.to_digit(10).unwrap();
            if i % 2 == 0 {
                let d = d * 2;
                if d > 9 {
                    d - 9
                } else {
                    d
                }
            } else {
                d
            }
        })
        .sum();
    format!("{payload}{}", (10 - sum % 10) % 10)
}

/// Three registrations of one card at once, one a node, each with its own verified step:
/// one account (the 201's), two 409s. A card of its own each round, pushed to the registry
/// first.
async fn one_account_per_card() {
    let nodes = Nodes::start(|_| {}).await;
    let admin = admin_token(nodes.node(0), "registry", &["registry:write"]).await;
    let records: Vec<Value> = (0..ROUNDS)
        .map(|n| {
            json!({
                "account_type": "personal", "number": card_number(n), "verification": "4321",
                "expiry": "2031-02", "holder_name": "Racer Example",
                "email": format!("racer{n}@example.com"), "phone": "",
                "product": "Classic Card", "balance": "0.00", "credit_limit": "500.00",
                "payment_due_date": "2026-12-20", "minimum_due": "0.00",
                "status": "active", "replaces": ""
            })
        })
        .collect();
    let res = nodes
        .node(0)
        .client
        .post(nodes.node(0).url("/api/v1/admin/registry/records"))
        .bearer_auth(&admin)
        .json(&records)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    for round in 0..ROUNDS {
        let number = card_number(round);
        let mut tokens = Vec::new();
        for node in nodes.all() {
            let res = node
                .post_json(
                    "/api/v1/registration/verify-card",
                    &json!({"account_type": "personal", "number": number, "verification": "4321"}),
                )
                .await;
            assert_eq!(res.status(), 200, "round {round}");
            let body: Value = res.json().await.unwrap();
            tokens.push(body["registration_token"].as_str().unwrap().to_owned());
        }
        let answers = at_once(3, |i| {
            let nodes = nodes.clone();
            let token = tokens[i].clone();
            async move { complete(nodes.node(i), &token, &format!("racer.{round}.{i}")).await }
        })
        .await;
        assert_eq!(sorted(answers.clone()), [201, 409, 409], "round {round}");
        for (i, answer) in answers.iter().enumerate() {
            let signed_in = nodes
                .node(i + 1)
                .sign_in(&format!("racer.{round}.{i}"), PASSWORD, "personal")
                .await
                .status();
            let expected = if *answer == 201 { 201 } else { 401 };
            assert_eq!(signed_in, expected, "round {round}: racer.{round}.{i}");
        }
    }
}
on_three_nodes!(three_nodes_make_one_account_per_card, one_account_per_card);

/// A session signed out on one node is refused at once by the other two (asked at the same
/// moment), which had just accepted it.
async fn session_revocation() {
    let nodes = Nodes::start(|c| c.limits.enabled = false).await;
    nodes.node(0).register(&ANN, "ann.example", PASSWORD).await;
    for round in 0..ROUNDS {
        let home = nodes.node(round);
        let token = home.token("ann.example", PASSWORD, "personal").await;
        for node in nodes.all() {
            assert_eq!(
                node.get_bearer("/api/v1/me", &token).await.status(),
                200,
                "round {round}"
            );
        }
        let res = home
            .client
            .delete(home.url("/api/v1/sessions/current"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "round {round}");
        let answers = at_once(3, |i| {
            let nodes = nodes.clone();
            let token = token.clone();
            async move {
                nodes
                    .node(round + i)
                    .get_bearer("/api/v1/me", &token)
                    .await
                    .status()
                    .as_u16()
            }
        })
        .await;
        assert_eq!(answers, [401, 401, 401], "round {round}");
    }
}
on_three_nodes!(
    three_nodes_refuse_a_signed_out_session_at_once,
    session_revocation
);
