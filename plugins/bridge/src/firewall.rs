//! The bridge's use of `cni_net::firewall`: which shared rules a network
//! needs (masquerade of its subnets, isolation from other bridge networks),
//! and the per-container MAC spoof check with its rollback.

use cni_attach::flow::{Attached, Checked};
use cni_attach::lock::NetworkLock;
use cni_net::firewall::{self, NetworkFirewall};
use cni_net::netlink::Mac;
use cni_plugin::rollback::{Rollbacks, Undo};
use cni_plugin::{fault, log};
use cni_spec::Result;
use cni_spec::{Attachment, CniResult};

use crate::result;
use ::bridge::config::Conf;

pub use cni_net::firewall::{del_container, remove_network};

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

/// ADD's rules, under the network's shared lock. Our port is on the
/// bridge already, so a concurrent last DEL (which removes the network's
/// rules, spoof checks included, under the exclusive lock) either ran
/// before and we put everything back, or runs after and sees our port (see
/// `cni_attach::lock`).
pub fn attach(conf: &Conf, a: &Attached<'_>, undo: &mut Rollbacks<'_>) -> Result<()> {
    let network_fw = network(conf, a.result);
    let _lock = if conf.macspoofchk || network_fw.is_some() {
        Some(NetworkLock::shared(&conf.network, &conf.bridge)?)
    } else {
        None
    };
    if conf.macspoofchk {
        let mac = a.pair.container.mac.unwrap_or_default();
        let (id, ifname) = (&a.req.container_id, &a.req.ifname);
        undo.push(add_spoofcheck(conf, id, ifname, &a.pair.host.name, &mac)?);
        fault::point("bridge.add.after-spoofcheck");
    }
    if let Some(fw) = network_fw {
        firewall::ensure_network(&fw)?;
    }
    Ok(())
}

/// CHECK: the network's rules and the port's spoof check are in place.
pub fn check(conf: &Conf, c: &Checked<'_>) -> Result<()> {
    if let Some(fw) = network(conf, c.prev) {
        firewall::check_network(&fw)?;
    }
    if conf.macspoofchk {
        let mac = c.container.mac.unwrap_or_default();
        firewall::check_spoofcheck(
            &conf.network,
            &c.req.container_id,
            &c.req.ifname,
            &c.host_veth.name,
            &mac,
        )?;
    }
    Ok(())
}

/// Only frames with the container's MAC may enter the bridge from its port.
/// The returned undo removes the check again unless ADD completes.
fn add_spoofcheck(
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
