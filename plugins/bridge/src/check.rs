//! CHECK: the attachment still looks as ADD left it (spec: interfaces,
//! addresses, routes and rules match `prevResult`).

use libcni::attach::names::host_veth_name;
use libcni::ifconfig;
use libcni::netlink::{format_mac, Link, Netlink};
use libcni::netns::NetNs;
use libcni::skel::Request;
use libcni::spec::{CniResult, Interface};
use libcni::{ipam, Error, Result};

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
    let netns_path = crate::container_netns(req)?;
    let netns_text = netns_path.to_string_lossy();
    let (cidx, cif) = prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == req.ifname && i.sandbox.is_some())
        .ok_or_else(|| {
            Error::io(format!(
                "prevResult has no container interface {:?}",
                req.ifname
            ))
        })?;
    if cif.sandbox.as_deref() != Some(&*netns_text) {
        return Err(Error::io(format!(
            "sandbox in prevResult {:?} does not match CNI_NETNS {netns_text}",
            cif.sandbox.as_deref().unwrap_or_default()
        )));
    }

    let ns = NetNs::open(netns_path)?;
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
    let h = host.link_by_name(&host_name)?;
    expect_kind(&h, "veth")?;
    if h.master != Some(br.index) {
        return Err(Error::io(format!(
            "{host_name} is not a port of bridge {}",
            conf.bridge
        )));
    }
    if c.link != Some(h.index) {
        return Err(Error::io(format!(
            "container interface {} is not the peer of {host_name}",
            req.ifname
        )));
    }

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

fn expect_kind(l: &Link, kind: &str) -> Result<()> {
    if l.kind.as_deref() != Some(kind) {
        return Err(Error::io(format!(
            "{} is not a {kind} (kind {})",
            l.name,
            l.kind.as_deref().unwrap_or("none")
        )));
    }
    Ok(())
}

fn expect_mac(l: &Link, want: &Interface) -> Result<()> {
    let Some(w) = &want.mac else {
        return Ok(());
    };
    let have = l.mac.as_ref().map(format_mac).unwrap_or_default();
    if !have.eq_ignore_ascii_case(w) {
        return Err(Error::io(format!(
            "{} has MAC {have}, prevResult says {w}",
            l.name
        )));
    }
    Ok(())
}
