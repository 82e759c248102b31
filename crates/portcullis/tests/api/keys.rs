//! Key rotation without downtime (docs/design/keys.md): the factor, outbox and CSRF keys are
//! rotated while loops of sign-ins (an authenticator app, a code by email, the pages'
//! forms) and registrations run against the app as tokio tasks; every request is answered
//! correctly at every moment, the re-seal then leaves no row on an old key, `audit verify`
//! passes, and the CLI's `keys rotate`, `keys status` and `keys reseal` say so.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::keys::{self, KeyStatus, Sealers};
use portcullis_core::clock::Clock;
use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{Message, OutboxStore, Outgoing, SealedColumn, SealedValues};
use portcullis_core::webhooks::EventFilter;
use portcullis_testkit::{
    both, input_value, spawn_app_with, Backend, Jar, TestApp, ANN, BEN, CARA, PASSWORD,
};
use serde_json::{json, Value};

use crate::crash::{card_id, card_number, import, registry_file, CARDS};
use crate::operations::{clean, run};

/// What the loops have done, and the signal to stop.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    /// The authenticator loop moves the fake clock on (a code is never taken twice in one
    /// 30-second step); the other loops hold this while a flow of theirs is under way, so
    /// their steps and codes never expire under them however slow the machine is.
    clock: tokio::sync::RwLock<()>,
    totp: AtomicUsize,
    email: AtomicUsize,
    pages: AtomicUsize,
    registered: AtomicUsize,
}

impl Load {
    fn counts(&self) -> [usize; 4] {
        [&self.totp, &self.email, &self.pages, &self.registered].map(|n| n.load(Ordering::SeqCst))
    }

