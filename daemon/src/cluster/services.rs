//! Services on cluster networks, the manager's side (swarm's): `service
//! create|scale|rm|ls` from any host's cnitool. The service and its tasks
//! live in the store (`services/<name>`, `tasks/<name>/<slot>`); a task is
//! placed on a host by swarm's spread (fewest tasks of the service first,
//! ties by name, Docker's `node.hostname` constraints honoured), and that
//! host's agent (`agent`) runs it and writes its address back. Published
//! ports are claimed cluster-wide, one create-if-absent transaction per
//! `ports/<proto>/<port>`, so two hosts never publish one port twice.
//! `create` and `scale` answer once every new task runs (bounded); a
//! failed `create` takes back what it wrote, and the agents undo the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use cni_cnm::model::now_rfc3339;
use cni_cnm::services::cluster::{parse_constraint, place, ClusterSpec, ClusterTask};
use cni_cnm::services::model::{self, vip_owner, EndpointMode, Port, Service};
use cni_dns::control::{ClusterRequest, Reply};
use cni_net::firewall::portmap::PORT_TAKEN;
use cni_net::firewall::services as rules;
use serde_json::{json, Value};

use super::etcd::{Event, Kv};
use super::ipam::Owner;
use super::store::{key, View};
use super::{fail, Cluster};
use crate::log;

/// How long `create` and `scale` wait for the agents to run new tasks.
const TASKS_WAIT: Duration = Duration::from_secs(60);
/// How long `rm` waits for the hosts to take the service's endpoints off
/// the overlay (so the network can be removed right after).
const RM_WAIT: Duration = Duration::from_secs(15);
/// Published ports Docker picks from when `-p TARGET` names none.
const AUTO_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// The IPAM owner of a service's virtual IP (the creating host's lease).
pub fn vip_lease(id: &str) -> Owner {
    Owner {
        container_id: vip_owner(id),
        ifname: "vip".into(),
    }
}

fn port_key(p: &Port) -> String {
    key(&["ports", p.proto(), &p.published.to_string()])
}

fn invalid(msg: impl Into<String>) -> Reply {
    Reply::error_code(7, msg)
}

/// The subnet of a cluster network, from its stored conflist.
pub fn subnet_of(view: &View, network: &str) -> Option<String> {
    view.networks
        .get(network)?
        .get("plugins")?
        .as_array()?
        .iter()
        .find_map(|p| Some(p.get("ipam")?.get("subnet")?.as_str()?.to_string()))
}

/// The addresses of `network` never handed out: its IPAM's `reserved`
/// (the gateway `network inspect` shows, Docker's aux addresses).
pub fn reserved_of(view: &View, network: &str) -> BTreeSet<IpAddr> {
    let Some(plugins) = view
        .networks
        .get(network)
        .and_then(|n| n.get("plugins"))
        .and_then(Value::as_array)
    else {
        return BTreeSet::new();
    };
    plugins
        .iter()
        .filter_map(|p| p.get("ipam")?.get("reserved")?.as_array())
        .flatten()
        .filter_map(|a| a.as_str()?.parse().ok())
        .collect()
}

/// A service with its running tasks (those with an address) and its
/// pending ones, as cnitool prints it.
pub fn shown(view: &View, svc: &Service) -> Service {
    let mut s = svc.clone();
    let all = || {
        view.tasks
            .get(&svc.name)
            .into_iter()
            .flat_map(|m| m.values())
    };
    s.tasks = all().filter_map(ClusterTask::shown).collect();
    s.pending = all().filter_map(ClusterTask::shown_pending).collect();
    s
}

impl Cluster {
    /// A write of ours, into the view before the watch brings it.
    fn seen(&self, key: &str, value: Vec<u8>) {
        self.view().apply(&Event::Put(Kv {
            key: key.to_string(),
            value,
        }));
        self.agent.kick.notify_one();
    }

