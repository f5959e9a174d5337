//! vxlan-overlay: Docker's multi-host `overlay` network as a CNI plugin.
//! Containers on different hosts share one L2 segment: on every host the
//! network has a bridge (`vxbr<vni>` unless `bridge` names one), a VXLAN
//! device (`vxlan<vni>`) enslaved to it, and one head-end replication entry
//! per peer host, so broadcast and unknown unicast reach every host and the
//! bridges learn where each container's MAC lives. Containers join the
//! bridge with a veth pair, exactly as in the bridge plugin (`attach`).
//!
//! - Control plane: a static `peers` list (like `weave connect`), no
//!   daemon. Every ADD reconciles the host with the config, so editing
//!   `peers` and running any ADD heals the tunnel (see `tunnel`).
//! - Addresses: one subnet spans the hosts; each host's IPAM hands out its
//!   own part (see `subnet`). The overlay is L2 only, like Docker's:
//!   no gateway on the bridge, no masquerade.
//! - Lifetime: the bridge and VXLAN device appear with the network's first
//!   container on a host and go with its last: the DEL that finds no port
//!   left removes them, as GC does once no valid attachment keeps a port.
//!   Both decisions run under the network's exclusive lock, as does ADD's
//!   reconcile-and-attach, so an ADD never attaches to a device that a
//!   concurrent DEL is removing, and concurrent ADDs on a fresh host
//!   converge on one bridge and one VXLAN device.
//! - MTU: the underlay's minus 50 (70 over IPv6) unless `mtu` is given, on
//!   the bridge, the VXLAN device and both veth ends.

mod check;
mod config;
mod offload;
mod subnet;
mod tunnel;
mod underlay;

use std::collections::HashSet;
use std::path::Path;
use std::thread;
use std::time::Duration;

use cni_attach::bridge::our_ports;
use cni_attach::container::{self, IfaceOpts};
use cni_attach::lock::NetworkLock;
use cni_attach::names::host_veth_name;
use cni_attach::veth::{self, PortOpts, VethRequest};
use cni_net::netlink::{format_mac, Link, Netlink};
use cni_net::netns::NetNs;
use cni_plugin::ipam;
use cni_plugin::skel::{self, About, Plugin, Request};
use cni_spec::error::ErrorList;
use cni_spec::{Attachment, CniResult, Interface};
use cni_spec::{Error, Result};

use config::Conf;
use tunnel::Want;

const ABOUT: About = About {
    name: "vxlan-overlay",
    description: "connects containers on many hosts to one L2 network over VXLAN \
                  (Docker overlay-network semantics)",
};

/// How long ADD waits for the host end of the veth to come up.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// Index of the container interface in `interfaces` (bridge, host veth,
/// container), as in the bridge plugin's results.
const CONTAINER_IF: usize = 2;

struct Overlay;

impl Plugin for Overlay {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
        let netns_path = req.netns_path()?;
        let netns = NetNs::open(netns_path)?;
        let mut host = Netlink::new()?;
        let mut ctr = Netlink::new_in(&netns)?;
        let under = underlay::resolve(&mut host, &conf)?;
        let want = Want::new(&conf, &under);
        let host_veth = host_veth_name(&req.container_id, &req.ifname);

        let ((br, pair, veth_guard), lease) = ipam::add_alongside(req, conf.l3, || {
            join_network(&conf, &want, &netns, &mut host, &mut ctr, &host_veth, req)
        })?;
        let (mut result, lease) = match lease {
            Some((r, lease)) => (r, Some(lease)),
            None => (CniResult::default(), None),
        };
        if conf.l3 && result.ips.is_empty() {
            return Err(Error::io("IPAM plugin returned no IP configuration"));
        }
        subnet::check_result(&conf.subnets, &result)?;
        for ip in &mut result.ips {
            ip.interface = Some(CONTAINER_IF);
        }
        container::configure(
            &netns,
            &mut ctr,
            &pair.container,
            &result,
            CONTAINER_IF,
            IfaceOpts::default(),
        )?;

        let host_link = veth::wait_up(&mut host, pair.host.index, LINK_UP_TIMEOUT)?;
        // A bridge's MAC follows its ports: read it after attaching ours.
        let br = host.link_by_index(br.index)?;
        let container_link = ctr.link_by_index(pair.container.index)?;
        result.interfaces = interfaces(&br, &host_link, &container_link, netns_path);

