//! Security events out (issue 17): which audit events are also sent to webhook
//! subscribers, under which Standard Webhooks event type, and which endpoint URLs a
//! subscription may name. The events are taken from the audit events a unit of work
//! commits, so each is written (as one delivery row per matching subscription) in the
//! same transaction as the change it reports (docs/design/webhooks.md).

use std::net::{IpAddr, Ipv4Addr};

use crate::audit::AuditKind;

/// Every event type a subscription may name, in the order documented.
pub const EVENT_TYPES: &[&str] = &[
    "account.created",
    "account.locked",
    "account.unlocked",
    "password.changed",
    "password.reset",
    "account.not_me",
    "device.new",
    "contact.changed",
    "factor.added",
    "factor.removed",
    "card.linked",
    "oidc.grant_given",
    "oidc.refresh_reused",
    "oidc.code_replayed",
];

/// The webhook event type of an audit event, if it is one subscribers are told of.
pub fn event_type(kind: AuditKind) -> Option<&'static str> {
    Some(match kind {
        AuditKind::AccountCreated => "account.created",
        AuditKind::AccountLocked => "account.locked",
        AuditKind::AccountUnlocked => "account.unlocked",
        AuditKind::PasswordChanged => "password.changed",
        AuditKind::PasswordReset => "password.reset",
        AuditKind::NotMe => "account.not_me",
        AuditKind::DeviceNew => "device.new",
        AuditKind::ContactChanged => "contact.changed",
        AuditKind::FactorAdded => "factor.added",
        AuditKind::FactorRemoved => "factor.removed",
        AuditKind::CardLinked | AuditKind::CardReissued => "card.linked",
        // Through the OpenID provider: a site given access to the account, and the two
        // signs of a stolen token (its family revoked and the session ended, or the code's
        // tokens revoked).
        AuditKind::OidcGrantGiven => "oidc.grant_given",
        AuditKind::OidcRefreshReused => "oidc.refresh_reused",
        AuditKind::OidcCodeReplayed => "oidc.code_replayed",
        _ => return None,
    })
}

/// What a subscription listens to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFilter {
    All,
    Only(Vec<String>),
}

impl EventFilter {
    /// `all`, or a comma-separated list of [`EVENT_TYPES`] (an unknown type is refused,
    /// naming it).
    pub fn parse(input: &str) -> Result<Self, String> {
        let input = input.trim();
        if input == "all" || input == "*" {
            return Ok(Self::All);
        }
        let mut types: Vec<String> = Vec::new();
        for t in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if !EVENT_TYPES.contains(&t) {
                return Err(format!(
                    "unknown event type {t:?} (known: all, {})",
                    EVENT_TYPES.join(", ")
                ));
            }
            if !types.iter().any(|k| k == t) {
                types.push(t.to_owned());
            }
        }
        if types.is_empty() {
            return Err("name at least one event type, or all".into());
        }
        Ok(Self::Only(types))
    }

    /// The stored form: `all`, or `,a,b,` (so one type is found with `LIKE '%,a,%'`).
    pub fn stored(&self) -> String {
        match self {
            Self::All => "all".into(),
            Self::Only(types) => format!(",{},", types.join(",")),
        }
    }

    /// From the stored form.
    pub fn from_stored(stored: &str) -> Self {
        match stored {
            "all" => Self::All,
            s => Self::Only(
                s.split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
        }
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.iter().any(|t| t == event_type),
        }
    }

    /// For people: `all` or `a,b`.
    pub fn display(&self) -> String {
        match self {
            Self::All => "all".into(),
            Self::Only(types) => types.join(","),
        }
    }
}

/// Which endpoint URLs are allowed: `webhooks.allow_http` and `webhooks.allow_loopback`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UrlRules {
    /// `http://` to any (public) host: tests and demos.
    pub allow_http: bool,
    /// Loopback hosts (`127.0.0.0/8`, `::1`, `localhost`), over `http://` or `https://`:
    /// tests and a receiver on the same machine. Off by default.
    pub allow_loopback: bool,
}

