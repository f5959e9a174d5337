//! The routing mesh's hold on a host's overlay devices. The overlay is L2
//! only: its bridge never carries an address of a container's network. The
//! per-host daemon puts the host's mesh address (and the services' virtual
//! IPs) on it, under the network's lock, while a service uses the
//! network; so an address on the bridge is the claim, and the last port's
//! DEL (or GC) leaves the devices to the daemon, which removes them once
//! it took its addresses off and no port is left.

use cni_net::netlink::Netlink;
use cni_spec::Result;

/// Whether the mesh holds `bridge` (it carries an IPv4 address). No
/// bridge: nothing held.
pub fn held(nl: &mut Netlink, bridge: &str) -> Result<bool> {
    let Some(br) = nl.link_by_name_opt(bridge)? else {
        return Ok(false);
    };
    Ok(nl
        .addresses(Some(br.index))?
        .iter()
        .any(|a| a.addr.ip().is_ipv4()))
}
