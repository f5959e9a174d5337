//! bridge: connects a container to a Linux bridge on the host with a veth
//! pair, addresses it through the IPAM plugin, and gives the network
//! Docker's bridge semantics: the bridge may be the containers' gateway,
//! their traffic is masqueraded out of the host, and two bridge networks
//! cannot reach each other.

mod check;
mod firewall;
mod result;

use std::thread;
use std::time::Duration;

use cni_attach::bridge::{self, BridgeOpts};
use cni_attach::container::{self, IfaceOpts};
use cni_attach::lock::NetworkLock;
use cni_attach::names::host_veth_name;
use cni_attach::veth::{self, PortOpts, VethRequest};
use cni_net::netlink::{self, Netlink};
use cni_net::netns::NetNs;
use cni_plugin::skel::{self, About, Plugin, Request};
use cni_plugin::{fault, ipam, log};
use cni_spec::error::ErrorList;
use cni_spec::CniResult;
use cni_spec::{Error, Result};

// The parser lives in the library half of this crate (the fuzzers use it).
use ::bridge::config;
use config::Conf;
use result::CONTAINER_IF;

const ABOUT: About = About {
    name: "bridge",
    description: "connects containers to a Linux bridge (Docker bridge-network semantics)",
};

/// How long ADD waits for the host end of the veth to come up.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(2);

struct Bridge;

impl Plugin for Bridge {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
        let netns_path = req.netns_path()?;
        let netns = NetNs::open(netns_path)?;
        let mut host = Netlink::new()?;
        let mut ctr = Netlink::new_in(&netns)?;
        let host_veth = host_veth_name(&req.container_id, &req.ifname);

        let ((br, pair, veth_guard), lease) = ipam::add_alongside(req, conf.l3, || {
            build_links(&conf, &netns, &mut host, &mut ctr, &host_veth, req)
        })?;
        let (mut result, lease) = match lease {
            Some((r, lease)) => (r, Some(lease)),
            None => (CniResult::default(), None),
        };
        if conf.l3 && result.ips.is_empty() {
            return Err(Error::io("IPAM plugin returned no IP configuration"));
        }

        let gateways = result::assign_gateways(&mut result, conf.is_gateway)?;
        if conf.is_default_gateway {
            result::add_default_routes(&mut result)?;
        }
        let opts = IfaceOpts {
            enable_dad: conf.enable_dad,
            leave_down: conf.disable_container_interface,
        };
        container::configure(
            &netns,
            &mut ctr,
            &pair.container,
            &result,
            CONTAINER_IF,
            opts,
        )?;
        fault::point("bridge.add.after-container");

        if conf.is_gateway {
            for gw in &gateways {
                bridge::ensure_gateway(&mut host, &br, *gw, conf.force_address)?;
            }
            let v4 = gateways.iter().any(|g| g.is_ipv4());
            let v6 = gateways.iter().any(|g| g.is_ipv6());
            bridge::enable_forwarding(v4, v6)?;
        }
        fault::point("bridge.add.after-gateway");

        // Firewall work happens under the network's shared lock. Our port is
        // on the bridge already, so a concurrent last DEL (which removes the
        // network's rules, spoof checks included, under the exclusive lock)
        // either ran before and we put everything back, or runs after and
        // sees our port (see attach::lock).
        let network_fw = firewall::network(&conf, &result);
        let lock = if conf.macspoofchk || network_fw.is_some() {
            Some(NetworkLock::shared(&conf.network, &conf.bridge)?)
        } else {
            None
        };
        let rules_guard = if conf.macspoofchk {
            let mac = pair.container.mac.unwrap_or_default();
            let g =
                firewall::add_spoofcheck(&conf, &req.container_id, &req.ifname, &host_veth, &mac)?;
            fault::point("bridge.add.after-spoofcheck");
            Some(g)
        } else {
            None
        };
        if let Some(fw) = network_fw {
            firewall::ensure_network(&fw)?;
        }
        drop(lock);
        fault::point("bridge.add.after-firewall");

        let host_link = if conf.disable_container_interface {
            host.link_by_index(pair.host.index)?
        } else {
            veth::wait_up(&mut host, pair.host.index, LINK_UP_TIMEOUT)?
        };
        // A bridge's MAC follows its ports: read it after attaching ours.
        let br = host.link_by_index(br.index)?;
        result.interfaces = result::interfaces(
            &br,
            &host_link,
            &pair.container,
            &netns_path.to_string_lossy(),
        );

        fault::point("bridge.add.before-commit");
        veth_guard.commit();
        if let Some(l) = lease {
            l.commit();
        }
        if let Some(g) = rules_guard {
            g.commit();
        }
        fault::point("bridge.add.after-commit");
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let host_veth = host_veth_name(&req.container_id, &req.ifname);
        let mut errs = ErrorList::new();

        // Is ours the network's last port? Then its shared rules go too, in
        // parallel with the rest (the lock keeps ADDs from re-adding rules
        // halfway).
        let lock = errs.check(NetworkLock::exclusive(&conf.network, &conf.bridge));
        let last = errs
            .check(network_unused(&conf, Some(&host_veth)))
            .unwrap_or(false);
        let lock = if last {
            lock
        } else {
            // Shadowing would keep it held: release it now.
            drop(lock);
            None
        };

