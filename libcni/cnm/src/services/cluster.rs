//! Services on a cluster network. cnitool asks its host's daemon (never
//! etcd): the service lives in the store, every host's daemon is the agent
//! that runs the tasks placed on it and applies the service's rules, and
//! the routing mesh makes a published port answer on every host. What
//! both sides share is here: the wire shapes, the placement rule and
//! Docker's constraints, and the blocking steps the agent runs (a task's
//! sandbox, its names).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{EndpointMode, ProtoName, Service};
use super::ops::CreateSpec;
use super::{names, tasks};
use crate::cli::Settings;
use crate::registry::Entry;
use cni_dns::cluster::AskError;
use cni_dns::control::ClusterRequest;
use cni_runtime::CniConfig;
use cni_spec::error::{Error, Result};

/// `create` and `scale` wait for the tasks on every host; the daemon's own
/// wait is shorter, so a slow cluster is reported by the daemon.
const ASK_TIMEOUT: Duration = Duration::from_secs(120);

/// `service create` on a cluster network, as cnitool sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    pub name: String,
    pub network: String,
    pub network_id: String,
    pub replicas: u64,
    pub endpoint_mode: EndpointMode,
    /// (published or None, target, protocol)
    pub ports: Vec<(Option<u16>, u16, ProtoName)>,
    pub constraints: Vec<String>,
    /// `-d`: answer once the tasks are placed, not once they run.
    #[serde(default)]
    pub detach: bool,
}

/// One task as the store keeps it (`tasks/<service>/<slot>`): placed on
/// `host` by the manager, its address written back by that host's agent.
/// A task no alive host can take is pending (swarm's): no host, no
/// address, the reason in `pending`, until a suitable host appears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterTask {
    pub slot: u64,
    pub id: String,
    pub name: String,
    /// Empty while the task is pending.
    #[serde(default)]
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// Why the host could not start it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why no host runs it (Docker's "no suitable node (...)").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

impl ClusterTask {
    /// The task as `service inspect` shows it (running: it has an address).
    pub fn shown(&self) -> Option<super::model::Task> {
        Some(super::model::Task {
            slot: self.slot,
            id: self.id.clone(),
            name: self.name.clone(),
            address: self.address?,
            host: Some(self.host.clone()),
        })
    }

    /// Whether no host runs it: waiting for a suitable one.
    pub fn is_pending(&self) -> bool {
        self.host.is_empty()
    }

    /// The task as `service inspect` shows it while pending.
    pub fn shown_pending(&self) -> Option<super::model::PendingTask> {
        self.is_pending().then(|| super::model::PendingTask {
            slot: self.slot,
            id: self.id.clone(),
            name: self.name.clone(),
            reason: self.pending.clone().unwrap_or_default(),
        })
    }

    /// Slot `slot` of `service`, new (`id`) and pending: no alive host
    /// satisfies `constraints`.
    pub fn new_pending(service: &str, slot: u64, id: String, constraints: &[String]) -> Self {
        ClusterTask {
            slot,
            name: format!("{service}.{slot}.{id}"),
            id,
            host: String::new(),
            address: None,
            error: None,
            pending: Some(format!(
                "no suitable node (scheduling constraints not satisfied on any alive node: {})",
                constraints.join(", ")
            )),
        }
    }
}

/// Whether the network is a cluster's (its services go to the store).
pub fn is_cluster(net: &Entry) -> bool {
    net.network.as_ref().is_some_and(|n| n.cluster)
}

/// Whether this host is in a cluster (its services are listed too).
pub fn clustered() -> bool {
    matches!(cni_dns::cluster::load(), Ok(Some(_)))
}

/// One placement constraint: `node.hostname==H` (true) or `!=` (false).
pub fn parse_constraint(c: &str) -> Result<(bool, String)> {
    let (key, eq, value) = if let Some((k, v)) = c.split_once("==") {
        (k, true, v)
    } else if let Some((k, v)) = c.split_once("!=") {
        (k, false, v)
    } else {
        return Err(Error::invalid_config(format!(
            "rpc error: code = InvalidArgument desc = invalid constraint {c:?}: constraint expected one operator from ==, !="
        )));
    };
    let (key, value) = (key.trim(), value.trim());
    if !key.eq_ignore_ascii_case("node.hostname") {
        return Err(Error::invalid_config(format!(
            "rpc error: code = InvalidArgument desc = invalid constraint {c:?}: only node.hostname is supported"
        )));
    }
    if value.is_empty() {
        return Err(Error::invalid_config(format!(
            "rpc error: code = InvalidArgument desc = invalid constraint {c:?}: no value"
        )));
    }
    Ok((eq, value.to_string()))
}

