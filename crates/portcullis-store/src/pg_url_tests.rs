use std::str::FromStr;

use proptest::prelude::*;
use sqlx::postgres::PgConnectOptions;

use super::*;

fn hosts(url: &PgUrl) -> Vec<(String, u16)> {
    url.hosts.iter().map(|h| (h.host(), h.port)).collect()
}

#[test]
fn each_host_keeps_its_own_port_and_the_default_fills_in() {
    let url = PgUrl::parse(
        "postgres://app@db1:5433,db2,db3:6000/portcullis?target_session_attrs=read-write",
    )
    .unwrap();
    assert_eq!(
        hosts(&url),
        vec![
            ("db1".into(), 5433),
            ("db2".into(), DEFAULT_PORT),
            ("db3".into(), 6000)
        ]
    );
    assert_eq!(url.target, TargetSession::ReadWrite);
    assert!(url.needs_host_choice());
    assert_eq!(
        url.host_url(1).unwrap(),
        "postgres://app@db2:5432/portcullis"
    );
    assert_eq!(url.host_url(3), None);
    assert_eq!(url.host_list(), "db1:5433, db2:5432, db3:6000");
}

#[test]
fn ipv6_addresses_keep_their_brackets() {
    let url = PgUrl::parse("postgresql://u@[::1]:55433,[fe80::1%25eth0],10.0.0.2:5/d").unwrap();
    assert_eq!(
        hosts(&url),
        vec![
            ("::1".into(), 55433),
            ("fe80::1%eth0".into(), DEFAULT_PORT),
            ("10.0.0.2".into(), 5)
        ]
    );
    assert_eq!(url.host_url(0).unwrap(), "postgresql://u@[::1]:55433/d");
    assert_eq!(
        url.host_url(1).unwrap(),
        "postgresql://u@[fe80::1%25eth0]:5432/d"
    );
    assert_eq!(url.to_owned().hosts[0].to_string(), "[::1]:55433");
}

#[test]
fn percent_encoding_is_kept_in_the_urls_and_decoded_for_reading() {
    let url =
        PgUrl::parse("postgres://us%40er:p%40ss%3Aw@h1:1,h2:2/my%20db?application_name=a%20b")
            .unwrap();
    assert_eq!(url.user().as_deref(), Some("us@er"));
    assert_eq!(url.database().as_deref(), Some("my db"));
    let one = url.host_url(1).unwrap();
    assert_eq!(
        one,
        "postgres://us%40er:p%40ss%3Aw@h2:2/my%20db?application_name=a%20b"
    );
    let opts = PgConnectOptions::from_str(&one).unwrap();
    assert_eq!(opts.get_username(), "us@er");
    assert_eq!(opts.get_database(), Some("my db"));
    assert_eq!(opts.get_application_name(), Some("a b"));
    // A socket folder, percent-encoded as libpq wants it.
    let sock = PgUrl::parse("postgres://u@%2Fvar%2Frun%2Fpostgresql/d").unwrap();
    assert_eq!(sock.hosts[0].host(), "/var/run/postgresql");
    assert!(!sock.needs_host_choice());
}

#[test]
fn other_query_parameters_are_kept_and_the_target_is_taken_out() {
    let url = PgUrl::parse(
        "postgres://u@a,b/d?sslmode=disable&target_session_attrs=primary&application_name=x",
    )
    .unwrap();
    assert_eq!(url.target, TargetSession::Primary);
    assert_eq!(
        url.host_url(0).unwrap(),
        "postgres://u@a:5432/d?sslmode=disable&application_name=x"
    );
    let any = PgUrl::parse("postgres://u@a/d?target_session_attrs=any").unwrap();
    assert_eq!(any.target, TargetSession::Any);
    assert!(!any.needs_host_choice());
    assert_eq!(any.host_url(0).unwrap(), "postgres://u@a:5432/d");
}

#[test]
fn a_single_host_url_is_unchanged_in_meaning() {
    let url = PgUrl::parse("postgres://postgres@127.0.0.1:5432/test").unwrap();
    assert!(!url.needs_host_choice());
    assert_eq!(
        url.host_url(0).unwrap(),
        "postgres://postgres@127.0.0.1:5432/test"
    );
    let default = PgUrl::parse("postgres:///test").unwrap();
    assert_eq!(default.host_url(0).unwrap(), "postgres:///test");
    assert_eq!(default.user(), None);
}

