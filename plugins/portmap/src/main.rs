//! portmap: publishes container ports on the host (a drop-in for the
//! reference `portmap`, chained after the plugin that made the container's
//! interface). Connections to a local address of the host on a host port
//! are translated to the container's address and port; traffic passing
//! through the host is never touched.
//!
//! ADD: validate the mappings, refuse a host port another container
//! publishes or a host socket is bound on, write the rules (atomically,
//! under the namespace's firewall lock), flush stale UDP conntrack entries,
//! and let 127.0.0.1:HOSTPORT through (route_localnet on the host interface
//! toward the container). DEL removes exactly this attachment's rules, with
//! or without a config, and the conntrack entries of the connections they
//! carried. GC removes those of attachments not listed.

mod config;

use std::net::IpAddr;

use cni_net::firewall::conntrack;
use cni_net::firewall::portmap::{self, Claim, Proto, Publication, Released, PORT_TAKEN};
use cni_net::listeners;
use cni_net::netlink::{sysctl, Netlink};
use cni_plugin::log;
use cni_plugin::skel::{self, About, Plugin, Request};
use cni_spec::error::ErrorList;
use cni_spec::{CniResult, Error, Result};

use config::Conf;

const ABOUT: About = About {
    name: "portmap",
    description: "publishes container ports on the host (nftables)",
};

struct PortMap;

impl Plugin for PortMap {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(&req.config)?;
        let prev = require_prev(req)?;
        let ips = container_ips(&prev, &req.ifname);
        if conf.mappings.is_empty() || ips.is_empty() {
            return Ok(prev);
        }
        let p = publication(req, &conf, &ips);
        portmap::publish(&p, refuse_host_sockets)?;
        if let Err(e) = after_publish(&conf, &p) {
            // All or nothing: the rules go again if the rest failed.
            if let Err(u) = portmap::unpublish(p.network, p.container_id, p.ifname) {
                log::error(&format!("rollback of published ports failed: {u}"));
            }
            return Err(e);
        }
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<()> {
        // Rules are found by their tag: DEL needs no config, result or state.
        let released = portmap::unpublish(&req.config.name, &req.container_id, &req.ifname)?;
        flush_udp(&claims_of(&released));
        // The cached result names the container's addresses; without it
        // only UDP is flushed, and other connections time out.
        if let Ok(Some(prev)) = req.config.prev_result() {
            flush_translated(&released, &container_ips(&prev, &req.ifname));
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(&req.config)?;
        let prev = require_prev(req)?;
        let ips = container_ips(&prev, &req.ifname);
        if conf.mappings.is_empty() || ips.is_empty() {
            return Ok(());
        }
        portmap::check(&publication(req, &conf, &ips))
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let Some(valid) = req.config.valid_attachments()? else {
            return Ok(());
        };
        let keep: Vec<(&str, &str)> = valid
            .iter()
            .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
            .collect();
        let mut errs = ErrorList::new();
        if let Some(released) = errs.check(portmap::gc(&req.config.name, &keep)) {
            flush_udp(&claims_of(&released));
        }
        errs.into_result()
    }
}

fn require_prev(req: &Request) -> Result<CniResult> {
    req.config.prev_result()?.ok_or_else(|| {
        Error::invalid_config("portmap must be called as a chained plugin: prevResult is missing")
    })
}

/// The first IPv4 and first IPv6 address of the container's interface, as
/// the reference picks them: addresses of a known interface count only if
/// it is `ifname` inside a sandbox.
fn container_ips(prev: &CniResult, ifname: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in &prev.ips {
        if let Some(i) = ip.interface {
            if let Some(iface) = prev.interfaces.get(i) {
                let in_sandbox = iface.sandbox.as_deref().is_some_and(|s| !s.is_empty());
                if iface.name != ifname || !in_sandbox {
                    continue;
                }
            }
        }
        let a = ip.address.ip();
        if !out.iter().any(|o| o.is_ipv6() == a.is_ipv6()) {
            out.push(a);
        }
    }
    out
}

fn publication<'a>(req: &'a Request, conf: &'a Conf, ips: &'a [IpAddr]) -> Publication<'a> {
    Publication {
        network: &req.config.name,
        container_id: &req.container_id,
        ifname: &req.ifname,
        container_ips: ips,
        mappings: &conf.mappings,
        snat: conf.snat,
        masq_all: conf.masq_all,
    }
}

