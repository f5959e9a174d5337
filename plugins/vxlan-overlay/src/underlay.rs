//! The underlay: the host's interface and address the tunnel's UDP packets
//! leave from. Resolved on every ADD and STATUS (the host's network may have
//! changed since the last one): `underlayDevice` and/or `localIP` when
//! given, otherwise the interface of the host's default route and its first
//! global address, the way Docker picks its data-path address.

use std::net::IpAddr;

use cni_net::netlink::{AddrScope, Address, Link, Netlink, RT_TABLE_MAIN};
use cni_spec::{Error, Result};

use crate::config::{Conf, OVERHEAD_V4, OVERHEAD_V6};

/// Where the tunnel runs.
#[derive(Debug, Clone)]
pub struct Underlay {
    pub link: Link,
    pub local: IpAddr,
}

impl Underlay {
    /// The overlay MTU: configured, or the underlay's minus the
    /// encapsulation headers of the local address's family.
    pub fn overlay_mtu(&self, conf: &Conf) -> u32 {
        conf.mtu.unwrap_or_else(|| {
            let overhead = if self.local.is_ipv4() {
                OVERHEAD_V4
            } else {
                OVERHEAD_V6
            };
            self.link.mtu.saturating_sub(overhead).max(68)
        })
    }
}

/// Find the underlay in the host namespace `nl` is bound to. Failures are
/// I/O errors naming what is missing; STATUS reports them as code 50.
pub fn resolve(nl: &mut Netlink, conf: &Conf) -> Result<Underlay> {
    let family = conf.local_ip.or_else(|| conf.peers.first().copied());
    let link = match (&conf.underlay_device, conf.local_ip) {
        (Some(dev), _) => nl
            .link_by_name_opt(dev)?
            .ok_or_else(|| Error::io(format!("underlay device {dev:?} does not exist")))?,
        (None, Some(ip)) => {
            let a = nl
                .addresses(None)?
                .into_iter()
                .find(|a| a.addr.ip() == ip)
                .ok_or_else(|| Error::io(format!("localIP {ip} is on no interface of the host")))?;
            nl.link_by_index(a.index)?
        }
        (None, None) => default_route_link(nl, family.map(|f| f.is_ipv6()))?,
    };
    let addrs = nl.addresses(Some(link.index))?;
    let local = match conf.local_ip {
        Some(ip) if addrs.iter().any(|a| a.addr.ip() == ip) => ip,
        Some(ip) => {
            return Err(Error::io(format!(
                "localIP {ip} is not an address of underlay device {}",
                link.name
            )))
        }
        None => pick_address(&addrs, family.map(|f| f.is_ipv6())).ok_or_else(|| {
            Error::io(format!(
                "underlay device {} has no global address{}",
                link.name,
                family.map_or(String::new(), |f| format!(
                    " of the peers' family ({})",
                    if f.is_ipv4() { "IPv4" } else { "IPv6" }
                ))
            ))
        })?,
    };
    if !link.up {
        return Err(Error::io(format!("underlay device {} is down", link.name)));
    }
    Ok(Underlay { link, local })
}

/// The link of the default route in the main table: IPv4 first unless the
/// peers are IPv6.
fn default_route_link(nl: &mut Netlink, v6: Option<bool>) -> Result<Link> {
    let order: &[bool] = match v6 {
        Some(true) => &[true],
        Some(false) => &[false],
        None => &[false, true],
    };
    for &six in order {
        let found = nl.routes(Some(six))?.into_iter().find(|r| {
            r.dst.is_none_or(|d| d.prefix() == 0)
                && r.table.unwrap_or(RT_TABLE_MAIN) == RT_TABLE_MAIN
                && r.oif.is_some()
        });
        if let Some(index) = found.and_then(|r| r.oif) {
            return nl.link_by_index(index);
        }
    }
    Err(Error::io(
        "no underlay: set underlayDevice or localIP, or give the host a default route",
    ))
}

/// The first global (universe scope) address, of the wanted family or
/// IPv4 before IPv6.
fn pick_address(addrs: &[Address], v6: Option<bool>) -> Option<IpAddr> {
    let global = |six: bool| {
        addrs
            .iter()
            .filter(|a| a.scope == AddrScope::Universe && !a.tentative && !a.dad_failed)
            .map(|a| a.addr.ip())
            .find(|ip| ip.is_ipv6() == six)
    };
    match v6 {
        Some(six) => global(six),
        None => global(false).or_else(|| global(true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str, scope: AddrScope) -> Address {
        Address {
            index: 1,
            addr: s.parse().unwrap(),
            scope,
            label: None,
            tentative: false,
            dad_failed: false,
        }
    }

    #[test]
    fn global_ipv4_is_preferred_unless_peers_say_ipv6() {
        let addrs = [
            a("fe80::1/64", AddrScope::Link),
            a("2001:db8::5/64", AddrScope::Universe),
            a("192.0.2.5/24", AddrScope::Universe),
        ];
        assert_eq!(pick_address(&addrs, None).unwrap().to_string(), "192.0.2.5");
        assert_eq!(
            pick_address(&addrs, Some(true)).unwrap().to_string(),
            "2001:db8::5"
        );
        assert!(pick_address(&addrs[..1], None).is_none());
    }
}
