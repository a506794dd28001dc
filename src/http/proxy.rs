//! Who a request is from when a reverse proxy stands in front of the gateway
//! (`gateway.trustedProxies`, `gateway.allowRealIpFallback`), as the original attributes it:
//! a peer that is not a configured proxy is the client, and its forwarded-client headers are
//! refused (they cannot be checked); a configured proxy's `X-Forwarded-For` is read right to
//! left, skipping loopback and proxy hops, and the first other hop is the client. `Forwarded`
//! (RFC 7239) is never parsed: it only counts as evidence of a proxy.

use std::net::{IpAddr, Ipv6Addr};

/// An address block: an IP and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// IPv4-mapped IPv6 addresses are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Cidr {
    /// `10.0.0.0/8`, `fd00::/8`, or a single address; `None` when malformed.
    pub fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let raw: IpAddr = ip.parse().ok()?;
        let mapped = matches!(raw, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
        let addr = canonical(raw);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
            Some(p) if mapped => p.checked_sub(96).filter(|p| *p <= 32)?,
            Some(p) if p <= max => p,
            Some(_) => return None,
        };
        Some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// `gateway.trustedProxies` and `gateway.allowRealIpFallback`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    pub nets: Vec<Cidr>,
    /// Read `X-Real-IP` when `X-Forwarded-For` names no client.
    pub real_ip_fallback: bool,
}

impl TrustedProxies {
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(peer))
    }
}

/// The forwarded-client headers of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// Any proxy evidence: `Forwarded`, `X-Forwarded-*`, `X-Real-IP`, Tailscale identity.
    pub present: bool,
    /// The first `X-Forwarded-For`.
    pub forwarded_for: Option<String>,
    pub real_ip: Option<String>,
}

/// Whose request it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    /// The peer itself, no proxy involved.
    Direct(IpAddr),
    /// The client a trusted proxy named.
    Proxied(IpAddr),
    /// Proxy evidence that cannot be attributed: from a peer that is not a trusted proxy, or a
    /// trusted proxy that named no client other than loopback or proxies. Refused (403).
    Unattributable,
}

impl Attribution {
    /// The client's address, when known.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Attribution::Direct(ip) | Attribution::Proxied(ip) => Some(ip),
            Attribution::Unattributable => None,
        }
    }
}

/// One hop: trimmed, port stripped (`[v6]:p`, `1.2.3.4:p`), canonical; `None` when not an IP.
fn hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok().map(canonical);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // `1.2.3.4:port` (an IPv6 address without brackets parsed above).
    let (ip, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The rightmost hop of a list that is neither loopback nor a trusted proxy.
fn rightmost_client(list: &str, proxies: &TrustedProxies) -> Option<IpAddr> {
    list.rsplit(',').filter_map(hop).find(|ip| {
        !ip.is_loopback() && !proxies.trusts(*ip) && *ip != IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    })
}

/// Attributes a request from `peer` carrying `fwd`.
pub fn attribute(peer: IpAddr, fwd: &Forwarded, proxies: &TrustedProxies) -> Attribution {
    let peer = canonical(peer);
    // A local client (the CLI on the gateway host) is itself even where loopback is a
    // trusted proxy; only what a proxy forwards is attributed.
    if !fwd.present && peer.is_loopback() {
        return Attribution::Direct(peer);
    }
    if !proxies.trusts(peer) {
        return if fwd.present {
            Attribution::Unattributable
        } else {
            Attribution::Direct(peer)
        };
    }
    let from_xff = fwd
        .forwarded_for
        .as_deref()
        .and_then(|l| rightmost_client(l, proxies));
    let client = from_xff.or_else(|| {
        fwd.real_ip
            .as_deref()
            .filter(|_| proxies.real_ip_fallback)
            .and_then(|l| rightmost_client(l, proxies))
    });
    match client {
        Some(ip) => Attribution::Proxied(ip),
        None => Attribution::Unattributable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str], fallback: bool) -> TrustedProxies {
        TrustedProxies {
            nets: list.iter().map(|s| Cidr::parse(s).unwrap()).collect(),
            real_ip_fallback: fallback,
        }
    }

    fn fwd(xff: Option<&str>, real: Option<&str>) -> Forwarded {
        Forwarded {
            present: xff.is_some() || real.is_some(),
            forwarded_for: xff.map(str::to_owned),
            real_ip: real.map(str::to_owned),
        }
    }

    #[test]
    fn blocks() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.2.3.4")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.9.9.9")));
        assert_eq!(Cidr::parse("::ffff:10.0.0.0/104"), Some(c));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        for bad in [
            "",
            "10.0.0.0/33",
            "nope",
            "1.2.3.4/-1",
            "::/129",
            "::ffff:1.2.3.4/95",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_originals_attribution() {
        let p = proxies(&["127.0.0.1", "10.0.0.0/8"], false);
        // Not a proxy: the peer, unless it forwards.
        assert_eq!(
            attribute(ip("8.8.8.8"), &fwd(None, None), &p),
            Attribution::Direct(ip("8.8.8.8"))
        );
        assert_eq!(
            attribute(ip("8.8.8.8"), &fwd(Some("1.1.1.1"), None), &p),
            Attribution::Unattributable
        );
        // A proxy: the rightmost hop that is neither loopback nor a proxy.
        assert_eq!(
            attribute(
                ip("127.0.0.1"),
                &fwd(Some("6.6.6.6, 203.0.113.7, 10.1.1.1, 127.0.0.1"), None),
                &p
            ),
            Attribution::Proxied(ip("203.0.113.7"))
        );
        assert_eq!(
            attribute(ip("10.0.0.5"), &fwd(Some("[2001:db8::1]:443"), None), &p),
            Attribution::Proxied(ip("2001:db8::1"))
        );
        assert_eq!(
            attribute(ip("10.0.0.5"), &fwd(Some("198.51.100.2:5555"), None), &p),
            Attribution::Proxied(ip("198.51.100.2"))
        );
        // Nothing but loopback and proxies, or junk: unattributable.
        assert_eq!(
            attribute(
                ip("127.0.0.1"),
                &fwd(Some("127.0.0.1, 10.0.0.1, junk"), None),
                &p
            ),
            Attribution::Unattributable
        );
        assert_eq!(
            attribute(ip("10.0.0.5"), &fwd(None, None), &p),
            Attribution::Unattributable
        );
        // A loopback peer forwarding nothing is a local client.
        assert_eq!(
            attribute(ip("127.0.0.1"), &fwd(None, None), &p),
            Attribution::Direct(ip("127.0.0.1"))
        );
        // X-Real-IP only when allowed.
        assert_eq!(
            attribute(ip("127.0.0.1"), &fwd(None, Some("192.0.2.9")), &p),
            Attribution::Unattributable
        );
        let f = proxies(&["127.0.0.1"], true);
        assert_eq!(
            attribute(ip("127.0.0.1"), &fwd(None, Some("192.0.2.9")), &f),
            Attribution::Proxied(ip("192.0.2.9"))
        );
    }
}
