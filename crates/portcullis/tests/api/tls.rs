//! HTTPS on both listeners (issue 18), through the real binary, with certificates made here
//! by a test CA (rcgen) that the client alone trusts: HTTP/2 by ALPN, HSTS over TLS only, a
//! renewed certificate served without a restart, a broken one never, the handshake under the
//! header read timeout, and production mode on a public address with TLS.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portcullis_testkit::{both, Backend, RealServer, TestDb};
use tokio::io::AsyncReadExt;

use crate::operations::{clean, run};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// The test CA: the only root the clients here trust.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Portcullis test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A server certificate for localhost and 127.0.0.1 named `name`, valid until the
    /// first of January of `until`.
    fn issue(&self, name: &str, until: i32) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.cert.pem().as_bytes()).unwrap(),
            )
            .tls_info(true)
            // A new connection (and handshake) for every request: each sees the served
            // certificate of the moment.
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

/// Writes `leaf` where the server reads it (the key first, as a renewal would).
fn install(leaf: &Leaf, dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&key, &leaf.key_pem).unwrap();
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    (cert, key)
}

fn tls_env(cert: &Path, key: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("PORTCULLIS_TLS_CERT_FILE", cert.display().to_string()),
        ("PORTCULLIS_TLS_KEY_FILE", key.display().to_string()),
        ("PORTCULLIS_TLS_RELOAD_INTERVAL_SECS", "0.5".into()),
        ("PORTCULLIS_SERVER_HEADER_READ_TIMEOUT_SECS", "1.0".into()),
    ]
}

/// The certificate a fresh connection (a new client) to `url` is served, and the answer's
/// version and status.
async fn served(ca: &Ca, url: &str) -> (Vec<u8>, reqwest::Version, u16) {
    let res = ca.client().get(url).send().await.unwrap();
    let cert = res
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec();
    (cert, res.version(), res.status().as_u16())
}

