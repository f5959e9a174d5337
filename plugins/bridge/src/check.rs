//! CHECK: the attachment still looks as ADD left it (spec: interfaces,
//! addresses, routes and rules match `prevResult`).

use cni_attach::check::{self, expect_kind, expect_mac};
use cni_attach::names::host_veth_name;
use cni_net::ifconfig;
use cni_net::netlink::{Link, Netlink};
use cni_plugin::ipam;
use cni_plugin::skel::Request;
use cni_spec::CniResult;
use cni_spec::{Error, Result};

use crate::config::Conf;
use crate::firewall;

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

    let br = host.link_by_name(&conf.bridge)?;
    expect_kind(&br, "bridge")?;
    if let Some(want) = prev.interfaces.iter().find(|i| i.name == conf.bridge) {
        expect_mac(&br, want)?;
    }

    let c = ctr.link_by_name(&req.ifname)?;
    expect_kind(&c, "veth")?;
    expect_mac(&c, cif)?;

    let host_name = prev
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_none() && i.name != conf.bridge)
        .map(|i| i.name.clone())
        .unwrap_or_else(|| host_veth_name(&req.container_id, &req.ifname));
    let h = check::expect_port(&mut host, &host_name, &br, &c)?;

    if !conf.disable_container_interface {
        ifconfig::verify(&mut ctr, c.index, &prev, cidx)?;
    }
    check_rules(req, conf, &prev, &h, &c)
}

fn check_rules(
    req: &Request,
    conf: &Conf,
    prev: &CniResult,
    host_veth: &Link,
    ctr: &Link,
) -> Result<()> {
    if let Some(fw) = firewall::network(conf, prev) {
        firewall::check_network(&fw)?;
    }
    if conf.macspoofchk {
        let mac = ctr.mac.unwrap_or_default();
        firewall::check_spoofcheck(
            &conf.network,
            &req.container_id,
            &req.ifname,
            &host_veth.name,
            &mac,
        )?;
    }
    Ok(())
}
