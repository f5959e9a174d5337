//! The veth pair that connects a container to a bridge. The container end
//! is created directly in the container's namespace (a move takes a global
//! kernel lock and serialises concurrent ADDs); the host end gets a derived
//! name so DEL finds it without state.

use std::time::{Duration, Instant};

use cni_net::netlink::{self, BridgePortFlags, Link, Mac, Netlink, OperState, PortVlan, VethSpec};
use cni_net::netns::NetNs;
use cni_plugin::log;
use cni_plugin::rollback::Undo;
use cni_spec::error::{Error, Result};

/// The pair to create.
#[derive(Debug, Clone)]
pub struct VethRequest<'a> {
    /// Host end (see [`super::names::host_veth_name`]).
    pub host_name: String,
    /// Container end: CNI_IFNAME.
    pub ifname: String,
    pub netns: &'a NetNs,
    pub mtu: Option<u32>,
    /// MAC of the container end; None lets the kernel pick one.
    pub mac: Option<Mac>,
}

/// Both ends as the kernel reports them after creation.
#[derive(Debug, Clone)]
pub struct Pair {
    pub host: Link,
    pub container: Link,
}

/// Create the pair. `host` is a socket in the host namespace, `ctr` one in
/// the container's. An interface of that name already in the container is
/// an error, as the spec requires. The guard deletes the pair again unless
/// committed.
pub fn create(
    host: &mut Netlink,
    ctr: &mut Netlink,
    req: &VethRequest,
) -> Result<(Pair, Undo<'static>)> {
    let spec = VethSpec {
        name: req.host_name.clone(),
        mtu: req.mtu,
        mac: None,
        peer_name: req.ifname.clone(),
        peer_mtu: req.mtu,
        peer_mac: req.mac,
        peer_netns: Some(req.netns),
    };
    if let Err(e) = host.create_veth(&spec) {
        return Err(explain_create_error(e, ctr, req));
    }
    let guard = undo_create(req.host_name.clone());
    let host_link = host.link_by_name(&req.host_name)?;
    let container = ctr.link_by_name(&req.ifname)?;
    Ok((
        Pair {
            host: host_link,
            container,
        },
        guard,
    ))
}

fn explain_create_error(e: Error, ctr: &mut Netlink, req: &VethRequest) -> Error {
    if !netlink::is_exists(&e) {
        return e;
    }
    match ctr.link_by_name_opt(&req.ifname) {
        Ok(Some(_)) => Error::io(format!(
            "container {} already has an interface named {:?}",
            req.netns.path().display(),
            req.ifname
        )),
        _ => Error::io(format!(
            "host interface {:?} already exists: this container and ifname are attached \
             already (DEL it first)",
            req.host_name
        )),
    }
}

/// Deletes the veth pair unless committed: a failed ADD leaves no link
/// behind.
fn undo_create(host_name: String) -> Undo<'static> {
    Undo::boxed(move || {
        let res = Netlink::new().and_then(|mut nl| delete(&mut nl, &host_name));
        if let Err(e) = res {
            log::error(&format!("rollback: delete veth {host_name}: {e}"));
        }
    })
}

/// How the host end joins the bridge.
#[derive(Debug, Clone, Default)]
pub struct PortOpts {
    pub hairpin: bool,
    pub isolated: bool,
    /// Access VLAN (pvid, untagged); 0: none.
    pub vlan: u16,
    /// Tagged VLANs.
    pub trunk: Vec<u16>,
    /// Keep VLAN 1 (the bridge's default pvid) on the port when VLANs are
    /// configured.
    pub preserve_default_vlan: bool,
}

/// Enslave the host end to the bridge, apply the port options and bring it
/// up.
pub fn attach(
    host: &mut Netlink,
    host_index: u32,
    bridge_index: u32,
    opts: &PortOpts,
) -> Result<()> {
    host.enslave_port(host_index, bridge_index)?;
    if opts.hairpin || opts.isolated {
        host.set_bridge_port(
            host_index,
            &BridgePortFlags {
                hairpin: opts.hairpin.then_some(true),
                isolated: opts.isolated.then_some(true),
                ..BridgePortFlags::default()
            },
        )?;
    }
    program_vlans(host, host_index, opts)?;
    host.set_link_up(host_index)
}

fn program_vlans(host: &mut Netlink, index: u32, opts: &PortOpts) -> Result<()> {
    if opts.vlan == 0 && opts.trunk.is_empty() {
        return Ok(());
    }
    if !opts.preserve_default_vlan {
        let default = PortVlan {
            vid: 1,
            pvid: true,
            untagged: true,
        };
        match host.bridge_vlan_del(index, default) {
            Ok(()) => {}
            Err(e) if netlink::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    if opts.vlan != 0 {
        host.bridge_vlan_add(
            index,
            PortVlan {
                vid: opts.vlan,
                pvid: true,
                untagged: true,
            },
        )?;
    }
    for &vid in &opts.trunk {
        host.bridge_vlan_add(
            index,
            PortVlan {
                vid,
                pvid: false,
                untagged: false,
            },
        )?;
    }
    Ok(())
}

/// Wait until the link is operationally up (the peer is up and the kernel
/// has seen the carrier). A veth is up within microseconds of its peer, so
/// the first look nearly always succeeds; the back-off covers a loaded host.
pub fn wait_up(nl: &mut Netlink, index: u32, timeout: Duration) -> Result<Link> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        let l = nl.link_by_index(index)?;
        if l.oper_state == OperState::Up {
            return Ok(l);
        }
        if start.elapsed() >= timeout {
            return Err(Error::io(format!(
                "link {} did not come up within {timeout:?} (state {:?})",
                l.name, l.oper_state
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Delete the pair by its host end's name. Already gone (the namespace was
/// deleted and took the pair with it): success. Returns whether a link was
/// deleted.
pub fn delete(host: &mut Netlink, host_name: &str) -> Result<bool> {
    match host.delete_link_by_name(host_name) {
        Ok(()) => Ok(true),
        Err(e) if netlink::is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}
