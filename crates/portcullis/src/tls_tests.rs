use super::*;

/// A certificate for `name` (self-signed, P-256): (certificate PEM, key PEM).
fn pair(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn a_matching_pair_loads_and_a_mismatched_or_broken_one_is_refused() {
    let (cert, key) = pair("one.example");
    let (_, other_key) = pair("two.example");
    assert!(parse_pair(cert.as_bytes(), key.as_bytes()).is_ok());
    let err = parse_pair(cert.as_bytes(), other_key.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls.key_file is not the key"), "{err}");
    let err = parse_pair(b"not a certificate", key.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls.cert_file"), "{err}");
    let err = parse_pair(cert.as_bytes(), b"-----BEGIN PRIVATE KEY-----\nAAAA\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls.key_file"), "{err}");
}

#[test]
fn the_store_swaps_on_a_good_change_and_keeps_the_old_pair_on_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert, key) = pair("one.example");
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let store = CertStore::open(&cert_path, &key_path).unwrap();
    let first = store.current();
    assert_eq!(store.check(), Reload::Unchanged);
    let reading = store.reading();
    // rcgen's default validity ends in 4096.
    assert!(reading.not_after_unix > 4_000_000_000, "{reading:?}");
    assert_eq!((reading.reloads, reading.reload_failures), (0, 0));

    // Replaced one file at a time: the half-written pair is skipped, the whole one loads.
    let (cert2, key2) = pair("two.example");
    std::fs::write(&cert_path, &cert2).unwrap();
    assert!(matches!(store.check(), Reload::Kept(_)));
    assert_eq!(store.current().cert, first.cert);
    std::fs::write(&key_path, &key2).unwrap();
    assert_eq!(store.check(), Reload::Reloaded);
    let second = store.current();
    assert_ne!(second.cert, first.cert);

    // Broken or missing files keep the pair in service.
    std::fs::write(&cert_path, "garbage").unwrap();
    assert!(matches!(store.check(), Reload::Kept(_)));
    std::fs::remove_file(&key_path).unwrap();
    assert!(matches!(store.check(), Reload::Kept(_)));
    assert_eq!(store.current().cert, second.cert);
    let reading = store.reading();
    assert_eq!((reading.reloads, reading.reload_failures), (1, 3));
}

#[test]
fn the_settings_go_together() {
    let mut c = TlsConfig::default();
    assert!(c.validate().is_ok() && !c.enabled() && c.scheme() == "http");
    c.cert_file = Some("cert.pem".into());
    assert!(c.validate().is_err());
    c.key_file = Some("key.pem".into());
    assert!(c.validate().is_ok() && c.enabled() && c.scheme() == "https");
    c.reload_interval_secs = 0.0;
    assert!(c.validate().is_err());
}
