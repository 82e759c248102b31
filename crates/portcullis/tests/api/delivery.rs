//! Durable delivery: a real SMTP server on loopback (aiosmtpd from `.venv`, see
//! `scripts/test-deps`) and a local HTTP server standing in for the SMS gateway, on both
//! databases. Every message arrives once; an SMTP outage only delays; a SIGKILL of the real
//! binary mid-delivery loses nothing and sends nothing twice; two nodes share one database;
//! the SMS cost controls refuse or fall back to email.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use portcullis::config::Config;
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{Message, OutboxStore, Outgoing};
use portcullis_notify::{
    DeliveryConfig, DeliveryWorker, SmsBlock, SmtpMailer, SmtpMode, SmtpServer, SmtpSettings,
    Transport, Transports,
};
use portcullis_store::{SqlStore, StoreOptions};
use portcullis_testkit::smtp::{ReceivedMail, SmtpSink};
use portcullis_testkit::{
    both, spawn_app_with, Backend, RealServer, TestApp, TestDb, ANN, BEN, PASSWORD,
};
use sqlx::Row;

const FROM: &str = "Portcullis Bank <no-reply@bank.example>";

fn use_smtp(c: &mut Config, sink: &SmtpSink) {
    c.notify.outbox_file = None;
    c.notify.smtp_host = Some("127.0.0.1".into());
    c.notify.smtp_port = Some(sink.port);
    c.notify.smtp_mode = "plain".into();
    c.notify.from = FROM.into();
}

fn email(i: usize) -> Outgoing {
    Outgoing::from(Message {
        channel: CodeChannel::Email,
        to: format!("person{i}@example.com"),
        subject: format!("Message {i}"),
        body: format!("Body of message {i}."),
        sensitive: false,
    })
}

fn sms(to: &str, fallback: Option<&str>) -> Outgoing {
    Outgoing {
        message: Message {
            channel: CodeChannel::Sms,
            to: to.into(),
            subject: "Your code".into(),
            body: "Your Portcullis Bank code is 123456.".into(),
            sensitive: true,
        },
        fallback_email: fallback.map(str::to_owned),
        fallback_phone: None,
    }
}

/// An outbox row as the tests look at it.
#[derive(Debug, Clone)]
struct Stored {
    id: i64,
    state: String,
    attempts: i64,
    channel: String,
    recipient: String,
    last_error: Option<String>,
}

async fn outbox_rows(pool: &portcullis_store::Db) -> Vec<Stored> {
    sqlx::query(
        "SELECT id, state, attempts, channel, recipient, last_error FROM outbox ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| Stored {
        id: r.get("id"),
        state: r.get("state"),
        attempts: r.get("attempts"),
        channel: r.get("channel"),
        recipient: r.get("recipient"),
        last_error: r.get("last_error"),
    })
    .collect()
}

