//! Each host's daemon is the agent (swarm's worker) of the cluster's
//! services. After every change of services or tasks in the store (and
//! every few seconds, to heal) it makes the host follow:
//!
//! 1. tasks placed on this host run (a sandbox attached through the host's
//!    conflist, cni-cnm's code) and their address is written back; tasks
//!    gone from the store are stopped; each task's names are served and
//!    published as dnsname's are;
//! 2. the routing mesh (`mesh`) is up on every network that has a service,
//!    and down on the others;
//! 3. every service's rules hold every task's address across the cluster,
//!    with this host's mesh address as the source of what leaves through
//!    the overlay (one nft transaction per service), and its virtual IP is
//!    on the bridge;
//! 4. virtual IPs this host leased for services that are gone go back.
//!
//! What it made is kept in `<state>/cluster-agent.json`, so a restarted
//! daemon still removes it when the store says so.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use cni_cnm::cli::Settings;
use cni_cnm::services::cluster::{self as svc_cluster, ClusterTask};
use cni_cnm::services::model::{Service, Task};
use cni_cnm::services::vip;
use cni_net::firewall::services::{self as rules, Mesh, ServiceRules};
use cni_spec::{Error, Result};
use serde::{Deserialize, Serialize};

use super::etcd::{Event, Kv};
use super::mesh::{self, MeshHere};
use super::store::{key, View};
use super::Cluster;
use crate::log;

/// How often the agent looks again without being told.
const HEAL_EVERY: Duration = Duration::from_secs(2);

/// Whether an IPAM owner is the mesh's or a virtual IP's (never a
/// container's: GC of the network must leave them).
pub fn is_reserved(container_id: &str, ifname: &str) -> bool {
    (is_mesh_owner(container_id) && ifname == "mesh")
        || (container_id.starts_with("service-") && ifname == "vip")
}

pub fn is_mesh_owner(container_id: &str) -> bool {
    container_id.starts_with("mesh-")
}

/// A task this host runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LocalTask {
    service: Service,
    task: ClusterTask,
}

impl LocalTask {
    /// The service with only this task (for its names).
    fn for_names(&self) -> Service {
        let mut s = self.service.clone();
        s.vip = None;
        s.tasks = self
            .task
            .address
            .map(|address| Task {
                slot: self.task.slot,
                id: self.task.id.clone(),
                name: self.task.name.clone(),
                address,
                host: None,
            })
            .into_iter()
            .collect();
        s
    }
}

/// A service's rules as applied here: what they were made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Applied {
    name: String,
    network: String,
    bridge: String,
    vip: Option<Ipv4Addr>,
    backends: Vec<Ipv4Addr>,
    ports: Vec<cni_cnm::services::model::Port>,
    mesh: Ipv4Addr,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    tasks: BTreeMap<String, LocalTask>,
    /// service ID -> rules
    applied: BTreeMap<String, Applied>,
    /// network -> mesh
    meshes: BTreeMap<String, MeshHere>,
}

/// The agent of one membership.
pub struct Agent {
    pub kick: tokio::sync::Notify,
    /// Set when the host leaves: the agent does nothing more.
    off: std::sync::atomic::AtomicBool,
    file: PathBuf,
    state: tokio::sync::Mutex<Option<State>>,
}

impl Agent {
    pub fn new(state_root: &Path) -> Agent {
        Agent {
            kick: tokio::sync::Notify::new(),
            off: Default::default(),
            file: state_root.join("cluster-agent.json"),
            state: tokio::sync::Mutex::new(None),
        }
    }

    fn load(&self) -> State {
        std::fs::read(&self.file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, st: &State) {
        let bytes = serde_json::to_vec_pretty(st).unwrap_or_default();
        if let Err(e) =
            cni_state::write_atomic(&self.file, &bytes, 0o600, cni_state::Durability::Content)
        {
            log::error(&format!("cluster: saving the agent's state: {e}"));
        }
    }
}

/// The plugins' folders: CNI_PATH when given, else the daemon's own
/// folder (it is installed beside the plugins) and Debian's.
fn cni_path() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::env::var("CNI_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir);
    }
    out.push(PathBuf::from("/usr/lib/cni"));
    out
}

