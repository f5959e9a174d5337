//! Cluster scope: publishing a new endpoint through the per-host daemon,
//! which stores it in etcd; every other host's daemon then tunnels its MAC
//! to this host. Removal rides on cluster-ipam's DEL, which releases the
//! address and unpublishes it in one step.

use std::time::Duration;

use cni_dns::cluster::{ask, AskError};
use cni_dns::control::ClusterRequest;
use cni_net::netlink::Mac;
use cni_plugin::skel::Request;
use cni_spec::{CniResult, Error, Result};

use vxlan_overlay::config::Conf;

/// Longer than the daemon's own etcd call budget, so a slow store is
/// reported by the daemon (code 11), not by a timed-out socket.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

pub fn publish(req: &Request, conf: &Conf, mac: Option<Mac>, result: &CniResult) -> Result<()> {
    let mac = mac.ok_or_else(|| Error::io("the container interface has no MAC address"))?;
    for ip in &result.ips {
        ask(
            ClusterRequest::Publish {
                network: conf.network.clone(),
                ip: ip.address.ip(),
                mac: cni_net::netlink::format_mac(&mac),
                container_id: req.container_id.clone(),
            },
            &req.path,
            ASK_TIMEOUT,
        )
        .map_err(|AskError { code, msg }| {
            Error::new(
                code.unwrap_or(999),
                format!("publishing the endpoint: {msg}"),
            )
        })?;
    }
    Ok(())
}
