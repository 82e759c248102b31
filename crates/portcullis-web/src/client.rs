//! Who is asking: the client address (from the socket, or from `X-Forwarded-For` only when
//! the socket peer is a configured proxy) and the user agent.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use portcullis_core::service::ClientInfo;

use crate::AppState;

/// The request's [`ClientInfo`].
pub struct Client(pub ClientInfo);

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
        let ip = client_ip(peer, &parts.headers, &state.web.trusted_proxies);
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect());
        Ok(Client(ClientInfo {
            ip: ip.map(|i| i.to_string()),
            user_agent,
        }))
    }
}

/// The first address, walking `X-Forwarded-For` from the right, that is not a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut ip = peer;
    for hop in forwarded.iter().rev() {
        if !trusted.contains(&ip) {
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

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(Some(peer), &headers("1.2.3.4"), &[]), Some(peer));
    }

    #[test]
    fn trusted_proxy_hops_are_skipped() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let got = client_ip(Some(proxy), &headers("1.2.3.4, 198.51.100.7"), &[proxy]);
        assert_eq!(got, Some("198.51.100.7".parse().unwrap()));
        let inner: IpAddr = "10.0.0.2".parse().unwrap();
        let got = client_ip(Some(proxy), &headers("1.2.3.4, 10.0.0.2"), &[proxy, inner]);
        assert_eq!(got, Some("1.2.3.4".parse().unwrap()));
    }
}
