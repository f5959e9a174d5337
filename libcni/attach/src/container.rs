//! The container side of an attachment: the per-interface sysctls and the
//! IPv6 DAD policy of the reference bridge, around the shared
//! [`cni_net::ifconfig`] (addresses, link up, routes).

use std::time::{Duration, Instant};

use cni_net::ifconfig;
use cni_net::netlink::{sysctl, Link, Netlink};
use cni_net::netns::NetNs;
use cni_spec::error::{Error, Result};
use cni_spec::CniResult;

/// How long `enabledad` may wait for IPv6 duplicate address detection.
const DAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How to configure the container interface.
#[derive(Debug, Clone, Copy, Default)]
pub struct IfaceOpts {
    /// Keep IPv6 duplicate address detection on and wait for it to finish.
    /// Off by default, as in the reference: a hairpin or promiscuous bridge
    /// echoes neighbour solicitations and DAD would fail.
    pub enable_dad: bool,
    /// Leave the interface down and unconfigured
    /// (`disableContainerInterface`).
    pub leave_down: bool,
}

/// Configure `link` (in `ns`, reached through `nl`) with the addresses of
/// interface `iface` of `result` and its routes.
pub fn configure(
    ns: &NetNs,
    nl: &mut Netlink,
    link: &Link,
    result: &CniResult,
    iface: usize,
    opts: IfaceOpts,
) -> Result<()> {
    if opts.leave_down {
        return Ok(());
    }
    let has_v4 = ifconfig::ips_of(result, iface).any(|ip| ip.is_ipv4());
    let has_v6 = ifconfig::ips_of(result, iface).any(|ip| !ip.is_ipv4());
    let no_dad = has_v6 && !opts.enable_dad;
    if has_v4 || no_dad {
        set_sysctls(ns, &link.name, has_v4, no_dad)?;
    }
    ifconfig::add_addresses(nl, link.index, result, iface)?;
    nl.set_link_up(link.index)?;
    if has_v6 && opts.enable_dad {
        settle_addresses(nl, link.index)?;
    }
    ifconfig::add_routes(nl, link.index, result, iface)
}

/// Per-interface sysctls inside the container. Best effort, as in the
/// reference: a container may have a read-only /proc/sys.
fn set_sysctls(ns: &NetNs, ifname: &str, v4: bool, no_dad: bool) -> Result<()> {
    ns.run(|| {
        if v4 {
            let _ = sysctl::set(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1");
        }
        if no_dad {
            let _ = sysctl::set(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), "0");
            let _ = sysctl::set(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0");
        }
    })
}

/// Wait until no address of the link is tentative; fail on a DAD failure.
fn settle_addresses(nl: &mut Netlink, index: u32) -> Result<()> {
    let start = Instant::now();
    loop {
        let addrs = nl.addresses(Some(index))?;
        if let Some(a) = addrs.iter().find(|a| a.dad_failed) {
            return Err(Error::io(format!(
                "duplicate address detection failed for {}",
                a.addr
            )));
        }
        if !addrs.iter().any(|a| a.tentative) {
            return Ok(());
        }
        if start.elapsed() > DAD_TIMEOUT {
            return Err(Error::io(format!(
                "IPv6 addresses still tentative after {DAD_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
