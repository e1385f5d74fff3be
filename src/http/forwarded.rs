//! Who a request came from when it came through reverse proxies: the TCP
//! peer, unless the operator trusts it as a proxy (`--trusted-proxy`); then
//! the nearest address of `X-Forwarded-For` that is not itself a trusted
//! proxy. Each proxy appends the address it received the request from, so
//! reading the header from its right end, hop by hop, stops at the first
//! address no trusted proxy can vouch for: whatever a client writes into
//! the header itself lies to the left of it and is never believed.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The header a proxy appends the address it was reached from to.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// The reverse proxies whose `X-Forwarded-For` is believed; none by default,
/// and the header is then ignored.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts the proxies in `nets` (single addresses are `/32` or `/128`).
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`.
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address as recorded in the audit trail and the session
    /// list: the peer's `ip:port` when it is not a trusted proxy (or the
    /// header is absent or unreadable); otherwise the address the chain of
    /// trusted proxies received the request from (an IP, without port), or
    /// the leftmost when every hop is trusted.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> String {
        if !self.trusts(peer.ip()) {
            return peer.to_string();
        }
        // Several headers of the name make one list, in their order.
        let mut hops = Vec::new();
        for value in headers.get_all(FORWARDED_FOR) {
            let Ok(value) = value.to_str() else {
                return peer.to_string();
            };
            hops.extend(value.split(','));
        }
        let mut nearest = None;
        for hop in hops.into_iter().rev() {
            // An address a trusted proxy did not write ends the chain: what
            // lies beyond it cannot be checked.
            let Some(ip) = parse_hop(hop) else { break };
            nearest = Some(ip);
            if !self.trusts(ip) {
                break;
            }
        }
        nearest.map_or_else(|| peer.to_string(), |ip| ip.to_canonical().to_string())
    }
}

/// One hop of `X-Forwarded-For`: an IP, or an `ip:port` / `[ipv6]:port` as
/// some proxies write.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// Parses one `--trusted-proxy`: a CIDR range (`10.0.0.0/8`) or one address.
pub fn parse_trusted_proxy(s: &str) -> Result<IpNet, ipnet::AddrParseError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|e| s.parse::<IpAddr>().map(IpNet::from).map_err(|_| e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            nets.iter()
                .map(|n| parse_trusted_proxy(n).unwrap())
                .collect(),
        )
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let p = TrustedProxies::default();
        let h = headers(&["203.0.113.7"]);
        assert_eq!(p.client(peer("10.0.0.2:4000"), &h), "10.0.0.2:4000");
    }

    #[test]
    fn an_untrusted_peer_cannot_forward() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&["203.0.113.7"]);
        assert_eq!(p.client(peer("198.51.100.1:4000"), &h), "198.51.100.1:4000");
    }

    #[test]
    fn a_trusted_peer_names_the_client_it_was_reached_from() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&["203.0.113.7"]);
        assert_eq!(p.client(peer("10.0.0.2:4000"), &h), "203.0.113.7");
    }

    #[test]
    fn what_the_client_wrote_itself_is_not_believed() {
        let p = proxies(&["10.0.0.0/8"]);
        // The client sent `X-Forwarded-For: 1.2.3.4`; the proxy appended
        // the address it saw.
        let h = headers(&["1.2.3.4, 203.0.113.7"]);
        assert_eq!(p.client(peer("10.0.0.2:4000"), &h), "203.0.113.7");
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_followed_across_headers() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.9"]);
        let h = headers(&["1.2.3.4, 203.0.113.7", "192.0.2.9, 10.1.1.1"]);
        assert_eq!(p.client(peer("10.0.0.2:4000"), &h), "203.0.113.7");
    }

    #[test]
    fn every_hop_trusted_gives_the_leftmost() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&["10.9.9.9, 10.1.1.1"]);
        assert_eq!(p.client(peer("10.0.0.2:4000"), &h), "10.9.9.9");
    }

    #[test]
    fn an_unreadable_hop_ends_the_chain() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client(peer("10.0.0.2:4000"), &headers(&["203.0.113.7, nonsense"])),
            "10.0.0.2:4000"
        );
        assert_eq!(
            p.client(peer("10.0.0.2:4000"), &headers(&["nonsense, 10.3.3.3"])),
            "10.3.3.3"
        );
        assert_eq!(
            p.client(peer("10.0.0.2:4000"), &headers(&[""])),
            "10.0.0.2:4000"
        );
    }

    #[test]
    fn ports_and_mapped_addresses_are_understood() {
        let p = proxies(&["10.0.0.0/8", "2001:db8::/32"]);
        let h = headers(&["[2001:db8::1]:443, 203.0.113.7:5555"]);
        assert_eq!(p.client(peer("[::ffff:10.0.0.2]:4000"), &h), "203.0.113.7");
        let h = headers(&["::ffff:203.0.113.7"]);
        assert_eq!(p.client(peer("[2001:db8::5]:4000"), &h), "203.0.113.7");
    }

    #[test]
    fn trusted_proxies_parse_as_ranges_or_addresses() {
        assert_eq!(
            parse_trusted_proxy("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_trusted_proxy(" 127.0.0.1 ").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(parse_trusted_proxy("::1").unwrap().to_string(), "::1/128");
        for bad in ["", "10.0.0.0/33", "localhost", "10.0.0.1:80"] {
            assert!(parse_trusted_proxy(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// Whatever the header holds, the answer is the peer or an address
        /// parsed from it, never its raw text, and nothing panics.
        #[test]
        fn any_header_gives_the_peer_or_a_parsed_address(value in "[ -~]{0,80}") {
            let p = proxies(&["10.0.0.0/8"]);
            let Ok(v) = HeaderValue::from_str(&value) else { return Ok(()) };
            let mut h = HeaderMap::new();
            h.insert(FORWARDED_FOR, v);
            let client = p.client(peer("10.0.0.2:4000"), &h);
            prop_assert!(
                client == "10.0.0.2:4000" || client.parse::<IpAddr>().is_ok(),
                "{client}"
            );
        }
    }
}
