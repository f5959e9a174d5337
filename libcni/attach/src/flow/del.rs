//! DEL. Deleting a veth (~20 ms) and nftables rules (~16 ms each) are RCU
//! grace periods in the kernel: issued from separate threads they overlap
//! instead of adding up, and IPAM DEL runs meanwhile.

use std::thread;

use cni_net::netlink::{self, Netlink};
use cni_net::netns::NetNs;
use cni_plugin::skel::Request;
use cni_plugin::{ipam, log};
use cni_spec::error::{Error, ErrorList, Result};

use super::{exclusive_lock, point, ports, BridgeNetwork};
use crate::names::host_veth_name;
use crate::veth;

pub fn del<N: BridgeNetwork>(net: &N, req: &Request) -> Result<()> {
    let (_, bridge) = net.names();
    let host_veth = host_veth_name(&req.container_id, &req.ifname);
    let mut errs = ErrorList::new();

    // Is ours the network's last port? Then the network's own state goes
    // too, in parallel with the rest (the lock keeps ADDs from re-adding it
    // halfway).
    let lock = errs.check(exclusive_lock(net));
    let last = errs
        .check(ports::network_unused(bridge, Some(&host_veth)))
        .unwrap_or(false);
    let lock = if last {
        lock
    } else {
        // Shadowing would keep it held: release it now.
        drop(lock);
        None
    };

    thread::scope(|s| {
        let link = s.spawn(|| {
            let r = delete_links(req, &host_veth);
            point::<N>("bridge.del.after-links");
            r
        });
        let rules = N::CONTAINER_RULES.then(|| {
            s.spawn(|| {
                let r = net.remove_container_rules(req);
                point::<N>("bridge.del.after-container-rules");
                r
            })
        });
        let network = last.then(|| {
            s.spawn(|| {
                let r = net.remove_network();
                point::<N>("bridge.del.after-network-rules");
                r
            })
        });
        if ipam::wanted(req) {
            errs.check(ipam::del(req));
            point::<N>("bridge.del.after-ipam");
        }
        for h in [Some(link), rules, network].into_iter().flatten() {
            errs.check(join::<N>(h));
        }
    });
    drop(lock);
    point::<N>("bridge.del.after-parallel");

    // Two last DELs at once each see the other's port: whoever finishes
    // second finds the bridge empty and removes the network's state.
    if !last {
        let _lock = errs.check(exclusive_lock(net));
        if errs
            .check(ports::network_unused(bridge, None))
            .unwrap_or(false)
        {
            errs.check(net.remove_network());
        }
    }
    errs.into_result()
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
fn join<N: BridgeNetwork>(h: thread::ScopedJoinHandle<'_, Result<()>>) -> Result<()> {
    h.join().map_err(|_| {
        Error::internal(format!(
            "a worker thread of the {} plugin panicked",
            N::ABOUT.name
        ))
    })?
}
