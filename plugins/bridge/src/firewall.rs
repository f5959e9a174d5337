//! The bridge's use of `cni_net::firewall`: which shared rules a network
//! needs (masquerade of its subnets, isolation from other bridge networks),
//! and the per-container MAC spoof check with its rollback guard.

use cni_net::firewall::{self, NetworkFirewall};
use cni_net::netlink::Mac;
use cni_plugin::log;
use cni_plugin::rollback::Undo;
use cni_spec::Result;
use cni_spec::{Attachment, CniResult};

use crate::config::Conf;
use crate::result;

pub use cni_net::firewall::{
    check_network, check_spoofcheck, del_container, ensure_network, remove_network,
};

/// The network's shared rules for a result, or None when it needs none
/// (no masquerade and no isolation).
pub fn network(conf: &Conf, res: &CniResult) -> Option<NetworkFirewall> {
    let subnets = result::subnets(res);
    let masquerade = conf.ip_masq && !subnets.is_empty();
    (masquerade || conf.isolation).then(|| NetworkFirewall {
        network: conf.network.clone(),
        bridge: conf.bridge.clone(),
        subnets,
        masquerade,
        isolate: conf.isolation,
    })
}

/// Only frames with the container's MAC may enter the bridge from its port.
/// The returned undo removes the check again unless ADD completes.
pub fn add_spoofcheck(
    conf: &Conf,
    container_id: &str,
    ifname: &str,
    host_veth: &str,
    mac: &Mac,
) -> Result<Undo<'static>> {
    let undo = undo_container_rules(&conf.network, container_id, ifname);
    firewall::add_spoofcheck(&conf.network, container_id, ifname, host_veth, mac)?;
    Ok(undo)
}

/// GC: the rules of attachments not in `valid` go; with none valid, the
/// network's shared rules too.
pub fn gc(network: &str, valid: &[Attachment]) -> Result<()> {
    let pairs: Vec<(&str, &str)> = valid
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    firewall::gc(network, &pairs)
}

/// Undoes [`add_spoofcheck`] when ADD fails after it.
fn undo_container_rules(network: &str, container_id: &str, ifname: &str) -> Undo<'static> {
    let (network, container_id, ifname) = (
        network.to_string(),
        container_id.to_string(),
        ifname.to_string(),
    );
    Undo::boxed(move || {
        if let Err(e) = del_container(&network, &container_id, &ifname) {
            log::error(&format!("rollback: remove container rules: {e}"));
        }
    })
}
