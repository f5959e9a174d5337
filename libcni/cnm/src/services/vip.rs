//! A service's virtual IP: an address of its network taken from the
//! network's own IPAM (so no container can get it), held under the owner
//! `service-<id>` with interface `vip`, and put on the network's bridge as
//! a /32 so the host answers ARP for it and sees the connections to it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipnetwork::IpNetwork;
use serde_json::{json, Map, Value};

use cni_plugin::invoke::{self, Env};
use cni_plugin::skel::Command;
use cni_runtime::conf::LoadedList;
use cni_runtime::CniConfig;
use cni_spec::error::{Error, Result};
use cni_spec::{CniResult, SUPPORTED};

const VIP_IFNAME: &str = "vip";

/// The first plugin of the chain that delegates to an IPAM plugin.
fn ipam_holder(list: &LoadedList) -> Result<&Map<String, Value>> {
    list.list
        .plugins
        .iter()
        .find(|p| p.get("ipam").and_then(|i| i.get("type")).is_some())
        .ok_or_else(|| {
            Error::invalid_config(format!(
                "network {} has no IPAM to take a virtual IP from",
                list.list.name
            ))
        })
}

/// The bridge device of the chain's `bridge` plugin.
pub fn bridge_of(list: &LoadedList) -> Option<String> {
    let p = list
        .list
        .plugins
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("bridge"))?;
    Some(
        p.get("bridge")
            .and_then(Value::as_str)
            .unwrap_or("cni0")
            .to_string(),
    )
}

fn call_ipam(cni: &CniConfig, list: &LoadedList, owner: &str, cmd: Command) -> Result<Vec<u8>> {
    let holder = ipam_holder(list)?;
    let ipam = holder.get("ipam").cloned().unwrap_or(Value::Null);
    let kind = ipam
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let version = list.list.effective_version(SUPPORTED)?;
    let stdin = json!({
        "cniVersion": version.as_str(),
        "name": list.list.name,
        "type": holder.get("type").cloned().unwrap_or(Value::Null),
        "ipam": ipam,
    });
    // IPAM plugins insist on a CNI_NETNS (the skeletons demand it for ADD)
    // but never open it; the VIP has no namespace: a path that names none.
    let env = Env {
        container_id: owner.to_string(),
        netns: Some(Path::new(crate::endpoints::NETNS_DIR).join(owner)),
        ifname: VIP_IFNAME.into(),
        args: String::new(),
        path: cni.path.clone(),
    };
    let bin = invoke::find_plugin(&kind, &cni.path)?;
    invoke::exec(
        &bin,
        cmd,
        &env,
        &serde_json::to_vec(&stdin).unwrap_or_default(),
    )
}

/// Take one IPv4 address of the network for `owner`.
pub fn reserve(cni: &CniConfig, list: &LoadedList, owner: &str) -> Result<IpNetwork> {
    let out = call_ipam(cni, list, owner, Command::Add)?;
    let r = CniResult::from_slice(&out)?;
    let found = r
        .ips
        .iter()
        .find(|ip| ip.address.is_ipv4())
        .map(|ip| ip.address);
    match found {
        Some(a) => Ok(a),
        None => {
            let _ = release(cni, list, owner);
            Err(Error::invalid_config(format!(
                "network {} gave no IPv4 address for a virtual IP",
                list.list.name
            )))
        }
    }
}

/// Give the address back (DEL of the IPAM plugin: nothing held is success).
pub fn release(cni: &CniConfig, list: &LoadedList, owner: &str) -> Result<()> {
    call_ipam(cni, list, owner, Command::Del).map(|_| ())
}

fn host32(vip: Ipv4Addr) -> Result<IpNetwork> {
    IpNetwork::new(IpAddr::V4(vip), 32).map_err(|e| Error::internal(e.to_string()))
}

/// Put the VIP on the bridge (in the current namespace). Idempotent; no
/// bridge yet (no task yet) is success.
pub fn add_to_bridge(bridge: &str, vip: Ipv4Addr) -> Result<()> {
    let mut nl = cni_net::netlink::Netlink::new()?;
    let Some(br) = nl.link_by_name_opt(bridge)? else {
        return Ok(());
    };
    nl.add_address(br.index, host32(vip)?, true)
}

/// Take the VIP off the bridge; a missing bridge or address is success.
pub fn remove_from_bridge(bridge: &str, vip: Ipv4Addr) -> Result<()> {
    let mut nl = cni_net::netlink::Netlink::new()?;
    let Some(br) = nl.link_by_name_opt(bridge)? else {
        return Ok(());
    };
    let want = host32(vip)?;
    let has = nl.addresses(Some(br.index))?.iter().any(|a| a.addr == want);
    if !has {
        return Ok(());
    }
    nl.del_address(br.index, want)
}