        // Deleting a veth (~20 ms) and nftables rules (~16 ms each) are RCU
        // grace periods in the kernel: issued from separate threads they
        // overlap instead of adding up. IPAM DEL runs meanwhile.
        thread::scope(|s| {
            let link = s.spawn(|| {
                let r = delete_links(req, &host_veth);
                fault::point("bridge.del.after-links");
                r
            });
            let rules = s.spawn(|| {
                let r = firewall::del_container(&conf.network, &req.container_id, &req.ifname);
                fault::point("bridge.del.after-container-rules");
                r
            });
            let network = last.then(|| {
                s.spawn(|| {
                    let r = firewall::remove_network(&conf.network);
                    fault::point("bridge.del.after-network-rules");
                    r
                })
            });
            if conf.l3 {
                errs.check(ipam::del(req));
                fault::point("bridge.del.after-ipam");
            }
            errs.check(join(link));
            errs.check(join(rules));
            if let Some(n) = network {
                errs.check(join(n));
            }
        });
        drop(lock);
        fault::point("bridge.del.after-parallel");

        // Two last DELs at once each see the other's port: whoever finishes
        // second finds the bridge empty and removes the rules.
        if !last {
            let _lock = errs.check(NetworkLock::exclusive(&conf.network, &conf.bridge));
            if errs.check(network_unused(&conf, None)).unwrap_or(false) {
                errs.check(firewall::remove_network(&conf.network));
            }
        }
        errs.into_result()
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        check::check(req, &conf)
    }

    fn status(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
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
            // With no valid attachment left this removes the network's
            // shared rules too; the lock keeps a racing ADD's rules intact.
            let _lock = errs.check(NetworkLock::exclusive(&conf.network, &conf.bridge));
            errs.check(firewall::gc(&conf.network, &valid));
        }
        errs.into_result()
    }
}

/// Bridge, veth pair, port: everything on the link layer. The guard removes
/// the pair if ADD fails later.
fn build_links(
    conf: &Conf,
    netns: &NetNs,
    host: &mut Netlink,
    ctr: &mut Netlink,
    host_veth: &str,
    req: &Request,
) -> Result<(netlink::Link, veth::Pair, veth::VethGuard)> {
    let br = bridge::ensure_bridge(
        host,
        &BridgeOpts {
            name: conf.bridge.clone(),
            mtu: conf.mtu,
            vlan_filtering: conf.wants_vlans(),
            promisc: conf.promisc,
        },
    )?;
    fault::point("bridge.add.after-bridge");
    let (pair, guard) = veth::create(
        host,
        ctr,
        &VethRequest {
            host_name: host_veth.to_string(),
            ifname: req.ifname.clone(),
            netns,
            mtu: conf.mtu,
            mac: conf.mac,
        },
    )?;
    let port = PortOpts {
        hairpin: conf.hairpin,
        isolated: conf.port_isolation,
        vlan: conf.vlan,
        trunk: conf.trunk.clone(),
        preserve_default_vlan: conf.preserve_default_vlan,
    };
    fault::point("bridge.add.after-veth");
    veth::attach(host, pair.host.index, br.index, &port)?;
    fault::point("bridge.add.after-attach");
    Ok((br, pair, guard))
}

/// True when no container port of ours is left on the bridge, not counting
/// `leaving` (the port this DEL is removing).
fn network_unused(conf: &Conf, leaving: Option<&str>) -> Result<bool> {
    let mut host = Netlink::new()?;
    let Some(br) = host.link_by_name_opt(&conf.bridge)? else {
        return Ok(true);
    };
    Ok(!bridge::has_other_port(host, br.index, leaving)?)
}

/// Delete the veth pair by its derived host name. When that is gone, a veth
/// named CNI_IFNAME in the container (if its namespace is still there) is
/// removed instead, so DEL also cleans up pairs named differently.
fn delete_links(req: &Request, host_veth: &str) -> Result<()> {
    let mut host = Netlink::new()?;
    if veth::delete(&mut host, host_veth)? {
        return Ok(());
    }
    let Some(path) = &req.netns else {
        return Ok(());
    };
    let ns = match NetNs::open(path) {
        Ok(ns) => ns,
        Err(e) => {
            // Gone, or no longer a namespace: nothing left to remove in it.
            log::debug(&format!("DEL: container netns unusable: {e}"));
            return Ok(());
        }
    };
    let mut ctr = Netlink::new_in(&ns)?;
    match ctr.link_by_name_opt(&req.ifname)? {
        Some(l) if l.kind.as_deref() == Some("veth") => match ctr.delete_link(l.index) {
            Err(e) if !netlink::is_not_found(&e) => Err(e),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Join a scoped thread; a panic in it becomes an internal error.
fn join<T>(h: thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join()
        .map_err(|_| Error::internal("a worker thread of the bridge plugin panicked"))?
}

fn main() {
    skel::run(&ABOUT, &Bridge)
}