/// A host socket bound on a port we would publish would lose its traffic
/// without knowing: refuse, as for another container's port.
fn refuse_host_sockets(claims: &[Claim]) -> Result<()> {
    let proto_of = |c: &Claim| match c.proto {
        Proto::Tcp => Some("tcp"),
        Proto::Udp => Some("udp"),
        Proto::Sctp => None, // not in /proc/net/{tcp,udp}
    };
    let all_free = claims
        .iter()
        .all(|c| proto_of(c).is_none_or(|p| listeners::certainly_free(p, c.v6, c.host_ip, c.port)));
    if all_free {
        return Ok(());
    }
    let bound = listeners::bound_sockets();
    let mut taken = Vec::new();
    for c in claims {
        let Some(proto) = proto_of(c) else {
            continue;
        };
        if let Some(l) = bound
            .iter()
            .find(|l| l.covers(proto, c.v6, c.host_ip, c.port))
        {
            taken.push(format!(
                "host port {c} is in use by a socket of the host ({}:{} {proto}, inode {})",
                l.addr, l.port, l.inode
            ));
        }
    }
    if taken.is_empty() {
        return Ok(());
    }
    taken.dedup();
    Err(Error::new(PORT_TAKEN, taken.join("; ")))
}

fn after_publish(conf: &Conf, p: &Publication) -> Result<()> {
    flush_udp(&p.claims());
    if conf.snat {
        if let Some(v4) = p.container_ips.iter().find(|a| a.is_ipv4()) {
            enable_route_localnet(v4)?;
        }
    }
    Ok(())
}

/// Delete UDP conntrack entries to the published ports, so datagrams of an
/// old flow meet the current rules. Failures are logged, not fatal: the
/// rules are right, an entry only delays them until it times out.
fn flush_udp(claims: &[Claim]) {
    for c in claims.iter().filter(|c| c.proto == Proto::Udp) {
        if let Err(e) = conntrack::flush_dport(c.v6, conntrack::UDP, c.port) {
            log::error(&format!("conntrack flush of {c}: {e}"));
        }
    }
}

fn claims_of(released: &[Released]) -> Vec<Claim> {
    released.iter().map(|r| r.claim).collect()
}

/// Delete the conntrack entries of connections the released ports carried
/// to the container, whatever the protocol: after DEL nothing names the
/// port's old target. Ports that never carried one are skipped. Failures
/// are logged, as for UDP.
fn flush_translated(released: &[Released], targets: &[IpAddr]) {
    for c in released.iter().filter(|r| r.used).map(|r| r.claim) {
        let family: Vec<IpAddr> = targets
            .iter()
            .copied()
            .filter(|t| t.is_ipv6() == c.v6)
            .collect();
        if family.is_empty() {
            continue;
        }
        if let Err(e) = conntrack::flush_translated(c.proto.number(), c.port, &family) {
            log::error(&format!("conntrack flush of {c}: {e}"));
        }
    }
}

/// 127.0.0.1 may not leave through a non-loopback interface unless that
/// interface allows it: set `route_localnet` on the one that reaches the
/// container (in the plugin's, i.e. the host's, namespace).
fn enable_route_localnet(ip: &IpAddr) -> Result<()> {
    let mut nl = Netlink::new()?;
    let best = nl
        .routes(Some(false))?
        .into_iter()
        .filter(|r| r.oif.is_some() && r.table.is_none_or(|t| t == 254))
        .filter(|r| r.dst.is_some_and(|d| d.contains(*ip)))
        .max_by_key(|r| r.dst.map_or(0, |d| d.prefix()));
    let Some(oif) = best.and_then(|r| r.oif) else {
        return Ok(());
    };
    let link = nl.link_by_index(oif)?;
    sysctl::set(&format!("net/ipv4/conf/{}/route_localnet", link.name), "1")
}

fn main() {
    skel::run(&ABOUT, &PortMap)
}
