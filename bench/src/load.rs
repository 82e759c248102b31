//! The load client: one kept-alive HTTP/1.1 connection per simulated client (hyper's
//! low-level connection, so the client spends as little CPU as it can on a machine it shares
//! with the server), closed loops bounded in count and in time, and latency percentiles.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The longest this client waits for one answer before counting it as unanswered.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// One request to send, cheap to clone.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    pub path: &'static str,
    pub bearer: Option<HeaderValue>,
    pub json: Option<Bytes>,
}

impl Req {
    pub fn get(path: &'static str) -> Self {
        Self {
            method: Method::GET,
            path,
            bearer: None,
            json: None,
        }
    }

    pub fn post_json(path: &'static str, body: &serde_json::Value) -> Self {
        Self {
            method: Method::POST,
            path,
            bearer: None,
            json: Some(Bytes::from(body.to_string())),
        }
    }

    pub fn with_bearer(mut self, token: &str) -> anyhow::Result<Self> {
        self.bearer = Some(HeaderValue::from_str(&format!("Bearer {token}"))?);
        Ok(self)
    }
}

/// A connection to the server that reconnects when the server closed it.
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            sender: None,
        })
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the connection closes; an error here shows up on the next send.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends `req` and reads the whole answer: its status and body.
    pub async fn send(&mut self, req: &Req) -> anyhow::Result<(u16, Bytes)> {
        let mut headers = Vec::new();
        if let Some(bearer) = &req.bearer {
            headers.push((AUTHORIZATION, bearer.clone()));
        }
        if req.json.is_some() {
            headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        }
        let body = req.json.clone().unwrap_or_default();
        let (status, _, body) = self
            .send_with(req.method.clone(), req.path, &headers, body)
            .await?;
        Ok((status, body))
    }

    /// Sends any request and reads the whole answer: its status, headers and body.
    pub async fn send_with(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> anyhow::Result<(u16, HeaderMap, Bytes)> {
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        sender.ready().await?;
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone());
        for (name, value) in headers {
            builder = builder.header(name, value.clone());
        }
        let request = builder.body(Full::new(body))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        self.sender = Some(sender);
        Ok((status, parts.headers, body))
    }

    /// [`Self::send`] bounded by [`ANSWER_TIMEOUT`]; `None` when no answer came (timeout or
    /// a broken connection, which is then reopened for the next request).
    pub async fn try_send(&mut self, req: &Req) -> Option<(u16, Bytes)> {
        match tokio::time::timeout(ANSWER_TIMEOUT, self.send(req)).await {
            Ok(Ok(answer)) => Some(answer),
            Ok(Err(_)) | Err(_) => {
                self.sender = None;
                None
            }
        }
    }
}

/// One answered (or unanswered) request.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// The HTTP status; 0 when no answer came.
    pub status: u16,
    pub micros: u32,
}

/// What one load run did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub samples: Vec<Sample>,
    /// From the start to the last answer.
    pub elapsed: Duration,
}

impl Outcome {
    pub fn count(&self, status: u16) -> usize {
        self.samples.iter().filter(|s| s.status == status).count()
    }

    pub fn rate(&self, status: u16) -> f64 {
        self.count(status) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latencies of the answers with `status`, sorted, in microseconds.
    pub fn latencies(&self, status: u16) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .samples
            .iter()
            .filter(|s| s.status == status)
            .map(|s| s.micros)
            .collect();
        v.sort_unstable();
        v
    }

    /// Counts of every status seen, e.g. `201×812 503×20311`.
    pub fn status_summary(&self) -> String {
        let mut counts: std::collections::BTreeMap<u16, usize> = Default::default();
        for s in &self.samples {
            *counts.entry(s.status).or_default() += 1;
        }
        counts
            .iter()
            .map(|(status, n)| match status {
                0 => format!("unanswered×{n}"),
                s => format!("{s}×{n}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn merge(&mut self, other: Outcome) {
        self.samples.extend(other.samples);
        self.elapsed += other.elapsed;
    }
}

/// How a closed loop runs: `connections` clients, each sending its next request as soon as
/// the previous one is answered (or at most once per `pace`), until `run_for` has passed or
/// it has sent `max_per_connection`.
#[derive(Clone, Copy, Debug)]
pub struct Loop {
    pub connections: usize,
    pub run_for: Duration,
    pub max_per_connection: u64,
    pub pace: Option<Duration>,
}

/// Builds connection `c`'s `i`-th request.
pub type MakeReq = Arc<dyn Fn(usize, u64) -> Req + Send + Sync>;

/// Runs the loop and gathers every sample. Connections are opened before the clock starts.
pub async fn run(addr: SocketAddr, plan: Loop, make: MakeReq) -> anyhow::Result<Outcome> {
    let mut conns = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        let mut conn = Conn::new(addr)?;
        conn.sender = Some(conn.connect().await?);
        conns.push(conn);
    }
    let started = Instant::now();
    let deadline = started + plan.run_for;
    let mut tasks = tokio::task::JoinSet::new();
    for (c, mut conn) in conns.into_iter().enumerate() {
        let make = make.clone();
        tasks.spawn(async move {
            let mut samples = Vec::with_capacity(1024);
            let mut last = Instant::now();
            let mut ticker = plan.pace.map(|p| {
                let mut t = tokio::time::interval(p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            for i in 0..plan.max_per_connection {
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                }
                if Instant::now() >= deadline {
                    break;
                }
                let req = make(c, i);
                let sent = Instant::now();
                let status = conn.try_send(&req).await.map_or(0, |(s, _)| s);
                last = Instant::now();
                let micros =
                    u32::try_from(last.duration_since(sent).as_micros()).unwrap_or(u32::MAX);
                samples.push(Sample { status, micros });
            }
            (samples, last)
        });
    }
    let mut outcome = Outcome::default();
    let mut last = started;
    while let Some(done) = tasks.join_next().await {
        let (samples, finished) = done.context("a load task failed")?;
        outcome.samples.extend(samples);
        last = last.max(finished);
    }
    outcome.elapsed = last.duration_since(started);
    Ok(outcome)
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// p50 and p99 in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub n: usize,
}

impl Latency {
    pub fn of(sorted: &[u32]) -> Option<Self> {
        Some(Self {
            p50_ms: f64::from(quantile(sorted, 0.50)?) / 1000.0,
            p99_ms: f64::from(quantile(sorted, 0.99)?) / 1000.0,
            n: sorted.len(),
        })
    }
}

/// The median of unsorted values, in microseconds.
pub fn median(values: &[u32]) -> Option<u32> {
    let mut v = values.to_vec();
    v.sort_unstable();
    quantile(&v, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&v, 0.0), Some(1));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(median(&[5, 1, 3]), Some(3));
    }
}
