//! bridge: connects a container to a Linux bridge on the host with a veth
//! pair, addresses it through the IPAM plugin, and gives the network
//! Docker's bridge semantics: the bridge may be the containers' gateway,
//! their traffic is masqueraded out of the host, and two bridge networks
//! cannot reach each other.
//!
//! The verbs are `cni_attach::flow`'s; this file says what a bridge
//! network adds to them.

mod firewall;
mod result;

use cni_attach::bridge::{self, BridgeOpts};
use cni_attach::check::expect_mac;
use cni_attach::container::IfaceOpts;
use cni_attach::flow::{self, Attached, BridgeNetwork, Checked, LinkOpts};
use cni_attach::veth::PortOpts;
use cni_net::netlink::{Link, Netlink};
use cni_plugin::fault;
use cni_plugin::rollback::Rollbacks;
use cni_plugin::skel::{About, Request};
use cni_spec::{Attachment, CniResult, Result};

// The parser lives in the library half of this crate (the fuzzers use it).
use ::bridge::config::Conf;

struct Bridge {
    conf: Conf,
}

impl BridgeNetwork for Bridge {
    const ABOUT: About = About {
        name: "bridge",
        description: "connects containers to a Linux bridge (Docker bridge-network semantics)",
    };
    const FAULT_POINTS: bool = true;
    const CONTAINER_RULES: bool = true;

    fn load(req: &Request) -> Result<Self> {
        Ok(Bridge {
            conf: Conf::load(req)?,
        })
    }

    fn names(&self) -> (&str, &str) {
        (&self.conf.network, &self.conf.bridge)
    }

    fn prepare(&self, _host: &mut Netlink) -> Result<LinkOpts> {
        let c = &self.conf;
        Ok(LinkOpts {
            mtu: c.mtu,
            mac: c.mac,
            port: PortOpts {
                hairpin: c.hairpin,
                isolated: c.port_isolation,
                vlan: c.vlan,
                trunk: c.trunk.clone(),
                preserve_default_vlan: c.preserve_default_vlan,
            },
            iface: IfaceOpts {
                enable_dad: c.enable_dad,
                leave_down: c.disable_container_interface,
            },
        })
    }

    /// The bridge: shared by the network's containers, kept when they go.
    fn ensure_devices(&self, host: &mut Netlink) -> Result<Link> {
        let c = &self.conf;
        let opts = BridgeOpts {
            name: c.bridge.clone(),
            mtu: c.mtu,
            vlan_filtering: c.wants_vlans(),
            promisc: c.promisc,
        };
        bridge::ensure_bridge(host, &opts)
    }

    /// Gateways filled in, default routes through them.
    fn shape_result(&self, result: &mut CniResult) -> Result<()> {
        if self.conf.is_gateway {
            result::fill_gateways(result);
        }
        if self.conf.is_default_gateway {
            result::add_default_routes(result)?;
        }
        Ok(())
    }

    /// The bridge as the containers' gateway, then the firewall: the
    /// port's spoof check and the network's masquerade and isolation.
    fn after_attach(&self, a: Attached<'_>, undo: &mut Rollbacks<'_>) -> Result<()> {
        if self.conf.is_gateway {
            let gateways = result::gateway_addresses(a.result)?;
            for gw in &gateways {
                bridge::ensure_gateway(a.host, a.bridge, *gw, self.conf.force_address)?;
            }
            let v4 = gateways.iter().any(|g| g.is_ipv4());
            let v6 = gateways.iter().any(|g| g.is_ipv6());
            bridge::enable_forwarding(v4, v6)?;
        }
        fault::point("bridge.add.after-gateway");
        firewall::attach(&self.conf, &a, undo)?;
        fault::point("bridge.add.after-firewall");
        Ok(())
    }

    fn remove_container_rules(&self, req: &Request) -> Result<()> {
        firewall::del_container(&self.conf.network, &req.container_id, &req.ifname)
    }

    /// The bridge stays; the network's rules go with its last container.
    fn remove_network(&self) -> Result<()> {
        firewall::remove_network(&self.conf.network)
    }

    fn collect(&self, valid: &[Attachment]) -> Result<()> {
        firewall::gc(&self.conf.network, valid)
    }

    /// The bridge keeps the MAC the result reported.
    fn check_devices(&self, _host: &mut Netlink, bridge: &Link, prev: &CniResult) -> Result<()> {
        match prev.interfaces.iter().find(|i| i.name == self.conf.bridge) {
            Some(want) => expect_mac(bridge, want),
            None => Ok(()),
        }
    }

    fn check_attachment(&self, c: Checked<'_>) -> Result<()> {
        firewall::check(&self.conf, &c)
    }
}

fn main() {
    flow::run::<Bridge>()
}
