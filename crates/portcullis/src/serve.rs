//! The accept and serve loop: every connection bounded in number, in how long it may take to
//! send a request head, and in how long it may sit idle; a bounded drain on shutdown.
//!
//! ```text
//!   accept ─► open < cap? ──no──► "503 + Retry-After", closed at once (32 refusals at once; beyond, closed unanswered)
//!               │ yes
//!               ▼
//!   Acceptor::accept (plain TCP, or the TLS handshake: crate::tls), within header_read_timeout
//!               ▼
//!   hyper (HTTP/1.1 or HTTP/2) ─► the router (per-request limits: portcullis_web::limits)
//!               │
//!   watchdog: no request head within header_read_timeout of connecting or of its first
//!             byte, or idle longer than idle_timeout ─► closed
//!   shutdown: stop accepting (taking what waits in the backlog), ask every connection to
//!             finish (graceful: a connection yet to begin its first request is answered
//!             first, for up to a second), and after `drain` close whatever is still open
//! ```
//!
//! Time here is the runtime's monotonic clock: a wall-clock jump neither closes nor keeps
//! a connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portcullis_web::limits::Load;
use portcullis_web::middleware::OverTls;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// Connection limits (`server.*` in the configuration).
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// How long a client has to send a complete request head, from connecting or from the
    /// first byte of a later request. A TLS handshake, once there is one, counts too.
    pub header_read_timeout: Duration,
    /// How long a connection may sit with no request before it is closed.
    pub idle_timeout: Duration,
    /// Open connections at once; beyond it a connection is answered 503 and closed.
    pub max_connections: usize,
    /// How long shutdown waits for connections to finish before it closes them.
    pub drain: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
            drain: Duration::from_secs(20),
        }
    }
}

/// The step between accepting a TCP connection and speaking HTTP on it: plain TCP, or a
/// TLS handshake ([`crate::tls::TlsAcceptor`]), which runs under the header read timeout.
pub trait Acceptor: Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(
        &self,
        stream: TcpStream,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Io>> + Send + 'static>>;

    /// Whether connections are TLS: their requests carry [`OverTls`] (HSTS is sent then).
    fn secure(&self) -> bool {
        false
    }
}

/// HTTP over plain TCP.
pub struct PlainTcp;

impl Acceptor for PlainTcp {
    type Io = TcpStream;
    fn accept(
        &self,
        stream: TcpStream,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + 'static>> {
        Box::pin(async move { Ok(stream) })
    }
}