/// Where the next task goes: among `hosts` (alive, in name order) that the
/// constraints allow, the one with the fewest tasks of this service
/// (`counts`), ties by name: swarm's spread.
pub fn place(
    hosts: &[String],
    counts: &BTreeMap<String, u64>,
    constraints: &[(bool, String)],
) -> Option<String> {
    hosts
        .iter()
        .filter(|h| constraints.iter().all(|(eq, v)| (*h == v) == *eq))
        .min_by_key(|h| (counts.get(*h).copied().unwrap_or(0), (*h).clone()))
        .cloned()
}

fn ask(req: ClusterRequest, s: &Settings) -> Result<Value> {
    cni_dns::cluster::ask(req, &s.cni.path, ASK_TIMEOUT)
        .map(|d| d.unwrap_or(Value::Null))
        .map_err(|AskError { code, msg }| Error::new(code.unwrap_or(7), msg))
}

fn service_of(v: Value) -> Result<Service> {
    serde_json::from_value(v)
        .map_err(|e| Error::internal(format!("the daemon's answer is no service: {e}")))
}

/// `service create` on a cluster network: the daemon places the tasks and
/// answers once every one runs.
pub fn create(
    spec: &CreateSpec,
    net: &Entry,
    constraints: &[String],
    detach: bool,
    s: &Settings,
) -> Result<Service> {
    for c in constraints {
        parse_constraint(c)?;
    }
    let wire = ClusterSpec {
        name: spec.name.clone(),
        network: net.name.clone(),
        network_id: net.id.clone(),
        replicas: spec.replicas,
        endpoint_mode: spec.mode,
        ports: spec.ports.clone(),
        constraints: constraints.to_vec(),
        detach,
    };
    let spec = serde_json::to_value(&wire).map_err(|e| Error::internal(e.to_string()))?;
    service_of(ask(ClusterRequest::ServiceCreate { spec }, s)?)
}

pub fn scale(name: &str, replicas: u64, detach: bool, s: &Settings) -> Result<Service> {
    service_of(ask(
        ClusterRequest::ServiceScale {
            name: name.to_string(),
            replicas,
            detach,
        },
        s,
    )?)
}

pub fn remove(name: &str, s: &Settings) -> Result<Service> {
    service_of(ask(
        ClusterRequest::ServiceRm {
            name: name.to_string(),
        },
        s,
    )?)
}