    pub(super) async fn service_request(&self, req: ClusterRequest) -> Reply {
        match req {
            ClusterRequest::ServiceCreate { spec } => match serde_json::from_value(spec) {
                Ok(spec) => self.service_create(spec).await,
                Err(e) => invalid(format!("bad service spec: {e}")),
            },
            ClusterRequest::ServiceScale {
                name,
                replicas,
                detach,
            } => self.service_scale(&name, replicas, detach).await,
            ClusterRequest::ServiceRm { name } => self.service_rm(&name).await,
            ClusterRequest::ServiceLs => match self.services_now().await {
                Ok(v) => {
                    let all: Vec<Service> = v.services.values().map(|s| shown(&v, s)).collect();
                    Reply::with_data(json!(all))
                }
                Err(e) => fail(e),
            },
            _ => Reply::error("not a service request"),
        }
    }

    async fn service_create(&self, spec: ClusterSpec) -> Reply {
        if let Err(e) = model::validate_name(&spec.name) {
            return invalid(e.msg);
        }
        if spec.replicas > model::MAX_REPLICAS {
            return invalid(format!("at most {} replicas", model::MAX_REPLICAS));
        }
        if spec.endpoint_mode == EndpointMode::Dnsrr && !spec.ports.is_empty() {
            return invalid("rpc error: code = InvalidArgument desc = EndpointSpec: port published with ingress mode can't be used with dnsrr mode");
        }
        // cnitool never sends port 0, but the socket takes any JSON: a
        // claim of `ports/tcp/0` would block nothing and publish nothing.
        if let Some((p, t, _)) = spec.ports.iter().find(|(p, t, _)| *t == 0 || *p == Some(0)) {
            return invalid(format!(
                "invalid port {}:{t}: ports are 1 to 65535",
                p.map_or("-".to_string(), |p| p.to_string())
            ));
        }
        let mut constraints = Vec::new();
        for c in &spec.constraints {
            match parse_constraint(c) {
                Ok(c) => constraints.push(c),
                Err(e) => return invalid(e.msg),
            }
        }
        let Some(subnet) = subnet_of(&self.view(), &spec.network) else {
            return invalid(format!(
                "network {} is not a cluster network with a subnet",
                spec.network
            ));
        };
        let id = match model::new_id() {
            Ok(id) => id,
            Err(e) => return Reply::error(e.msg),
        };
        let now = now_rfc3339();
        let mut svc = Service {
            id: id.clone(),
            name: spec.name.clone(),
            network: spec.network.clone(),
            network_id: spec.network_id.clone(),
            replicas: spec.replicas,
            endpoint_mode: spec.endpoint_mode,
            ports: Vec::new(),
            vip: None,
            tasks: Vec::new(),
            pending: Vec::new(),
            created: now.clone(),
            updated: now,
            version: 1,
            constraints: spec.constraints.clone(),
            cluster: true,
        };
        let skey = key(&["services", &svc.name]);
        match self.etcd.create(&skey, &to_bytes(&svc), None).await {
            // Seen at once: this host's agent must know the service before
            // its virtual IP is leased (it gives back leases of no service).
            Ok(None) => self.seen(&skey, to_bytes(&svc)),
            Ok(Some(_)) => {
                return invalid(
                    "rpc error: code = AlreadyExists desc = name conflicts with an existing object",
                )
            }
            Err(e) => return fail(e),
        }
        let built = self
            .service_build(&mut svc, &spec, &subnet, &constraints)
            .await;
        if let Err(r) = built {
            self.service_undo(&svc).await;
            return r;
        }
        if spec.detach {
            // Docker's -d: placed, not waited for (a task that fails to
            // start stays failed in `inspect`; nothing is undone).
            return Reply::with_data(json!(shown(&self.view(), &svc)));
        }
        match self.wait_tasks(&svc, svc.replicas, TASKS_WAIT).await {
            Ok(()) => Reply::with_data(json!(shown(&self.view(), &svc))),
            // Removed (and maybe created again) meanwhile: what the store
            // holds under its name is no longer ours to undo.
            Err(Waited::Gone(msg)) => Reply::error(msg),
            Err(Waited::Failed(msg)) => {
                self.service_undo(&svc).await;
                Reply::error(msg)
            }
        }
    }

