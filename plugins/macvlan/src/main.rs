//! macvlan: gives a container its own MAC address (and IP) directly on an
//! existing network, as Docker's macvlan driver does. The container's
//! interface is a macvlan of a master link on the host (or, with
//! `linkInContainer`, in the container itself).
//!
//! ADD: find the master (creating a `parent.vlan` sub-interface on demand),
//! create the macvlan in the container under a temporary name and rename
//! it, get an address from IPAM, optionally probe the wire for that address
//! (`dad`), configure it. Every step is undone if a later one fails.
//! DEL: release the address first, then remove the link; gone is fine.
//!
//! Config keys (besides `name`, `type`, `ipam`, `dns`):
//! - `master`: the parent link; default: the default route's link in the
//!   plugin's namespace (the container's with `linkInContainer`). A name
//!   `parent.ID` that does not exist is created as an 802.1Q VLAN of
//!   `parent` and removed with its last attachment (Docker's `parent`).
//! - `mode`: `bridge` (default), `private`, `vepa`, `passthru`.
//! - `mtu`: at most the master's; 0 or absent: the master's.
//! - `mac`, `runtimeConfig.mac`, CNI_ARGS `MAC`: the container's MAC
//!   (runtimeConfig first, then CNI_ARGS, then `mac`).
//! - `linkInContainer`: the master is in the container's namespace.
//! - `bcqueuelen`: the kernel's broadcast queue length for the master.
//! - `dad`: `true`, or `{"probes": N, "intervalMs": M}` (defaults 3 and
//!   50): before configuring an IPv4 address, ARP-probe for it (RFC 5227)
//!   and fail with code 100, releasing it, if another host answers. IPAM
//!   cannot know the other machines on a LAN; this asks the LAN. Costs
//!   probes x interval (150 ms by default) on every ADD.

mod conf;
mod link;
mod master;
mod vlan;

use cni_net::arp::{ArpSocket, ProbeOptions};
use cni_net::ifconfig;
use cni_net::netlink::{sysctl, Netlink};
use cni_net::netns::NetNs;
use cni_plugin::skel::{self, About, Plugin, Request};
use cni_plugin::{ipam, log};
use cni_spec::error::ErrorList;
use cni_spec::{CniResult, IpConfig};
use cni_spec::{Error, Result};

use conf::Conf;
use link::ContainerLink;
use master::Master;

const ABOUT: About = About {
    name: "macvlan",
    description: "gives a container its own MAC address on an existing network",
};

/// Plugin-specific error code: duplicate address detection found the
/// address IPAM chose in use by another host.
const ADDRESS_IN_USE: u32 = 100;

struct Macvlan;

/// A socket in the namespace the master lives in.
fn master_netlink(conf: &Conf, ns: &NetNs) -> Result<Netlink> {
    if conf.link_in_container {
        Netlink::new_in(ns)
    } else {
        Netlink::new()
    }
}

/// This attachment's record in a VLAN parent's user list.
fn vlan_user(req: &Request) -> String {
    vlan::user_of(&req.config.name, &req.container_id, &req.ifname)
}

impl Plugin for Macvlan {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
        let ns = cni_net::netns::NetNs::open(req.netns_path()?)?;

        // 1. The master, and the MTU it allows.
        let mut master_nl = master_netlink(&conf, &ns)?;
        let user = vlan_user(req);
        let vlan_user = (!conf.link_in_container).then_some(user.as_str());
        let master = Master::find(&conf, &mut master_nl, vlan_user)?;
        master.check_mtu(conf.mtu)?;

        // 2. The macvlan, in the container under its final name, while IPAM
        //    picks an address (its exec is the slowest step of ADD). Either
        //    is undone if the other fails: their guards act on drop.
        let (mut link, lease) = ipam::add_alongside(req, ipam::wanted(req), || {
            ContainerLink::create(&conf, &mut master_nl, master.link.index, &ns, req)
        })?;
        let mut result = CniResult {
            interfaces: vec![link.interface(&ns)],
            dns: conf.dns.clone(),
            ..Default::default()
        };

        // 3. No IPAM: a layer-2 attachment, just up.
        let Some((ipam_result, lease)) = lease else {
            link.set_up()?;
            link.commit();
            master.commit();
            return Ok(result);
        };

        // 4. The address, released again if anything below fails.
        if ipam_result.ips.is_empty() {
            return Err(Error::io("IPAM plugin returned missing IP config"));
        }
        result.ips = ipam_result
            .ips
            .into_iter()
            .map(|ip| IpConfig {
                interface: Some(0),
                ..ip
            })
            .collect();
        result.routes = ipam_result.routes;
        if result.dns.is_empty() {
            result.dns = ipam_result.dns;
        }

        // 5. Configure it, after making sure nobody else on the wire has it.
        set_notify_sysctls(&ns, &req.ifname)?;
        match conf.dad {
            Some(opts) => probe_then_configure(&ns, opts, &mut link, &result)?,
            None => link.configure(&result)?,
        }

