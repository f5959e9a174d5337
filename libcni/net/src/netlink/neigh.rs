//! Neighbour (ARP / NDP) entries and bridge FDB entries. Both are
//! RTM_NEWNEIGH messages; FDB entries are the AF_BRIDGE family. The VXLAN
//! overlay programs both statically: `ip neigh` entries for peer IPs and
//! FDB entries mapping MACs (or all-zero for flooding) to remote VTEPs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{format_mac, Mac, Netlink};
use cni_spec::error::Result;

/// Which table an entry lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NeighFamily {
    /// ARP.
    #[default]
    Inet,
    /// NDP.
    Inet6,
    /// Bridge / VXLAN forwarding database.
    Bridge,
}

/// How an add treats an existing entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighMode {
    /// Fail with EEXIST.
    Create,
    /// Overwrite it.
    Replace,
    /// Add one more (FDB only: several remotes for one MAC, as used for
    /// head-end replication of broadcast traffic on VXLAN).
    Append,
}

/// One neighbour or FDB entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Neighbour {
    pub family: NeighFamily,
    pub index: u32,
    /// NDA_DST: the neighbour's IP (ARP/NDP) or the remote VTEP (VXLAN FDB).
    pub ip: Option<IpAddr>,
    /// NDA_LLADDR.
    pub mac: Option<Mac>,
    /// NUD_PERMANENT: never expires, never probed.
    pub permanent: bool,
    /// NTF_SELF: the entry belongs to the device itself (a VXLAN device's
    /// own FDB), not to the bridge it is a port of.
    pub on_self: bool,
    /// NTF_MASTER: the entry belongs to the bridge this port is enslaved to.
    pub on_master: bool,
    pub vni: Option<u32>,
    /// Raw NUD_* state as read back.
    pub state: u16,
}

impl Neighbour {
    /// A permanent ARP/NDP entry: `ip neigh replace <ip> lladdr <mac> dev`.
    pub fn static_entry(index: u32, ip: IpAddr, mac: Mac) -> Self {
        Neighbour {
            family: if ip.is_ipv6() {
                NeighFamily::Inet6
            } else {
                NeighFamily::Inet
            },
            index,
            ip: Some(ip),
            mac: Some(mac),
            permanent: true,
            ..Neighbour::default()
        }
    }

    /// A VXLAN FDB entry: frames for `mac` go to the VTEP `remote`
    /// (`bridge fdb append <mac> dev <vxlan> dst <remote> self permanent`).
    /// With the all-zero MAC it is a flooding (head-end replication) entry.
    pub fn vxlan_fdb(index: u32, mac: Mac, remote: IpAddr) -> Self {
        Neighbour {
            family: NeighFamily::Bridge,
            index,
            ip: Some(remote),
            mac: Some(mac),
            permanent: true,
            on_self: true,
            ..Neighbour::default()
        }
    }
}

impl Netlink {
    pub fn add_neigh(&mut self, n: &Neighbour, mode: NeighMode) -> Result<()> {
        let flags = NLM_F_CREATE
            | match mode {
                NeighMode::Create => NLM_F_EXCL,
                NeighMode::Replace => NLM_F_REPLACE,
                NeighMode::Append => NLM_F_APPEND,
            };
        self.request(
            RouteNetlinkMessage::NewNeighbour(neigh_msg(n)),
            flags,
            format_args!("add {}", describe(n)),
        )?;
        Ok(())
    }

    /// Delete an entry; ENOENT ([`super::is_not_found`]) if absent.
    pub fn del_neigh(&mut self, n: &Neighbour) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelNeighbour(neigh_msg(n)),
            0,
            format_args!("delete {}", describe(n)),
        )?;
        Ok(())
    }

    /// Entries of one family, of one link or all.
    pub fn neighbours(
        &mut self,
        family: NeighFamily,
        index: Option<u32>,
    ) -> Result<Vec<Neighbour>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family_to_nl(family);
        // Let the kernel keep to one link (strict checking is on): an FDB
        // dump takes it in the header (the bridge port), a neighbour dump in
        // NDA_IFINDEX (its header index must stay 0). Otherwise the dump
        // holds ~3 FDB entries per port of every bridge on the host.
        if let Some(i) = index {
            match family {
                NeighFamily::Bridge => msg.header.ifindex = i,
                NeighFamily::Inet | NeighFamily::Inet6 => {
                    msg.attributes.push(NeighbourAttribute::IfIndex(i))
                }
            }
        }
        let replies = self.request(
            RouteNetlinkMessage::GetNeighbour(msg),
            NLM_F_DUMP,
            "list neighbours",
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => Some(parse_neigh(n)),
                _ => None,
            })
            .filter(|n| n.family == family && index.is_none_or(|i| n.index == i))
            .collect())
    }
}