fn settings(c: &Cluster) -> Settings {
    let cache = std::env::var_os("CNI_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/cni"));
    svc_cluster::agent_settings(c.conf.conf_dir.clone(), cni_path(), cache)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("agent worker: {e}")))?
}

/// Follow the store until the membership ends.
pub async fn run(c: Weak<Cluster>) {
    loop {
        let Some(cl) = c.upgrade() else { return };
        if cl.is_stopped() {
            return;
        }
        reconcile(&cl).await;
        tokio::select! {
            _ = cl.agent.kick.notified() => {}
            _ = tokio::time::sleep(HEAL_EVERY) => {}
        }
    }
}

async fn reconcile(c: &Cluster) {
    let mut guard = c.agent.state.lock().await;
    if c.agent.off.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let st = guard.get_or_insert_with(|| c.agent.load());
    let before = st.clone();
    let view = c.view().clone();
    let s = settings(c);
    tasks(c, &view, &s, st).await;
    meshes_up(c, &view, st).await;
    service_rules(&view, st).await;
    meshes_down(c, &view, st).await;
    vip_leases(c, &view).await;
    if *st != before {
        c.agent.save(st);
    }
}

/// Step 1: this host's tasks.
async fn tasks(c: &Cluster, view: &View, s: &Settings, st: &mut State) {
    let me = c.me().to_string();
    let mut wanted: BTreeMap<String, LocalTask> = BTreeMap::new();
    for (name, slots) in &view.tasks {
        let Some(svc) = view.services.get(name) else {
            continue;
        };
        for t in slots.values().filter(|t| t.host == me) {
            wanted.insert(
                t.name.clone(),
                LocalTask {
                    service: svc.clone(),
                    task: t.clone(),
                },
            );
        }
    }
    let gone: Vec<String> = st
        .tasks
        .keys()
        .filter(|n| !wanted.contains_key(*n))
        .cloned()
        .collect();
    for name in gone {
        let Some(lt) = st.tasks.get(&name).cloned() else {
            continue;
        };
        let s2 = s.clone();
        let r = blocking(move || {
            let names = svc_cluster::task_names(&s2, Some(&lt.for_names()), None);
            svc_cluster::stop_task(&s2, &lt.task.name)?;
            names
        })
        .await;
        match r {
            Ok(()) => {
                st.tasks.remove(&name);
                log::info(&format!("cluster: task {name} stopped"));
            }
            Err(e) => log::error(&format!("cluster: stopping task {name}: {e}")),
        }
    }
    for (name, want) in wanted {
        if let Some(lt) = st.tasks.get(&name) {
            // Running here: the store must say where.
            if want.task.address.is_none() && lt.task.address.is_some() {
                write_back(c, &want.task, &lt.task).await;
            }
            continue;
        }
        if want.task.error.is_some() {
            continue;
        }
        // The network reaches this host with the watch too: wait for its
        // conflist rather than fail the task (the next pass starts it).
        let list = c
            .conf
            .conf_dir
            .join(format!("{}.conflist", want.service.network));
        if !list.exists() {
            continue;
        }
        let (s2, w) = (s.clone(), want.clone());
        let started = blocking(move || {
            svc_cluster::start_task(&s2, &w.task, &w.service.name, &w.service.network)
        })
        .await;
        let mut done = want.task.clone();
        match started {
            Ok(address) => {
                done.address = Some(address);
                let lt = LocalTask {
                    service: want.service.clone(),
                    task: done.clone(),
                };
                let (s2, l2) = (s.clone(), lt.clone());
                if let Err(e) =
                    blocking(move || svc_cluster::task_names(&s2, None, Some(&l2.for_names())))
                        .await
                {
                    log::error(&format!("cluster: names of task {name}: {e}"));
                }
                st.tasks.insert(name.clone(), lt);
                // Recorded before its address goes to the store: a daemon
                // killed from here on still knows it made this task.
                c.agent.save(st);
                log::info(&format!("cluster: task {name} runs at {address}"));
            }
            Err(e) => {
                log::error(&format!("cluster: starting task {name}: {e}"));
                done.error = Some(e.msg);
            }
        }
        write_back(c, &want.task, &done).await;
    }
}

