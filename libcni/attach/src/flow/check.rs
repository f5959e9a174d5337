//! CHECK: the attachment still looks as ADD left it (spec: interfaces,
//! addresses, routes and rules match `prevResult`).

use cni_net::ifconfig;
use cni_net::netlink::Netlink;
use cni_net::netns::NetNs;
use cni_plugin::ipam;
use cni_plugin::skel::Request;
use cni_spec::error::{Error, Result};

use super::{BridgeNetwork, Checked};
use crate::check::{container_interface, expect_kind, expect_mac, expect_port};
use crate::names::host_veth_name;

pub fn check<N: BridgeNetwork>(net: &N, req: &Request) -> Result<()> {
    let prev = req
        .config
        .prev_result()?
        .ok_or_else(|| Error::invalid_config("required prevResult missing"))?;
    if ipam::wanted(req) {
        ipam::check(req)?;
    }
    let (cidx, cif) = container_interface(req, &prev)?;

    let ns = NetNs::open(req.netns_path()?)?;
    let mut ctr = Netlink::new_in(&ns)?;
    let mut host = Netlink::new()?;
    let opts = net.prepare(&mut host)?;

    let (_, bridge) = net.names();
    let br = host.link_by_name(bridge)?;
    expect_kind(&br, "bridge")?;
    net.check_devices(&mut host, &br, &prev)?;

    let c = ctr.link_by_name(&req.ifname)?;
    expect_kind(&c, "veth")?;
    expect_mac(&c, cif)?;

    // The host end prevResult names, else the one ADD would have named.
    let host_name = prev
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_none() && i.name != bridge)
        .map(|i| i.name.clone())
        .unwrap_or_else(|| host_veth_name(&req.container_id, &req.ifname));
    let h = expect_port(&mut host, &host_name, &br, &c)?;

    if !opts.iface.leave_down {
        ifconfig::verify(&mut ctr, c.index, &prev, cidx)?;
    }
    net.check_attachment(Checked {
        req,
        prev: &prev,
        host_veth: &h,
        container: &c,
        opts: &opts,
    })
}
