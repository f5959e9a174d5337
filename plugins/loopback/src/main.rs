//! loopback: brings `lo` up in the container's namespace (ADD) and down
//! again (DEL), as the reference plugin does. `CNI_IFNAME` is ignored: the
//! loopback interface is always `lo`.

use cni_net::netlink::{format_mac, Netlink};
use cni_net::netns::NetNs;
use cni_plugin::skel::{self, About, Plugin, Request};
use cni_spec::{CniResult, Interface, IpConfig};
use cni_spec::{Error, Result};

const ABOUT: About = About {
    name: "loopback",
    description: "sets up the loopback interface of a container",
};

struct Loopback;

impl Plugin for Loopback {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let ns = cni_net::netns::NetNs::open(req.netns_path()?)?;
        let mut nl = Netlink::new_in(&ns)?;
        let lo = nl.link_by_name("lo")?;
        nl.set_link_up(lo.index)?;

        // A chained loopback passes the previous result on unchanged.
        if let Some(prev) = req.config.prev_result()? {
            return Ok(prev);
        }
        let mut ips = Vec::new();
        for a in nl.addresses(Some(lo.index))? {
            if !a.addr.ip().is_loopback() {
                return Err(Error::io(format!(
                    "loopback interface found with non-loopback address {}",
                    a.addr
                )));
            }
            ips.push(IpConfig {
                interface: Some(0),
                address: a.addr,
                gateway: None,
            });
        }
        // IPv4 first, as the reference lists them.
        ips.sort_by_key(|ip| !ip.is_ipv4());
        Ok(CniResult {
            interfaces: vec![Interface {
                name: lo.name,
                mac: Some(format_mac(&lo.mac.unwrap_or_default())),
                sandbox: Some(ns.path().display().to_string()),
                ..Default::default()
            }],
            ips,
            ..Default::default()
        })
    }

    fn del(&self, req: &Request) -> Result<()> {
        // Nothing to undo once the namespace is gone (or was never named).
        let Some(path) = &req.netns else {
            return Ok(());
        };
        let Some(ns) = NetNs::open_if_exists(path)? else {
            return Ok(());
        };
        let mut nl = Netlink::new_in(&ns)?;
        let lo = nl.link_by_name("lo")?;
        nl.set_link_down(lo.index)
    }

    fn check(&self, req: &Request) -> Result<()> {
        let ns = cni_net::netns::NetNs::open(req.netns_path()?)?;
        let mut nl = Netlink::new_in(&ns)?;
        let lo = nl.link_by_name("lo")?;
        if !lo.up {
            return Err(Error::io("loopback interface is down"));
        }
        Ok(())
    }
}

fn main() {
    skel::run(&ABOUT, &Loopback)
}