/// The soft limit on open files, from `/proc/self/limits` (Linux); `None` elsewhere.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The connection cap in force: the configured one, lowered so that a full house of
/// connections still leaves `reserve` file descriptors (database connections, the
/// management listener, log and outbox files). Without that, `accept` fails with "too many
/// open files" and nothing, not even health, is answered.
pub fn effective_cap(configured: usize, open_files: Option<u64>, reserve: u64) -> usize {
    match open_files {
        Some(limit) => {
            let room = usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX);
            configured.min(room).max(1)
        }
        None => configured.max(1),
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve<A: Acceptor>(
    listener: TcpListener,
    acceptor: Arc<A>,
    router: Router,
    load: Arc<Load>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Refusals under way at once: each holds a descriptor until its 503 is written, so a flood
    // past the cap must not turn into a flood of refusals (it would take the descriptors the
    // cap keeps free). Beyond these, a connection over the cap is closed at once.
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    load.connection_cap
        .store(limits.max_connections.max(1), Ordering::Relaxed);
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    // A connection taken from the kernel: served under the cap, else refused.
    let admit = |stream: TcpStream, remote: SocketAddr, tasks: &mut JoinSet<()>| {
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                tasks.spawn(connection(
                    stream,
                    remote,
                    acceptor.clone(),
                    router.clone(),
                    load.clone(),
                    limits.clone(),
                    drain_rx.clone(),
                    permit,
                ));
            }
            Err(_) => {
                load.refused_connections.fetch_add(1, Ordering::Relaxed);
                if let Ok(permit) = refusals.clone().try_acquire_owned() {
                    let secure = acceptor.secure();
                    tasks.spawn(async move {
                        refuse(stream, secure).await;
                        drop(permit);
                    });
                } else {
                    drop(stream);
                }
            }
        }
    };
    let mut accept_errors: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => admit(stream, remote, &mut tasks),
                Err(e) => {
                    // EMFILE and friends: back off a little rather than spin; the connections
                    // already open keep being served and the cap frees descriptors.
                    accept_errors = accept_errors.saturating_add(1);
                    if accept_errors % 100 == 1 {
                        tracing::error!(error = %e, count = accept_errors, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // Connections the kernel has completed but this loop has not yet accepted would be reset
    // when the listener closes, after their clients sent a request: they are taken now and
    // answered like the rest. Only one that completes between the last of them and the close
    // is left to chance (microseconds); after the close a connection is refused, which a
    // client or balancer retries elsewhere with nothing sent.
    let backlog = take_backlog(listener);
    let from_backlog = backlog.len();
    for (stream, remote) in backlog {
        admit(stream, remote, &mut tasks);
    }
    let open = tasks.len();
    tracing::info!(
        open,
        from_backlog,
        drain_secs = limits.drain.as_secs_f64(),
        "stopped accepting; draining connections"
    );
    let _ = drain_tx.send(true);
    let drained = tokio::time::timeout(limits.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            closed = tasks.len(),
            "drain time is up: closing the connections still open"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// Accepts what waits in `listener`'s backlog, without waiting, and closes it.
fn take_backlog(listener: TcpListener) -> Vec<(TcpStream, SocketAddr)> {
    let mut taken = Vec::new();
    // Out of the runtime's reactor, still non-blocking: `accept` says `WouldBlock` when the
    // backlog is empty.
    let Ok(listener) = listener.into_std() else {
        return taken;
    };
    while let Ok((stream, remote)) = listener.accept() {
        if stream.set_nonblocking(true).is_ok() {
            if let Ok(stream) = TcpStream::from_std(stream) {
                taken.push((stream, remote));
            }
        }
    }
    taken
}

/// Connections over the cap answered 503 at once; more are closed without an answer.
const REFUSALS_AT_ONCE: usize = 32;

/// A connection over the cap: a short 503 and close (HTTP/1.1 framing; a client that
/// speaks HTTP/2 first sees the connection closed, which it retries as well). Over TLS it is
/// only closed: a handshake for a refusal would spend the very CPU the cap protects.
async fn refuse(mut stream: TcpStream, secure: bool) {
    if secure {
        return;
    }
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
        Retry-After: 2\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Length: 32\r\n\
        Connection: close\r\n\r\n\
        Too many connections: try again.";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(BUSY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// What the watchdog knows of a connection, in milliseconds since it was opened.
struct Activity {
    opened: Instant,
    /// Requests started on this connection.
    requests: AtomicU64,
    in_flight: AtomicUsize,
    /// When the last request ended (0: none yet).
    idle_since_ms: AtomicU64,
    /// The first byte read while no request was in flight ([`NONE`]: none since).
    head_started_ms: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(NONE),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn read_some(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.now_ms();
            let _ = self.head_started_ms.compare_exchange(
                NONE,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started_ms.store(NONE, Ordering::Release);
    }

    fn request_ended(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::Release);
        self.head_started_ms.store(NONE, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// When this connection is to be closed if nothing changes, and why; `None` while a
    /// request is in flight (the request limits govern then).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(u64, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let header = u64::try_from(limits.header_read_timeout.as_millis()).unwrap_or(NONE - 1);
        let idle = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(NONE - 1);
        let head = self.head_started_ms.load(Ordering::Acquire);
        if head != NONE {
            return Some((head.saturating_add(header), "request head too slow"));
        }
        if self.requests.load(Ordering::Acquire) == 0 {
            return Some((header, "no request after connecting"));
        }
        let since = self.idle_since_ms.load(Ordering::Acquire);
        Some((since.saturating_add(idle), "idle"))
    }
}

/// Notes every read, for the watchdog.
struct Tracked<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Ends a request's count however its future ends (answered or dropped).
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// Counts an open connection for as long as it lives.
struct OpenGuard(Arc<Load>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
async fn connection<A: Acceptor>(
    stream: TcpStream,
    remote: SocketAddr,
    acceptor: Arc<A>,
    router: Router,
    load: Arc<Load>,
    limits: Arc<ConnectionLimits>,
    mut drain: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    load.open_connections.fetch_add(1, Ordering::Relaxed);
    let _open = OpenGuard(load.clone());
    let io = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "connection set-up failed");
            return;
        }
        Err(_) => {
            load.timed_out_connections.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, "connection set-up timed out");
            return;
        }
    };
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        io,
        activity: activity.clone(),
    });
    let service_activity = activity.clone();
    let secure = acceptor.secure();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let router = router.clone();
        service_activity.request_started();
        let guard = RequestGuard(service_activity.clone());
        request.extensions_mut().insert(ConnectInfo(remote));
        if secure {
            request.extensions_mut().insert(OverTls);
        }
        async move {
            let _guard = guard;
            router.oneshot(request.map(axum::body::Body::new)).await
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog times request heads (and idle time) the same way for both protocols.
        .header_read_timeout(None)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing: Option<Instant> = None;
    // Asked to drain before this connection's first request began: its client may well have
    // sent it already (a connection accepted just before the stop, or taken from the
    // backlog), and a close now would reset it unanswered. So the drain waits for that
    // request, until this time at most, answers it with `Connection: close`, then closes.
    let mut first_by: Option<Instant> = None;
    loop {
        let wake = match (closing, first_by, activity.deadline(&limits)) {
            // A connection asked to close gets a moment to finish its answer, then goes.
            (Some(at), _, _) => at,
            // Waiting for the first request: looked for often, it is usually there.
            (None, Some(by), _) => by.min(Instant::now() + FIRST_REQUEST_POLL),
            (None, None, Some((ms, _))) => activity.opened + Duration::from_millis(ms),
            // A request is in flight: look again later.
            (None, None, None) => Instant::now() + limits.header_read_timeout,
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                }
                break;
            }
            changed = drain.changed(), if closing.is_none() && first_by.is_none() => {
                if changed.is_ok() {
                    if activity.requests.load(Ordering::Acquire) == 0 {
                        first_by = Some(
                            Instant::now() + limits.header_read_timeout.min(FIRST_REQUEST_GRACE),
                        );
                    } else {
                        conn.as_mut().graceful_shutdown();
                        // The serve loop closes this connection when the drain is up (and
                        // says so); this is only a backstop.
                        closing = Some(Instant::now() + limits.drain + Duration::from_secs(5));
                    }
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if closing.is_some() {
                    break;
                }
                if let Some(by) = first_by {
                    // Begun (hyper then closes after its answer), or not coming.
                    if activity.requests.load(Ordering::Acquire) > 0 || Instant::now() >= by {
                        first_by = None;
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Instant::now() + limits.drain + Duration::from_secs(5));
                    }
                    continue;
                }
                if let Some((ms, why)) = activity.deadline(&limits) {
                    if activity.now_ms() >= ms {
                        if why != "idle" {
                            load.timed_out_connections.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::debug!(%remote, reason = why, "closing connection");
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Instant::now() + Duration::from_secs(1));
                    }
                }
            }
        }
    }
}