fn describe(n: &Neighbour) -> String {
    let what = match n.family {
        NeighFamily::Bridge => "fdb entry",
        _ => "neighbour",
    };
    let mac = n.mac.map(|m| format_mac(&m)).unwrap_or_default();
    match n.ip {
        Some(ip) => format!("{what} {mac} {ip} on link #{}", n.index),
        None => format!("{what} {mac} on link #{}", n.index),
    }
}

fn family_to_nl(f: NeighFamily) -> AddressFamily {
    match f {
        NeighFamily::Inet => AddressFamily::Inet,
        NeighFamily::Inet6 => AddressFamily::Inet6,
        NeighFamily::Bridge => AddressFamily::Bridge,
    }
}

pub(super) fn neigh_msg(n: &Neighbour) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family_to_nl(n.family);
    msg.header.ifindex = n.index;
    if n.permanent {
        msg.header.state = NeighbourState::Permanent;
    }
    if n.on_self {
        msg.header.flags |= NeighbourFlags::Own;
    }
    if n.on_master {
        msg.header.flags |= NeighbourFlags::Controller;
    }
    if let Some(mac) = n.mac {
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    }
    if let Some(ip) = n.ip {
        let a = match ip {
            IpAddr::V4(v) => NeighbourAddress::Inet(v),
            IpAddr::V6(v) => NeighbourAddress::Inet6(v),
        };
        msg.attributes.push(NeighbourAttribute::Destination(a));
    }
    if let Some(vni) = n.vni {
        msg.attributes.push(NeighbourAttribute::Vni(vni));
    }
    msg
}

fn parse_neigh(msg: NeighbourMessage) -> Neighbour {
    let h = &msg.header;
    let mut n = Neighbour {
        family: match h.family {
            AddressFamily::Inet6 => NeighFamily::Inet6,
            AddressFamily::Bridge => NeighFamily::Bridge,
            _ => NeighFamily::Inet,
        },
        index: h.ifindex,
        permanent: h.state == NeighbourState::Permanent,
        on_self: h.flags.contains(NeighbourFlags::Own),
        on_master: h.flags.contains(NeighbourFlags::Controller),
        state: u16::from(h.state),
        ..Neighbour::default()
    };
    for attr in msg.attributes {
        match attr {
            NeighbourAttribute::Destination(a) => n.ip = neigh_ip(a),
            NeighbourAttribute::LinkLayerAddress(m) => n.mac = <Mac>::try_from(m.as_slice()).ok(),
            NeighbourAttribute::Vni(v) => n.vni = Some(v),
            _ => {}
        }
    }
    n
}

/// The bridge family's NDA_DST is parsed as raw bytes by the crate; tell
/// the family by length.
fn neigh_ip(a: NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v) => Some(IpAddr::V4(v)),
        NeighbourAddress::Inet6(v) => Some(IpAddr::V6(v)),
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice())
                .ok()
                .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            16 => <[u8; 16]>::try_from(b.as_slice())
                .ok()
                .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_flood_entry_is_self_permanent_bridge_family() {
        let n = Neighbour::vxlan_fdb(7, [0; 6], "192.0.2.9".parse().unwrap());
        let m = neigh_msg(&n);
        assert_eq!(m.header.family, AddressFamily::Bridge);
        assert_eq!(m.header.state, NeighbourState::Permanent);
        assert!(m.header.flags.contains(NeighbourFlags::Own));
        let back = parse_neigh(m);
        assert_eq!(back.ip, n.ip);
        assert_eq!(back.mac, Some([0; 6]));
        assert!(back.on_self && back.permanent);
    }

    #[test]
    fn raw_bridge_dst_is_decoded_by_length() {
        assert_eq!(
            neigh_ip(NeighbourAddress::Other(vec![10, 0, 0, 1])),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(neigh_ip(NeighbourAddress::Other(vec![1, 2, 3])), None);
    }
}