/// Checks an endpoint URL (SSRF: the node must not be made to post into its own network).
/// It is parsed as a browser would (the `url` crate) and must be `https://` (or `http://`
/// with `allow_http`, or to loopback with `allow_loopback`), carry no user or password, and
/// name a host. An IPv4 host must be written as four decimal numbers (a decimal, octal, hex
/// or short form is refused), and an address host must be public ([`public_ip`]). A name is
/// not resolved here: the sender resolves it at send time and connects only to the public
/// addresses it resolves to (docs/design/webhooks.md), so a name pointed (or rebound) at an
/// internal address reaches nothing.
pub fn check_url(raw: &str, rules: UrlRules) -> Result<(), String> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) || raw.len() > 2000 {
        return Err("the URL has spaces or control characters, or is too long".into());
    }
    let url = url::Url::parse(raw).map_err(|_| "the URL must start with https://".to_owned())?;
    let written = written_host(raw).unwrap_or_default();
    if written.is_empty() || !url.username().is_empty() || url.password().is_some() {
        return Err("the URL needs a host (and no user or password)".into());
    }
    let loopback = match url.host() {
        None => return Err("the URL needs a host (and no user or password)".into()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(v4)) => {
            if written != v4.to_string() {
                return Err("write an IPv4 address as four decimal numbers (a.b.c.d)".into());
            }
            v4.is_loopback()
        }
        Some(url::Host::Ipv6(v6)) => v6.is_loopback(),
    };
    if loopback && !rules.allow_loopback {
        return Err(
            "the URL names a loopback host; webhooks go to public endpoints (loopback only \
             with webhooks.allow_loopback)"
                .into(),
        );
    }
    match url.scheme() {
        "https" => {}
        "http" if loopback || rules.allow_http => {}
        "http" => {
            return Err(
                "the URL must be https:// (http:// only to an allowed loopback host, or with \
                 webhooks.allow_http)"
                    .into(),
            )
        }
        _ => return Err("the URL must start with https://".into()),
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        _ => None,
    };
    if ip.is_some_and(|ip| !public_ip(ip, rules.allow_loopback)) {
        return Err(
            "the URL names a private, link-local, reserved or unspecified address; webhooks \
             go to public endpoints"
                .into(),
        );
    }
    Ok(())
}

