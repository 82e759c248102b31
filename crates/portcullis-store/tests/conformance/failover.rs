//! A multi-host `database_url` (issue 16), on PostgreSQL only, without a replicated
//! formation: the hosts are loopback proxies in front of the one test server. A proxy can
//! make every new session read-only (it adds `-c default_transaction_read_only=on` to the
//! startup packet, so the server itself refuses writes with SQLSTATE 25006, as a standby
//! does), or drop every connection it carries (a host that died). The formation test on the
//! real binary is `crates/portcullis/tests/api/failover.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::clock::UnixTime;
use portcullis_core::ports::StoreError;
use portcullis_store::{SqlStore, StoreOptions};
use portcullis_testkit::{Backend, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A TCP proxy to the test PostgreSQL server.
struct Proxy {
    port: u16,
    read_only: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    kill: Arc<Notify>,
}

impl Proxy {
    async fn start(upstream: SocketAddr, read_only: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let read_only = Arc::new(AtomicBool::new(read_only));
        let down = Arc::new(AtomicBool::new(false));
        let kill = Arc::new(Notify::new());
        let (ro, k, d) = (read_only.clone(), kill.clone(), down.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let (ro, k) = (ro.clone(), k.clone());
                tokio::spawn(async move {
                    let killed = k.notified();
                    tokio::select! {
                        _ = carry(client, upstream, ro.load(Ordering::SeqCst)) => {}
                        () = killed => {}
                    }
                });
            }
        });
        Proxy {
            port,
            read_only,
            down,
            kill,
        }
    }

    /// The host goes away (every connection dropped, new ones closed at once) or comes back.
    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.kill.notify_waiters();
        }
    }

    /// Every new session read-only, and every open connection dropped: a primary that
    /// came back as a standby.
    fn demote(&self) {
        self.read_only.store(true, Ordering::SeqCst);
        self.kill.notify_waiters();
    }
}

async fn read_message(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let n = u32::from_be_bytes(len) as usize;
    let mut msg = len.to_vec();
    msg.resize(n, 0);
    s.read_exact(&mut msg[4..]).await.ok()?;
    Some(msg)
}

/// Relays one client connection; the startup packet made read-only when asked.
async fn carry(mut client: TcpStream, upstream: SocketAddr, read_only: bool) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    loop {
        let Some(mut msg) = read_message(&mut client).await else {
            return;
        };
        let code = u32::from_be_bytes(msg[4..8].try_into().unwrap());
        if code == 80_877_103 || code == 80_877_104 {
            // SSLRequest / GSSENCRequest: the server's one-byte answer, then the startup.
            server.write_all(&msg).await.unwrap();
            let mut answer = [0u8; 1];
            if server.read_exact(&mut answer).await.is_err() {
                return;
            }
            assert_eq!(&answer, b"N", "the test URLs ask for sslmode=disable");
            client.write_all(&answer).await.unwrap();
            continue;
        }
        if read_only {
            msg.pop(); // the list's terminating NUL
            msg.extend_from_slice(b"options\0-c default_transaction_read_only=on\0\0");
            let n = (msg.len() as u32).to_be_bytes();
            msg[..4].copy_from_slice(&n);
        }
        server.write_all(&msg).await.unwrap();
        break;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// The test server's address and the rest of a URL: `(user, address, db)`.
fn parts(url: &str) -> (String, SocketAddr, String) {
    let rest = url.strip_prefix("postgres://").unwrap();
    let (user, rest) = rest.split_once('@').unwrap();
    let (host, db) = rest.split_once('/').unwrap();
    let db = db.split('?').next().unwrap();
    (user.to_owned(), resolve(host), db.to_owned())
}

/// `host[:port]` to an IPv4 socket address.
fn resolve(host: &str) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    host.to_socket_addrs()
        .unwrap()
        .find(SocketAddr::is_ipv4)
        .unwrap()
}

fn url(user: &str, hosts: &[String], db: &str, target: &str) -> String {
    format!(
        "postgres://{user}@{}/{db}?sslmode=disable&target_session_attrs={target}",
        hosts.join(",")
    )
}

fn options() -> StoreOptions {
    StoreOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    }
}