    /// Ports, virtual IP, the service's record and its tasks' placement.
    async fn service_build(
        &self,
        svc: &mut Service,
        spec: &ClusterSpec,
        subnet: &str,
        constraints: &[(bool, String)],
    ) -> Result<(), Reply> {
        let used: BTreeSet<(u16, &'static str)> = self
            .view()
            .services
            .values()
            .flat_map(|s| s.ports.iter().map(|p| (p.published, p.proto())))
            .collect();
        for (published, target, protocol) in &spec.ports {
            let mut port = Port {
                protocol: *protocol,
                target: *target,
                published: published.unwrap_or(0),
            };
            if svc
                .ports
                .iter()
                .any(|o| o.published == port.published && o.proto() == port.proto())
            {
                return Err(invalid("rpc error: code = InvalidArgument desc = EndpointSpec: duplicate published ports provided"));
            }
            let candidates: Vec<u16> = match published {
                Some(p) => vec![*p],
                None => AUTO_PORTS
                    .clone()
                    .filter(|p| !used.contains(&(*p, port.proto())))
                    .collect(),
            };
            let mut claimed = false;
            for p in candidates {
                port.published = p;
                if svc
                    .ports
                    .iter()
                    .any(|o| o.published == p && o.proto() == port.proto())
                {
                    continue;
                }
                match self
                    .etcd
                    .create(&port_key(&port), svc.name.as_bytes(), None)
                    .await
                {
                    Ok(None) => {
                        claimed = true;
                        break;
                    }
                    Ok(Some(kv)) if published.is_some() => {
                        return Err(Reply::error_code(
                            PORT_TAKEN,
                            format!(
                                "port '{p}' is already in use by service '{}'",
                                String::from_utf8_lossy(&kv.value)
                            ),
                        ))
                    }
                    Ok(Some(_)) => continue,
                    Err(e) => return Err(fail(e)),
                }
            }
            if !claimed {
                return Err(invalid("no free port to publish on"));
            }
            svc.ports.push(port);
        }
        // A container's published port on this host is refused too.
        let rule_ports: Vec<_> = svc.ports.iter().map(Port::rule).collect();
        if let Err(e) = rules::check_ports_free(&svc.id, &rule_ports) {
            return Err(Reply::error_code(e.code, e.msg));
        }
        if svc.endpoint_mode == EndpointMode::Vip {
            let r = self
                .ipam_add(&svc.network, subnet, &vip_lease(&svc.id))
                .await;
            match r.data.as_ref().and_then(Value::as_str) {
                Some(cidr) if r.ok => svc.vip = Some(cidr.to_string()),
                _ => return Err(r),
            }
        }
        let skey = key(&["services", &svc.name]);
        if let Err(e) = self.etcd.put(&skey, &to_bytes(svc), None).await {
            return Err(fail(e));
        }
        self.seen(&skey, to_bytes(svc));
        self.place_tasks(svc, 1, constraints).await
    }

    /// Place slots `first..=svc.replicas` on the alive hosts.
    async fn place_tasks(
        &self,
        svc: &Service,
        first: u64,
        constraints: &[(bool, String)],
    ) -> Result<(), Reply> {
        let (hosts, mut counts) = {
            let v = self.view();
            let hosts: Vec<String> = v.alive.keys().cloned().collect();
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for t in v.tasks.get(&svc.name).into_iter().flat_map(|m| m.values()) {
                *counts.entry(t.host.clone()).or_default() += 1;
            }
            (hosts, counts)
        };
        for slot in first..=svc.replicas {
            let Some(host) = place(&hosts, &counts, constraints) else {
                return Err(Reply::error(format!(
                    "no suitable node for task {slot} of {} (constraints {:?})",
                    svc.name, svc.constraints
                )));
            };
            let id = model::new_id().map_err(|e| Reply::error(e.msg))?;
            let t = ClusterTask {
                slot,
                name: format!("{}.{slot}.{id}", svc.name),
                id,
                host: host.clone(),
                address: None,
                error: None,
                pending: None,
            };
            let k = key(&["tasks", &svc.name, &slot.to_string()]);
            if let Err(e) = self.etcd.put(&k, &to_bytes(&t), None).await {
                return Err(fail(e));
            }
            self.seen(&k, to_bytes(&t));
            *counts.entry(host).or_default() += 1;
        }
        Ok(())
    }

    /// Until every task of `svc` runs (or one failed, or time is up, or
    /// the service was removed: a killed cnitool's create keeps running
    /// here, and its user may `rm` and create the name again meanwhile).
    async fn wait_tasks(&self, svc: &Service, want: u64, within: Duration) -> Result<(), Waited> {
        let name = &svc.name;
        let deadline = Instant::now() + within;
        loop {
            {
                let v = self.view();
                if v.services.get(name).map(|s| &s.id) != Some(&svc.id) {
                    return Err(Waited::Gone(format!(
                        "service {name} was removed while its tasks started"
                    )));
                }
                let tasks: Vec<&ClusterTask> = v
                    .tasks
                    .get(name)
                    .into_iter()
                    .flat_map(|m| m.values())
                    .collect();
                if let Some(t) = tasks.iter().find(|t| t.error.is_some()) {
                    return Err(Waited::Failed(format!(
                        "task {} on {} failed: {}",
                        t.name,
                        t.host,
                        t.error.as_deref().unwrap_or_default()
                    )));
                }
                let running = tasks.iter().filter(|t| t.address.is_some()).count() as u64;
                if running >= want {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(Waited::Failed(format!(
                    "the tasks of {name} did not all start within {}s",
                    within.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Take a service out of the store: tasks first (their hosts stop
    /// them), then its port claims and itself. Its creator's agent gives
    /// the virtual IP back once the service is gone.
    async fn service_undo(&self, svc: &Service) {
        let steps = async {
            self.etcd
                .delete_prefix(&key(&["tasks", &svc.name, ""]))
                .await?;
            for p in &svc.ports {
                self.etcd
                    .delete_if(&port_key(p), svc.name.as_bytes())
                    .await?;
            }
            self.etcd.delete(&key(&["services", &svc.name])).await
        };
        if let Err(e) = steps.await {
            log::error(&format!("cluster: removing service {}: {e}", svc.name));
        }
        {
            let mut v = self.view();
            let slots: Vec<u64> = v
                .tasks
                .get(&svc.name)
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default();
            for slot in slots {
                v.apply(&Event::Delete(key(&[
                    "tasks",
                    &svc.name,
                    &slot.to_string(),
                ])));
            }
            v.apply(&Event::Delete(key(&["services", &svc.name])));
        }
        self.agent.kick.notify_one();
        // Creation may have failed before the service record held the VIP.
        if svc.endpoint_mode == EndpointMode::Vip {
            let _ = self.ipam_del(&svc.network, &vip_lease(&svc.id)).await;
        }
    }

    /// The services and tasks as the store holds them now (not as this
    /// host's watch has seen them so far): a command on one host sees what
    /// a command on another host just did.
    async fn services_now(&self) -> Result<View, super::etcd::EtcdError> {
        let (mut kvs, _) = self.etcd.range_prefix(&key(&["services", ""])).await?;
        kvs.extend(self.etcd.range_prefix(&key(&["tasks", ""])).await?.0);
        Ok(View::from_kvs(kvs))
    }

    /// A service by name or unique ID prefix; Docker's message otherwise.
    async fn find_service(&self, key: &str) -> Result<Service, Reply> {
        let v = self.services_now().await.map_err(fail)?;
        if let Some(s) = v.services.get(key) {
            return Ok(s.clone());
        }
        let by_id: Vec<&Service> = v
            .services
            .values()
            .filter(|s| !key.is_empty() && s.id.starts_with(key))
            .collect();
        match by_id.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(invalid(format!("No such service: {key}"))),
        }
    }

    async fn service_scale(&self, name: &str, replicas: u64, detach: bool) -> Reply {
        if replicas > model::MAX_REPLICAS {
            return invalid(format!("at most {} replicas", model::MAX_REPLICAS));
        }
        let mut svc = match self.find_service(name).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let constraints = parsed(&svc);
        svc.replicas = replicas;
        svc.version += 1;
        svc.updated = now_rfc3339();
        let skey = key(&["services", &svc.name]);
        if let Err(e) = self.etcd.put(&skey, &to_bytes(&svc), None).await {
            return fail(e);
        }
        self.seen(&skey, to_bytes(&svc));
        let slots: Vec<u64> = match self.services_now().await {
            Ok(v) => v
                .tasks
                .get(&svc.name)
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default(),
            Err(e) => return fail(e),
        };
        let current = slots.len() as u64;
        if replicas > current {
            let first = slots.last().copied().unwrap_or(0) + 1;
            let wanted = Service {
                replicas: first + (replicas - current) - 1,
                ..svc.clone()
            };
            if let Err(r) = self.place_tasks(&wanted, first, &constraints).await {
                return r;
            }
            let waited = match detach {
                true => Ok(()),
                false => self.wait_tasks(&svc, replicas, TASKS_WAIT).await,
            };
            if let Err(Waited::Failed(msg) | Waited::Gone(msg)) = waited {
                return Reply::error(msg);
            }
        } else {
            // The highest slots go, as in swarm.
            for slot in slots.iter().rev().take((current - replicas) as usize) {
                let k = key(&["tasks", &svc.name, &slot.to_string()]);
                if let Err(e) = self.etcd.delete(&k).await {
                    return fail(e);
                }
            }
        }
        let v = self.view().clone();
        Reply::with_data(json!(shown(&v, &svc)))
    }

    async fn service_rm(&self, name: &str) -> Reply {
        let svc = match self.find_service(name).await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let shown_svc = match self.services_now().await {
            Ok(v) => shown(&v, &svc),
            Err(e) => return fail(e),
        };
        self.service_undo(&svc).await;
        // Until every host took the service's endpoints off the overlay
        // (and, with the network's last service, its mesh address).
        // Whether it was the network's last service, from the store: this
        // host's watch may still be behind.
        let last = match self.services_now().await {
            Ok(v) => !v.services.values().any(|s| s.network == svc.network),
            Err(e) => return fail(e),
        };
        let tasks: BTreeSet<Ipv4Addr> = shown_svc.tasks.iter().map(|t| t.address).collect();
        let deadline = Instant::now() + RM_WAIT;
        loop {
            let done = {
                let v = self.view();
                !v.endpoints
                    .get(&svc.network)
                    .into_iter()
                    .flat_map(|m| m.values())
                    .any(|e| {
                        let task = matches!(e.ip, std::net::IpAddr::V4(a) if tasks.contains(&a));
                        task || (last && super::agent::is_mesh_owner(&e.container_id))
                    })
            };
            if done || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Reply::with_data(json!(shown_svc))
    }
}

impl Cluster {
    /// A host is gone for good (its lease expired past the grace period,
    /// or `cluster rm`): its tasks go to the alive hosts, as swarm
    /// reschedules them. Every member may do it at once: a task moves only
    /// if it is still as read (one transaction), so it moves once.
    pub(super) async fn reschedule(&self, gone: &str) -> Result<(), super::etcd::EtcdError> {
        let v = self.services_now().await?;
        let alive: Vec<String> = self
            .view()
            .alive
            .keys()
            .filter(|h| *h != gone)
            .cloned()
            .collect();
        for (name, slots) in &v.tasks {
            let Some(svc) = v.services.get(name) else {
                continue;
            };
            let constraints = parsed(svc);
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for t in slots.values().filter(|t| t.host != gone) {
                *counts.entry(t.host.clone()).or_default() += 1;
            }
            for t in slots.values().filter(|t| t.host == gone) {
                let Ok(id) = model::new_id() else { continue };
                // No alive host may take it: pending (no host, no address,
                // so nothing points at the gone host's released block)
                // until one appears.
                let moved = match place(&alive, &counts, &constraints) {
                    Some(host) => ClusterTask {
                        slot: t.slot,
                        name: format!("{name}.{}.{id}", t.slot),
                        id,
                        host,
                        address: None,
                        error: None,
                        pending: None,
                    },
                    None => ClusterTask::new_pending(name, t.slot, id, &svc.constraints),
                };
                let k = key(&["tasks", name, &t.slot.to_string()]);
                if self
                    .etcd
                    .replace(&k, &to_bytes(t), &to_bytes(&moved))
                    .await?
                {
                    match moved.is_pending() {
                        true => log::info(&format!(
                            "cluster: task {} of gone host {gone}: no suitable node, pending",
                            t.name
                        )),
                        false => log::info(&format!(
                            "cluster: task {} of gone host {gone} rescheduled on {}",
                            t.name, moved.host
                        )),
                    }
                    *counts.entry(moved.host).or_default() += 1;
                }
            }
        }
        Ok(())
    }

    /// Whether a pending task has an alive host it may go to now (from
    /// this host's view: cheap enough to ask twice a second).
    pub(super) fn pending_placeable(&self) -> bool {
        let v = self.view();
        let alive: Vec<String> = v.alive.keys().cloned().collect();
        v.tasks.iter().any(|(name, slots)| {
            let Some(svc) = v.services.get(name) else {
                return false;
            };
            let constraints = parsed(svc);
            slots.values().any(|t| t.is_pending())
                && place(&alive, &BTreeMap::new(), &constraints).is_some()
        })
    }

    /// Place the pending tasks on the alive hosts that may take them (a
    /// host joined or came back). Every member may do it at once: a task
    /// is placed only if it is still pending as read (one transaction
    /// per task), so it is placed once.
    pub(super) async fn place_pending(&self) -> Result<(), super::etcd::EtcdError> {
        let v = self.services_now().await?;
        let alive: Vec<String> = self.view().alive.keys().cloned().collect();
        for (name, slots) in &v.tasks {
            let Some(svc) = v.services.get(name) else {
                continue;
            };
            let constraints = parsed(svc);
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for t in slots.values().filter(|t| !t.is_pending()) {
                *counts.entry(t.host.clone()).or_default() += 1;
            }
            for t in slots.values().filter(|t| t.is_pending()) {
                let Some(host) = place(&alive, &counts, &constraints) else {
                    continue;
                };
                let placed = ClusterTask {
                    host: host.clone(),
                    pending: None,
                    ..t.clone()
                };
                let k = key(&["tasks", name, &t.slot.to_string()]);
                if self
                    .etcd
                    .replace(&k, &to_bytes(t), &to_bytes(&placed))
                    .await?
                {
                    log::info(&format!(
                        "cluster: pending task {} placed on {host}",
                        t.name
                    ));
                    self.seen(&k, to_bytes(&placed));
                    *counts.entry(host).or_default() += 1;
                }
            }
        }
        Ok(())
    }
}

/// A service's constraints as placement reads them.
fn parsed(svc: &Service) -> Vec<(bool, String)> {
    svc.constraints
        .iter()
        .filter_map(|c| parse_constraint(c).ok())
        .collect()
}

/// The virtual IPs of a network's services (never handed to a container,
/// even once the host that leased one is gone).
pub fn vips(view: &View, network: &str) -> BTreeSet<Ipv4Addr> {
    view.services
        .values()
        .filter(|s| s.network == network)
        .filter_map(Service::vip_addr)
        .collect()
}

/// Why waiting for a service's tasks ended without them all running.
enum Waited {
    /// A task failed or time ran out: the create is undone.
    Failed(String),
    /// The service was removed (or replaced) meanwhile: nothing to undo.
    Gone(String),
}

fn to_bytes<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::store::tests::put;
    use super::super::Dirty;
    use super::*;

    #[test]
    fn a_networks_reserved_addresses_come_from_its_stored_ipam() {
        let mut v = View::default();
        let list = json!({"plugins": [{"type": "vxlan-overlay", "ipam": {
            "type": "cluster-ipam", "subnet": "10.9.0.0/24", "reserved": ["10.9.0.1", "bad"]}}]});
        v.apply(&put("/cni-rs/networks/ov", &list.to_string()));
        let want: BTreeSet<IpAddr> = ["10.9.0.1".parse().unwrap()].into();
        assert_eq!(reserved_of(&v, "ov"), want);
        assert!(reserved_of(&v, "other").is_empty());
    }

    #[test]
    fn services_and_tasks_wake_the_agent_and_only_services_change_names() {
        let mut d = Dirty::default();
        d.note("/cni-rs/tasks/web/1");
        assert!(d.services && !d.names);
        let mut d = Dirty::default();
        d.note("/cni-rs/services/web");
        assert!(d.services && d.names && !d.conflists);
        let mut d = Dirty::default();
        d.note("/cni-rs/ports/tcp/8080");
        assert!(!d.services && !d.names);
    }

    #[test]
    fn the_view_keeps_services_and_shows_running_tasks_only() {
        let mut v = View::default();
        v.apply(&put(
            "/cni-rs/networks/ov",
            r#"{"plugins":[{"type":"vxlan-overlay","ipam":{"type":"cluster-ipam","subnet":"10.9.0.0/24"}}]}"#,
        ));
        v.apply(&put(
            "/cni-rs/services/web",
            r#"{"id":"abc","name":"web","network":"ov","network_id":"n","replicas":2,
                "endpoint_mode":"vip","vip":"10.9.0.2/24","created":"","updated":"","version":1,
                "cluster":true}"#,
        ));
        v.apply(&put(
            "/cni-rs/tasks/web/1",
            r#"{"slot":1,"id":"t1","name":"web.1.t1","host":"h1","address":"10.9.0.3"}"#,
        ));
        v.apply(&put(
            "/cni-rs/tasks/web/2",
            r#"{"slot":2,"id":"t2","name":"web.2.t2","host":"h2"}"#,
        ));
        assert_eq!(subnet_of(&v, "ov").as_deref(), Some("10.9.0.0/24"));
        let s = shown(&v, &v.services["web"]);
        assert_eq!(s.tasks.len(), 1, "a task without an address is not running");
        assert_eq!(s.tasks[0].host.as_deref(), Some("h1"));
        assert!(s.pending.is_empty(), "placed, only not yet running");
        v.apply(&put(
            "/cni-rs/tasks/web/2",
            r#"{"slot":2,"id":"t3","name":"web.2.t3","host":"","pending":"no suitable node"}"#,
        ));
        let s = shown(&v, &v.services["web"]);
        assert_eq!(s.tasks.len(), 1);
        assert_eq!(s.pending.len(), 1);
        assert_eq!(s.pending[0].name, "web.2.t3");
        assert_eq!(s.backends().len(), 1, "a pending task is no backend");
        let names = super::super::agent::vip_records(&v);
        assert_eq!(names.len(), 1);
        assert_eq!(names[0].names, vec!["web".to_string()]);
        assert_eq!(names[0].domain, "dns.podman");
        v.apply(&Event::Delete("/cni-rs/tasks/web/1".into()));
        v.apply(&Event::Delete("/cni-rs/tasks/web/2".into()));
        assert!(!v.tasks.contains_key("web"));
        v.apply(&Event::Delete("/cni-rs/services/web".into()));
        assert!(v.services.is_empty());
    }

    #[test]
    fn reserved_owners_are_the_mesh_and_virtual_ips() {
        use super::super::agent::is_reserved;
        assert!(is_reserved("mesh-h1", "mesh"));
        assert!(is_reserved("service-abc", "vip"));
        assert!(!is_reserved("mesh-h1", "eth0"));
        assert!(!is_reserved("cnitool-1234", "eth0"));
    }
}
