//! The routing mesh's presence on this host: for every cluster network
//! that has a service, the overlay's bridge and VXLAN device exist here
//! even with no container of the network on the host (vxlan-overlay's own
//! device code, as a library), the host holds one address of the network
//! (its "mesh address", a cluster-IPAM lease owned by `mesh-<host>`) on the
//! bridge, and publishes it as an endpoint (its IP, the bridge's MAC, this
//! host's VTEP), so every other host programs forwarding and neighbour
//! entries for it. Connections a host translates to a task elsewhere leave
//! from this address (see `firewall::services::Mesh`), so the task's reply
//! comes back over the overlay to the host that translated it.
//!
//! The address on the bridge is also the mesh's claim on the devices: the
//! plugin's last DEL (or GC) leaves them while it is there
//! (`vxlan_overlay::mesh_claim`). Both sides decide under the network's
//! lock, so a DEL never removes the devices the mesh has just made.

use std::net::IpAddr;

use cni_attach::flow::ports;
use cni_attach::lock::NetworkLock;
use cni_dns::control::ClusterRequest;
use cni_net::netlink::{self, Netlink};
use cni_spec::{Error, Result};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vxlan_overlay::config::Conf;
use vxlan_overlay::tunnel::{self, Want};
use vxlan_overlay::{mesh_claim, underlay};

use super::ipam::Owner;
use super::Cluster;

/// This host's mesh on one network, as the agent keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshHere {
    /// The conflist the devices were made from (kept: the network may be
    /// gone from the host by the time the mesh goes).
    pub list: Value,
    pub bridge: String,
    pub address: IpNetwork,
}

/// The IPAM owner of a host's mesh address.
pub fn owner(host: &str) -> Owner {
    Owner {
        container_id: format!("mesh-{host}"),
        ifname: "mesh".into(),
    }
}

/// The devices, the address on the bridge and forwarding on: returns the
/// bridge's name and MAC.
fn devices_up(list: &Value, address: IpNetwork) -> Result<(String, String)> {
    let conf = Conf::from_list(list)?;
    let mut nl = Netlink::new()?;
    let under = underlay::resolve(&mut nl, &conf)?;
    let want = Want::new(&conf, &under);
    let _lock = NetworkLock::exclusive(&conf.network, &conf.bridge)?;
    let br = tunnel::ensure(&mut nl, &conf, &want)?;
    nl.add_address(br.index, address, true)?;
    // The host forwards what it translates (Docker sets it too).
    netlink::sysctl::set("net/ipv4/ip_forward", "1")?;
    let mac = br
        .mac
        .ok_or_else(|| Error::io(format!("bridge {} has no MAC address", conf.bridge)))?;
    Ok((conf.bridge, netlink::format_mac(&mac)))
}

/// The address off the bridge; the devices go too when nothing else
/// holds them (no container port, no other address).
fn devices_down(list: &Value, address: IpNetwork) -> Result<()> {
    let conf = Conf::from_list(list)?;
    let mut nl = Netlink::new()?;
    let _lock = NetworkLock::exclusive(&conf.network, &conf.bridge)?;
    let Some(br) = nl.link_by_name_opt(&conf.bridge)? else {
        return Ok(());
    };
    if nl
        .addresses(Some(br.index))?
        .iter()
        .any(|a| a.addr == address)
    {
        match nl.del_address(br.index, address) {
            Err(e) if !netlink::is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    if !mesh_claim::held(&mut nl, &conf.bridge)? && ports::network_unused(&conf.bridge, None)? {
        tunnel::remove(&mut nl, &conf)?;
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("mesh worker: {e}")))?
}

impl Cluster {
    /// Join the mesh of `network` on this host.
    pub(super) async fn mesh_up(&self, network: &str) -> std::result::Result<MeshHere, String> {
        let subnet = super::services::subnet_of(&self.view(), network)
            .ok_or_else(|| format!("network {network} has no subnet"))?;
        let owner = owner(self.me());
        let r = self.ipam_add(network, &subnet, &owner).await;
        let cidr: IpNetwork = match r.data.as_ref().and_then(Value::as_str) {
            Some(c) if r.ok => c.parse().map_err(|e| format!("mesh address {c}: {e}"))?,
            _ => return Err(r.error.unwrap_or_else(|| "no mesh address".into())),
        };
        let path = self.conf.conf_dir.join(format!("{network}.conflist"));
        let list: Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| format!("{} is not on this host yet", path.display()))?;
        let l = list.clone();
        let (bridge, mac) = blocking(move || devices_up(&l, cidr))
            .await
            .map_err(|e| e.to_string())?;
        let published = self
            .handle(ClusterRequest::Publish {
                network: network.to_string(),
                ip: cidr.ip(),
                mac,
                container_id: owner.container_id,
            })
            .await;
        if !published.ok {
            return Err(published.error.unwrap_or_default());
        }
        crate::log::info(&format!(
            "cluster: mesh of {network} up ({cidr} on {bridge})"
        ));
        Ok(MeshHere {
            list,
            bridge,
            address: cidr,
        })
    }

    /// Leave the mesh of `network`: endpoint and lease, address, devices.
    pub(super) async fn mesh_down(
        &self,
        network: &str,
        m: &MeshHere,
    ) -> std::result::Result<(), String> {
        // Devices first: once the endpoint is gone, the host is out.
        let (list, address) = (m.list.clone(), m.address);
        blocking(move || devices_down(&list, address))
            .await
            .map_err(|e| e.to_string())?;
        let r = self.ipam_del(network, &owner(self.me())).await;
        if !r.ok {
            return Err(r.error.unwrap_or_default());
        }
        crate::log::info(&format!("cluster: mesh of {network} down"));
        Ok(())
    }
}

/// The mesh address's IPv4 part.
pub fn v4(m: &MeshHere) -> Option<std::net::Ipv4Addr> {
    match m.address.ip() {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}