/// A port where nothing listens.
async fn down_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(portcullis_postgres),
    ignore = "needs PostgreSQL: PORTCULLIS_TEST_POSTGRES was not set when the tests were built"
)]
async fn a_pool_on_a_down_host_then_the_primary_finds_the_primary() {
    let db = TestDb::new(Backend::Postgres).await;
    let (user, addr, name) = parts(&db.url);
    let down = format!("127.0.0.1:{}", down_port().await);
    let up = format!("127.0.0.1:{}", addr.port());
    let store = SqlStore::connect(
        &url(&user, &[down, up.clone()], &name, "read-write"),
        options(),
    )
    .await
    .unwrap();
    assert_eq!(store.chosen_host().as_deref(), Some(up.as_str()));
    store.write_probe("n1", UnixTime(1)).await.unwrap();
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(portcullis_postgres),
    ignore = "needs PostgreSQL: PORTCULLIS_TEST_POSTGRES was not set when the tests were built"
)]
async fn a_read_only_host_is_skipped_for_read_write_sessions() {
    let db = TestDb::new(Backend::Postgres).await;
    let (user, addr, name) = parts(&db.url);
    let standby = Proxy::start(addr, true).await;
    let primary = Proxy::start(addr, false).await;
    let hosts = [
        format!("127.0.0.1:{}", standby.port),
        format!("127.0.0.1:{}", primary.port),
    ];
    let store = SqlStore::connect(&url(&user, &hosts, &name, "read-write"), options())
        .await
        .unwrap();
    assert_eq!(store.chosen_host().as_deref(), Some(hosts[1].as_str()));
    store.write_probe("n1", UnixTime(1)).await.unwrap();
    store.close().await;

    // `any` takes the first host that answers: the proxy really is read-only, and a write
    // there is refused by the server (25006), answered as Unavailable (503), not Internal.
    let store = SqlStore::open(&url(&user, &hosts, &name, "any"), options())
        .await
        .unwrap();
    assert_eq!(store.chosen_host().as_deref(), Some(hosts[0].as_str()));
    match store.write_probe("n2", UnixTime(1)).await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("read-only"), "{m}"),
        other => panic!("a write on a read-only host answered {other:?}"),
    }
    store.close().await;

    // Every host read-only: no start, and the reason names each host.
    let hosts_ro = [hosts[0].clone(), hosts[0].clone()];
    let err = SqlStore::open(&url(&user, &hosts_ro, &name, "read-write"), options())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("read-only session")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(portcullis_postgres),
    ignore = "needs PostgreSQL: PORTCULLIS_TEST_POSTGRES was not set when the tests were built"
)]
async fn a_demoted_primary_is_left_for_the_new_one_with_only_unavailable_meanwhile() {
    let db = TestDb::new(Backend::Postgres).await;
    let (user, addr, name) = parts(&db.url);
    let first = Proxy::start(addr, false).await;
    let second = Proxy::start(addr, false).await;
    let hosts = [
        format!("127.0.0.1:{}", first.port),
        format!("127.0.0.1:{}", second.port),
    ];
    let store = SqlStore::connect(&url(&user, &hosts, &name, "read-write"), options())
        .await
        .unwrap();
    assert_eq!(store.chosen_host().as_deref(), Some(hosts[0].as_str()));
    // Warm the pool: connections to the first host sit idle in it.
    for i in 0..8 {
        store.write_probe("warm", UnixTime(i)).await.unwrap();
    }

    first.demote();
    let demoted = Instant::now();
    let mut unavailable = 0;
    let mut n = 100;
    let recovered = loop {
        n += 1;
        let started = Instant::now();
        match store.write_probe("n1", UnixTime(n)).await {
            Ok(()) => break demoted.elapsed(),
            Err(StoreError::Unavailable(_)) => unavailable += 1,
            Err(e) => panic!("during the failover a write answered {e:?}, not Unavailable"),
        }
        // Never a hang: the acquire timeout bounds every answer.
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            demoted.elapsed() < Duration::from_secs(15),
            "the pool never moved to the new primary ({unavailable} writes refused)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(store.chosen_host().as_deref(), Some(hosts[1].as_str()));
    // Every write from now on lands: no stale connection to the old host is handed out.
    for i in 0..20 {
        store
            .write_probe("after", UnixTime(1000 + i))
            .await
            .unwrap();
    }
    eprintln!("failover through proxies: writes again after {recovered:?} ({unavailable} refused)");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(portcullis_postgres),
    ignore = "needs PostgreSQL: PORTCULLIS_TEST_POSTGRES was not set when the tests were built"
)]
async fn the_only_host_gone_for_a_while_and_back_is_found_again() {
    let db = TestDb::new(Backend::Postgres).await;
    let (user, addr, name) = parts(&db.url);
    let only = Proxy::start(addr, false).await;
    let hosts = [format!("127.0.0.1:{}", only.port)];
    let store = SqlStore::connect(&url(&user, &hosts, &name, "read-write"), options())
        .await
        .unwrap();
    for i in 0..8 {
        store.write_probe("warm", UnixTime(i)).await.unwrap();
    }
    only.set_down(true);
    let went = Instant::now();
    let mut n = 100;
    let mut refused = 0;
    while went.elapsed() < Duration::from_secs(3) {
        n += 1;
        let started = Instant::now();
        match store.write_probe("n1", UnixTime(n)).await {
            Err(StoreError::Unavailable(_)) => refused += 1,
            other => panic!("with the database gone a write answered {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "a write hung");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    only.set_down(false);
    let back = Instant::now();
    loop {
        n += 1;
        match store.write_probe("n1", UnixTime(n)).await {
            Ok(()) => break,
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("a write answered {e:?}"),
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "the store did not recover by itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No broken connection from before is handed out again: every write lands.
    for i in 0..20 {
        store
            .write_probe("after", UnixTime(1000 + i))
            .await
            .unwrap();
    }
    eprintln!(
        "the only host back: writes again after {:?} ({refused} refused while it was gone)",
        back.elapsed()
    );
    store.close().await;
}
