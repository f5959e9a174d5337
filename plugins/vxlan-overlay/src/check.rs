//! CHECK beyond the attachment (which `cni_attach::flow` checks): the
//! network's tunnel matches the config, is a port of the bridge and floods
//! to every peer, and the container has the overlay's MTU.

use cni_attach::flow::LinkOpts;
use cni_net::netlink::{Link, Netlink};
use cni_spec::{Error, Result};

use vxlan_overlay::config::Conf;
use vxlan_overlay::offload;
use vxlan_overlay::tunnel::{self, Want};

pub fn tunnel(host: &mut Netlink, conf: &Conf, want: &Want, br: &Link) -> Result<()> {
    let vx = host.link_by_name(&conf.vxlan)?;
    if let Some(why) = tunnel::mismatch(&vx, want) {
        return Err(Error::io(format!("{}: {why}", conf.vxlan)));
    }
    if vx.master != Some(br.index) || !vx.up {
        return Err(Error::io(format!(
            "{} is not an up port of bridge {}",
            conf.vxlan, conf.bridge
        )));
    }
    if conf.cluster {
        // The daemon owns the remote entries: nothing here to compare.
        return check_offload(conf);
    }
    let remotes = tunnel::flood_remotes(host, vx.index)?;
    if let Some(p) = want.peers.iter().find(|p| !remotes.contains(p)) {
        return Err(Error::io(format!(
            "{} does not flood to peer {p}",
            conf.vxlan
        )));
    }
    if let Some(r) = remotes.iter().find(|r| !want.peers.contains(r)) {
        return Err(Error::io(format!(
            "{} floods to {r}, which is not a peer",
            conf.vxlan
        )));
    }
    check_offload(conf)
}

fn check_offload(conf: &Conf) -> Result<()> {
    if conf.disable_tx_csum && offload::tx_checksum(&conf.vxlan)? {
        return Err(Error::io(format!(
            "{} has tx checksum offload on",
            conf.vxlan
        )));
    }
    Ok(())
}

/// The container's interface has the overlay's MTU.
pub fn mtu(container: &Link, opts: &LinkOpts) -> Result<()> {
    match opts.mtu {
        Some(want) if container.mtu != want => Err(Error::io(format!(
            "{} has MTU {}, the overlay's is {want}",
            container.name, container.mtu
        ))),
        _ => Ok(()),
    }
}
