//! Who is asking: the client address (from the socket, or from `X-Forwarded-For` only when
//! the socket peer is within a trusted proxy range), the network its limits count on, and
//! the user agent.
//!
//! Addresses are normalised first: an IPv4 client seen on a dual-stack listener arrives as
//! `::ffff:a.b.c.d` and is treated as `a.b.c.d` everywhere (proxy ranges, audit, limits).
//! An IPv4 client's limits count on its address; an IPv6 client's on its network (a /64 by
//! default: one subscriber gets a whole /64 and can pick a fresh address in it per request).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::{IpNet, Ipv6Net};
use portcullis_core::service::ClientInfo;

use crate::AppState;

/// The request's [`ClientInfo`].
pub struct Client(pub ClientInfo);

/// Whose `X-Forwarded-For` is believed, and how IPv6 clients are grouped for limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAddressing {
    /// Proxy ranges (a plain address is a /32 or /128).
    pub trusted_proxies: Vec<IpNet>,
    /// The prefix length an IPv6 client is limited by (`limits.ipv6_prefix`, 64 by default).
    pub ipv6_prefix: u8,
}

impl Default for ClientAddressing {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            ipv6_prefix: 64,
        }
    }
}

impl ClientAddressing {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The key a client's per-address limits count on: the IPv4 address, or the IPv6
    /// network of `ipv6_prefix` bits that holds the address (`2001:db8:1:2::/64`).
    pub fn limit_key(&self, ip: IpAddr) -> String {
        match normalise(ip) {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => Ipv6Net::new(v6, self.ipv6_prefix.min(128))
                .map(|net| net.trunc().to_string())
                .unwrap_or_else(|_| v6.to_string()),
        }
    }
}

/// Parses a trusted proxy: a CIDR range (`10.0.0.0/8`, `::1/128`) or a plain address. Host
/// bits in a range are an error (`10.0.0.1/8` is almost always a typo).
pub fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(normalise(ip)));
    }
    let net: IpNet = text
        .parse()
        .map_err(|_| format!("{text:?} is not an IP address or a CIDR range"))?;
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set: write the network, {}",
            net.trunc()
        ));
    }
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    })
}

/// `::ffff:a.b.c.d` is the IPv4 client `a.b.c.d`.
pub fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromRequestParts<AppState> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let addressing = &state.web.addressing;
        let ip = client_ip(peer, &parts.headers, addressing);
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect());
        Ok(Client(ClientInfo {
            ip: ip.map(|i| i.to_string()),
            limit_key: ip.map(|i| addressing.limit_key(i)),
            user_agent,
        }))
    }
}

/// The first address, walking `X-Forwarded-For` from the right, that is not within a
/// trusted proxy range; every address normalised.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    addressing: &ClientAddressing,
) -> Option<IpAddr> {
    let peer = normalise(peer?);
    if !addressing.trusts(peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .map(normalise)
        .collect();
    let mut ip = peer;
    for hop in forwarded.iter().rev() {
        if !addressing.trusts(ip) {
            break;
        }
        ip = *hop;
    }
    Some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    fn trusting(proxies: &[&str]) -> ClientAddressing {
        ClientAddressing {
            trusted_proxies: proxies.iter().map(|p| parse_proxy(p).unwrap()).collect(),
            ipv6_prefix: 64,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let peer = ip("203.0.113.9");
        let none = trusting(&[]);
        assert_eq!(
            client_ip(Some(peer), &headers("1.2.3.4"), &none),
            Some(peer)
        );
    }

    #[test]
    fn trusted_proxy_hops_are_skipped() {
        let proxy = ip("10.0.0.1");
        let got = client_ip(
            Some(proxy),
            &headers("1.2.3.4, 198.51.100.7"),
            &trusting(&["10.0.0.1"]),
        );
        assert_eq!(got, Some(ip("198.51.100.7")));
        let got = client_ip(
            Some(proxy),
            &headers("1.2.3.4, 10.0.0.2"),
            &trusting(&["10.0.0.1", "10.0.0.2"]),
        );
        assert_eq!(got, Some(ip("1.2.3.4")));
    }

    #[test]
    fn proxies_are_ranges() {
        let got = client_ip(
            Some(ip("10.20.30.40")),
            &headers("198.51.100.7, 10.1.2.3"),
            &trusting(&["10.0.0.0/8"]),
        );
        assert_eq!(got, Some(ip("198.51.100.7")));
        let got = client_ip(
            Some(ip("::1")),
            &headers("2001:db8::5"),
            &trusting(&["::1/128"]),
        );
        assert_eq!(got, Some(ip("2001:db8::5")));
        // Outside the range: the peer itself.
        let got = client_ip(
            Some(ip("11.0.0.1")),
            &headers("198.51.100.7"),
            &trusting(&["10.0.0.0/8"]),
        );
        assert_eq!(got, Some(ip("11.0.0.1")));
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        // A dual-stack listener sees the local proxy as ::ffff:127.0.0.1.
        let got = client_ip(
            Some(ip("::ffff:127.0.0.1")),
            &headers("198.51.100.7"),
            &trusting(&["127.0.0.1"]),
        );
        assert_eq!(got, Some(ip("198.51.100.7")));
        let got = client_ip(
            Some(ip("::ffff:203.0.113.9")),
            &HeaderMap::new(),
            &trusting(&[]),
        );
        assert_eq!(got, Some(ip("203.0.113.9")));
        // A range written in the mapped form matches IPv4 peers too.
        assert_eq!(
            parse_proxy("::ffff:10.0.0.0/104").unwrap(),
            parse_proxy("10.0.0.0/8").unwrap()
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_network() {
        let a = trusting(&[]);
        assert_eq!(a.limit_key(ip("2001:db8:1:2::1")), "2001:db8:1:2::/64");
        assert_eq!(
            a.limit_key(ip("2001:db8:1:2:ffff:1:2:3")),
            a.limit_key(ip("2001:db8:1:2::1"))
        );
        assert_ne!(
            a.limit_key(ip("2001:db8:1:3::1")),
            a.limit_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(a.limit_key(ip("203.0.113.9")), "203.0.113.9");
        assert_eq!(a.limit_key(ip("::ffff:203.0.113.9")), "203.0.113.9");
        let wide = ClientAddressing {
            ipv6_prefix: 48,
            ..a
        };
        assert_eq!(wide.limit_key(ip("2001:db8:1:2::1")), "2001:db8:1::/48");
    }

    #[test]
    fn bad_proxies_are_refused() {
        assert!(parse_proxy("10.0.0.1/8").is_err());
        assert!(parse_proxy("example.com").is_err());
        assert!(parse_proxy("10.0.0.0/33").is_err());
        assert_eq!(
            parse_proxy("10.0.0.7").unwrap(),
            "10.0.0.7/32".parse::<IpNet>().unwrap()
        );
    }
}