        lease.commit();
        link.commit();
        master.commit();
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let mut errors = ErrorList::new();
        // The address is released first (the reference's order), and the
        // link removed while that runs: the removal waits ~15-20 ms in the
        // kernel (RCU), the IPAM exec takes a few ms that need not add up.
        let (link_done, ipam_done) =
            ipam::alongside(ipam::wanted(req).then_some(|| ipam::del(req)), || {
                link::delete(req)
            });
        if let Some(r) = ipam_done {
            errors.check(r);
        }
        errors.check(link_done);
        errors.check(release_vlan(req));
        errors.into_result()
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let ns = cni_net::netns::NetNs::open(req.netns_path()?)?;
        if ipam::wanted(req) {
            ipam::check(req)?;
        }
        let prev = req
            .config
            .prev_result()?
            .ok_or_else(|| Error::invalid_config("CHECK needs a prevResult"))?;
        let sandbox = ns.path().display().to_string();
        let iface = prev
            .interfaces
            .iter()
            .position(|i| i.name == req.ifname && i.sandbox.as_deref() == Some(sandbox.as_str()))
            .ok_or_else(|| {
                Error::invalid_config(format!(
                    "prevResult has no interface {} in sandbox {sandbox}",
                    req.ifname
                ))
            })?;
        let mut master_nl = master_netlink(&conf, &ns)?;
        Master::find(&conf, &mut master_nl, None)?;
        let mut ctr = Netlink::new_in(&ns)?;
        link::verify(&mut ctr, &conf, &prev.interfaces[iface])?;
        let index = ctr.link_by_name(&req.ifname)?.index;
        ifconfig::verify(&mut ctr, index, &prev, iface)
    }

    fn status(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        // Without a container there is no namespace to look for an
        // in-container master in; only a host master can be checked.
        if !conf.link_in_container {
            master::available(&conf, &mut Netlink::new()?)
                .map_err(|e| Error::not_available(e.msg))?;
        }
        if ipam::wanted(req) {
            ipam::status(req)?;
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let mut errors = ErrorList::new();
        if ipam::wanted(req) {
            errors.check(ipam::gc(req));
        }
        errors.check(gc_vlan(req));
        errors.into_result()
    }
}

/// Announce changes of the container's address (the reference sets these
/// too): a gratuitous ARP / unsolicited NA when the link comes up.
fn set_notify_sysctls(ns: &NetNs, ifname: &str) -> Result<()> {
    ns.run(|| {
        for key in [
            format!("net/ipv4/conf/{ifname}/arp_notify"),
            format!("net/ipv6/conf/{ifname}/ndisc_notify"),
        ] {
            if let Err(e) = sysctl::set(&key, "1") {
                log::debug(&format!("{e}"));
            }
        }
    })
}

/// RFC 5227: the link goes up without an address, each IPv4 address is
/// probed for; only when nobody answers is it configured and announced.
/// The ARP socket is opened after the link is up: bound to a down link,
/// its first send fails with ENETDOWN.
fn probe_then_configure(
    ns: &NetNs,
    opts: ProbeOptions,
    link: &mut ContainerLink,
    result: &CniResult,
) -> Result<()> {
    link.set_up()?;
    let arp = ArpSocket::open_in(ns, link.index(), link.mac())?;
    for ip in v4_addresses(result) {
        if let Some(c) = arp.probe(ip, opts)? {
            return Err(Error::new(
                ADDRESS_IN_USE,
                format!("duplicate address detection: {c}; the address was released and no interface was created"),
            ));
        }
    }
    link.configure(result)?;
    for ip in v4_addresses(result) {
        arp.announce(ip)?;
    }
    Ok(())
}

fn v4_addresses(result: &CniResult) -> impl Iterator<Item = std::net::Ipv4Addr> + '_ {
    result.ips.iter().filter_map(|ip| match ip.address.ip() {
        std::net::IpAddr::V4(a) => Some(a),
        std::net::IpAddr::V6(_) => None,
    })
}

/// The VLAN parent this attachment used, if any: (vlan name) on the host.
fn vlan_parent(req: &Request) -> Result<Option<String>> {
    let raw = &req.config.raw;
    if Conf::link_in_container_of(raw)? {
        return Ok(None);
    }
    Ok(Conf::master_of(raw)?.filter(|m| vlan::parse_name(m).is_some()))
}

fn release_vlan(req: &Request) -> Result<()> {
    let Some(name) = vlan_parent(req)? else {
        return Ok(());
    };
    vlan::release(&mut Netlink::new()?, &name, &vlan_user(req))
}

fn gc_vlan(req: &Request) -> Result<()> {
    let (Some(name), Some(valid)) = (vlan_parent(req)?, req.config.valid_attachments()?) else {
        return Ok(());
    };
    vlan::gc(&mut Netlink::new()?, &name, &req.config.name, &valid)
}

fn main() {
    skel::run(&ABOUT, &Macvlan)
}
