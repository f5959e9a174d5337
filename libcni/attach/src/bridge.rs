//! The bridge and its gateway address. Both are shared by every container
//! of the network, and concurrent ADDs race to create them: "already
//! exists" is success here (the reference plugin failed with "file exists"
//! at node boot, plugins PR #366).

use ipnetwork::IpNetwork;

use super::names::is_host_veth_name;
use cni_spec::error::{Error, Result};
use sha2::{Digest, Sha256};

use cni_net::netlink::{self, sysctl, BridgeSpec, Link, Mac, Netlink};

/// How the bridge should look.
#[derive(Debug, Clone, Default)]
pub struct BridgeOpts {
    pub name: String,
    /// Applied only when we create the bridge (an existing bridge keeps its
    /// MTU; its ports' MTU is what matters for traffic).
    pub mtu: Option<u32>,
    /// Needed by `vlan`/`vlanTrunk`.
    pub vlan_filtering: bool,
    /// Put the bridge in promiscuous mode.
    pub promisc: bool,
}

/// Find or create the bridge, and bring it up. Race-safe: if another ADD
/// creates it between our lookup and our create, we use theirs. A link of
/// that name that is not a bridge is an error (never reuse or delete it).
pub fn ensure_bridge(nl: &mut Netlink, opts: &BridgeOpts) -> Result<Link> {
    let mut br = match nl.link_by_name_opt(&opts.name)? {
        Some(l) => l,
        None => create(nl, opts)?,
    };
    if br.kind.as_deref() != Some("bridge") {
        return Err(Error::io(format!(
            "{:?} already exists but is not a bridge (kind {})",
            opts.name,
            br.kind.as_deref().unwrap_or("none")
        )));
    }
    if opts.vlan_filtering {
        nl.set_bridge_vlan_filtering(br.index, true)
            .map_err(vlan_unsupported)?;
    }
    if opts.promisc && !br.promisc {
        nl.set_promisc(br.index, true)?;
        br.promisc = true;
    }
    if !br.up {
        nl.set_link_up(br.index)?;
        br.up = true;
    }
    Ok(br)
}

fn create(nl: &mut Netlink, opts: &BridgeOpts) -> Result<Link> {
    let spec = BridgeSpec {
        name: opts.name.clone(),
        mtu: opts.mtu,
        // A bridge without a MAC of its own takes the lowest of its ports'
        // and changes it as containers come and go, which breaks the
        // neighbours' caches and CHECK of earlier results. Docker fixes it
        // the same way.
        mac: Some(random_mac(&opts.name)),
    };
    match nl.create_bridge(&spec) {
        Ok(()) => {
            // We own the routes of the bridge: router advertisements must
            // not add any. Best effort: IPv6 may be disabled.
            let _ = sysctl::set(&format!("net/ipv6/conf/{}/accept_ra", opts.name), "0");
        }
        Err(e) if netlink::is_exists(&e) => {}
        Err(e) => return Err(e),
    }
    nl.link_by_name(&opts.name)
}

/// A locally administered unicast MAC, unique enough per bridge and host:
/// hashed from the name, the time and the process id.
fn random_mac(name: &str) -> Mac {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    let d = h.finalize();
    let mut mac = [d[0], d[1], d[2], d[3], d[4], d[5]];
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// Kernels built without CONFIG_BRIDGE_VLAN_FILTERING answer EOPNOTSUPP.
fn vlan_unsupported(e: Error) -> Error {
    if netlink::errno(&e) == Some(nix::errno::Errno::EOPNOTSUPP as i32) {
        e.context("bridge VLAN filtering is not supported by this kernel (vlan, vlanTrunk)")
    } else {
        e
    }
}

/// Put the gateway address `gw` (gateway IP with the subnet's prefix) on the
/// bridge. Already there: success (a concurrent ADD put it there). Another
/// address of the same family in the way (any other IPv4 address; an
/// overlapping IPv6 one): replaced with `force`, an error otherwise, as the
/// reference's `forceAddress` does.
pub fn ensure_gateway(nl: &mut Netlink, bridge: &Link, gw: IpNetwork, force: bool) -> Result<()> {
    for a in nl.addresses(Some(bridge.index))? {
        if a.addr == gw {
            return Ok(());
        }
        if a.addr.is_ipv4() != gw.is_ipv4() {
            continue;
        }
        let conflicts = gw.is_ipv4() || a.addr.contains(gw.ip()) || gw.contains(a.addr.ip());
        if !conflicts {
            continue;
        }
        if !force {
            return Err(Error::io(format!(
                "{:?} already has an IP address different from {gw} ({}); set forceAddress to replace it",
                bridge.name, a.addr
            )));
        }
        match nl.del_address(bridge.index, a.addr) {
            Ok(()) => {}
            Err(e) if netlink::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    // Our gateway is unique by construction: skip IPv6 DAD, which would
    // keep it tentative (unreachable for containers) for about 2 s.
    let nodad = netlink::AddrOptions {
        replace: false,
        nodad: true,
    };
    match nl.add_address_with(bridge.index, gw, nodad) {
        Ok(()) => Ok(()),
        Err(e) if netlink::is_exists(&e) => Ok(()),
        Err(e) => Err(e.context(format_args!("set gateway address on {}", bridge.name))),
    }
}

/// Turn on forwarding in the calling thread's namespace (the host), for
/// the families that have a gateway. Done only when a gateway is wanted:
/// an L2-only bridge must not make the host a router.
pub fn enable_forwarding(v4: bool, v6: bool) -> Result<()> {
    if v4 {
        sysctl::set("net/ipv4/ip_forward", "1")?;
    }
    if v6 {
        sysctl::set("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

/// Our container ports on the bridge (links named like
/// [`super::names::host_veth_name`] and enslaved to it). The network's
/// shared rules stay while any is left.
///
/// The kernel lists only the bridge's ports, so this costs per port of the
/// bridge, not per link of the host.
pub fn our_ports(nl: &mut Netlink, bridge_index: u32) -> Result<Vec<Link>> {
    Ok(nl
        .links_with_master(bridge_index)?
        .into_iter()
        .filter(|l| is_host_veth_name(&l.name))
        .collect())
}

/// Whether a container port of ours other than `except` is on the bridge:
/// the question a DEL asks to decide if it is the network's last. Stops at
/// the first such port, so it does not grow with the containers on the
/// bridge. Consumes `nl` (its socket is closed mid-dump).
pub fn has_other_port(nl: Netlink, bridge_index: u32, except: Option<&str>) -> Result<bool> {
    nl.any_link_with_master(bridge_index, |l| {
        is_host_veth_name(&l.name) && Some(l.name.as_str()) != except
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_macs_are_local_unicast_and_differ() {
        let a = random_mac("br0");
        assert_eq!(a[0] & 0x03, 0x02, "locally administered, unicast");
        assert_ne!(a, random_mac("br1"));
    }
}
