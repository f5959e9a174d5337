//! The bridge's use of `cni_net::firewall`: which shared rules a network
//! needs (masquerade of its subnets, isolation from other bridge networks),
//! and the per-container MAC spoof check with its rollback guard.

use cni_net::firewall::{self, NetworkFirewall};
use cni_net::netlink::Mac;
use cni_plugin::log;
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
/// The guard removes the check again unless ADD completes.
pub fn add_spoofcheck<'a>(
    conf: &'a Conf,
    container_id: &'a str,
    ifname: &'a str,
    host_veth: &str,
    mac: &Mac,
) -> Result<ContainerRulesGuard<'a>> {
    let guard = ContainerRulesGuard {
        network: &conf.network,
        container_id,
        ifname,
        armed: true,
    };
    firewall::add_spoofcheck(&conf.network, container_id, ifname, host_veth, mac)?;
    Ok(guard)
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
pub struct ContainerRulesGuard<'a> {
    network: &'a str,
    container_id: &'a str,
    ifname: &'a str,
    armed: bool,
}

impl ContainerRulesGuard<'_> {
    pub fn commit(mut self) {
        self.armed = false;
    }
}

impl Drop for ContainerRulesGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = del_container(self.network, self.container_id, self.ifname) {
                log::error(&format!("rollback: remove container rules: {e}"));
            }
        }
    }
}
