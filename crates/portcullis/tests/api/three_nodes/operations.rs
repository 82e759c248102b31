//! Three nodes, the service's own guarantees: maintenance mode set on one node is seen by
//! all, the outbox delivers each message exactly once with three workers, and the inactivity
//! job runs on one node per interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::clock::UnixTime;
use portcullis_core::contact::CodeChannel;
use portcullis_core::ports::{Message, OutboxStore, Outgoing};
use portcullis_core::support::SupportAuthority;
use portcullis_testkit::{TestApp, ANN, PASSWORD};

use super::{at_once, on_three_nodes, Nodes, ROUNDS};

const DAY: i64 = 86_400;

async fn register_page(app: &TestApp) -> u16 {
    app.client
        .get(app.url("/register"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `/register` on the three nodes at once.
async fn register_pages(nodes: &Arc<Nodes>) -> Vec<u16> {
    at_once(3, |i| {
        let nodes = nodes.clone();
        async move { register_page(nodes.node(i)).await }
    })
    .await
}

/// Maintenance switched on through one node and off through another: within
/// `maintenance::REFRESH_SECS` every node answers 503, then 200 again.
async fn maintenance() {
    let nodes = Nodes::start(|_| {}).await;
    let operator = SupportAuthority::operator("cli:three.nodes");
    let refresh = portcullis_web::maintenance::REFRESH_SECS;
    for round in 0..ROUNDS {
        // Every node has read the row ("off") and caches it.
        let open = register_pages(&nodes).await;
        assert_eq!(open, [200, 200, 200], "round {round}");
        let until = UnixTime(nodes.now() + 600);
        nodes
            .node(round)
            .built
            .app
            .maintenance_on(&operator, until, Some("Upgrading the database."))
            .await
            .unwrap();
        nodes.advance(refresh);
        let shut = register_pages(&nodes).await;
        assert_eq!(shut, [503, 503, 503], "round {round}: seen by all");
        nodes
            .node(round + 1)
            .built
            .app
            .maintenance_off(&operator)
            .await
            .unwrap();
        nodes.advance(refresh);
    }
    let open = register_pages(&nodes).await;
    assert_eq!(open, [200, 200, 200], "off for all");
}
on_three_nodes!(three_nodes_all_follow_maintenance_mode, maintenance);

/// 30 messages a round queued at once, three delivery workers (one a node, each writing
/// to its own outbox file): every message is in exactly one file, once.
async fn outbox_exactly_once() {
    const N: usize = 30;
    let nodes = Nodes::start_with_own_outboxes(|_| {}).await;
    let store = nodes.node(0).built.store.clone();
    let mut per_node = [0usize; 3];
    for round in 0..ROUNDS {
        let batch: Vec<Outgoing> = (0..N)
            .map(|i| {
                Outgoing::from(Message {
                    channel: CodeChannel::Email,
                    to: format!("person{i}@example.com"),
                    subject: format!("Round {round} message {i}"),
                    body: format!("Body of message {i}."),
                    sensitive: false,
                })
            })
            .collect();
        let now = portcullis_core::clock::Clock::now(&nodes.node(0).clock);
        store.enqueue(&batch, now).await.unwrap();
        let prefix = format!("Round {round} message ");
        let deadline = Instant::now() + Duration::from_secs(10);
        let (seen, by_node) = loop {
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut by_node = [0usize; 3];
            for (n, node) in nodes.all().iter().enumerate() {
                let text = std::fs::read_to_string(&node.outbox).unwrap_or_default();
                for line in text.lines() {
                    let m: serde_json::Value = serde_json::from_str(line).unwrap();
                    let subject = m["subject"].as_str().unwrap_or("");
                    if subject.starts_with(&prefix) {
                        *seen.entry(subject.to_owned()).or_default() += 1;
                        by_node[n] += 1;
                    }
                }
            }
            if seen.len() == N || Instant::now() > deadline {
                break (seen, by_node);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(seen.len(), N, "round {round}: every message delivered");
        // A duplicate would come just after the first copy: give it the time.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "round {round}: sent twice: {twice:?}");
        for (total, n) in per_node.iter_mut().zip(by_node) {
            *total += n;
        }
    }
    // Reread after the last pause: no late duplicates anywhere.
    let mut all: HashMap<String, usize> = HashMap::new();
    for node in nodes.all() {
        let text = std::fs::read_to_string(&node.outbox).unwrap_or_default();
        for line in text.lines() {
            let m: serde_json::Value = serde_json::from_str(line).unwrap();
            *all.entry(m["subject"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(all.len(), N * ROUNDS);
    assert!(all.values().all(|n| *n == 1), "each message once");
    eprintln!("messages delivered per node: {per_node:?}");
    assert!(
        per_node.iter().filter(|n| **n > 0).count() >= 2,
        "more than one worker took part: {per_node:?}"
    );
}
on_three_nodes!(
    three_nodes_deliver_each_message_exactly_once,
    outbox_exactly_once
);

/// The three schedulers fire at the same moment each interval: exactly one runs the job,
/// and Ann, inactive for 800 days, is warned once in all.
async fn inactivity_once() {
    let nodes = Nodes::start(|_| {}).await;
    nodes.node(0).register(&ANN, "ann.example", PASSWORD).await;
    nodes.set_time(nodes.now() + 800 * DAY);
    let mut warned = Vec::new();
    for round in 0..ROUNDS {
        let runs = at_once(3, |i| {
            let nodes = nodes.clone();
            async move {
                nodes
                    .node(i)
                    .built
                    .app
                    .run_scheduled_inactivity(&format!("node-{i}"), 3600)
                    .await
                    .unwrap()
            }
        })
        .await;
        let ran: Vec<_> = runs.into_iter().flatten().collect();
        assert_eq!(ran.len(), 1, "round {round}: exactly one node ran the job");
        warned.extend(ran[0].warned.clone());
        // Within the interval no node runs it again.
        for (i, node) in nodes.all().iter().enumerate() {
            assert!(
                node.built
                    .app
                    .run_scheduled_inactivity(&format!("node-{i}"), 3600)
                    .await
                    .unwrap()
                    .is_none(),
                "round {round}: node {i} ran within the interval"
            );
        }
        nodes.advance(3600);
    }
    assert_eq!(warned, ["ann.example"], "warned once in all");
    let warnings = nodes
        .node(0)
        .outbox_messages()
        .into_iter()
        .filter(|m| m["subject"].as_str().unwrap().contains("inactive"))
        .count();
    assert_eq!(warnings, 1, "one warning, whichever node sent it");
}
on_three_nodes!(three_nodes_run_the_inactivity_job_once, inactivity_once);
