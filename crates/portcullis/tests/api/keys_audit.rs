//! The audit chain's own key and retiring keys (docs/design/keys.md, "The audit chain key",
//! "Retiring a key"): `audit.key` is rotated while sign-ins and registrations run, each
//! entry names its key id and `audit verify` checks it under that key across the boundary,
//! an edit after the rotation is still found, and `keys retire` refuses while anything
//! needs a key and removes it once nothing does.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::keys_retire::retire_refusal;
use portcullis_core::clock::{Clock, UnixTime};
use portcullis_core::ports::AuditReads;
use portcullis_testkit::{both, spawn_app_with, Backend, TestApp, ANN, BEN, CARA, PASSWORD};

use crate::keys::cli;
use crate::operations::run;

/// Ann signs in over and over: each sign-in appends to the chain.
async fn sign_in_loop(app: Arc<TestApp>, stop: Arc<AtomicBool>, done: Arc<AtomicUsize>) {
    while !stop.load(Ordering::SeqCst) {
        app.token("ann.example", PASSWORD, "personal").await;
        done.fetch_add(1, Ordering::SeqCst);
    }
}

async fn more_rounds(done: &AtomicUsize, more: usize) {
    let from = done.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::SeqCst) < from + more {
        assert!(Instant::now() < deadline, "the sign-in loops stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Changes entry `seq` in the database (`set`: an SQL assignment), as someone with write
/// access could (the append-only triggers dropped first).
async fn edit(app: &TestApp, set: &str, seq: i64) {
    sqlx::query(&format!("UPDATE audit_log SET {set} WHERE seq = $1"))
        .bind(seq)
        .execute(app.built.store.pool())
        .await
        .unwrap();
}

async fn audit_key_rotation(backend: Backend) {
    let app = Arc::new(spawn_app_with(backend, |_| {}).await);
    let store = app.built.store.clone();
    // Created on the first start with the key the chain was under before it had its own.
    let secrets = &app.config.secrets_dir;
    let audit = portcullis_crypto::keyring::load_ring(secrets, "audit.key")
        .unwrap()
        .expect("audit.key made at start");
    let registry = portcullis_crypto::keyring::load_ring(secrets, "registry.key")
        .unwrap()
        .unwrap();
    assert_eq!(
        audit.current().as_ref(),
        portcullis_core::audit::derived_key(&portcullis_crypto::KeyedHasher::new(
            registry.first().clone()
        ))
        .as_ref()
    );
    app.register(&ANN, "ann.example", PASSWORD).await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..2)
        .map(|_| tokio::spawn(sign_in_loop(app.clone(), stop.clone(), done.clone())))
        .collect();
    more_rounds(&done, 4).await;
    let (code, out, err) = run(cli(&app, &["keys", "rotate", "audit.key"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("audit.key: key 2 is current; old keys kept for reading: 1"),
        "{out}"
    );
    let ring = app.built.app.audit_keys().ring().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ring.snapshot().current_id() != 2 {
        assert!(Instant::now() < deadline, "the new key was not picked up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Registrations and sign-ins go on under the new key.
    app.register(&BEN, "ben.sample", PASSWORD).await;
    more_rounds(&done, 4).await;
    app.register(&CARA, "cara.corp", PASSWORD).await;
    stop.store(true, Ordering::SeqCst);
    for l in loops {
        l.await.expect("a sign-in failed across the rotation");
    }
    let counts = store.count_audit_by_key().await.unwrap();
    assert!(
        matches!(counts[..], [(1, a), (2, b)] if a > 0 && b > 0),
        "entries under both keys: {counts:?}"
    );

    let (code, out, err) = run(cli(&app, &["audit", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit log intact"), "{out}");
    let (code, out, err) = run(cli(&app, &["db", "check"]));
    assert_eq!(code, 0, "{out}{err}");
    let per_key = format!("key 1: {}, key 2: {}", counts[0].1, counts[1].1);
    assert!(
        out.contains("audit chain   intact") && out.contains(&per_key),
        "{out}"
    );
    let (_, out, _) = run(cli(&app, &["keys", "status"]));
    assert!(
        out.lines().any(|l| l.starts_with("audit.key")
            && l.contains(&format!(
                "current 2 ({} audit entries); old: 1 ({} audit entries)",
                counts[1].1, counts[0].1
            ))),
        "{out}"
    );
    // Key 1 verifies the entries under it: it stays.
    let (code, _, err) = run(cli(&app, &["keys", "retire", "audit.key", "1"]));
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{} audit entries are still under it", counts[0].1)),
        "{err}"
    );

    // An entry written after the rotation, edited: found, under its own key.
    let (seq, detail): (i64, String) = sqlx::query_as(
        "SELECT seq, detail FROM audit_log WHERE key_id = 2 AND kind = 'signin.succeeded' \
         ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    crate::support::drop_audit_triggers(&app, backend).await;
    edit(&app, "detail = 'nothing to see here'", seq).await;
    let (code, out, _) = run(cli(&app, &["audit", "verify"]));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("TAMPERED") && out.contains(&format!("entry {seq}:")),
        "{out}"
    );
    edit(
        &app,
        &format!("detail = '{}'", detail.replace('\'', "''")),
        seq,
    )
    .await;
    let (code, out, _) = run(cli(&app, &["audit", "verify"]));
    assert_eq!(code, 0, "the edit undone: {out}");
    // Claiming an entry is under the other key does not make it verify.
    edit(&app, "key_id = 1", seq).await;
    let (code, out, _) = run(cli(&app, &["audit", "verify"]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("entry {seq}:")), "{out}");
    // Nor under a key the ring does not hold; db check names it.
    edit(&app, "key_id = 9", seq).await;
    let (code, out, _) = run(cli(&app, &["db", "check"]));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("audit chain   BROKEN") && out.contains("key ids       UNKNOWN"),
        "{out}"
    );
    assert!(out.contains("1 audit entries are under a key id"), "{out}");
    edit(&app, "key_id = 2", seq).await;
    let (code, out, _) = run(cli(&app, &["audit", "verify"]));
    assert_eq!(code, 0, "the key id undone: {out}");

    // Someone holding the old key 1 (leaked) and write access appends an entry under it,
    // correctly chained and hashed, with the head moved to match, once the chain has been
    // under key 2 for longer than a rotation may take to reach every node: found.
    let tail = store.audit_entries(seq - 1, 100_000).await.unwrap();
    let last = tail.last().unwrap().clone();
    let first_under_2 = store
        .audit_entries(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.key_id == 2)
        .unwrap();
    let at = UnixTime(
        last.at
            .0
            .max(first_under_2.at.0 + portcullis_core::audit::KEY_LAG_SECS)
            + 1,
    );
    let old = portcullis_core::audit::ChainKeys::of_ring(
        &portcullis_crypto::keyring::load_ring(secrets, "audit.key")
            .unwrap()
            .unwrap(),
    );
    let forged_seq = last.seq + 1;
    let forged = portcullis_core::audit::chain_hash(
        old.get(1).unwrap(),
        &portcullis_core::audit::ChainInput {
            prev: &last.hash,
            seq: forged_seq,
            at,
            kind: "account.unlocked",
            account_id: Some(1),
            actor: "support:someone",
            client_ip: None,
            detail: "unlocked",
        },
    );
    sqlx::query(
        "INSERT INTO audit_log (seq, at, kind, account_id, actor, client_ip, detail, \
         prev_hash, hash, key_id) VALUES ($1, $2, 'account.unlocked', 1, 'support:someone', \
         NULL, 'unlocked', $3, $4, 1)",
    )
    .bind(forged_seq)
    .bind(at.0)
    .bind(last.hash.clone())
    .bind(forged.to_vec())
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(forged_seq)
        .bind(forged.to_vec())
        .execute(store.pool())
        .await
        .unwrap();
    let (code, out, _) = run(cli(&app, &["audit", "verify"]));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "entry {forged_seq}: it is under audit key 1, after the chain had moved to key 2"
        )),
        "{out}"
    );
}
both!(
    the_audit_key_rotates_under_load_and_edits_after_it_are_found,
    audit_key_rotation
);

async fn retire(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    crate::keys::enrol_totp(&app, "ann.example").await;
    let secrets = app.config.secrets_dir.clone();
    let ids = |name: &str| {
        portcullis_crypto::keyring::load_ring(&secrets, name)
            .unwrap()
            .unwrap()
            .ids()
    };

    // The current key is never retired, and an id the ring does not hold is named.
    let (code, _, err) = run(cli(&app, &["keys", "retire", "factor.key", "1"]));
    assert_eq!(code, 1);
    assert!(err.contains("key 1 is factor.key's current key"), "{err}");
    let (code, _, err) = run(cli(&app, &["keys", "retire", "factor.key", "5"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("factor.key has no key 5 (it holds 1)"),
        "{err}"
    );

    // An old key under which a secret is still sealed stays; after the re-seal it goes.
    let (code, _, err) = run(cli(&app, &["keys", "rotate", "factor.key"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(cli(&app, &["keys", "retire", "factor.key", "1"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("1 sealed values are still under it: `portcullis keys reseal`"),
        "{err}"
    );
    assert_eq!(ids("factor.key"), vec![1, 2], "nothing removed");
    let (code, out, err) = run(cli(&app, &["keys", "reseal"]));
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(cli(&app, &["keys", "retire", "factor.key", "1"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("factor.key: key 1 removed; it holds 2 (current 2)"),
        "{out}"
    );
    assert_eq!(ids("factor.key"), vec![2]);
    // The running app follows the file: Ann's secret (under key 2 now) still opens.
    let (code, out, err) = run(cli(&app, &["db", "check"]));
    assert_eq!(code, 0, "{out}{err}");

    // The registry key's first key stays (codes, buckets and hints are under it).
    let (code, _, err) = run(cli(&app, &["keys", "rotate", "registry.key"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(cli(&app, &["keys", "retire", "registry.key", "1"]));
    assert_eq!(code, 1);
    assert!(err.contains("registry rows are still under it"), "{err}");

    // A CSRF key: nothing stored, but forms shown before the rotation carry its tokens
    // for up to a session's life.
    let (code, _, err) = run(cli(&app, &["keys", "rotate", "csrf.key"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(cli(&app, &["keys", "retire", "csrf.key", "1"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("forms shown before csrf.key's last rotation"),
        "{err}"
    );
    // (The app's fake clock started at the real time; the file's time is real.)
    let later = UnixTime(app.clock.now().0 + app.config.policies().session.absolute_secs + 60);
    let why = retire_refusal(&app.config, app.built.store.as_ref(), "csrf.key", 1, later)
        .await
        .unwrap();
    assert_eq!(why, None, "a session's life after the rotation");
    assert_eq!(ids("csrf.key"), vec![1, 2]);
}
both!(
    keys_retire_refuses_while_a_key_is_needed_then_removes_it,
    retire
);

/// `outbox.key` seals two columns (queued messages and webhook signing secrets): status,
/// retire and `db check` count both.
async fn retire_outbox_key(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (code, out, err) = run(cli(
        &app,
        &[
            "webhooks",
            "add",
            "--url",
            "https://hooks.example.com/in",
            "--events",
            "all",
        ],
    ));
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(cli(&app, &["keys", "rotate", "outbox.key"]));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(cli(&app, &["keys", "status"]));
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("outbox.key"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("old: 1 (1 rows)"),
        "the webhook secret is counted: {out}"
    );
    let (code, _, err) = run(cli(&app, &["keys", "retire", "outbox.key", "1"]));
    assert_eq!(code, 1, "a webhook secret is still under key 1: {err}");
    assert!(
        err.contains("1 sealed values are still under it: `portcullis keys reseal`"),
        "{err}"
    );
    let (code, out, err) = run(cli(&app, &["keys", "reseal"]));
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(cli(&app, &["keys", "retire", "outbox.key", "1"]));
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(cli(&app, &["db", "check"]));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.matches("outbox.key 2 (current 2)").count(),
        1,
        "outbox.key's ids are listed once: {out}"
    );
}
both!(retire_counts_every_column_of_a_key, retire_outbox_key);