/// Every service of the cluster.
pub fn list(s: &Settings) -> Result<Vec<Service>> {
    let v = ask(ClusterRequest::ServiceLs, s)?;
    let mut out: Vec<Service> = serde_json::from_value(v)
        .map_err(|e| Error::internal(format!("the daemon's answer is no service list: {e}")))?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A cluster service by name, full ID or unique ID prefix.
pub fn find(key: &str, s: &Settings) -> Result<Service> {
    let all = list(s)?;
    if let Some(x) = all.iter().find(|x| x.name == key || x.id == key) {
        return Ok(x.clone());
    }
    let by_prefix: Vec<&Service> = all.iter().filter(|x| x.id.starts_with(key)).collect();
    match by_prefix.as_slice() {
        [one] if !key.is_empty() => Ok((*one).clone()),
        _ => Err(Error::invalid_config(format!("No such service: {key}"))),
    }
}

/// The agent's settings: this host's config folder, the plugins' folders,
/// the result cache.
pub fn agent_settings(
    conf_dir: std::path::PathBuf,
    path: Vec<std::path::PathBuf>,
    cache: std::path::PathBuf,
) -> Settings {
    Settings {
        conf_dir,
        cni: CniConfig::new(path, cache),
    }
}

/// Run a task placed on this host: its sandbox attached to the network
/// through the host's conflist. Returns its address. The agent starts only
/// tasks it has no record of, so a sandbox of this task's name is one a
/// daemon killed with -9 made (maybe half) before it could record it: it
/// is taken down first, so the task runs once, with one address.
pub fn start_task(s: &Settings, t: &ClusterTask, service: &str, network: &str) -> Result<Ipv4Addr> {
    let net = s.registry().find(network)?;
    let name = tasks::task_name(service, t.slot, &t.id);
    if tasks::sandbox(&name)?.path.exists() {
        stop_task(s, &name)?;
    }
    let task = tasks::start_as(&s.cni, &net, service, t.slot, t.id.clone())?;
    Ok(task.address)
}

/// Stop a task of this host (gone from the store, or its service is).
pub fn stop_task(s: &Settings, name: &str) -> Result<()> {
    let nets = s.registry().list().unwrap_or_default();
    tasks::stop_named(&s.cni, name, &nets)
}

/// The resolver's records of this host's tasks of a service: each task's
/// name, `tasks.NAME` (and NAME itself in dnsrr mode), in the task's own
/// namespace. The daemon publishes them to the other hosts as it does
/// dnsname's. The virtual IP's name is the daemon's (every host answers it
/// from the store).
pub fn task_names(s: &Settings, old: Option<&Service>, new: Option<&Service>) -> Result<()> {
    let network = new.or(old).map(|x| x.network.clone()).unwrap_or_default();
    let entry = s.registry().find(&network).ok();
    let list = entry.as_ref().and_then(|e| e.list.as_ref());
    let local_only = |x: &Service| Service {
        vip: None,
        ..x.clone()
    };
    let old = old.map(local_only);
    let new = new.map(local_only);
    names::update(
        &cni_dns::StateDir::resolve(None),
        &s.cni.path,
        list,
        old.as_ref(),
        new.as_ref(),
    )
}

/// The resolver record of a service's virtual IP on its network (every
/// host serves it), for the daemon; `list` is the network's stored
/// conflist.
pub fn vip_record(svc: &Service, list: &Value) -> Option<cni_dns::Record> {
    let vip = svc.vip_addr()?;
    (svc.endpoint_mode == EndpointMode::Vip).then(|| cni_dns::Record {
        network: svc.network.clone(),
        domain: names::domain_of(list),
        forward: true,
        container_id: svc.vip_owner(),
        ifname: "vip".into(),
        netns: String::new(),
        names: vec![svc.name.to_ascii_lowercase()],
        addresses: vec![std::net::IpAddr::V4(vip)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_parse_like_docker() {
        assert_eq!(
            parse_constraint("node.hostname==h1").unwrap(),
            (true, "h1".into())
        );
        assert_eq!(
            parse_constraint("node.hostname != h2").unwrap(),
            (false, "h2".into())
        );
        for bad in ["node.hostname=h1", "node.role==manager", "node.hostname=="] {
            assert!(parse_constraint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pending_task_has_no_host_or_address_and_is_not_running() {
        let t = ClusterTask::new_pending("web", 2, "t9".into(), &["node.hostname==h1".into()]);
        assert!(t.is_pending() && t.address.is_none());
        assert_eq!(t.name, "web.2.t9");
        assert!(t.shown().is_none(), "not running, no backend");
        let p = t.shown_pending().unwrap();
        assert!(p.reason.starts_with("no suitable node"), "{}", p.reason);
        assert!(p.reason.contains("node.hostname==h1"));
        // Stored without a host; read back the same.
        let wire = serde_json::to_value(&t).unwrap();
        assert_eq!(wire["host"], "");
        assert_eq!(serde_json::from_value::<ClusterTask>(wire).unwrap(), t);
        // A placed task, as stored before pending existed, is not pending.
        let placed: ClusterTask =
            serde_json::from_str(r#"{"slot":1,"id":"a","name":"web.1.a","host":"h1"}"#).unwrap();
        assert!(!placed.is_pending() && placed.shown_pending().is_none());
        let no_host: ClusterTask =
            serde_json::from_str(r#"{"slot":1,"id":"a","name":"web.1.a"}"#).unwrap();
        assert!(no_host.is_pending());
    }

    #[test]
    fn placement_spreads_and_honours_constraints() {
        let hosts: Vec<String> = ["h1", "h2", "h3"].iter().map(|s| s.to_string()).collect();
        let mut counts = BTreeMap::new();
        assert_eq!(place(&hosts, &counts, &[]).as_deref(), Some("h1"));
        counts.insert("h1".to_string(), 1);
        assert_eq!(place(&hosts, &counts, &[]).as_deref(), Some("h2"));
        counts.insert("h2".to_string(), 1);
        counts.insert("h3".to_string(), 1);
        assert_eq!(place(&hosts, &counts, &[]).as_deref(), Some("h1"));
        let not_h1 = [(false, "h1".to_string())];
        assert_eq!(place(&hosts, &counts, &not_h1).as_deref(), Some("h2"));
        let only_h3 = [(true, "h3".to_string())];
        assert_eq!(place(&hosts, &counts, &only_h3).as_deref(), Some("h3"));
        let nowhere = [(true, "h9".to_string())];
        assert_eq!(place(&hosts, &counts, &nowhere), None);
    }
}
