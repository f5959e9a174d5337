//! CHECK of a veth attachment to a bridge, shared by the plugins that make
//! one: the container interface `prevResult` names, and the pair and port
//! as ADD left them.

use cni_net::netlink::{format_mac, Link, Netlink};
use cni_plugin::skel::Request;
use cni_spec::error::{Error, Result};
use cni_spec::{CniResult, Interface};

/// The container interface of `prev` (index and entry): the one named
/// CNI_IFNAME with a sandbox, and that sandbox must be CNI_NETNS.
pub fn container_interface<'a>(
    req: &Request,
    prev: &'a CniResult,
) -> Result<(usize, &'a Interface)> {
    let netns = req.netns_path()?.to_string_lossy();
    let (idx, iface) = prev
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
    if iface.sandbox.as_deref() != Some(&*netns) {
        return Err(Error::io(format!(
            "sandbox in prevResult {:?} does not match CNI_NETNS {netns}",
            iface.sandbox.as_deref().unwrap_or_default()
        )));
    }
    Ok((idx, iface))
}

pub fn expect_kind(l: &Link, kind: &str) -> Result<()> {
    if l.kind.as_deref() != Some(kind) {
        return Err(Error::io(format!(
            "{} is not a {kind} (kind {})",
            l.name,
            l.kind.as_deref().unwrap_or("none")
        )));
    }
    Ok(())
}

/// The link's MAC is the one `prevResult` reported (when it reported one).
pub fn expect_mac(l: &Link, want: &Interface) -> Result<()> {
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

/// The host end `host_name` is a veth, a port of `bridge`, and the peer of
/// the container's interface `ctr`.
pub fn expect_port(host: &mut Netlink, host_name: &str, bridge: &Link, ctr: &Link) -> Result<Link> {
    let h = host.link_by_name(host_name)?;
    expect_kind(&h, "veth")?;
    if h.master != Some(bridge.index) {
        return Err(Error::io(format!(
            "{host_name} is not a port of bridge {}",
            bridge.name
        )));
    }
    if ctr.link != Some(h.index) {
        return Err(Error::io(format!(
            "container interface {} is not the peer of {host_name}",
            ctr.name
        )));
    }
    Ok(h)
}