/// Write a task's state back, only if the store still holds it as we saw
/// it (a task removed meanwhile stays removed).
async fn write_back(c: &Cluster, seen: &ClusterTask, now: &ClusterTask) {
    let Some(svc) = now.name.split('.').next() else {
        return;
    };
    let k = key(&["tasks", svc, &now.slot.to_string()]);
    let old = serde_json::to_vec(seen).unwrap_or_default();
    let new = serde_json::to_vec(now).unwrap_or_default();
    match c.etcd.replace(&k, &old, &new).await {
        Ok(true) => c.view().apply(&Event::Put(Kv { key: k, value: new })),
        Ok(false) => {}
        Err(e) => log::error(&format!("cluster: writing task {} back: {e}", now.name)),
    }
}

/// The networks that carry a service (and still exist).
fn mesh_networks(view: &View) -> BTreeSet<String> {
    view.services
        .values()
        .map(|s| s.network.clone())
        .filter(|n| view.networks.contains_key(n))
        .collect()
}

/// Step 2: the mesh on every network with a service.
async fn meshes_up(c: &Cluster, view: &View, st: &mut State) {
    for net in mesh_networks(view) {
        if st.meshes.contains_key(&net) {
            continue;
        }
        match c.mesh_up(&net).await {
            Ok(m) => {
                st.meshes.insert(net, m);
            }
            Err(e) => log::error(&format!("cluster: mesh of {net}: {e}")),
        }
    }
}

/// Step 3: every service's rules (and what goes with them).
async fn service_rules(view: &View, st: &mut State) {
    let mut wanted: BTreeMap<String, Applied> = BTreeMap::new();
    for svc in view.services.values() {
        let Some(m) = st.meshes.get(&svc.network) else {
            continue;
        };
        let Some(mesh_ip) = mesh::v4(m) else { continue };
        let backends: Vec<Ipv4Addr> = view
            .tasks
            .get(&svc.name)
            .into_iter()
            .flat_map(|t| t.values())
            // A task of a host whose lease is gone cannot answer: no
            // connection is sent to it (swarm reschedules; we do not yet).
            .filter(|t| view.alive.contains_key(&t.host))
            .filter_map(|t| t.address)
            .collect();
        wanted.insert(
            svc.id.clone(),
            Applied {
                name: svc.name.clone(),
                network: svc.network.clone(),
                bridge: m.bridge.clone(),
                vip: svc.vip_addr(),
                backends,
                ports: svc.ports.clone(),
                mesh: mesh_ip,
            },
        );
    }
    let gone: Vec<String> = st
        .applied
        .keys()
        .filter(|id| !wanted.contains_key(*id))
        .cloned()
        .collect();
    for id in gone {
        let Some(a) = st.applied.get(&id).cloned() else {
            continue;
        };
        let id2 = id.clone();
        let r = blocking(move || {
            rules::remove(&id2)?;
            if let Some(v) = a.vip {
                vip::remove_from_bridge(&a.bridge, v)?;
            }
            // Flows to the tasks that went keep their translation while
            // the client keeps sending (UDP): forget them.
            cni_net::firewall::conntrack::flush_reply_sources_v4(
                cni_net::firewall::conntrack::UDP,
                &a.backends,
            )
            .map(|_| ())
        })
        .await;
        match r {
            Ok(()) => {
                st.applied.remove(&id);
            }
            Err(e) => log::error(&format!("cluster: removing the rules of {id}: {e}")),
        }
    }
    for (id, a) in wanted {
        if st.applied.get(&id) == Some(&a) {
            continue;
        }
        let (id2, a2) = (id.clone(), a.clone());
        let r = blocking(move || {
            let ports: Vec<_> = a2.ports.iter().map(|p| p.rule()).collect();
            rules::apply(&ServiceRules {
                id: &id2,
                name: &a2.name,
                vip: a2.vip,
                backends: &a2.backends,
                ports: &ports,
                mesh: Some(Mesh {
                    bridge: &a2.bridge,
                    address: a2.mesh,
                }),
            })?;
            if let Some(v) = a2.vip {
                vip::add_to_bridge(&a2.bridge, v)?;
            }
            Ok(())
        })
        .await;
        match r {
            Ok(()) => {
                st.applied.insert(id, a);
            }
            Err(e) => log::error(&format!("cluster: rules of service {}: {e}", a.name)),
        }
    }
}

