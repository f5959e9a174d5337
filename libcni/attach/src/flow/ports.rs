//! Our ports on a network's bridge: whether any is left (the last one
//! takes the network's state with it), and GC of the stale ones. The
//! kernel filters the dumps to the bridge's ports, and "is any left" stops
//! at the first one, so neither grows with the containers on the bridge.

use std::collections::HashSet;

use cni_net::netlink::Netlink;
use cni_spec::error::{ErrorList, Result};
use cni_spec::Attachment;

use crate::bridge::{has_other_port, our_ports};
use crate::names::host_veth_name;
use crate::veth;

/// True when no container port of ours is left on `bridge`, not counting
/// `leaving` (the port this DEL is removing). No bridge: none left.
pub fn network_unused(bridge: &str, leaving: Option<&str>) -> Result<bool> {
    let mut host = Netlink::new()?;
    let Some(br) = host.link_by_name_opt(bridge)? else {
        return Ok(true);
    };
    Ok(!has_other_port(host, br.index, leaving)?)
}

/// GC: delete our ports on `bridge` that belong to no attachment in
/// `valid`. Returns whether no port of ours is left.
pub fn prune(bridge: &str, valid: &[Attachment]) -> Result<bool> {
    let keep: HashSet<String> = valid
        .iter()
        .map(|a| host_veth_name(&a.container_id, &a.ifname))
        .collect();
    let mut nl = Netlink::new()?;
    let Some(br) = nl.link_by_name_opt(bridge)? else {
        return Ok(true);
    };
    let mut errs = ErrorList::new();
    let mut left = 0;
    for p in our_ports(&mut nl, br.index)? {
        if keep.contains(&p.name) {
            left += 1;
        } else {
            errs.check(veth::delete(&mut nl, &p.name));
        }
    }
    errs.into_result()?;
    Ok(left == 0)
}