/// Both listeners speak HTTPS with the configured certificate, HTTP/2 by ALPN (HTTP/1.1 for
/// a client that offers only that), HSTS on every answer; a certificate replaced on disk is
/// served within the poll interval without a restart, and a broken replacement never is.
async fn https_renewal(backend: Backend) {
    let db = TestDb::new(backend).await;
    let ca = Ca::new();
    let files = tempfile::tempdir().unwrap();
    let first = ca.issue("portcullis-one", 2098);
    let (cert, key) = install(&first, files.path());
    let mut env = tls_env(&cert, &key);
    if backend == Backend::Postgres {
        env.push(("PORTCULLIS_DATABASE_URL", db.url.clone()));
    }
    let server = RealServer::start(bin(), &env);
    assert!(
        server.base.starts_with("https://localhost:"),
        "{}",
        server.base
    );
    assert!(
        server.management.starts_with("https://"),
        "{}",
        server.management
    );
    let client = ca.client();

    for url in [
        server.url("/healthz"),
        server.url("/"),
        server.management_url("/healthz"),
        server.management_url("/metrics"),
    ] {
        let res = client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        assert_eq!(res.version(), reqwest::Version::HTTP_2, "{url}: h2 by ALPN");
        let hsts = res.headers()["strict-transport-security"].to_str().unwrap();
        assert_eq!(hsts, "max-age=31536000; includeSubDomains", "{url}");
    }
    let (der, _, _) = served(&ca, &server.url("/healthz")).await;
    assert_eq!(der, first.der);
    // 2098-01-01T00:00:00Z
    assert_eq!(tls_metrics(&client, &server).await, (4_039_372_800, 0, 0));

    // A client that offers only HTTP/1.1 gets it.
    let h1 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let res = h1.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    assert!(res.headers().contains_key("strict-transport-security"));

    // A client that does not trust the test CA is refused: no fallback certificate.
    let stranger = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(stranger.get(server.url("/healthz")).send().await.is_err());

    // Renewal: new files, same paths, no restart.
    let second = ca.issue("portcullis-two", 2099);
    assert_ne!(second.der, first.der);
    let replaced = Instant::now();
    install(&second, files.path());
    let picked_up = loop {
        let (der, _, status) = served(&ca, &server.url("/healthz")).await;
        assert_eq!(status, 200);
        if der == second.der {
            break replaced.elapsed();
        }
        assert_eq!(der, first.der);
        assert!(
            replaced.elapsed() < Duration::from_secs(5),
            "the renewed certificate was not served within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("renewed certificate served after {picked_up:?} (poll every 0.5 s)");
    let (der, _, _) = served(&ca, &server.management_url("/healthz")).await;
    assert_eq!(
        der, second.der,
        "the management listener shares the renewal"
    );

    // A broken replacement (garbage certificate, then a key of another certificate): the
    // renewed pair stays in service, and the operator is told.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (der, _, status) = served(&ca, &server.url("/healthz")).await;
    assert_eq!((status, der == second.der), (200, true));
    std::fs::write(&cert, &second.cert_pem).unwrap();
    std::fs::write(&key, ca.issue("portcullis-three", 2099).key_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (der, _, status) = served(&ca, &server.url("/healthz")).await;
    assert_eq!((status, der == second.der), (200, true));
    let log = std::fs::read_to_string(&server.stderr).unwrap();
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    assert!(
        log.matches("TLS certificate not reloaded").count() >= 2,
        "{log}"
    );
    assert!(log.contains("tls.key_file is not the key"), "{log}");
    // 2099-01-01T00:00:00Z; one or two loads of the second pair (a look may fall between the
    // two writes of the repair), at least two failed changes.
    let (expiry, loaded, failed) = tls_metrics(&client, &server).await;
    assert_eq!(expiry, 4_070_908_800);
    assert!(
        (1..=3).contains(&loaded) && failed >= 2,
        "{loaded} {failed}"
    );
}

/// The TLS samples of the management listener's `/metrics`: (expiry, loaded, failed).
async fn tls_metrics(client: &reqwest::Client, server: &RealServer) -> (i64, i64, i64) {
    let text = client
        .get(server.management_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sample = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    (
        sample("portcullis_tls_certificate_expiry_timestamp_seconds"),
        sample("portcullis_tls_reloads_total{result=\"loaded\"}"),
        sample("portcullis_tls_reloads_total{result=\"failed\"}"),
    )
}

both!(
    https_with_http2_hsts_and_certificates_renewed_without_a_restart,
    https_renewal
);

/// The handshake runs under `server.header_read_timeout_secs`: a client that connects and
/// never sends a ClientHello, or stops halfway through one, is closed then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_within_the_handshake_timeout() {
    let ca = Ca::new();
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = install(&ca.issue("portcullis", 2099), files.path());
    let server = RealServer::start(bin(), &tls_env(&cert, &key));
    let addr = server
        .base
        .trim_start_matches("https://localhost:")
        .parse::<u16>()
        .map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .unwrap();
    for partial in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00][..]] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        if !partial.is_empty() {
            tokio::io::AsyncWriteExt::write_all(&mut stream, partial)
                .await
                .unwrap();
        }
        let opened = Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the server never closed the silent connection");
        let took = opened.elapsed();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        println!(
            "silent client ({} bytes sent) closed after {took:?}",
            partial.len()
        );
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(3),
            "closed after {took:?}, the header read timeout is 1 s"
        );
    }
    // The server still serves.
    let res = ca
        .client()
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Production mode counts TLS on the listener as "no plain HTTP": on a public address it
/// starts with a certificate and refuses without one; `validate-config` checks that the files
/// exist, parse and go together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_serves_https_on_a_public_address_and_validates_the_files() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = install(&ca.issue("login.bank.example", 2099), dir.path());
    let production = |cmd: &mut std::process::Command| {
        cmd.env("PORTCULLIS_PUBLIC_URL", "https://login.bank.example")
            .env("PORTCULLIS_NOTIFY_SMTP_HOST", "127.0.0.1")
            .env("PORTCULLIS_NOTIFY_FROM", "Bank <no-reply@bank.example>");
    };

    // validate-config: a good pair is valid; a key of another certificate, or a missing
    // file, is a problem named by its key.
    let config = dir.path().join("portcullis.toml");
    let write_config = |cert: &Path, key: &Path| {
        std::fs::write(
            &config,
            format!(
                "listen = \"0.0.0.0:443\"\n[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            ),
        )
        .unwrap();
    };
    let validate = || {
        let mut cmd = clean(dir.path());
        production(&mut cmd);
        cmd.args(["validate-config", "--config"]).arg(&config);
        run(cmd)
    };
    write_config(&cert, &key);
    let (code, stdout, _) = validate();
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, ca.issue("elsewhere", 2099).key_pem).unwrap();
    write_config(&cert, &other_key);
    let (code, stdout, _) = validate();
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("problem: tls.key_file is not the key of the certificate"),
        "{stdout}"
    );
    write_config(&dir.path().join("missing.pem"), &key);
    let (code, stdout, _) = validate();
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("problem: tls.cert_file = "), "{stdout}");
    assert!(stdout.contains("cannot be read"), "{stdout}");

    // serve on a public address with TLS: starts, and answers over HTTPS.
    let out = dir.path().join("stdout.log");
    let err = dir.path().join("stderr.log");
    let mut cmd = clean(dir.path());
    production(&mut cmd);
    let mut child = cmd
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env("PORTCULLIS_TLS_CERT_FILE", &cert)
        .env("PORTCULLIS_TLS_KEY_FILE", &key)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if let Some(port) = text
            .lines()
            .find_map(|l| l.strip_prefix("Portcullis is running at https://0.0.0.0:"))
        {
            break port.trim_end_matches('/').to_owned();
        }
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "did not start: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let res = ca
        .client()
        .get(format!("https://localhost:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());

    // Without TLS the same address is refused (as before, now naming the TLS keys).
    let mut cmd = clean(dir.path());
    production(&mut cmd);
    cmd.args(["serve", "--listen", "0.0.0.0:0"]);
    let (code, _, stderr) = run(cmd);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is not a loopback address"), "{stderr}");
    assert!(
        stderr.contains("tls.cert_file and tls.key_file"),
        "{stderr}"
    );
}
