//! vxlan-overlay: Docker's multi-host `overlay` network as a CNI plugin.
//! Containers on different hosts share one L2 segment: on every host the
//! network has a bridge (`vxbr<vni>` unless `bridge` names one), a VXLAN
//! device (`vxlan<vni>`) enslaved to it, and one head-end replication entry
//! per peer host, so broadcast and unknown unicast reach every host and the
//! bridges learn where each container's MAC lives. Containers join the
//! bridge with a veth pair, exactly as in the bridge plugin (`attach`).
//!
//! - Control plane: a static `peers` list (like `weave connect`), no
//!   daemon; or, with `"cluster": true` (cnitool's cluster networks), the
//!   per-host daemon programs the remote entries from etcd (see `cluster`). Every ADD reconciles the host with the config, so editing
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
//!
//! The verbs are `cni_attach::flow`'s; this file says what an overlay
//! network adds to them.

mod check;
mod cluster;

use std::sync::OnceLock;

use cni_attach::flow::{self, ports, Attached, BridgeNetwork, Checked, LinkOpts};
use cni_net::netlink::{Link, Netlink};
use cni_plugin::rollback::Rollbacks;
use cni_plugin::skel::{About, Request};
use cni_spec::{Attachment, CniResult};
use cni_spec::{Error, Result};

use vxlan_overlay::config::Conf;
use vxlan_overlay::tunnel::Want;
use vxlan_overlay::{mesh_claim, offload, subnet, tunnel, underlay};

struct Overlay {
    conf: Conf,
    /// The tunnel as the config and the underlay make it: resolved once,
    /// by the first hook that needs it.
    want: OnceLock<Want>,
}

impl Overlay {
    fn want(&self, host: &mut Netlink) -> Result<&Want> {
        if let Some(w) = self.want.get() {
            return Ok(w);
        }
        let under = underlay::resolve(host, &self.conf)?;
        Ok(self.want.get_or_init(|| Want::new(&self.conf, &under)))
    }
}

impl BridgeNetwork for Overlay {
    const ABOUT: About = About {
        name: "vxlan-overlay",
        description: "connects containers on many hosts to one L2 network over VXLAN \
                      (Docker overlay-network semantics)",
    };
    const DEVICES_FOLLOW_PORTS: bool = true;
    const REPORT_MTU: bool = true;

    fn load(req: &Request) -> Result<Self> {
        Ok(Overlay {
            conf: Conf::load(req)?,
            want: OnceLock::new(),
        })
    }

    fn names(&self) -> (&str, &str) {
        (&self.conf.network, &self.conf.bridge)
    }

    /// The underlay, first: both veth ends get the overlay's MTU.
    fn prepare(&self, host: &mut Netlink) -> Result<LinkOpts> {
        Ok(LinkOpts {
            mtu: Some(self.want(host)?.mtu),
            ..LinkOpts::default()
        })
    }

    /// The bridge and the VXLAN device brought to the config (peers,
    /// MTU, checksum offload). Every ADD reconciles them.
    fn ensure_devices(&self, host: &mut Netlink) -> Result<Link> {
        let want = self.want(host)?;
        let br = tunnel::ensure(host, &self.conf, want)?;
        if self.conf.disable_tx_csum && offload::tx_checksum(&self.conf.vxlan)? {
            offload::set_tx_checksum(&self.conf.vxlan, false)?;
        }
        Ok(br)
    }

    /// L2 only: the addresses must lie in the overlay's subnets.
    fn shape_result(&self, result: &mut CniResult) -> Result<()> {
        subnet::check_result(&self.conf.subnets, result)
    }

    /// In a cluster: the endpoint (address, MAC, this host) is published,
    /// so every other host programs its forwarding entry.
    fn after_attach(&self, a: Attached<'_>, _undo: &mut Rollbacks<'_>) -> Result<()> {
        if self.conf.cluster {
            cluster::publish(a.req, &self.conf, a.pair.container.mac, a.result)?;
        }
        Ok(())
    }

    /// The bridge and the VXLAN device go with the last port, unless the
    /// host's routing mesh holds them (see `mesh_claim`).
    fn remove_network(&self) -> Result<()> {
        let mut nl = Netlink::new()?;
        if mesh_claim::held(&mut nl, &self.conf.bridge)? {
            return Ok(());
        }
        tunnel::remove(&mut nl, &self.conf)
    }

    /// Ports of no valid attachment go; with none left, the devices too.
    fn collect(&self, valid: &[Attachment]) -> Result<()> {
        if ports::prune(&self.conf.bridge, valid)? {
            self.remove_network()?;
        }
        Ok(())
    }

    /// No underlay: no ADD can succeed.
    fn status(&self) -> Result<()> {
        let mut host = Netlink::new()?;
        underlay::resolve(&mut host, &self.conf).map_err(|e| Error::not_available(e.msg))?;
        Ok(())
    }

    fn check_devices(&self, host: &mut Netlink, bridge: &Link, _prev: &CniResult) -> Result<()> {
        let want = self.want(host)?;
        check::tunnel(host, &self.conf, want, bridge)
    }

    fn check_attachment(&self, c: Checked<'_>) -> Result<()> {
        check::mtu(c.container, c.opts)
    }
}

fn main() {
    flow::run::<Overlay>()
}
