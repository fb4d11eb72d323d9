//! Which address a request comes from, for the per-address throttles: the
//! TCP peer, or, when that peer is one of the `trusted_proxies`, the nearest
//! address in `X-Forwarded-For` that is not a trusted proxy. A client can
//! write anything in that header, so it is read only behind a proxy the
//! operator named.

use std::{
    convert::Infallible,
    net::{IpAddr, Ipv6Addr, SocketAddr},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{request::Parts, HeaderMap},
};

use crate::AppState;

/// The client address of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key the throttles count under. An IPv6 client usually holds a
    /// whole /64, so that is what counts as one address; IPv4-mapped IPv6
    /// addresses count as their IPv4 address.
    pub fn rate_key(self) -> IpAddr {
        match self.0 {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let prefix = u128::from(v6) & (u128::MAX << 64);
                    IpAddr::V6(Ipv6Addr::from(prefix))
                }
            },
        }
    }
}

/// The client behind `peer`: `peer` itself unless it is a trusted proxy,
/// else the rightmost `X-Forwarded-For` address that is not one (each
/// proxy appends the address it received the request from).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted_proxies.contains(&ip) => continue,
            Ok(ip) => return ip,
            // Garbage where an address should be: nothing further left can
            // be trusted, so the proxy itself is the best we know.
            Err(_) => return peer,
        }
    }
    peer
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Served with `into_make_service_with_connect_info`, every request
        // has its peer. Without it (a router driven in-process), all requests
        // share one key, which throttles more, never less.
        let peer = match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => addr.ip(),
            None => IpAddr::from([0, 0, 0, 0]),
        };
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        let headers = forwarded("203.0.113.9");
        assert_eq!(
            client_ip(ip("198.51.100.7"), &headers, &[]),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("198.51.100.7"), &headers, &[ip("10.0.0.1")]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // The client forged the first entry; the proxies appended the rest.
        let headers = forwarded("1.1.1.1, 203.0.113.9, 10.0.0.2");
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &proxies),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &proxies),
            ip("10.0.0.1"),
            "no header: the proxy is all we know"
        );
        let garbage = forwarded("203.0.113.9, not-an-ip");
        assert_eq!(
            client_ip(ip("10.0.0.1"), &garbage, &proxies),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn an_ipv6_client_counts_as_its_64_bit_prefix() {
        let a = ClientIp(ip("2001:db8:1:2:aaaa::1")).rate_key();
        let b = ClientIp(ip("2001:db8:1:2:bbbb::9")).rate_key();
        let other = ClientIp(ip("2001:db8:1:3::1")).rate_key();
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(ClientIp(ip("::ffff:192.0.2.1")).rate_key(), ip("192.0.2.1"));
    }
}
