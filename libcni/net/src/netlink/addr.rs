//! Interface addresses (IPv4 and IPv6).

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::{IpNetwork, Ipv4Network};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::Netlink;
use cni_spec::error::Result;

/// One address of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    /// The address with its prefix length, host bits kept (10.1.2.3/24).
    pub addr: IpNetwork,
    pub scope: AddrScope,
    pub label: Option<String>,
    /// IPv6 duplicate address detection is still running: the address
    /// cannot be used as a source yet.
    pub tentative: bool,
    pub dad_failed: bool,
}

/// How [`Netlink::add_address_with`] adds an address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrOptions {
    /// Update an existing entry instead of failing with EEXIST.
    pub replace: bool,
    /// IPv6: skip duplicate address detection (IFA_F_NODAD), so the address
    /// is usable at once instead of tentative for about 2 s. Only for
    /// addresses unique by construction (a gateway we own); ignored for IPv4.
    pub nodad: bool,
}

/// Address scope (ifa_scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrScope {
    Universe,
    Site,
    Link,
    Host,
    Other(u8),
}

impl Netlink {
    /// Addresses of one link (or of all links with None), both families.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Address>> {
        let mut msg = AddressMessage::default();
        // With strict checking on, the kernel filters by ifindex itself.
        msg.header.index = index.unwrap_or(0);
        let what = match index {
            Some(i) => format!("list addresses of link #{i}"),
            None => "list addresses".to_string(),
        };
        let replies = self.request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP, what)?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => parse_address(a),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }

    /// Add `addr` to a link. EEXIST if present, unless `replace`, which
    /// also updates an existing entry (concurrent ADDs on a shared bridge).
    pub fn add_address(&mut self, index: u32, addr: IpNetwork, replace: bool) -> Result<()> {
        self.add_address_with(
            index,
            addr,
            AddrOptions {
                replace,
                ..AddrOptions::default()
            },
        )
    }

    /// Add `addr` to a link as `opts` says (see [`AddrOptions`]).
    pub fn add_address_with(
        &mut self,
        index: u32,
        addr: IpNetwork,
        opts: AddrOptions,
    ) -> Result<()> {
        let flags = if opts.replace {
            NLM_F_CREATE | NLM_F_REPLACE
        } else {
            NLM_F_CREATE | NLM_F_EXCL
        };
        let mut msg = address_msg(index, addr, true);
        if opts.nodad && addr.is_ipv6() {
            msg.header.flags |= AddressHeaderFlags::Nodad;
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            flags,
            format_args!("add address {addr} to link #{index}"),
        )?;
        Ok(())
    }

    /// Remove `addr`; EADDRNOTAVAIL ([`super::is_not_found`]) if absent.
    pub fn del_address(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelAddress(address_msg(index, addr, false)),
            0,
            format_args!("delete address {addr} from link #{index}"),
        )?;
        Ok(())
    }
}

pub(super) fn address_msg(index: u32, addr: IpNetwork, with_broadcast: bool) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = addr.prefix();
    msg.header.scope = AddressScope::Universe;
    let ip = addr.ip();
    match ip {
        IpAddr::V4(v4) => {
            msg.header.family = AddressFamily::Inet;
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS the
            // peer's on point-to-point links, else the same.
            msg.attributes.push(AddressAttribute::Local(ip));
            msg.attributes.push(AddressAttribute::Address(ip));
            if with_broadcast {
                if let Some(b) = broadcast(v4, addr.prefix()) {
                    msg.attributes.push(AddressAttribute::Broadcast(b));
                }
            }
        }
        IpAddr::V6(_) => {
            msg.header.family = AddressFamily::Inet6;
            msg.attributes.push(AddressAttribute::Address(ip));
        }
    }
    msg
}

/// The IPv4 broadcast address `ip` sets (as `ip addr add ... brd +`); none
/// for /31 and /32, which have no broadcast.
fn broadcast(ip: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    if prefix >= 31 {
        return None;
    }
    Ipv4Network::new(ip, prefix).ok().map(|n| n.broadcast())
}

fn parse_address(msg: AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut label = None;
    let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
    for attr in msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(ip),
            AddressAttribute::Address(ip) => address = Some(ip),
            AddressAttribute::Label(l) => label = Some(l),
            // The 32-bit attribute supersedes the 8-bit header field.
            AddressAttribute::Flags(f) => flags = f,
            _ => {}
        }
    }
    // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
    let ip = local.or(address)?;
    let addr = IpNetwork::new(ip, msg.header.prefix_len).ok()?;
    Some(Address {
        index: msg.header.index,
        addr,
        scope: match msg.header.scope {
            AddressScope::Universe => AddrScope::Universe,
            AddressScope::Site => AddrScope::Site,
            AddressScope::Link => AddrScope::Link,
            AddressScope::Host => AddrScope::Host,
            other => AddrScope::Other(u8::from(other)),
        },
        label,
        tentative: flags.contains(AddressFlags::Tentative),
        dad_failed: flags.contains(AddressFlags::Dadfailed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_prefix() {
        let ip: Ipv4Addr = "10.1.2.3".parse().unwrap();
        assert_eq!(broadcast(ip, 24), Some("10.1.2.255".parse().unwrap()));
        assert_eq!(broadcast(ip, 16), Some("10.1.255.255".parse().unwrap()));
        assert_eq!(broadcast(ip, 31), None);
        assert_eq!(broadcast(ip, 32), None);
    }

    #[test]
    fn v4_message_has_local_address_and_broadcast() {
        let msg = address_msg(5, "10.1.2.3/24".parse().unwrap(), true);
        assert_eq!(msg.header.index, 5);
        assert_eq!(msg.header.prefix_len, 24);
        assert_eq!(msg.header.family, AddressFamily::Inet);
        assert!(msg
            .attributes
            .contains(&AddressAttribute::Broadcast("10.1.2.255".parse().unwrap())));
        let parsed = parse_address(msg).unwrap();
        assert_eq!(parsed.addr, "10.1.2.3/24".parse::<IpNetwork>().unwrap());
    }

    #[test]
    fn v6_message_has_no_broadcast() {
        let msg = address_msg(2, "fd00::1/64".parse().unwrap(), true);
        assert_eq!(msg.header.family, AddressFamily::Inet6);
        assert_eq!(msg.attributes.len(), 1);
    }

    #[test]
    fn bad_prefix_from_kernel_is_skipped_not_panicking() {
        let mut msg = address_msg(2, "10.0.0.1/24".parse().unwrap(), false);
        msg.header.prefix_len = 99;
        assert!(parse_address(msg).is_none());
    }
}