/// How long a drain waits for the first request of a connection that has not begun one.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);
/// How often it looks.
const FIRST_REQUEST_POLL: Duration = Duration::from_millis(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_other_descriptors() {
        assert_eq!(effective_cap(1024, Some(256), 88), 168);
        assert_eq!(effective_cap(100, Some(65_536), 88), 100);
        assert_eq!(effective_cap(100, None, 88), 100);
        assert_eq!(effective_cap(100, Some(10), 88), 1);
    }

    #[test]
    fn the_watchdog_times_heads_and_idleness() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            ..ConnectionLimits::default()
        };
        let a = Activity::new();
        // Silent since connecting: the header timeout from the start.
        assert_eq!(
            a.deadline(&limits),
            Some((10_000, "no request after connecting"))
        );
        a.request_started();
        assert_eq!(a.deadline(&limits), None);
        a.request_ended();
        let (at, why) = a.deadline(&limits).unwrap();
        assert_eq!(why, "idle");
        assert!((30_000..31_000).contains(&at), "{at}");
        // A byte of the next head: the header timeout from that byte.
        a.read_some();
        let (at, why) = a.deadline(&limits).unwrap();
        assert_eq!(why, "request head too slow");
        assert!((10_000..11_000).contains(&at), "{at}");
    }

    #[test]
    fn the_open_files_limit_is_read() {
        if std::path::Path::new("/proc/self/limits").exists() {
            assert!(open_files_limit().is_some_and(|n| n > 0));
        }
    }
}
