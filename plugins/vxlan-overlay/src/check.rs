//! CHECK: the attachment still looks as ADD left it, and so does the
//! network's tunnel: the VXLAN device matches the config, is a port of the
//! bridge and floods to every peer.

use cni_attach::check::{self, expect_kind, expect_mac};
use cni_attach::names::host_veth_name;
use cni_net::ifconfig;
use cni_net::netlink::{Link, Netlink};
use cni_plugin::ipam;
use cni_plugin::skel::Request;
use cni_spec::{Error, Result};

use crate::config::Conf;
use crate::tunnel::{self, Want};
use crate::{offload, underlay};

pub fn check(req: &Request, conf: &Conf) -> Result<()> {
    let prev = req
        .config
        .prev_result()?
        .ok_or_else(|| Error::invalid_config("required prevResult missing"))?;
    if conf.l3 {
        ipam::check(req)?;
    }
    let (cidx, cif) = check::container_interface(req, &prev)?;

    let ns = cni_net::netns::NetNs::open(req.netns_path()?)?;
    let mut ctr = Netlink::new_in(&ns)?;
    let mut host = Netlink::new()?;
    let under = underlay::resolve(&mut host, conf)?;
    let want = Want::new(conf, &under);

    let br = host.link_by_name(&conf.bridge)?;
    expect_kind(&br, "bridge")?;
    check_tunnel(&mut host, conf, &want, &br)?;

    let c = ctr.link_by_name(&req.ifname)?;
    expect_kind(&c, "veth")?;
    expect_mac(&c, cif)?;
    if c.mtu != want.mtu {
        return Err(Error::io(format!(
            "{} has MTU {}, the overlay's is {}",
            c.name, c.mtu, want.mtu
        )));
    }
    let host_name = host_veth_name(&req.container_id, &req.ifname);
    check::expect_port(&mut host, &host_name, &br, &c)?;
    ifconfig::verify(&mut ctr, c.index, &prev, cidx)
}

fn check_tunnel(host: &mut Netlink, conf: &Conf, want: &Want, br: &Link) -> Result<()> {
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
    if conf.disable_tx_csum && offload::tx_checksum(&conf.vxlan)? {
        return Err(Error::io(format!(
            "{} has tx checksum offload on",
            conf.vxlan
        )));
    }
    Ok(())
}
