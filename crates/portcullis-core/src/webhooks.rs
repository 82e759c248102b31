//! Security events out (issue 17): which audit events are also sent to webhook
//! subscribers, under which Standard Webhooks event type, and which endpoint URLs a
//! subscription may name. The events are taken from the audit events a unit of work
//! commits, so each is written (as one delivery row per matching subscription) in the
//! same transaction as the change it reports (docs/design/webhooks.md).

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

/// Checks an endpoint URL: `https://`, or `http://` to a loopback host, or any `http://`
/// when `allow_http` (tests and demos). A literal private, link-local, unspecified or
/// multicast address is refused (SSRF: the node must not be made to post into its own
/// network); a name is not resolved here, so an operator who points a name at an internal
/// address is trusted (only admins add subscriptions).
pub fn check_url(url: &str, allow_http: bool) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "the URL must start with https://".to_owned())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err("the URL needs a host (and no user or password)".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) || url.len() > 2000 {
        return Err("the URL has spaces or control characters, or is too long".into());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    let loopback = host.eq_ignore_ascii_case("localhost") || ip.is_some_and(|ip| ip.is_loopback());
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if loopback || allow_http => {}
        "http" => {
            return Err(
                "the URL must be https:// (http:// only to a loopback address, or with \
                 webhooks.allow_http)"
                    .into(),
            )
        }
        _ => return Err("the URL must start with https://".into()),
    }
    if let Some(ip) = ip.filter(|ip| !ip.is_loopback()) {
        if internal(ip) {
            return Err(
                "the URL names a private, link-local or unspecified address; webhooks go \
                 to public endpoints (or loopback)"
                    .into(),
            );
        }
    }
    Ok(())
}

fn internal(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                // 100.64.0.0/10, carrier-grade NAT.
                || (a == 100 && (b & 0xc0) == 64)
        }
        std::net::IpAddr::V6(v6) => {
            let [first, ..] = v6.segments();
            v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| internal(std::net::IpAddr::V4(v4)))
        }
    }
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
    fn urls_are_https_or_loopback_and_not_internal() {
        assert!(check_url("https://hooks.example.com/in", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/in", false).is_ok());
        assert!(check_url("http://[::1]:9000/in", false).is_ok());
        assert!(check_url("http://localhost/in", false).is_ok());
        assert!(check_url("http://hooks.example.com/in", false).is_err());
        assert!(check_url("http://hooks.example.com/in", true).is_ok());
        assert!(check_url("https://10.0.0.8/in", false).is_err());
        assert!(check_url("https://169.254.169.254/latest", false).is_err());
        assert!(check_url("https://[fe80::1]/in", false).is_err());
        assert!(check_url("https://user:pw@hooks.example.com/", false).is_err());
        assert!(check_url("ftp://hooks.example.com/", false).is_err());
        assert!(check_url("hooks.example.com", false).is_err());
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
        ];
        let mapped: Vec<_> = kinds.iter().filter_map(|k| event_type(*k)).collect();
        assert_eq!(mapped, EVENT_TYPES);
        assert_eq!(event_type(AuditKind::SignIn), None);
    }
}