/// `scheme://host[:port]` of an endpoint URL, for the audit log: its path and query may
/// carry a token, so they are never recorded.
pub fn scheme_and_host(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(url) => {
            let host = url.host_str().unwrap_or_default();
            match url.port() {
                Some(port) => format!("{}://{host}:{port}", url.scheme()),
                None => format!("{}://{host}", url.scheme()),
            }
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// The host as written in `raw` (between `://` and the port, path, query or fragment),
/// lower-cased; `None` when there is no `://` or there is a user part (both refused: the
/// parser would otherwise take `https:///x` as host `x`, or `https:\\h` as `https://h`).
fn written_host(raw: &str) -> Option<String> {
    let rest = raw.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#', '\\']).next()?;
    if authority.contains('@') {
        return None;
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    Some(host.to_ascii_lowercase())
}

/// Whether a webhook may be sent to `ip`: not unspecified, private, shared (CGN),
/// link-local, reserved, benchmarking, multicast or IPv4-mapped/compatible, and not
/// loopback unless `allow_loopback`; a NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address
/// is judged by the IPv4 address it carries. The same rule holds when a URL is added and
/// for every address a host name resolves to when it is sent.
pub fn public_ip(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4, allow_loopback),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6.is_loopback() {
                return allow_loopback;
            }
            if s[..6] == [0; 6] || s[..6] == [0, 0, 0, 0, 0, 0xffff] {
                // ::, ::a.b.c.d (compatible) and ::ffff:a.b.c.d (mapped): never an endpoint.
                return false;
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return public_v4(embedded_v4(s[6], s[7]), false);
            }
            if s[0] == 0x2002 {
                return public_v4(embedded_v4(s[1], s[2]), false);
            }
            // fc00::/7 unique local, fe80::/10 link-local, ff00::/8 multicast.
            !((s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xff00) == 0xff00)
        }
    }
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

fn public_v4(v4: Ipv4Addr, allow_loopback: bool) -> bool {
    let [a, b, c, _] = v4.octets();
    if a == 127 {
        return allow_loopback;
    }
    !(a == 0
        || a == 10
        || (a == 100 && (b & 0xc0) == 64)
        || (a == 169 && b == 254)
        || (a == 172 && (b & 0xf0) == 16)
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 168)
        || (a == 198 && (b & 0xfe) == 18)
        || a >= 224)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn filters_parse_store_and_match() {
        let f = EventFilter::parse("account.locked, password.reset,account.locked").unwrap();
        assert_eq!(f.stored(), ",account.locked,password.reset,");
        assert_eq!(EventFilter::from_stored(&f.stored()), f);
        assert!(f.matches("password.reset"));
        assert!(!f.matches("password.changed"));
        assert!(EventFilter::parse("all").unwrap().matches("device.new"));
        assert!(EventFilter::parse("account.deleted").is_err());
        assert!(EventFilter::parse(" , ").is_err());
    }

    #[test]
    fn urls_are_https_and_public_and_loopback_only_when_allowed() {
        let strict = UrlRules::default();
        let lo = UrlRules {
            allow_loopback: true,
            ..UrlRules::default()
        };
        let http = UrlRules {
            allow_http: true,
            ..UrlRules::default()
        };
        assert!(check_url("https://hooks.example.com/in", strict).is_ok());
        assert!(check_url("https://93.184.215.14/in", strict).is_ok());
        assert!(check_url("https://[2606:4700::1]/in", strict).is_ok());
        for loopback in [
            "http://127.0.0.1:9000/in",
            "http://[::1]:9000/in",
            "http://localhost/in",
            "http://LOCALHOST./in",
            "https://a.localhost/in",
        ] {
            assert!(check_url(loopback, strict).is_err(), "{loopback}");
            assert!(check_url(loopback, lo).is_ok(), "{loopback}");
        }
        assert!(check_url("http://hooks.example.com/in", lo).is_err());
        assert!(check_url("http://hooks.example.com/in", http).is_ok());
        for refused in [
            // Decimal, octal, hex and short IPv4 forms (127.0.0.1, 10.0.0.8, 93.184.215.14).
            "http://2130706433/in",
            "http://0177.0.0.1/in",
            "http://0x7f.1/in",
            "http://127.1/in",
            "https://012.0.0.8/in",
            "https://1572394766/in",
            "https://0.0.0.0/in",
            "https://0.1.2.3/in",
            "https://10.0.0.8/in",
            "https://100.64.0.1/in",
            "https://100.127.255.255/in",
            "https://169.254.169.254/latest",
            "https://172.16.0.1/in",
            "https://172.31.255.255/in",
            "https://192.0.0.8/in",
            "https://192.168.1.1/in",
            "https://198.18.0.1/in",
            "https://198.19.255.255/in",
            "https://224.0.0.1/in",
            "https://240.0.0.1/in",
            "https://255.255.255.255/in",
            "https://[::]/in",
            "https://[fc00::1]/in",
            "https://[fd12::1]/in",
            "https://[fe80::1]/in",
            "https://[ff02::1]/in",
            "https://[::ffff:127.0.0.1]/in",
            "https://[::ffff:93.184.215.14]/in",
            "https://[::10.0.0.1]/in",
            "https://[64:ff9b::a00:1]/in",
            "https://[64:ff9b::127.0.0.1]/in",
            "https://[2002:a9fe:a9fe::1]/in",
            "https://[2002:7f00:1::]/in",
            "https://user:pw@hooks.example.com/",
            "https://user@hooks.example.com/",
            "https://hooks.example.com@10.0.0.1/",
            "ftp://hooks.example.com/",
            "hooks.example.com",
            "https:///in",
            "https://hooks.example.com/ in",
        ] {
            assert!(check_url(refused, lo).is_err(), "{refused}");
        }
        // Loopback inside a mapped or embedded form is refused even when loopback is allowed.
        assert!(check_url("http://[::ffff:127.0.0.1]/in", lo).is_err());
        assert!(check_url("https://[64:ff9b::5db8:d70e]/in", strict).is_ok());
        assert!(check_url("https://[2002:5db8:d70e::1]/in", strict).is_ok());
        assert!(check_url("https://100.128.0.1/in", strict).is_ok());
        assert!(check_url("https://172.32.0.1/in", strict).is_ok());
        assert!(check_url("https://198.20.0.1/in", strict).is_ok());
    }

    #[test]
    fn audit_records_scheme_and_host_only() {
        assert_eq!(
            scheme_and_host("https://hooks.example.com:8443/in/T0KEN?sig=abc#x"),
            "https://hooks.example.com:8443"
        );
        assert_eq!(
            scheme_and_host("https://Hooks.Example.com/path?token=s3cret"),
            "https://hooks.example.com"
        );
    }

    #[test]
    fn every_documented_type_has_an_audit_kind() {
        let kinds = [
            AuditKind::AccountCreated,
            AuditKind::AccountLocked,
            AuditKind::AccountUnlocked,
            AuditKind::PasswordChanged,
            AuditKind::PasswordReset,
            AuditKind::NotMe,
            AuditKind::DeviceNew,
            AuditKind::ContactChanged,
            AuditKind::FactorAdded,
            AuditKind::FactorRemoved,
            AuditKind::CardLinked,
            AuditKind::OidcGrantGiven,
            AuditKind::OidcRefreshReused,
            AuditKind::OidcCodeReplayed,
        ];
        let mapped: Vec<_> = kinds.iter().filter_map(|k| event_type(*k)).collect();
        assert_eq!(mapped, EVENT_TYPES);
        assert_eq!(event_type(AuditKind::SignIn), None);
    }
}
