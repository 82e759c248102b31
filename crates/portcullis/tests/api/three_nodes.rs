//! Issue 16: every guarantee across nodes. Three nodes — three apps, each with its own
//! connection pool, clock, hashing workers and delivery worker, as three processes would
//! have — share one PostgreSQL database. Each scenario fires its requests at the three at
//! the same moment (a barrier) and repeats [`ROUNDS`] times inside the test, asserting the
//! one legal outcome every round.
//!
//! PostgreSQL only: several nodes on one database is a PostgreSQL deployment (SQLite is one
//! file on one host). Without `PORTCULLIS_TEST_POSTGRES` at build time these tests are
//! compiled `#[ignore]`d with the reason, so they are reported as skipped, never as passed.
//! `.config/nextest.toml` runs them without retries: a race lost once is a failure.

mod accounts;
mod oidc;
mod operations;

use std::future::Future;
use std::sync::Arc;

use portcullis::config::Config;
use portcullis_core::audit::AuditEntry;
use portcullis_core::clock::Clock;
use portcullis_core::ports::AuditReads;
use portcullis_testkit::{spawn_app_on, spawn_app_with, Backend, TestApp};
use tokio::sync::Barrier;

/// How many times each scenario runs inside its test.
pub(crate) const ROUNDS: usize = 20;

/// A test on three nodes: PostgreSQL only, skipped (ignored, with the reason) without it.
macro_rules! on_three_nodes {
    ($name:ident, $body:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        #[cfg_attr(
            not(portcullis_postgres),
            ignore = "three nodes share one PostgreSQL database: PORTCULLIS_TEST_POSTGRES was \
                      not set when the tests were built"
        )]
        async fn $name() {
            $body().await;
        }
    };
}
pub(crate) use on_three_nodes;

/// Three nodes on one fresh PostgreSQL database.
pub(crate) struct Nodes(Vec<TestApp>);

impl Nodes {
    /// Three nodes that write their notifications to one outbox file (whichever node's
    /// worker sends a message, the test finds it in one place).
    pub async fn start(tweak: impl Fn(&mut Config)) -> Arc<Self> {
        Self::launch(tweak, true).await
    }

    /// Three nodes, each with its own outbox file (to tell which node sent what).
    pub async fn start_with_own_outboxes(tweak: impl Fn(&mut Config)) -> Arc<Self> {
        Self::launch(tweak, false).await
    }

    async fn launch(tweak: impl Fn(&mut Config), shared_outbox: bool) -> Arc<Self> {
        let first = spawn_app_with(Backend::Postgres, |c| {
            tweak(c);
            // Three pools on one server, beside the other tests' databases.
            c.database.max_connections = 5;
        })
        .await;
        let mut nodes = Vec::new();
        for _ in 0..2 {
            let node = spawn_app_on(&first, |c| {
                tweak(c);
                c.database.max_connections = 5;
                if shared_outbox {
                    c.notify.outbox_file = Some(first.outbox.clone());
                }
            })
            .await;
            nodes.push(node);
        }
        nodes.insert(0, first);
        let nodes = Self(nodes);
        // One time for the three (each node has its own fake clock).
        nodes.set_time(nodes.0[0].clock.now().0);
        Arc::new(nodes)
    }

    /// Node `i` of the three (wrapping), so `node(i)` for `i` in `0..n` spreads `n`
    /// requests evenly.
    pub fn node(&self, i: usize) -> &TestApp {
        &self.0[i % self.0.len()]
    }

    pub fn all(&self) -> &[TestApp] {
        &self.0
    }

    /// Moves every node's clock on by `secs`.
    pub fn advance(&self, secs: i64) {
        for n in &self.0 {
            n.clock.advance(secs);
        }
    }

    pub fn set_time(&self, secs: i64) {
        for n in &self.0 {
            n.clock.set(secs);
        }
    }

    pub fn now(&self) -> i64 {
        self.0[0].clock.now().0
    }

    /// The whole audit log (shared by the three).
    pub async fn audit(&self) -> Vec<AuditEntry> {
        self.0[0]
            .built
            .store
            .audit_entries(0, 100_000)
            .await
            .unwrap()
    }
}

/// How many audit entries of `kind` have a detail containing `detail`.
pub(crate) fn count(entries: &[AuditEntry], kind: &str, detail: &str) -> usize {
    entries
        .iter()
        .filter(|e| e.kind == kind && e.detail.contains(detail))
        .count()
}

/// Runs `n` futures, `make(i)` for each `i`, as tasks that all wait at one barrier and
/// then go at once; their outputs in order of `i`.
pub(crate) async fn at_once<T, F, Fut>(n: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let fut = make(i);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// `statuses` sorted, for comparing a set of answers with the legal one.
pub(crate) fn sorted(mut statuses: Vec<u16>) -> Vec<u16> {
    statuses.sort_unstable();
    statuses
}
