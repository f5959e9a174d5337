//! ADD: the links built while IPAM runs (its exec is the slowest step),
//! the result shaped, the container configured, the network's host-side
//! hook, then every step committed at once. A failure anywhere undoes all
//! steps taken, last first.

use std::time::Duration;

use cni_net::netlink::{Link, Netlink};
use cni_net::netns::NetNs;
use cni_plugin::ipam;
use cni_plugin::rollback::{Rollbacks, Undo};
use cni_plugin::skel::Request;
use cni_spec::error::{Error, Result};
use cni_spec::CniResult;

use super::{exclusive_lock, point, result, Attached, BridgeNetwork, LinkOpts, CONTAINER_IF};
use crate::container;
use crate::names::host_veth_name;
use crate::veth::{self, Pair, VethRequest};

/// How long ADD waits for the host end of the veth to come up.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(2);

pub fn add<N: BridgeNetwork>(net: &N, req: &Request) -> Result<CniResult> {
    let netns_path = req.netns_path()?;
    let netns = NetNs::open(netns_path)?;
    let mut host = Netlink::new()?;
    let mut ctr = Netlink::new_in(&netns)?;
    let opts = net.prepare(&mut host)?;
    let links = Links {
        netns: &netns,
        host_veth: host_veth_name(&req.container_id, &req.ifname),
        req,
        opts: &opts,
    };

    let ((br, pair, veth_undo), lease) = ipam::add_alongside(req, ipam::wanted(req), || {
        links.build(net, &mut host, &mut ctr)
    })?;
    let mut undo = Rollbacks::new();
    undo.push(veth_undo);
    let mut result = match lease {
        Some((r, lease)) => {
            undo.push(lease);
            r
        }
        None => CniResult::default(),
    };
    if ipam::wanted(req) && result.ips.is_empty() {
        return Err(Error::io("IPAM plugin returned no IP configuration"));
    }
    for ip in &mut result.ips {
        ip.interface = Some(CONTAINER_IF);
    }
    net.shape_result(&mut result)?;

    container::configure(
        &netns,
        &mut ctr,
        &pair.container,
        &result,
        CONTAINER_IF,
        opts.iface,
    )?;
    point::<N>("bridge.add.after-container");
    let attached = Attached {
        req,
        host: &mut host,
        bridge: &br,
        pair: &pair,
        result: &result,
    };
    net.after_attach(attached, &mut undo)?;

    result.interfaces = interfaces::<N>(&mut host, &mut ctr, &br, &pair, &opts, netns_path)?;
    point::<N>("bridge.add.before-commit");
    undo.commit();
    point::<N>("bridge.add.after-commit");
    Ok(result)
}

/// What builds a container's links.
struct Links<'a> {
    netns: &'a NetNs,
    host_veth: String,
    req: &'a Request,
    opts: &'a LinkOpts,
}

impl Links<'_> {
    /// The network's devices, the veth pair and the port, in the order
    /// [`BridgeNetwork::DEVICES_FOLLOW_PORTS`] says. The undo removes the
    /// pair.
    fn build<N: BridgeNetwork>(
        &self,
        net: &N,
        host: &mut Netlink,
        ctr: &mut Netlink,
    ) -> Result<(Link, Pair, Undo<'static>)> {
        let early = if N::DEVICES_FOLLOW_PORTS {
            None
        } else {
            let br = net.ensure_devices(host)?;
            point::<N>("bridge.add.after-bridge");
            Some(br)
        };
        let veth = VethRequest {
            host_name: self.host_veth.clone(),
            ifname: self.req.ifname.clone(),
            netns: self.netns,
            mtu: self.opts.mtu,
            mac: self.opts.mac,
        };
        let (pair, undo) = veth::create(host, ctr, &veth)?;
        point::<N>("bridge.add.after-veth");
        // The pair needs nothing shared; the devices a DEL may remove do.
        let _lock = match N::DEVICES_FOLLOW_PORTS {
            true => Some(exclusive_lock(net)?),
            false => None,
        };
        let br = match early {
            Some(br) => br,
            None => net.ensure_devices(host)?,
        };
        veth::attach(host, pair.host.index, br.index, &self.opts.port)?;
        point::<N>("bridge.add.after-attach");
        Ok((br, pair, undo))
    }
}

/// The result's interfaces, read once the port is up: a bridge's MAC
/// follows its ports, so it is read after attaching ours.
fn interfaces<N: BridgeNetwork>(
    host: &mut Netlink,
    ctr: &mut Netlink,
    br: &Link,
    pair: &Pair,
    opts: &LinkOpts,
    netns: &std::path::Path,
) -> Result<Vec<cni_spec::Interface>> {
    let host_link = if opts.iface.leave_down {
        host.link_by_index(pair.host.index)?
    } else {
        veth::wait_up(host, pair.host.index, LINK_UP_TIMEOUT)?
    };
    let br = host.link_by_index(br.index)?;
    let container = if N::REPORT_MTU {
        ctr.link_by_index(pair.container.index)?
    } else {
        pair.container.clone()
    };
    Ok(result::interfaces(
        &br,
        &host_link,
        &container,
        netns,
        N::REPORT_MTU,
    ))
}
