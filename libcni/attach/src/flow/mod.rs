//! One flow for every plugin that attaches containers to a Linux bridge
//! with a veth pair (`bridge`, `vxlan-overlay`). A plugin describes its
//! network by implementing [`BridgeNetwork`]: its names, how its devices
//! come to be and go, what it adds around a port (gateway, firewall rules)
//! and what CHECK and STATUS also look at. The verbs themselves are here,
//! once:
//!
//! - [`add`]: links built while IPAM runs, the result shaped, the container
//!   configured, the network's hook, then every step committed at once.
//! - [`del`]: the pair, the container's rules, IPAM and (for the network's
//!   last port) the network's own state go in parallel threads: each waits
//!   on the kernel (RCU grace periods), so their waits overlap.
//! - [`check`], [`maintain`] (STATUS and GC).
//!
//! The locking protocol between ADD and the last DEL is in [`crate::lock`].
//! A network is L3 when its config names an IPAM plugin (`ipam::wanted`),
//! L2 only otherwise.

pub mod add;
pub mod check;
pub mod del;
pub mod maintain;
pub mod ports;
pub mod result;

use std::marker::PhantomData;

use cni_net::netlink::{Link, Mac, Netlink};
use cni_plugin::rollback::Rollbacks;
use cni_plugin::skel::{self, About, Plugin, Request};
use cni_spec::error::Result;
use cni_spec::{Attachment, CniResult};

use crate::container::IfaceOpts;
use crate::lock::NetworkLock;
use crate::veth::{Pair, PortOpts};

pub use result::CONTAINER_IF;

/// How a container's pair and port look.
#[derive(Debug, Clone, Default)]
pub struct LinkOpts {
    /// MTU of both ends of the pair.
    pub mtu: Option<u32>,
    /// MAC of the container end; None lets the kernel pick one.
    pub mac: Option<Mac>,
    pub port: PortOpts,
    pub iface: IfaceOpts,
}

/// What ADD's host-side hook works with: the port is on the bridge and
/// the container is configured.
pub struct Attached<'a> {
    pub req: &'a Request,
    pub host: &'a mut Netlink,
    pub bridge: &'a Link,
    pub pair: &'a Pair,
    pub result: &'a CniResult,
}

/// What CHECK's last hook looks at: the attachment as ADD left it.
pub struct Checked<'a> {
    pub req: &'a Request,
    pub prev: &'a CniResult,
    pub host_veth: &'a Link,
    pub container: &'a Link,
    /// What [`BridgeNetwork::prepare`] said the pair should look like.
    pub opts: &'a LinkOpts,
}

/// A network of containers on one Linux bridge per host: what differs
/// between the plugins that make one.
pub trait BridgeNetwork: Sized + Sync {
    const ABOUT: About;
    /// Whether the flow's steps are fault points (`bridge.add.after-veth`,
    /// ...; see `cni_plugin::fault`). They are named after the bridge
    /// plugin, whose every step the reliability tests kill.
    const FAULT_POINTS: bool = false;
    /// The network's devices come with its first port on the host and go
    /// with its last (the overlay's bridge and VXLAN device): ADD ensures
    /// them and attaches its port under the network's exclusive lock, once
    /// its pair exists. Otherwise (a bridge that outlives its ports) they
    /// are ensured first, without a lock: concurrent ADDs race to create
    /// them and "already exists" is success.
    const DEVICES_FOLLOW_PORTS: bool = false;
    /// Per-container rules that DEL removes ([`Self::remove_container_rules`]).
    const CONTAINER_RULES: bool = false;
    /// Whether the result reports the container interface's MTU.
    const REPORT_MTU: bool = false;

    /// The validated config of the request.
    fn load(req: &Request) -> Result<Self>;
    /// The network's name (its rules and lock are named after it) and its
    /// bridge's.
    fn names(&self) -> (&str, &str);

    /// Before ADD or CHECK touches anything: what the pair and port look
    /// like.
    fn prepare(&self, host: &mut Netlink) -> Result<LinkOpts>;
    /// The network's devices as the config says; returns the bridge.
    fn ensure_devices(&self, host: &mut Netlink) -> Result<Link>;
    /// The IPAM result, its IPs already on the container interface, made
    /// into this network's result (gateways, routes, checks).
    fn shape_result(&self, _result: &mut CniResult) -> Result<()> {
        Ok(())
    }
    /// After the container is configured: the host's side of the network
    /// (gateway, forwarding, firewall rules). Whatever it adds that must go
    /// again if ADD fails later is pushed to `undo`.
    fn after_attach(&self, _a: Attached<'_>, _undo: &mut Rollbacks<'_>) -> Result<()> {
        Ok(())
    }
    /// DEL: the container's own rules.
    fn remove_container_rules(&self, _req: &Request) -> Result<()> {
        Ok(())
    }
    /// No port of ours is left on the bridge: remove what the network has
    /// on this host (rules, devices). Called under the exclusive lock.
    fn remove_network(&self) -> Result<()>;
    /// GC under the exclusive lock: remove what belongs to no attachment
    /// in `valid`.
    fn collect(&self, valid: &[Attachment]) -> Result<()>;
    /// STATUS: can an ADD succeed? (IPAM is asked afterwards.)
    fn status(&self) -> Result<()> {
        Ok(())
    }
    /// CHECK: the network's devices, the bridge found and a bridge.
    fn check_devices(&self, _host: &mut Netlink, _bridge: &Link, _prev: &CniResult) -> Result<()> {
        Ok(())
    }
    /// CHECK, last: what the network adds to an attachment.
    fn check_attachment(&self, _c: Checked<'_>) -> Result<()> {
        Ok(())
    }
}

/// The skeleton's plugin for network `N`.
struct Flow<N>(PhantomData<N>);

impl<N: BridgeNetwork> Plugin for Flow<N> {
    fn add(&self, req: &Request) -> Result<CniResult> {
        add::add(&N::load(req)?, req)
    }
    fn del(&self, req: &Request) -> Result<()> {
        del::del(&N::load(req)?, req)
    }
    fn check(&self, req: &Request) -> Result<()> {
        check::check(&N::load(req)?, req)
    }
    fn status(&self, req: &Request) -> Result<()> {
        maintain::status(&N::load(req)?, req)
    }
    fn gc(&self, req: &Request) -> Result<()> {
        maintain::gc(&N::load(req)?, req)
    }
}

/// The plugin binary's `main`: run the verb of this process for network `N`.
pub fn run<N: BridgeNetwork>() -> ! {
    skel::run(&N::ABOUT, &Flow::<N>(PhantomData))
}

/// The network's lock, taken exclusively: by a DEL or GC that may remove
/// the network's state, by an ADD whose devices a DEL may remove.
fn exclusive_lock<N: BridgeNetwork>(net: &N) -> Result<NetworkLock> {
    let (network, bridge) = net.names();
    NetworkLock::exclusive(network, bridge)
}

/// A step of the flow: a fault point when `N` has them.
fn point<N: BridgeNetwork>(name: &str) {
    if N::FAULT_POINTS {
        cni_plugin::fault::point(name);
    }
}