/// Step 2's other half, after the rules that used it are gone.
async fn meshes_down(c: &Cluster, view: &View, st: &mut State) {
    let needed = mesh_networks(view);
    let gone: Vec<String> = st
        .meshes
        .keys()
        .filter(|n| !needed.contains(*n))
        .cloned()
        .collect();
    for net in gone {
        if st.applied.values().any(|a| a.network == net) {
            continue;
        }
        let Some(m) = st.meshes.get(&net).cloned() else {
            continue;
        };
        match c.mesh_down(&net, &m).await {
            Ok(()) => {
                st.meshes.remove(&net);
            }
            Err(e) => log::error(&format!("cluster: mesh of {net} down: {e}")),
        }
    }
}

/// Step 4: virtual IPs this host leased for services that are gone.
async fn vip_leases(c: &Cluster, view: &View) {
    let ids: BTreeSet<String> = view
        .services
        .values()
        .map(|s| format!("service-{}", s.id))
        .collect();
    let stale: Vec<(String, super::ipam::Owner)> = {
        let mut leases = c.leases.lock().await;
        let mut out = Vec::new();
        for net in leases.networks() {
            for o in leases.of(&net).values() {
                if o.ifname == "vip"
                    && o.container_id.starts_with("service-")
                    && !ids.contains(&o.container_id)
                {
                    out.push((net.clone(), o.clone()));
                }
            }
        }
        out
    };
    for (net, o) in stale {
        let r = c.ipam_del(&net, &o).await;
        if !r.ok {
            log::error(&format!(
                "cluster: releasing the virtual IP of {}: {}",
                o.container_id,
                r.error.unwrap_or_default()
            ));
        }
    }
}

/// Before the host leaves: refused while containers hold addresses here
/// (unless `force`); otherwise its part of the services goes.
pub async fn before_leave(c: &Cluster, force: bool) -> Result<(), cni_dns::control::Reply> {
    let held = containers_held(c).await;
    if held > 0 && !force {
        return Err(cni_dns::control::Reply::error(format!(
            "this host still has {held} endpoint(s) on cluster networks: remove them or use --force"
        )));
    }
    teardown(c).await;
    Ok(())
}

/// The host leaves the cluster: every task it runs stops, every rule,
/// virtual IP and mesh it made goes, as if the store had no service.
async fn teardown(c: &Cluster) {
    let mut guard = c.agent.state.lock().await;
    c.agent
        .off
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let st = guard.get_or_insert_with(|| c.agent.load());
    let none = View::default();
    tasks(c, &none, &settings(c), st).await;
    service_rules(&none, st).await;
    meshes_down(c, &none, st).await;
    c.agent.save(st);
}

/// This host's leases that containers (tasks included) hold: not the
/// mesh's nor a virtual IP's.
pub async fn containers_held(c: &Cluster) -> usize {
    let mut leases = c.leases.lock().await;
    let mut n = 0;
    for net in leases.networks() {
        n += leases
            .of(&net)
            .values()
            .filter(|o| !is_reserved(&o.container_id, &o.ifname))
            .count();
    }
    n
}

/// The names of every service's virtual IP, answered on every host.
pub fn vip_records(view: &View) -> Vec<cni_dns::Record> {
    view.services
        .values()
        .filter_map(|s| svc_cluster::vip_record(s, view.networks.get(&s.network)?))
        .collect()
}