#[test]
fn bad_urls_are_refused_without_showing_the_password() {
    for bad in [
        "mysql://u@h/d",
        "postgres://u:secret@h1:99999,h2/d",
        "postgres://u:secret@h1:54x,h2/d",
        "postgres://u:secret@h1,,h2/d",
        "postgres://u:secret@h1,/d",
        "postgres://u:secret@[::1/d",
        "postgres://u:secret@[zz]/d",
        "postgres://u:secret@h1:0/d",
        "postgres://u:secret@h1/d?target_session_attrs=standby",
        "postgres://u:secret@h1/d#frag",
        "postgres://u:secret@/d?host=h1,h2",
        "postgres://u:secret@h1,h2/d?port=5432%2C5433",
    ] {
        let e = PgUrl::parse(bad).expect_err(bad);
        assert!(!e.to_string().contains("secret"), "{bad}: {e}");
    }
}

#[test]
fn only_a_multi_host_or_checked_url_must_parse_here() {
    assert!(asks_for_host_choice("postgres://u@h1,h2/d"));
    assert!(asks_for_host_choice(
        "postgres://u@h/d?target_session_attrs=any"
    ));
    assert!(!asks_for_host_choice("postgres://u@h:5432/d?options=a,b"));
    assert!(!asks_for_host_choice("postgres://u@h/d"));
    assert!(asks_for_host_choice("postgres:///d?host=h1,h2"));
    assert!(asks_for_host_choice("postgres://u@h/d?port=1%2C2"));
}

fn host_name() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,12}(\\.[a-z][a-z0-9]{0,6}){0,2}".prop_map(|h| (h, false)),
        (0u8..=255, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| (format!("{a}.{b}.{c}.{d}"), false)),
        prop::collection::vec(0u16..=0xffff, 8).prop_map(|g| (
            g.iter()
                .map(|x| format!("{x:x}"))
                .collect::<Vec<_>>()
                .join(":"),
            true
        )),
        Just(("::1".to_owned(), true)),
    ]
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    /// Any list of hosts, ports or none, with any user, password, database and extra
    /// parameters: each single-host URL means to sqlx what its part of the whole meant.
    #[test]
    fn every_host_url_means_what_the_whole_said(
        list in prop::collection::vec((host_name(), prop::option::of(1u16..=65535)), 1..5),
        user in "[ -~]{1,12}",
        password in prop::option::of("[ -~\u{e9}]{0,12}"),
        // ("." and ".." are path segments to the URL parser sqlx uses, not names.)
        db in "[ -~]{1,12}".prop_filter("a dot segment", |d| d != "." && d != ".."),
        app in prop::option::of("[a-zA-Z0-9 ]{1,8}"),
        target in prop_oneof![Just(None), Just(Some("read-write")), Just(Some("primary")), Just(Some("any"))],
        target_first in any::<bool>(),
    ) {
        let authority: Vec<String> = list
            .iter()
            .map(|((h, v6), port)| {
                let h = if *v6 { format!("[{h}]") } else { h.clone() };
                match port { Some(p) => format!("{h}:{p}"), None => h }
            })
            .collect();
        let userinfo = match &password {
            Some(p) => format!("{}:{}", encode(&user), encode(p)),
            None => encode(&user),
        };
        let mut params = Vec::new();
        if let Some(a) = &app { params.push(format!("application_name={}", encode(a))); }
        if let Some(t) = target {
            let t = format!("target_session_attrs={t}");
            if target_first { params.insert(0, t) } else { params.push(t) }
        }
        let mut url = format!("postgres://{userinfo}@{}/{}", authority.join(","), encode(&db));
        if !params.is_empty() { url.push('?'); url.push_str(&params.join("&")); }

        let parsed = PgUrl::parse(&url).unwrap();
        prop_assert_eq!(parsed.hosts.len(), list.len());
        prop_assert_eq!(parsed.user(), Some(user.clone()));
        prop_assert_eq!(parsed.database(), Some(db.clone()));
        let expected_target = match target {
            Some("read-write") => TargetSession::ReadWrite,
            Some("primary") => TargetSession::Primary,
            _ => TargetSession::Any,
        };
        prop_assert_eq!(parsed.target, expected_target);
        for (i, ((h, v6), port)) in list.iter().enumerate() {
            let one = parsed.host_url(i).unwrap();
            prop_assert!(!one.contains("target_session_attrs"));
            let opts = PgConnectOptions::from_str(&one).unwrap();
            let want_host = if *v6 { format!("[{h}]") } else { h.clone() };
            prop_assert_eq!(opts.get_host(), want_host.as_str());
            prop_assert_eq!(opts.get_port(), port.unwrap_or(DEFAULT_PORT));
            prop_assert_eq!(parsed.hosts[i].port, port.unwrap_or(DEFAULT_PORT));
            prop_assert_eq!(opts.get_username(), user.as_str());
            prop_assert_eq!(opts.get_database(), Some(db.as_str()));
            prop_assert_eq!(opts.get_application_name(), app.as_deref());
        }
    }

    /// Whatever the input, the parser answers (never panics).
    #[test]
    fn the_parser_never_panics(s in "postgres://[ -~]{0,40}") {
        let _ = PgUrl::parse(&s);
    }
}
