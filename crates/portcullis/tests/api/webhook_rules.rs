//! Webhook endpoints and SSRF (docs/design/webhooks.md): with `webhooks.allow_loopback` off
//! (the default), a loopback endpoint is refused when added, and one that got into the
//! database anyway (added under other rules) is never posted to: the URL is checked again
//! before each send (and a host name is resolved to public addresses only).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::clock::Clock;
use portcullis_core::webhooks::EventFilter;
use portcullis_testkit::{both, Backend, ANN, PASSWORD};
use serde_json::Value;

use crate::not_me::app_with_addresses;
use crate::support::cli;

const SECRET: &str = "whsec_cm90YXRpb24tdGVzdC1zaWduaW5nLXNlY3JldA==";

async fn loopback_is_never_reached(backend: Backend) {
    let app = app_with_addresses(backend, |c| {
        c.webhooks.poll_secs = 0.05;
        c.webhooks.timeout_secs = 2.0;
        c.webhooks.lease_secs = 10;
        c.webhooks.backoff_base_secs = 1;
        c.webhooks.backoff_max_secs = 4;
        c.webhooks.allow_http = true;
        c.webhooks.allow_loopback = false;
    })
    .await;
    // A listener on the loopback that counts every connection made to it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    for url in [
        format!("http://127.0.0.1:{port}/in"),
        format!("http://localhost:{port}/in"),
        format!("http://[::1]:{port}/in"),
        format!("http://2130706433:{port}/in"),
        format!("http://127.1:{port}/in"),
        format!("http://[::ffff:127.0.0.1]:{port}/in"),
        "http://169.254.169.254/latest".to_owned(),
        "http://user@hooks.example.com/in".to_owned(),
    ] {
        let run = cli(&app, &["webhooks", "add", "--url", &url, "--events", "all"]).await;
        assert_eq!(run.code, 1, "{url} was accepted: {}", run.stdout);
    }
    let run = cli(&app, &["webhooks", "list"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.trim().is_empty(),
        "nothing stored: {}",
        run.stdout
    );

    // Rows that got past the check (written straight to the store).
    let filter = EventFilter::parse("account.created").unwrap();
    let mut ids = Vec::new();
    for url in [
        format!("http://127.0.0.1:{port}/literal"),
        format!("http://localhost:{port}/name"),
    ] {
        let id = crate::support::subscribe_in_store(
            &app.built.store,
            &url,
            &filter,
            SECRET,
            app.clock.now(),
        )
        .await;
        ids.push(id);
    }
    app.register(&ANN, "ann.example", PASSWORD).await;
    for _ in 0..12 {
        app.clock.advance(5);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing reached the loopback"
    );
    let listed = crate::webhooks::listed(&app).await;
    // Both are refused at send (the name `localhost` is loopback by name; a name that
    // merely resolves to loopback is left with no address by the sender's resolver, which
    // the notify crate's `names_resolve_to_public_addresses_only` shows): given up, with
    // the reason.
    for id in ids {
        let row = listed.iter().find(|s| s["id"] == id).unwrap();
        assert_eq!(
            (&row["sent"], &row["failed"]),
            (&Value::from(0), &Value::from(1)),
            "{row}"
        );
        assert!(
            row["last_error"].as_str().unwrap().contains("not allowed"),
            "{row}"
        );
    }
}
both!(
    webhooks_never_reach_loopback_unless_allowed,
    loopback_is_never_reached
);
