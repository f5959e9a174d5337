//! A service's tasks: sandboxes (named namespaces, as `cnitool sandbox
//! create` makes them) attached to the service's network, named as Docker
//! names tasks: `NAME.<slot>.<task id>`. What runs inside is the caller's.

use std::net::{IpAddr, Ipv4Addr};

use super::model::{new_id, Task};
use crate::endpoints::{self, ConnectOptions, Sandbox};
use crate::registry::Entry;
use cni_runtime::CniConfig;
use cni_spec::error::{Error, ErrorList, Result};
use cni_spec::CniResult;

/// A task's name, which is also its sandbox's: Docker's `NAME.<slot>.<id>`.
pub fn task_name(service: &str, slot: u64, id: &str) -> String {
    format!("{service}.{slot}.{id}")
}

/// The sandbox of a task.
pub fn sandbox(task_name: &str) -> Result<Sandbox> {
    Sandbox::resolve(task_name)
}

/// Create slot `slot` of service `service` on `net`; nothing is left when
/// it fails.
pub fn start(cni: &CniConfig, net: &Entry, service: &str, slot: u64) -> Result<Task> {
    start_as(cni, net, service, slot, new_id()?)
}

/// [`start`] with the task ID given (a cluster's agent runs the task the
/// store assigned to its host).
pub fn start_as(
    cni: &CniConfig,
    net: &Entry,
    service: &str,
    slot: u64,
    id: String,
) -> Result<Task> {
    let name = task_name(service, slot, &id);
    let sb = sandbox(&name)?;
    endpoints::create_sandbox(&sb, cni.cache.root())?;
    let attach = || -> Result<Ipv4Addr> {
        let result = endpoints::connect(cni, net, &sb, &ConnectOptions::default())?
            .ok_or_else(|| Error::invalid_config("a service needs a network with addresses"))?;
        let r = CniResult::from_value(&result)?;
        hairpin(net, &r)?;
        r.ips
            .iter()
            .find_map(|ip| match ip.address.ip() {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
            .ok_or_else(|| {
                Error::invalid_config(format!(
                    "network {} gave task {name} no IPv4 address",
                    net.name
                ))
            })
    };
    match attach() {
        Ok(address) => Ok(Task {
            slot,
            id,
            name,
            address,
            host: None,
        }),
        Err(e) => {
            let _ = stop_named(cni, &name, std::slice::from_ref(net));
            Err(e)
        }
    }
}

/// A task reaching its own service: the host sends the translated packet
/// back out of the bridge port it came in on, which a bridge refuses
/// unless the port is in hairpin mode (`cnitool network create` bridges
/// set it for every port; other bridge networks may not).
fn hairpin(net: &Entry, r: &CniResult) -> Result<()> {
    let Some(bridge) = net.list.as_ref().and_then(super::vip::bridge_of) else {
        return Ok(());
    };
    let mut nl = cni_net::netlink::Netlink::new()?;
    let flags = cni_net::netlink::BridgePortFlags {
        hairpin: Some(true),
        ..Default::default()
    };
    for i in r
        .interfaces
        .iter()
        .filter(|i| i.sandbox.is_none() && i.name != bridge)
    {
        if let Some(link) = nl.link_by_name_opt(&i.name)? {
            nl.set_bridge_port(link.index, &flags)?;
        }
    }
    Ok(())
}

/// Detach a task from everything and delete its sandbox.
pub fn stop(cni: &CniConfig, task: &Task, nets: &[Entry]) -> Result<()> {
    stop_named(cni, &task.name, nets)
}

/// [`stop`] by the task's name.
pub fn stop_named(cni: &CniConfig, name: &str, nets: &[Entry]) -> Result<()> {
    let sb = sandbox(name)?;
    let mut errs = ErrorList::new();
    errs.check(endpoints::disconnect_all(cni, &sb, nets));
    errs.check(endpoints::delete_sandbox(&sb, cni.cache.root()));
    errs.into_result()
}

/// Whether the task's sandbox still exists (`REPLICAS` counts these).
pub fn running(task: &Task) -> bool {
    sandbox(&task.name).is_ok_and(|sb| sb.path.exists())
}