    /// Waits until every loop has done `more` more rounds than at `from`.
    async fn rounds(&self, from: [usize; 4], more: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
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

async fn bearer(app: &TestApp, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
    let res = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Turns on an authenticator app for `user_id`; its secret (base32).
pub(crate) async fn enrol_totp(app: &TestApp, user_id: &str) -> String {
    let token = app.token(user_id, PASSWORD, "personal").await;
    let (status, enrol) = bearer(
        app,
        reqwest::Method::POST,
        "/api/v1/me/factors/totp",
        &token,
    )
    .await;
    assert_eq!(status, 201, "{enrol}");
    let secret = enrol["secret"].as_str().unwrap().to_owned();
    let res = app
        .client
        .post(app.url("/api/v1/me/factors/totp/confirm"))
        .bearer_auth(&token)
        .json(&json!({"code": portcullis_testkit::totp_now(app, &secret)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    secret
}

pub(crate) async fn sign_in(
    app: &TestApp,
    user_id: &str,
    password: &str,
    kind: &str,
) -> (u16, Value) {
    let res = app.sign_in(user_id, password, kind).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

pub(crate) async fn second_step(
    app: &TestApp,
    challenge: &Value,
    method: &str,
    code: &str,
) -> (u16, Value) {
    let res = app
        .post_json(
            "/api/v1/sessions/mfa",
            &json!({"challenge_token": challenge["challenge_token"], "method": method,
                    "code": code, "trust_device": false}),
        )
        .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Ann signs in with her authenticator app (one 30-second step per round: a code is never
/// taken twice). Her secret was sealed under the factor key before the rotation.
async fn totp_loop(app: Arc<TestApp>, load: Arc<Load>, secret: String) {
    while !load.stop.load(Ordering::SeqCst) {
        {
            let _moving = load.clock.write().await;
            app.clock.advance(30);
        }
        let (status, challenge) = sign_in(&app, "ann.example", PASSWORD, "personal").await;
        assert_eq!(status, 200, "{challenge}");
        assert_eq!(challenge["methods"], json!(["totp"]), "{challenge}");
        let (status, session) = totp_step(&app, &challenge, &secret).await;
        assert_eq!(status, 201, "authenticator code refused: {session}");
        let me = app
            .get_bearer("/api/v1/me", session["session_token"].as_str().unwrap())
            .await;
        assert_eq!(me.status(), 200);
        load.totp.fetch_add(1, Ordering::SeqCst);
    }
}

/// The codes in the outbox file sent to an address starting `to`.
pub(crate) fn codes_to(app: &TestApp, to: &str) -> Vec<String> {
    std::fs::read_to_string(&app.outbox)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| {
            m["to"].as_str().unwrap_or("").starts_with(to)
                && m["subject"]
                    .as_str()
                    .unwrap_or("")
                    .contains("security code")
        })
        .filter_map(|m| {
            m["body"]
                .as_str()?
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .map(str::to_owned)
        })
        .collect()
}

/// Ben signs in and asks for a code by email: the challenge and the code delivered.
pub(crate) async fn emailed_code(app: &TestApp) -> (Value, String) {
    let before = codes_to(app, "ben@").len();
    let (status, challenge) = sign_in(app, "ben.sample", PASSWORD, "personal").await;
    assert_eq!(status, 200, "{challenge}");
    let res = app
        .post_json(
            "/api/v1/sessions/mfa/send",
            &json!({"challenge_token": challenge["challenge_token"], "method": "email"}),
        )
        .await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let codes = codes_to(app, "ben@");
        if codes.len() > before {
            return (challenge, codes[codes.len() - 1].clone());
        }
        assert!(Instant::now() < deadline, "the code was never delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ben signs in with a code by email: the code's message is sealed under the outbox key in
/// the queue and opened by the delivery worker.
async fn email_loop(app: Arc<TestApp>, load: Arc<Load>) {
    while !load.stop.load(Ordering::SeqCst) {
        let _still = load.clock.read().await;
        let (challenge, code) = emailed_code(&app).await;
        let (status, session) = second_step(&app, &challenge, "email", &code).await;
        assert_eq!(status, 201, "emailed code refused: {session}");
        load.email.fetch_add(1, Ordering::SeqCst);
    }
}

/// Cara signs in through the pages: a form's CSRF token under the CSRF key.
async fn pages_loop(app: Arc<TestApp>, load: Arc<Load>) {
    while !load.stop.load(Ordering::SeqCst) {
        let _still = load.clock.read().await;
        let mut jar = Jar::default();
        let (status, html) = crate::pages::get(&app, &mut jar, "/").await;
        assert_eq!(status, 200);
        let csrf = input_value(&html, "csrf").unwrap();
        let res = crate::pages::post(
            &app,
            &mut jar,
            "/",
            &[
                ("csrf", &csrf),
                ("user_id", "cara.corp"),
                ("password", PASSWORD),
                ("account_type", "corporate"),
            ],
        )
        .await;
        assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
        assert_eq!(res.headers()["location"], "/account");
        load.pages.fetch_add(1, Ordering::SeqCst);
    }
}

/// New accounts for the imported cards, one after another.
async fn registration_loop(app: Arc<TestApp>, load: Arc<Load>) {
    let mut i = 0;
    while !load.stop.load(Ordering::SeqCst) && i < CARDS {
        let _still = load.clock.read().await;
        app.register_number(
            "personal",
            &card_number(i),
            &card_id(i),
            &format!("keys.{i}"),
            PASSWORD,
        )
        .await;
        i += 1;
        load.registered.fetch_add(1, Ordering::SeqCst);
    }
}

fn status_of(statuses: &[KeyStatus], name: &str) -> KeyStatus {
    statuses
        .iter()
        .find(|s| s.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {statuses:?}"))
}

/// A code message in the queue.
async fn queue_code(app: &TestApp) -> i64 {
    let message = Outgoing::from(Message {
        channel: CodeChannel::Email,
        to: "later@example.com".into(),
        subject: "Your security code".into(),
        body: "Your security code is 246810.".into(),
        sensitive: true,
    });
    app.built
        .store
        .enqueue(&[message], app.clock.now())
        .await
        .unwrap()[0]
}

async fn rotation_under_load(backend: Backend) {
    let app = Arc::new(
        spawn_app_with(backend, |c| {
            c.limits.per_destination_per_hour = 100_000;
            c.limits.per_destination_per_day = 100_000;
        })
        .await,
    );
    let secrets = app.config.secrets_dir.clone();
    import(
        &app.config.database_url,
        &secrets,
        &registry_file(app.dir.path()),
    );
    app.register(&ANN, "ann.example", PASSWORD).await;
    app.register(&BEN, "ben.sample", PASSWORD).await;
    app.register(&CARA, "cara.corp", PASSWORD).await;
    let secret = enrol_totp(&app, "ann.example").await;
    let token = app.token("ben.sample", PASSWORD, "personal").await;
    let res = app
        .client
        .post(app.url("/api/v1/me/factors/code"))
        .bearer_auth(&token)
        .json(&json!({"channel": "email"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let store = app.built.store.clone();
    let factor_on = |id: u32| {
        let store = store.clone();
        async move {
            let mut n = 0;
            for p in portcullis_crypto::Sealer::like_patterns(id) {
                n += store
                    .count_sealed(SealedColumn::FactorSecret, &p)
                    .await
                    .unwrap();
            }
            n
        }
    };
    assert_eq!(factor_on(1).await, 1, "Ann's secret, under key 1");
    // A webhook subscription's signing secret is sealed under the outbox keyring too.
    let hook_secret = "whsec_cm90YXRpb24tdGVzdC1zaWduaW5nLXNlY3JldA==";
    let hook = crate::support::subscribe_in_store(
        &store,
        "https://hooks.example/in",
        &EventFilter::parse("card.linked").unwrap(),
        hook_secret,
        app.clock.now(),
    )
    .await;

    let load = Arc::new(Load::default());
    let tasks = vec![
        tokio::spawn(totp_loop(app.clone(), load.clone(), secret.clone())),
        tokio::spawn(email_loop(app.clone(), load.clone())),
        tokio::spawn(pages_loop(app.clone(), load.clone())),
        tokio::spawn(registration_loop(app.clone(), load.clone())),
    ];
    load.rounds([0; 4], 3).await;

    // A form shown before the CSRF key changes, submitted after.
    let mut old_form = Jar::default();
    let (_, html) = crate::pages::get(&app, &mut old_form, "/").await;
    let old_csrf = input_value(&html, "csrf").unwrap();

    let sealers = Sealers::of(&app.built);
    let live = [
        sealers.factor.ring().clone(),
        sealers.outbox.as_ref().unwrap().ring().clone(),
        app.built.state.csrf.clone(),
    ];
    // (registry.key under load: keys_registry.rs.)
    let sealing = ["factor.key", "outbox.key", "csrf.key"];
    for (name, ring) in sealing.into_iter().zip(&live) {
        keys::rotate(&app.config, name).unwrap();
        // The running app takes the new key within a second, with no restart...
        let deadline = Instant::now() + Duration::from_secs(10);
        while ring.snapshot().current_id() != 2 {
            assert!(
                Instant::now() < deadline,
                "{name}: the new key was not picked up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ... and every loop goes on under it.
        load.rounds(load.counts(), 3).await;
    }
    let statuses = keys::status(&secrets, store.as_ref()).await.unwrap();
    for name in sealing {
        let s = status_of(&statuses, name);
        assert_eq!(
            (s.current, s.old.iter().map(|o| o.0).collect::<Vec<_>>()),
            (2, vec![1])
        );
    }
    // Before the re-seal, Ann's secret is still under key 1 and still works: her sign-ins
    // above used it. (Codes queued under key 1 were opened and sent by the delivery worker
    // across the rotation: Ben's sign-ins above; how many are still queued at this moment
    // depends on timing, so only the CLI test counts them.)
    let factor = status_of(&statuses, "factor.key");
    assert_eq!(factor.old, vec![(1, Some(1))], "{statuses:?}");
    assert!(matches!(
        status_of(&statuses, "outbox.key").old[..],
        [(1, Some(_))]
    ));
    assert_eq!(status_of(&statuses, "csrf.key").old, vec![(1, None)]);
    // New forms carry the new key's token, and the old form's still counts.
    let res = crate::pages::post(
        &app,
        &mut old_form,
        "/",
        &[
            ("csrf", &old_csrf),
            ("user_id", "cara.corp"),
            ("password", PASSWORD),
            ("account_type", "corporate"),
        ],
    )
    .await;
    assert_eq!(res.status(), 303, "a form from before the rotation");

    // The re-seal moves them while the loops run.
    let done = keys::reseal_all(store.as_ref(), &Sealers::of(&app.built), 100)
        .await
        .unwrap();
    assert!(done.moved >= 1, "{done:?}");
    assert_eq!(done.unopenable, 0);
    load.rounds(load.counts(), 3).await;
    let statuses = keys::status(&secrets, store.as_ref()).await.unwrap();
    for name in ["factor.key", "outbox.key"] {
        let s = status_of(&statuses, name);
        assert_eq!(s.rows_on_old(), 0, "{statuses:?}");
    }
    assert_eq!(status_of(&statuses, "factor.key").on_current, Some(1));
    // The webhook secret moved to the new outbox key and still opens to the same secret.
    let sealed: String =
        sqlx::query_scalar("SELECT secret FROM webhook_subscriptions WHERE id = $1")
            .bind(hook)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(sealed.starts_with("sealed:v2:2:"), "{sealed}");
    let opened = store.webhook_sealer().unwrap().open(&sealed).unwrap();
    assert_eq!(opened.as_slice(), hook_secret.as_bytes());

    load.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("a loop got a wrong answer");
    }
    let [totp, email, pages, registered] = load.counts();
    eprintln!(
        "{backend:?}: {totp} authenticator sign-ins, {email} emailed-code sign-ins, \
         {pages} page sign-ins, {registered} registrations across the rotation"
    );

    // The audit chain verifies across the rotation.
    let (code, out, err) = run(cli(&app, &["audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit log intact"), "{out}");
}
both!(
    each_key_rotates_under_sign_in_and_registration_load,
    rotation_under_load
);

/// The binary against the app's database and secrets folder.
pub(crate) fn cli(app: &TestApp, args: &[&str]) -> std::process::Command {
    let mut cmd = clean(app.dir.path());
    cmd.args(args)
        .env("PORTCULLIS_DATABASE_URL", &app.config.database_url)
        .env("PORTCULLIS_SECRETS_DIR", &app.config.secrets_dir);
    cmd
}

async fn cli_rotate_and_status(backend: Backend) {
    let mut app = spawn_app_with(backend, |_| {}).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let secret = enrol_totp(&app, "ann.example").await;
    // No delivery worker from here on: a code queued now stays queued, sealed under the
    // outbox key, across the rotation.
    let _ = app.outbox_messages();
    app.delivery.take().unwrap().abort();
    let queued = queue_code(&app).await;

    let (code, out, err) = run(cli(&app, &["keys", "status"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("factor.key") && l.contains("current 1 (1 rows); no old keys")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("csrf.key") && l.contains("nothing stored")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("outbox.key") && l.contains("current 1 (1 rows)")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("registry.key")
            && l.contains("current 1 (5 registry rows); no old keys")),
        "{out}"
    );

    // The registry key rotates (its rows move at the next import: keys_registry.rs);
    // unknown names are refused.
    let (code, out, err) = run(cli(&app, &["keys", "rotate", "registry.key"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("registry.key: key 2 is current; old keys kept for reading: 1"),
        "{out}"
    );
    let (_, out, _) = run(cli(&app, &["keys", "status"]));
    assert!(
        out.lines().any(|l| l.starts_with("registry.key")
            && l.contains("current 2 (0 registry rows); old: 1 (5 registry rows)")
            && l.contains("the next `portcullis registry import`")),
        "{out}"
    );
    let (code, _, err) = run(cli(&app, &["keys", "rotate", "nonsense.key"]));
    assert_eq!(code, 1);
    assert!(err.contains("no key is named"), "{err}");

    let (code, out, err) = run(cli(&app, &["keys", "rotate", "factor.key"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("factor.key: key 2 is current; old keys kept for reading: 1"),
        "{out}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(app.config.secrets_dir.join("factor.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only after the rotation");
    }
    let (code, out, err) = run(cli(&app, &["keys", "rotate", "outbox.key"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("outbox.key: key 2 is current"), "{out}");
    let (_, out, _) = run(cli(&app, &["keys", "status"]));
    for name in ["factor.key", "outbox.key"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(name) && l.contains("current 2 (0 rows); old: 1 (1 rows)")),
            "{out}"
        );
    }
    // The running app took the new key without a restart: Ann's secret, under key 1,
    // still signs her in, and a new authenticator (Ben's) is sealed under key 2.
    app.clock.advance(30);
    let (status, challenge) = sign_in(&app, "ann.example", PASSWORD, "personal").await;
    assert_eq!(status, 200);
    let (status, _) = totp_step(&app, &challenge, &secret).await;
    assert_eq!(status, 201);
    app.register(&BEN, "ben.sample", PASSWORD).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ben = app.token("ben.sample", PASSWORD, "personal").await;
        let (status, enrol) =
            bearer(&app, reqwest::Method::POST, "/api/v1/me/factors/totp", &ben).await;
        assert_eq!(status, 201, "{enrol}");
        let under_two = app
            .built
            .store
            .count_sealed(SealedColumn::FactorSecret, "sealed:v2:2:%")
            .await
            .unwrap();
        if under_two == 1 {
            break;
        }
        // The app looks at the file at most every half second.
        assert!(Instant::now() < deadline, "the new key was not picked up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // What is still under key 1: Ann's secret and the queued code at least (Ben's
    // registration queued its own messages, and no worker sends them here).
    let mut on_old = 0;
    for column in SealedColumn::ALL {
        for p in portcullis_crypto::Sealer::like_patterns(1) {
            on_old += app.built.store.count_sealed(column, &p).await.unwrap();
        }
    }
    assert!(on_old >= 2, "{on_old}");
    let (code, out, err) = run(cli(&app, &["keys", "reseal"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("moved {on_old} sealed values")),
        "{out}"
    );
    let (_, out, _) = run(cli(&app, &["keys", "status"]));
    for name in ["factor.key", "outbox.key"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(name) && l.contains("; old: 1 (0 rows)")),
            "{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("factor.key") && l.contains("current 2 (2 rows)")),
        "{out}"
    );
    // The queued code, moved to key 2, opens to what was written.
    let sealed: String = sqlx::query_scalar("SELECT body FROM outbox WHERE id = $1")
        .bind(queued)
        .fetch_one(app.built.store.pool())
        .await
        .unwrap();
    assert!(sealed.starts_with("sealed:v2:2:"), "{sealed}");
    let rows = app
        .built
        .store
        .claim("test", app.clock.now(), 60, 100)
        .await
        .unwrap();
    let row = rows
        .iter()
        .find(|r| r.id == queued)
        .expect("the queued code");
    assert_eq!(row.body, "Your security code is 246810.");

    app.clock.advance(30);
    let (_, challenge) = sign_in(&app, "ann.example", PASSWORD, "personal").await;
    let (status, _) = totp_step(&app, &challenge, &secret).await;
    assert_eq!(
        status, 201,
        "her secret, moved to key 2, still signs her in"
    );
    let (code, out, _) = run(cli(&app, &["audit", "verify"]));
    assert_eq!(code, 0, "{out}");
    let (code, out, err) = run(cli(&app, &["db", "check"]));
    assert!(out.contains("key ids       all known"), "{out}{err}");
    assert_eq!(code, 0, "{out}{err}");
    // A keyring that lost its old key (a folder from another backup): db check names it.
    std::fs::write(
        app.config.secrets_dir.join("factor.key"),
        "current 3\nkey 3 ".to_owned() + &"ab".repeat(32) + "\n",
    )
    .unwrap();
    let (code, out, _) = run(cli(&app, &["db", "check"]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("key ids       UNKNOWN"), "{out}");
}
both!(
    keys_rotate_status_and_reseal_from_the_command_line,
    cli_rotate_and_status
);

/// The re-seal job as `serve` runs it, on two nodes at once: the lease lets one of them
/// move the values, and no row is left on the old key.
async fn reseal_job(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    let secret = enrol_totp(&app, "ann.example").await;
    keys::rotate(&app.config, "factor.key").unwrap();
    let store = app.built.store.clone();
    let nodes = [
        keys::spawn_job(
            store.clone(),
            Sealers::of(&app.built),
            Duration::from_secs(1),
            // Small reads: the job walks the column in several batches.
            1,
        ),
        keys::spawn_job(
            store.clone(),
            Sealers::of(&app.built),
            Duration::from_secs(1),
            // Small reads: the job walks the column in several batches.
            1,
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let statuses = keys::status(&app.config.secrets_dir, store.as_ref())
            .await
            .unwrap();
        let factor = status_of(&statuses, "factor.key");
        if factor.rows_on_old() == 0 {
            assert_eq!(factor.on_current, Some(1));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the job moved nothing: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let holder: Option<String> =
        sqlx::query_scalar("SELECT holder FROM job_leases WHERE name = 'reseal'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(holder.is_some_and(|h| !h.is_empty()), "the lease was taken");
    for node in nodes {
        node.stop(store.as_ref()).await;
    }
    app.clock.advance(30);
    let (_, challenge) = sign_in(&app, "ann.example", PASSWORD, "personal").await;
    let (status, _) = totp_step(&app, &challenge, &secret).await;
    assert_eq!(status, 201);
}
both!(
    the_reseal_job_moves_sealed_values_under_its_lease,
    reseal_job
);

/// `keys status` lists the ID-token signing keys too (they seal nothing: no row counts).
async fn oidc_keys_in_status(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    for _ in 0..2 {
        let mut rotate = cli(&app, &["oidc", "keys", "rotate"]);
        rotate.env("PORTCULLIS_PUBLIC_URL", "https://login.bank.example");
        let (code, _, err) = run(rotate);
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, err) = run(cli(&app, &["keys", "status"]));
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("oidc-signing.key"))
        .unwrap_or_else(|| panic!("no oidc-signing.key line: {out}"));
    assert!(line.contains("(nothing stored)"), "{line}");
    assert!(
        line.contains("; old: "),
        "the previous key is listed: {line}"
    );
    assert!(line.contains("oidc keys rotate"), "{line}");
}
both!(keys_status_lists_the_oidc_signing_keys, oidc_keys_in_status);

/// The second step of a sign-in with the authenticator app's code for `secret` now.
async fn totp_step(app: &TestApp, challenge: &Value, secret: &str) -> (u16, Value) {
    second_step(
        app,
        challenge,
        "totp",
        &portcullis_testkit::totp_now(app, secret),
    )
    .await
}
