//! Rotating `registry.key` (docs/design/keys.md, "The registry key"): while registrations
//! (a wrong card ID, then the right one, per card), card linking (the same) and password
//! recoveries by card ID run
//! against the app, the key is rotated and the issuer's file imported again; every request
//! is answered correctly at every moment (cards found under the old key, then under the new
//! one), the import leaves no row on the old key, `audit verify` passes, and the command
//! line rotates the key and counts the rows per key id.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::keys;
use portcullis_core::ports::RegistryReads;
use portcullis_crypto::keyring::load_ring;
use portcullis_testkit::{both, spawn_app_with, Backend, TestApp, PASSWORD};
use serde_json::{json, Value};

use crate::crash::{card_id, card_number, import, registry_file, CARDS};
use crate::keys::cli;
use crate::operations::run;

#[derive(Default)]
struct Load {
    stop: AtomicBool,
    registered: AtomicUsize,
    recovered: AtomicUsize,
    linked: AtomicUsize,
}

impl Load {
    fn counts(&self) -> [usize; 3] {
        [&self.registered, &self.recovered, &self.linked].map(|n| n.load(Ordering::SeqCst))
    }

    /// Waits until both loops have done `more` more rounds than now.
    async fn more(&self, more: usize) {
        let from = self.counts();
        let deadline = Instant::now() + Duration::from_secs(90);
        while self
            .counts()
            .iter()
            .zip(from)
            .any(|(now, then)| *now < then + more)
        {
            assert!(
                Instant::now() < deadline,
                "loops stalled at {:?}",
                self.counts()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Holders with two cards each (card linking): how many.
const LINKS: usize = 200;

/// Card `which` (0 or 1) of linking holder `k`, and its card ID.
fn link_card(k: usize, which: usize) -> (String, String) {
    let n = 777_000_000 + (2 * k + which) as u64 * 7919;
    (
        portcullis_core::card::with_luhn_check_digit(&format!("37{n:012}")),
        format!("{:04}", 2000 + 2 * k + which),
    )
}

/// The registry file of the linking holders (two cards each, one name).
fn link_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut csv = portcullis_core::registry::COLUMNS.join(",");
    csv.push('\n');
    for k in 0..LINKS {
        for which in 0..2 {
            let (number, id) = link_card(k, which);
            let row: Vec<String> = portcullis_core::registry::COLUMNS
                .iter()
                .map(|c| match *c {
                    "account_type" => "personal".into(),
                    "number" => number.clone(),
                    "verification" => id.clone(),
                    "expiry" => "2029-08".into(),
                    "holder_name" => format!("Link Holder {k}"),
                    "email" => format!("link{k}@example.com"),
                    "product" => "Gold Card".into(),
                    _ => String::new(),
                })
                .collect();
            csv.push_str(&row.join(","));
            csv.push('\n');
        }
    }
    let path = dir.join("links.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

/// Holders register with their first card, then link their second: a wrong card ID
/// refused, the right one linked.
async fn linking_loop(app: Arc<TestApp>, load: Arc<Load>) {
    let mut k = 0;
    while !load.stop.load(Ordering::SeqCst) && k < LINKS {
        let (first, first_id) = link_card(k, 0);
        let user = format!("linker.{k}");
        app.register_number("personal", &first, &first_id, &user, PASSWORD)
            .await;
        let session = app.token(&user, PASSWORD, "personal").await;
        let (second, second_id) = link_card(k, 1);
        let link = |verification: String| {
            app.client
                .post(app.url("/api/v1/me/cards"))
                .bearer_auth(&session)
                .json(&json!({"number": second, "verification": verification}))
                .send()
        };
        let wrong = link(format!("{:04}", 9000 + k)).await.unwrap();
        assert_eq!(wrong.status(), 400, "holder {k}: a wrong card ID linked");
        let right = link(second_id).await.unwrap();
        assert_eq!(
            right.status(),
            201,
            "holder {k}: {}",
            right.text().await.unwrap()
        );
        k += 1;
        load.linked.fetch_add(1, Ordering::SeqCst);
    }
}

/// A wrong card ID for card `i` (its own plus one, four digits).
fn wrong_id(i: usize) -> String {
    format!("{:04}", (1000 + i + 1) % 10_000)
}

/// New accounts for the imported cards: each card first with a wrong card ID (refused),
/// then with its own (accepted).
async fn registration_loop(app: Arc<TestApp>, load: Arc<Load>) {
    let mut i = 0;
    while !load.stop.load(Ordering::SeqCst) && i < CARDS {
        let wrong = app
            .post_json(
                "/api/v1/registration/verify-card",
                &json!({"account_type": "personal", "number": card_number(i),
                        "verification": wrong_id(i)}),
            )
            .await;
        assert_eq!(wrong.status(), 400, "card {i}: a wrong card ID accepted");
        app.register_number(
            "personal",
            &card_number(i),
            &card_id(i),
            &format!("regkey.{i}"),
            PASSWORD,
        )
        .await;
        i += 1;
        load.registered.fetch_add(1, Ordering::SeqCst);
    }
}

async fn recovery_start(app: &TestApp, user_id: &str) -> String {
    let res = app
        .post_json(
            "/api/v1/recovery/password/start",
            &json!({"user_id": user_id}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["recovery_token"].as_str().unwrap().to_owned()
}

/// Forgotten passwords of the accounts registered so far, checked by card ID: a wrong one
/// refused, the right one accepted (the card's row is checked under its own key id).
async fn recovery_loop(app: Arc<TestApp>, load: Arc<Load>) {
    let mut j = 0;
    while !load.stop.load(Ordering::SeqCst) && j < CARDS {
        if load.registered.load(Ordering::SeqCst) <= j {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let user = format!("regkey.{j}");
        let token = recovery_start(&app, &user).await;
        let res = app
            .post_json(
                "/api/v1/recovery/password/verify",
                &json!({"recovery_token": token, "card_id": wrong_id(j)}),
            )
            .await;
        let status = res.status().as_u16();
        assert!(
            (400..500).contains(&status),
            "{user}: a wrong card ID answered {status}"
        );
        let token = recovery_start(&app, &user).await;
        let res = app
            .post_json(
                "/api/v1/recovery/password/verify",
                &json!({"recovery_token": token, "card_id": card_id(j)}),
            )
            .await;
        assert_eq!(res.status(), 200, "{user}: {}", res.text().await.unwrap());
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code_required"], true, "{body}");
        j += 1;
        load.recovered.fetch_add(1, Ordering::SeqCst);
    }
}

async fn registry_rotation(backend: Backend) {
    let app = Arc::new(
        spawn_app_with(backend, |c| {
            c.limits.per_destination_per_hour = 100_000;
            c.limits.per_destination_per_day = 100_000;
            c.limits.failures_per_window = 100_000;
        })
        .await,
    );
    let secrets = app.config.secrets_dir.clone();
    let file = registry_file(app.dir.path());
    let links = link_file(app.dir.path());
    import(&app.config.database_url, &secrets, &file);
    import(&app.config.database_url, &secrets, &links);
    let store = app.built.store.clone();
    let demo_cards = portcullis::demo::DEMO_CARDS.len() as i64;
    let all = (CARDS + 2 * LINKS) as i64 + demo_cards;
    let registry = |statuses: &[keys::KeyStatus]| {
        statuses
            .iter()
            .find(|s| s.name == "registry.key")
            .cloned()
            .expect("registry.key in keys status")
    };
    let before = registry(&keys::status(&secrets, store.as_ref()).await.unwrap());
    assert_eq!((before.current, before.on_current), (1, Some(all)));
    assert!(before.old.is_empty());

    let load = Arc::new(Load::default());
    let tasks = vec![
        tokio::spawn(registration_loop(app.clone(), load.clone())),
        tokio::spawn(recovery_loop(app.clone(), load.clone())),
        tokio::spawn(linking_loop(app.clone(), load.clone())),
    ];
    load.more(3).await;

    // The rotation: every row is still under key 1, and every card is still found.
    keys::rotate(&app.config, "registry.key").unwrap();
    let ring = load_ring(&secrets, "registry.key").unwrap().unwrap();
    assert_eq!((ring.current_id(), ring.old_ids()), (2, vec![1]));
    // The app looks at the file at most every half second; rounds after that run under
    // a ring of two keys.
    tokio::time::sleep(Duration::from_millis(600)).await;
    load.more(5).await;
    // Cards registered or linked since moved to key 2 as they were found (their numbers
    // were in hand); the rest wait under key 1.
    let mid = registry(&keys::status(&secrets, store.as_ref()).await.unwrap());
    assert_eq!(mid.current, 2);
    let moved = mid.on_current.unwrap();
    assert!(moved >= 10, "{mid:?}");
    assert_eq!(mid.old, vec![(1, Some(all - moved))], "{mid:?}");
    let under = |id: u32, i: usize| {
        let key = portcullis_crypto::KeyedHasher::new(ring.get(id).unwrap().clone());
        key.hash(
            portcullis_core::card::NUMBER_DOMAIN_CARD,
            &[card_number(i).as_bytes()],
        )
    };
    // The card registered last is under key 2; the file's last card (not registered yet)
    // still under key 1.
    let last = load.registered.load(Ordering::SeqCst) - 1;
    let row = store.find_record(2, &under(2, last)).await.unwrap();
    assert_eq!(row.map(|r| r.key_id), Some(2), "card {last}");
    assert!(store
        .find_record(1, &under(1, last))
        .await
        .unwrap()
        .is_none());
    let row = store.find_record(1, &under(1, CARDS - 1)).await.unwrap();
    assert_eq!(row.map(|r| r.key_id), Some(1));

    // The issuer's file imported again (the demo cards are their own "file"): every row
    // moves to key 2 while the loops run, and the cards are then found under it.
    import(&app.config.database_url, &secrets, &file);
    import(&app.config.database_url, &secrets, &links);
    portcullis::demo::load(
        store.as_ref(),
        &ring,
        &app.built.app.audit_keys().current(),
        portcullis_core::clock::UnixTime(1_800_000_000),
    )
    .await
    .unwrap();
    let after = registry(&keys::status(&secrets, store.as_ref()).await.unwrap());
    assert_eq!(after.on_current, Some(all), "{after:?}");
    assert_eq!(after.rows_on_old(), 0, "{after:?}");
    assert_eq!(store.count_by_key().await.unwrap(), vec![(2, all)]);
    load.more(5).await;

    load.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("a loop got a wrong answer");
    }
    let [registered, recovered, linked] = load.counts();
    eprintln!(
        "{backend:?}: {registered} registrations, {recovered} recoveries by card ID, \
         {linked} cards linked across the registry key's rotation"
    );
    // An account registered before the rotation signs in; a demo card registers under the
    // new key.
    let _ = app.token("regkey.0", PASSWORD, "personal").await;
    app.register(&portcullis_testkit::ANN, "ann.example", PASSWORD)
        .await;

    // The audit chain verifies across the rotation, and the command line agrees.
    let (code, out, err) = run(cli(&app, &["audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit log intact"), "{out}");
    let (code, out, err) = run(cli(&app, &["keys", "status"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("registry.key")
            && l.contains(&format!(
                "current 2 ({all} registry rows); old: 1 (0 registry rows)"
            ))),
        "{out}"
    );
    let (code, out, err) = run(cli(&app, &["db", "check"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("key ids       all known"), "{out}{err}");
    // A keyring without the key the rows are under (a folder from another backup): db
    // check names it.
    std::fs::write(
        secrets.join("registry.key"),
        "current 3\nkey 3 ".to_owned() + &"cd".repeat(32) + "\n",
    )
    .unwrap();
    let (code, out, _) = run(cli(&app, &["db", "check"]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("key ids       UNKNOWN"), "{out}");
    assert!(
        out.contains(&format!(
            "{all} registry rows are under a key id registry.key"
        )),
        "{out}"
    );
}
both!(
    registry_key_rotates_under_registration_linking_and_recovery_load,
    registry_rotation
);