/// Polls the outbox table until `done` holds (or panics after `secs`).
async fn wait_rows(
    pool: &portcullis_store::Db,
    secs: u64,
    what: &str,
    done: impl Fn(&[Stored]) -> bool,
) -> Vec<Stored> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let rows = outbox_rows(pool).await;
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The worker's counters once every message it handled has been recorded: `settled`
/// messages sent or given up on (the counters move just after the row does).
async fn settled_stats(app: &TestApp, settled: u64) -> portcullis_notify::StatsSnapshot {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = app.built.delivery.stats().snapshot();
        if s.settled() >= settled || Instant::now() >= deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every Message-ID exactly once.
fn assert_each_once(mails: &[ReceivedMail], expected: usize) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for m in mails {
        *seen
            .entry(m.message_id.as_deref().expect("a Message-ID"))
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(mails.len(), expected, "{:#?}", seen.keys());
}

async fn every_message_arrives_once(backend: Backend) {
    let Some(sink) = SmtpSink::start(0).await else {
        return;
    };
    let app = spawn_app_with(backend, |c| use_smtp(c, &sink)).await;
    app.register(&ANN, "ann.example", PASSWORD).await;
    app.register(&BEN, "ben.example", PASSWORD).await;
    let batch: Vec<Outgoing> = (0..20).map(email).collect();
    app.built
        .store
        .enqueue(&batch, app.clock.now())
        .await
        .unwrap();
    app.built.delivery.wake();
    sink.wait_for(22, Duration::from_secs(30)).await;
    // Nothing more trickles in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = sink.messages();
    assert_each_once(&mails, 22);
    let ann = mails
        .iter()
        .find(|m| m.to == ["ann@example.com"])
        .expect("Ann's registration email");
    assert!(ann.raw.contains("multipart/alternative"), "{}", ann.raw);
    assert!(ann.raw.contains("text/plain") && ann.raw.contains("text/html"));
    assert!(
        ann.raw
            .contains("From: \"Portcullis Bank\" <no-reply@bank.example>")
            || ann
                .raw
                .contains("From: Portcullis Bank <no-reply@bank.example>"),
        "{}",
        ann.raw
    );
    assert_eq!(
        ann.subject.as_deref(),
        Some("Your Portcullis Bank online account is ready")
    );
    let rows = wait_rows(app.built.store.pool(), 15, "every row sent", |r| {
        r.iter().all(|r| r.state == "sent")
    })
    .await;
    assert_eq!(rows.len(), 22);
    assert!(
        rows.iter().all(|r| r.state == "sent" && r.attempts == 1),
        "{rows:#?}"
    );
    let stats = settled_stats(&app, 22).await;
    assert_eq!(stats.sent(CodeChannel::Email), 22);
    assert_eq!(stats.failed, 0);
}
both!(smtp_every_message_arrives_once, every_message_arrives_once);

async fn outage(backend: Backend) {
    let Some(mut sink) = SmtpSink::start(0).await else {
        return;
    };
    sink.stop();
    let app = spawn_app_with(backend, |c| use_smtp(c, &sink)).await;
    let pool = app.built.store.pool().clone();
    app.register(&ANN, "ann.example", PASSWORD).await;
    // The first attempt fails; the message waits.
    let rows = wait_rows(&pool, 15, "a failed first attempt", |r| {
        r.len() == 1 && r[0].attempts == 1 && r[0].last_error.is_some()
    })
    .await;
    assert_eq!(rows[0].state, "pending");
    assert!(
        rows[0].last_error.as_deref().unwrap().contains("SMTP"),
        "{rows:?}"
    );
    // Retried after the backoff (5-6 s on the app's clock), still waiting.
    app.clock.advance(7);
    app.built.delivery.wake();
    let rows = wait_rows(&pool, 15, "a retry", |r| r[0].attempts >= 2).await;
    assert_eq!(rows[0].state, "pending");
    assert!(sink.messages().is_empty());
    // (The claim counts the attempt; wait for its outcome too.)
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.built.delivery.stats().snapshot().retried < 2 {
        assert!(
            Instant::now() < deadline,
            "the second attempt was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The server comes back; the next attempt delivers, once.
    sink.resume().await;
    app.clock.advance(3600);
    app.built.delivery.wake();
    let rows = wait_rows(&pool, 15, "delivery after the outage", |r| {
        r[0].state == "sent"
    })
    .await;
    assert!(rows[0].attempts >= 3, "{rows:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = sink.messages();
    assert_each_once(&mails, 1);
    assert_eq!(mails[0].to, ["ann@example.com"]);
}
both!(smtp_outage_messages_wait_and_arrive_when_it_is_back, outage);

async fn sigkill(backend: Backend) {
    // Each message takes at least 150 ms (the server is slow to accept recipients), so the
    // kill lands while a message is in flight.
    let Some(sink) = SmtpSink::start(150).await else {
        return;
    };
    let db = TestDb::new(backend).await;
    const N: usize = 24;
    let store = SqlStore::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    let batch: Vec<Outgoing> = (0..N).map(email).collect();
    store.enqueue(&batch, SystemClock.now()).await.unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let env = [
        ("PORTCULLIS_DATABASE_URL", db.url.clone()),
        (
            "PORTCULLIS_SECRETS_DIR",
            secrets.path().display().to_string(),
        ),
        ("PORTCULLIS_NOTIFY_SMTP_HOST", "127.0.0.1".to_owned()),
        ("PORTCULLIS_NOTIFY_SMTP_PORT", sink.port.to_string()),
        ("PORTCULLIS_NOTIFY_SMTP_MODE", "plain".to_owned()),
        ("PORTCULLIS_NOTIFY_FROM", FROM.to_owned()),
        ("PORTCULLIS_NOTIFY_LEASE_SECS", "6".to_owned()),
        ("PORTCULLIS_NOTIFY_POLL_SECS", "0.2".to_owned()),
    ];
    let bin = env!("CARGO_BIN_EXE_portcullis");
    let mut server = RealServer::start_plain(bin, &env);
    // Kill it right after it recorded a few messages as sent: the next one is then in its
    // slow SMTP exchange.
    wait_rows(store.pool(), 60, "a few messages sent", |r| {
        r.iter().filter(|r| r.state == "sent").count() >= 6
    })
    .await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let rows = outbox_rows(store.pool()).await;
    let sent = rows.iter().filter(|r| r.state == "sent").count();
    let arrived = sink.messages().len();
    eprintln!("killed with {sent} recorded sent, {arrived} arrived, of {N}");
    assert!(sent < N, "the kill came after the last message");
    assert_eq!(arrived, sent, "what arrived is what was recorded");
    // Some rows are still leased to the dead node; restarted, the service waits out those
    // leases and sends the rest.
    let mut server = RealServer::start_plain(bin, &env);
    wait_rows(
        store.pool(),
        90,
        "every message sent after the restart",
        |r| r.iter().all(|r| r.state == "sent"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop();
    assert_each_once(&sink.messages(), N);
}
both!(
    sigkill_mid_delivery_loses_nothing_and_sends_nothing_twice,
    sigkill
);

async fn two_nodes(backend: Backend) {
    let Some(sink) = SmtpSink::start(20).await else {
        return;
    };
    let db = TestDb::new(backend).await;
    const N: usize = 40;
    let mut workers = Vec::new();
    for _ in 0..2 {
        // Each node has its own connection pool, as separate processes would.
        let store = Arc::new(
            SqlStore::connect(&db.url, StoreOptions::default())
                .await
                .unwrap(),
        );
        let mailer = SmtpMailer::new(SmtpSettings {
            server: SmtpServer::Host {
                host: "127.0.0.1".into(),
                port: Some(sink.port),
                mode: SmtpMode::Plain,
            },
            username: None,
            password: None,
            from: FROM.into(),
            issuer_name: "Portcullis Bank".into(),
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        workers.push(DeliveryWorker::new(
            store as Arc<dyn OutboxStore>,
            Arc::new(SystemClock),
            Transports {
                email: Some(Arc::new(mailer) as Arc<dyn Transport>),
                sms: None,
            },
            DeliveryConfig {
                poll_interval: Duration::from_millis(50),
                lease_secs: 30,
                batch_size: 3,
                send_timeout: Duration::from_secs(5),
                ..DeliveryConfig::default()
            },
        ));
    }
    let store = SqlStore::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    let batch: Vec<Outgoing> = (0..N).map(email).collect();
    store.enqueue(&batch, SystemClock.now()).await.unwrap();
    let handles: Vec<_> = workers.iter().map(DeliveryWorker::spawn).collect();
    sink.wait_for(N, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for h in handles {
        h.stop().await;
    }
    assert_each_once(&sink.messages(), N);
    let by_node: Vec<u64> = workers
        .iter()
        .map(|w| w.stats().snapshot().sent(CodeChannel::Email))
        .collect();
    eprintln!("messages sent per node: {by_node:?}");
    assert_eq!(by_node.iter().sum::<u64>(), N as u64);
    assert!(
        by_node.iter().all(|n| *n > 0),
        "both nodes worked: {by_node:?}"
    );
    let rows = outbox_rows(store.pool()).await;
    assert!(rows.iter().all(|r| r.state == "sent"));
}
both!(two_nodes_deliver_each_message_exactly_once, two_nodes);

/// A stand-in SMS gateway: records each request; answers 400 for a number ending in 0400,
/// 503 for one ending in 0503, 201 otherwise.
struct Gateway {
    url: String,
    seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn gateway() -> Gateway {
    let seen: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let record = seen.clone();
    let router = axum::Router::new().route(
        "/send",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let record = record.clone();
            async move {
                let status = if body.contains("0400") {
                    StatusCode::BAD_REQUEST
                } else if body.contains("0503") {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::CREATED
                };
                record.lock().unwrap().push((headers, body));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Gateway { url, seen, task }
}

fn gateway_requests(g: &Gateway) -> Vec<(HeaderMap, String)> {
    g.seen.lock().unwrap().clone()
}

async fn sms_app(
    backend: Backend,
    sink: &SmtpSink,
    gw: &Gateway,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let auth = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(auth.path(), "X-Api-Key: k-123\n").unwrap();
    spawn_app_with(backend, |c| {
        use_smtp(c, sink);
        c.notify.sms_url = Some(gw.url.clone());
        c.notify.sms_auth_header_file = Some(auth.path().to_path_buf());
        c.notify.sms_from = "+15550009999".into();
        c.notify.sms_json_template =
            r#"{"message":{"to":"{to}","text":"{body}","sender":"{from}"}}"#.into();
        tweak(c);
    })
    .await
}

async fn quota_fallback(backend: Backend) {
    let Some(sink) = SmtpSink::start(0).await else {
        return;
    };
    let gw = gateway().await;
    let app = sms_app(backend, &sink, &gw, |c| {
        c.notify.sms_per_number_per_day = 2;
        c.notify.sms_allowed_prefixes = vec!["+1".into(), "+44".into()];
    })
    .await;
    let pool = app.built.store.pool().clone();
    let texts = vec![sms("+15555550100", Some("ann@example.com")); 3];
    for t in texts {
        // One at a time, so the order of the quota claims is known.
        app.built
            .store
            .enqueue(&[t], app.clock.now())
            .await
            .unwrap();
        app.built.delivery.wake();
        wait_rows(&pool, 15, "the text settled", |r| {
            r.iter().all(|r| r.state != "pending")
        })
        .await;
    }
    let requests = gateway_requests(&gw);
    assert_eq!(requests.len(), 2, "{requests:?}");
    let (headers, body) = &requests[0];
    assert_eq!(headers["x-api-key"], "k-123");
    assert_eq!(headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["message"]["to"], "+15555550100");
    assert_eq!(
        json["message"]["text"],
        "Your Portcullis Bank code is 123456."
    );
    assert_eq!(json["message"]["sender"], "+15550009999");
    // The third went by email instead.
    let mails = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["ann@example.com"]);
    let rows = outbox_rows(&pool).await;
    assert_eq!(rows[2].channel, "email");
    assert_eq!(rows[2].recipient, "ann@example.com");
    assert!(
        rows[2]
            .last_error
            .as_deref()
            .unwrap()
            .contains("quota for this number"),
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r.state == "sent"));
    let stats = settled_stats(&app, 3).await;
    assert_eq!(stats.sent(CodeChannel::Sms), 2);
    assert_eq!(stats.sent(CodeChannel::Email), 1);
    assert_eq!(stats.blocked(SmsBlock::NumberQuota), 1);
    assert_eq!(stats.sms_fallbacks, 1);
    // A sent code is not kept.
    let bodies: Vec<String> = sqlx::query("SELECT body FROM outbox")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("body"))
        .collect();
    assert!(bodies.iter().all(String::is_empty), "{bodies:?}");
}
both!(sms_quotas_fall_back_to_email, quota_fallback);

async fn prefixes_and_answers(backend: Backend) {
    let Some(sink) = SmtpSink::start(0).await else {
        return;
    };
    let gw = gateway().await;
    let app = sms_app(backend, &sink, &gw, |c| {
        c.notify.sms_allowed_prefixes = vec!["+1".into()];
        c.notify.sms_format = "twilio".into();
    })
    .await;
    let pool = app.built.store.pool().clone();
    let ids = app
        .built
        .store
        .enqueue(
            &[
                sms("+447700900123", None),
                sms("+447700900124", Some("ben@example.com")),
                sms("+15555550101", None),
                sms("+15555550400", None),
                sms("+15555550503", None),
            ],
            app.clock.now(),
        )
        .await
        .unwrap();
    app.built.delivery.wake();
    let rows = wait_rows(&pool, 15, "every text tried", |r| {
        r.iter()
            .all(|r| r.state != "pending" || (r.attempts >= 1 && r.last_error.is_some()))
    })
    .await;
    let by_id = |id: i64| rows.iter().find(|r| r.id == id).unwrap().clone();
    // Not an allowed prefix, no fallback: refused, and the gateway never saw it.
    let refused = by_id(ids[0]);
    assert_eq!(refused.state, "failed");
    assert!(refused
        .last_error
        .unwrap()
        .contains("prefix is not allowed"));
    // With a fallback: by email.
    assert_eq!(by_id(ids[1]).state, "sent");
    assert_eq!(by_id(ids[1]).channel, "email");
    // Allowed: sent as a Twilio-style form.
    assert_eq!(by_id(ids[2]).state, "sent");
    // A 4xx answer fails the message; a 5xx one is retried later.
    assert_eq!(by_id(ids[3]).state, "failed");
    assert!(by_id(ids[3]).last_error.unwrap().contains("400"));
    let busy = by_id(ids[4]);
    assert_eq!(busy.state, "pending");
    assert!(busy.last_error.unwrap().contains("503"));
    let requests = gateway_requests(&gw);
    assert!(
        requests.iter().all(|(_, b)| !b.contains("447700900")),
        "{requests:?}"
    );
    let (headers, form) = requests.iter().find(|(_, b)| b.contains("0101")).unwrap();
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    let pairs: HashMap<String, String> = form
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                let mut out = Vec::new();
                let b = s.as_bytes();
                let mut i = 0;
                while i < b.len() {
                    if b[i] == b'%' {
                        out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        out.push(b[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            };
            (decode(k), decode(v))
        })
        .collect();
    assert_eq!(pairs["To"], "+15555550101");
    assert_eq!(pairs["From"], "+15550009999");
    assert_eq!(pairs["Body"], "Your Portcullis Bank code is 123456.");
    let stats = settled_stats(&app, 4).await;
    assert_eq!(stats.blocked(SmsBlock::PrefixNotAllowed), 2);
    assert_eq!(stats.sms_fallbacks, 1);
    assert_eq!(sink.wait_for(1, Duration::from_secs(5)).await.len(), 1);
}
both!(
    a_disallowed_prefix_is_refused_and_gateway_answers_are_honoured,
    prefixes_and_answers
);