        veth_guard.commit();
        if let Some(l) = lease {
            l.commit();
        }
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let host_veth = host_veth_name(&req.container_id, &req.ifname);
        let mut errs = ErrorList::new();
        // Deleting a veth waits for the kernel (~20 ms); IPAM DEL runs
        // meanwhile. Without a namespace the pair may be gone already: fine.
        thread::scope(|s| {
            let link = s.spawn(|| {
                Netlink::new().and_then(|mut nl| veth::delete(&mut nl, &host_veth).map(drop))
            });
            if conf.l3 {
                errs.check(ipam::del(req));
            }
            errs.check(join(link));
        });
        errs.check(remove_network_if_unused(&conf, &HashSet::new(), false));
        errs.into_result()
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        check::check(req, &conf)
    }

    fn status(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let mut host = Netlink::new()?;
        underlay::resolve(&mut host, &conf).map_err(|e| Error::not_available(e.msg))?;
        if conf.l3 {
            ipam::status(req)?;
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let mut errs = ErrorList::new();
        if conf.l3 {
            errs.check(ipam::gc(req));
        }
        if let Some(valid) = errs.check(req.config.valid_attachments()).flatten() {
            let keep = port_names(&valid);
            errs.check(remove_network_if_unused(&conf, &keep, true));
        }
        errs.into_result()
    }
}

/// The veth pair (created before taking the lock: it needs nothing shared),
/// then, under the network's lock, the network's devices brought to the
/// config and our port attached. The guard removes the pair if ADD fails
/// later.
fn join_network(
    conf: &Conf,
    want: &Want,
    netns: &NetNs,
    host: &mut Netlink,
    ctr: &mut Netlink,
    host_veth: &str,
    req: &Request,
) -> Result<(Link, veth::Pair, cni_plugin::rollback::Undo<'static>)> {
    let (pair, guard) = veth::create(
        host,
        ctr,
        &VethRequest {
            host_name: host_veth.to_string(),
            ifname: req.ifname.clone(),
            netns,
            mtu: Some(want.mtu),
            mac: None,
        },
    )?;
    let _lock = NetworkLock::exclusive(&conf.network, &conf.bridge)?;
    let br = tunnel::ensure(host, conf, want)?;
    if conf.disable_tx_csum && offload::tx_checksum(&conf.vxlan)? {
        offload::set_tx_checksum(&conf.vxlan, false)?;
    }
    veth::attach(host, pair.host.index, br.index, &PortOpts::default())?;
    Ok((br, pair, guard))
}

/// Under the network's lock: with `prune`, delete our ports on the bridge
/// that belong to no attachment in `keep` (GC); then, if no port of ours is
/// left, remove the bridge and the VXLAN device.
fn remove_network_if_unused(conf: &Conf, keep: &HashSet<String>, prune: bool) -> Result<()> {
    let _lock = NetworkLock::exclusive(&conf.network, &conf.bridge)?;
    let mut nl = Netlink::new()?;
    if let Some(br) = nl.link_by_name_opt(&conf.bridge)? {
        let mut errs = ErrorList::new();
        let mut left = 0;
        for p in our_ports(&mut nl, br.index)? {
            if prune && !keep.contains(&p.name) {
                errs.check(veth::delete(&mut nl, &p.name));
            } else {
                left += 1;
            }
        }
        errs.into_result()?;
        if left > 0 {
            return Ok(());
        }
    }
    tunnel::remove(&mut nl, conf)
}

/// The host veth names of the attachments GC must keep.
fn port_names(valid: &[Attachment]) -> HashSet<String> {
    valid
        .iter()
        .map(|a| host_veth_name(&a.container_id, &a.ifname))
        .collect()
}

fn iface(link: &Link, sandbox: Option<&Path>) -> Interface {
    Interface {
        name: link.name.clone(),
        mac: link.mac.as_ref().map(format_mac),
        mtu: sandbox.map(|_| link.mtu),
        sandbox: sandbox.map(|p| p.to_string_lossy().into_owned()),
        ..Interface::default()
    }
}

/// bridge, host veth, container interface (with its namespace and MTU).
fn interfaces(bridge: &Link, host: &Link, container: &Link, netns: &Path) -> Vec<Interface> {
    vec![
        iface(bridge, None),
        iface(host, None),
        iface(container, Some(netns)),
    ]
}

/// Join a scoped thread; a panic in it becomes an internal error.
fn join<T>(h: thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join()
        .map_err(|_| Error::internal("a worker thread of the vxlan-overlay plugin panicked"))?
}

fn main() {
    skel::run(&ABOUT, &Overlay)
}
