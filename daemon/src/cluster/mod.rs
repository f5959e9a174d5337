//! Cluster scope: this host's member of the cluster kept in etcd. It
//! registers the host under a lease it keeps alive, watches the store and
//! makes the host follow it (the cluster's networks as conflists, the
//! VXLAN devices' forwarding entries), and answers the cluster requests of
//! cnitool and the plugins ([`ClusterRequest`]): they never talk to etcd.

pub mod agent;
pub mod entries;
pub mod etcd;
pub mod fdb;
pub mod ipam;
pub mod materialize;
pub mod mesh;
pub mod outbox;
pub mod services;
pub mod store;
pub mod tls;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_dns::cluster::{self as conf_file, ClusterConf, PREFIX};
use cni_dns::control::{ClusterRequest, Reply};
use ipnetwork::IpNetwork;
use serde_json::{json, Value};

use crate::log;
use etcd::{Etcd, EtcdError, Event};
use ipam::{Leases, Owner};
use store::{key, EndpointRec, HostRec, View};

/// CNI's "try again later": the store is out of reach.
const TRY_AGAIN: u32 = 11;
/// How long a publish waits for etcd before answering anyway (the record
/// is safe on local disk by then): a put takes 1-2 ms here, and landing
/// before ADD returns lets a peer's first packet find the new container.
const PUBLISH_SETTLE: Duration = Duration::from_millis(50);
/// Docker's first overlay VNI.
const FIRST_VNI: u32 = 4096;
const MAX_VNI: u32 = (1 << 24) - 1;

fn fail(e: EtcdError) -> Reply {
    match e {
        EtcdError::Unreachable(_) => Reply::error_code(TRY_AGAIN, e.to_string()),
        EtcdError::Protocol(_) => Reply::error(e.to_string()),
    }
}

/// CNI's rule for network names and container IDs (alphanumeric first,
/// then alphanumerics, `_`, `.`, `-`): they become etcd key segments and
/// folder names, so nothing else may pass (no `/`, no `..`).
fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && s.len() <= 253
}

fn check_names(req: &ClusterRequest) -> Result<(), String> {
    let (network, container) = match req {
        ClusterRequest::Vni { network }
        | ClusterRequest::VniRelease { network, .. }
        | ClusterRequest::NetworkPut { network, .. }
        | ClusterRequest::NetworkRm { network }
        | ClusterRequest::IpamGc { network, .. } => (Some(network), None),
        ClusterRequest::IpamAdd {
            network,
            container_id,
            ..
        }
        | ClusterRequest::IpamDel {
            network,
            container_id,
            ..
        }
        | ClusterRequest::IpamCheck {
            network,
            container_id,
            ..
        }
        | ClusterRequest::Publish {
            network,
            container_id,
            ..
        } => (Some(network), Some(container_id)),
        ClusterRequest::Remove { host, .. } => (None, Some(host)),
        _ => (None, None),
    };
    if let Some(n) = network.filter(|n| !valid_name(n)) {
        return Err(format!("invalid network name {n:?}"));
    }
    if let Some(c) = container.filter(|c| !valid_name(c)) {
        return Err(format!("invalid name {c:?}"));
    }
    Ok(())
}

/// What a batch of store events changed on this host.
#[derive(Debug, Default)]
struct Dirty {
    conflists: bool,
    names: bool,
    all_fdb: bool,
    /// The forwarding entries the events add and remove.
    plan: entries::Plan,
    /// Services or tasks changed: the agent looks (see `agent`).
    services: bool,
}

impl Dirty {
    fn all() -> Dirty {
        Dirty {
            conflists: true,
            names: true,
            all_fdb: true,
            plan: entries::Plan::default(),
            services: true,
        }
    }

    fn note(&mut self, key: &str) {
        let rest = key.strip_prefix(PREFIX).unwrap_or(key);
        let mut parts = rest.split('/');
        match (parts.next(), parts.next()) {
            (Some("networks"), _) => {
                self.conflists = true;
                self.names = true;
                self.all_fdb = true;
                self.services = true;
            }
            (Some("services"), _) => {
                self.names = true;
                self.services = true;
            }
            (Some("tasks"), _) => self.services = true,
            (Some("names"), _) => self.names = true,
            // Endpoints and hosts: `Entries::follow_key` says what changes.
            _ => {}
        }
    }
}

/// Where the other hosts' name records go (the resolver's registry).
pub type NamesSink = Arc<dyn Fn(Vec<cni_dns::Record>) + Send + Sync>;

/// One membership: from a join to a leave (or the daemon's exit).
pub struct Cluster {
    names_sink: NamesSink,
    pub conf: ClusterConf,
    pub etcd: Etcd,
    pub view: Mutex<View>,
    lease: Mutex<Option<i64>>,
    /// When the store last confirmed our lease: a host that cannot renew
    /// it for a whole TTL may have been declared gone, so it stops handing
    /// out addresses (its blocks may be reclaimed after the grace period).
    renewed: Mutex<Instant>,
    /// Allocation is serialized per host (one lock over all networks).
    leases: tokio::sync::Mutex<Leases>,
    /// Our containers whose address the cluster reclaimed and gave to
    /// another host while we were cut off: reported, never republished.
    conflicts: Mutex<BTreeSet<(String, IpAddr)>>,
    /// Since when each host that is not alive has been seen so.
    down_since: Mutex<std::collections::BTreeMap<String, Instant>>,
    /// Wakes the watch to start over: at stop, and when the store answers
    /// again after a silence (a partition leaves the stream open but dead).
    kick: tokio::sync::Notify,
    /// Watch events received, for the bench and the scale run.
    watch_events: std::sync::atomic::AtomicU64,
    /// What the VXLAN devices must hold, followed event by event.
    entries: Mutex<entries::Entries>,
    /// Held while programming devices: a full sync's dump-and-diff must
    /// not interleave with the watch's incremental changes.
    program: Mutex<()>,
    /// Our endpoint records on their way to etcd (ADD does not wait).
    outbox: outbox::Outbox,
    stopped: AtomicBool,
    /// Runs the services' tasks, mesh and rules on this host.
    agent: agent::Agent,
}

/// The daemon's cluster side: the membership, if any.
pub struct ClusterHandle {
    current: tokio::sync::Mutex<Option<Arc<Cluster>>>,
    names_sink: NamesSink,
    state_root: PathBuf,
    active: AtomicBool,
}

impl ClusterHandle {
    pub fn new(state_root: PathBuf, names_sink: NamesSink) -> Arc<Self> {
        Arc::new(ClusterHandle {
            current: tokio::sync::Mutex::new(None),
            names_sink,
            state_root,
            active: AtomicBool::new(false),
        })
    }

    /// Whether this host is clustered (the daemon must stay).
    pub fn keeps_daemon(&self) -> bool {
        self.active.load(Ordering::Relaxed) || conf_file::conf_path().exists()
    }

    /// Called periodically: a clustered host whose membership is not
    /// running (daemon restarted, store was unreachable) joins again.
    pub async fn maintain(self: Arc<Self>) {
        let Ok(mut cur) = self.current.try_lock() else {
            return;
        };
        if cur.is_some() {
            return;
        }
        if let Ok(Some(conf)) = conf_file::load() {
            match Cluster::start(conf, &self.state_root, None, self.names_sink.clone()).await {
                Ok(c) => {
                    log::info("cluster: membership resumed");
                    *cur = Some(c);
                    self.active.store(true, Ordering::Relaxed);
                }
                Err(r) => log::error(&format!(
                    "cluster: cannot resume: {}",
                    r.error.unwrap_or_default()
                )),
            }
        }
    }

    pub async fn handle(&self, req: ClusterRequest) -> Reply {
        if let Err(msg) = check_names(&req) {
            // CNI's "invalid network config".
            return Reply::error_code(7, msg);
        }
        if let ClusterRequest::Leave { force } = req {
            // The host's part of the services goes first, without the
            // membership's lock: stopping a task calls back into us.
            let c = self.current.lock().await.clone();
            if let Some(c) = c {
                if let Err(r) = agent::before_leave(&c, force).await {
                    return r;
                }
            }
        }
        let mut cur = self.current.lock().await;
        if let ClusterRequest::Join { init, grace_period } = req {
            let conf = match conf_file::load() {
                Ok(Some(c)) => c,
                Ok(None) => return Reply::error("this host has no cluster file"),
                Err(e) => return Reply::error(format!("reading the cluster file: {e}")),
            };
            if let Some(c) = cur.as_ref() {
                if c.conf == conf && !init {
                    return Reply::ok();
                }
                c.stop();
            }
            let init = init.then_some(grace_period.unwrap_or(store::DEFAULT_GRACE));
            return match Cluster::start(conf, &self.state_root, init, self.names_sink.clone()).await
            {
                Ok(c) => {
                    *cur = Some(c);
                    self.active.store(true, Ordering::Relaxed);
                    Reply::ok()
                }
                Err(r) => {
                    *cur = None;
                    self.active.store(false, Ordering::Relaxed);
                    r
                }
            };
        }
        let Some(c) = cur.clone() else {
            return Reply::error_code(
                TRY_AGAIN,
                "this host is not (yet) a member of a cluster: run cnitool cluster join",
            );
        };
        if let ClusterRequest::Leave { force } = req {
            let r = c.leave(force).await;
            if r.ok {
                (self.names_sink)(Vec::new());
                *cur = None;
                self.active.store(false, Ordering::Relaxed);
            }
            return r;
        }
        drop(cur);
        c.handle(req).await
    }
}

impl ClusterHandle {
    /// dnsname registered a record: a cluster network's is published for
    /// the other hosts' resolvers (best effort: local names never wait).
    pub async fn names_added(&self, record: cni_dns::Record) {
        if !valid_name(&record.network) || !valid_name(&record.container_id) {
            return;
        }
        let Some(c) = self.current.lock().await.clone() else {
            return;
        };
        if !c.view().networks.contains_key(&record.network) {
            return;
        }
        let id = format!("{}-{}", record.container_id, record.ifname);
        let k = key(&["names", &record.network, &id]);
        let rec = store::NameRec {
            host: c.conf.host.clone(),
            record,
        };
        let bytes = serde_json::to_vec(&rec).unwrap_or_default();
        if let Err(e) = c.etcd.put(&k, &bytes, None).await {
            log::error(&format!("cluster: publishing names: {e}"));
        }
    }

    pub async fn names_removed(&self, rk: &cni_dns::RecordKey) {
        let Some(c) = self.current.lock().await.clone() else {
            return;
        };
        let id = format!("{}-{}", rk.container_id, rk.ifname);
        let published = c
            .view()
            .names
            .get(&rk.network)
            .is_some_and(|m| m.contains_key(&id));
        if published {
            if let Err(e) = c.etcd.delete(&key(&["names", &rk.network, &id])).await {
                log::error(&format!("cluster: unpublishing names: {e}"));
            }
        }
    }
}

impl Cluster {
    /// Register the host and start its keepalive, watch and reaper.
    /// `init`: create the cluster with this grace period (seconds).
    async fn start(
        conf: ClusterConf,
        state_root: &std::path::Path,
        init: Option<u64>,
        names_sink: NamesSink,
    ) -> Result<Arc<Cluster>, Reply> {
        let tls = match &conf.tls {
            Some(files) => {
                Some(tls::connector(files).map_err(|e| Reply::error(format!("TLS to etcd: {e}")))?)
            }
            None => None,
        };
        let etcd = Etcd::new(conf.store.clone(), tls);
        let marker = key(&["cluster"]);
        if let Some(grace) = init {
            let v = json!({ "gracePeriod": grace }).to_string();
            etcd.create(&marker, v.as_bytes(), None)
                .await
                .map_err(fail)?;
        } else if etcd.get(&marker).await.map_err(fail)?.is_none() {
            return Err(Reply::error(
                "no cluster in this store: run `cnitool cluster init` first",
            ));
        }
        let me = HostRec {
            host: conf.host.clone(),
            address: conf.advertise,
        };
        let rec = serde_json::to_vec(&me).unwrap_or_default();
        if let Some(kv) = etcd
            .create(&key(&["members", &me.host]), &rec, None)
            .await
            .map_err(fail)?
        {
            let other: Option<HostRec> = serde_json::from_slice(&kv.value).ok();
            if other.as_ref().map(|o| o.address) != Some(me.address) {
                return Err(Reply::error(format!(
                    "host name {:?} is taken by {} in this cluster",
                    me.host,
                    other.map(|o| o.address.to_string()).unwrap_or_default()
                )));
            }
        }
        let lease = etcd.grant(conf.lease_ttl).await.map_err(fail)?;
        etcd.put(&key(&["hosts", &me.host]), &rec, Some(lease))
            .await
            .map_err(fail)?;
        let c = Arc::new(Cluster {
            entries: Mutex::new(entries::Entries::new(&conf.host)),
            program: Mutex::new(()),
            outbox: outbox::Outbox::default(),
            names_sink,
            leases: tokio::sync::Mutex::new(Leases::new(state_root.join("cluster-ipam"))),
            conf,
            etcd,
            view: Mutex::new(View::default()),
            lease: Mutex::new(Some(lease)),
            renewed: Mutex::new(Instant::now()),
            conflicts: Mutex::new(BTreeSet::new()),
            down_since: Mutex::new(Default::default()),
            kick: tokio::sync::Notify::new(),
            watch_events: Default::default(),
            stopped: AtomicBool::new(false),
            agent: agent::Agent::new(state_root),
        });
        let rev = c.resync().await.map_err(fail)?;
        tokio::spawn(keepalive(Arc::downgrade(&c)));
        tokio::spawn(watch(Arc::downgrade(&c), rev));
        tokio::spawn(reaper(Arc::downgrade(&c)));
        tokio::spawn(full_sync_every(Arc::downgrade(&c)));
        tokio::spawn(outbox::pusher(Arc::downgrade(&c)));
        tokio::spawn(agent::run(Arc::downgrade(&c)));
        log::info(&format!(
            "cluster: {} joined as {} ({})",
            c.conf.store.join(","),
            c.conf.host,
            c.conf.advertise
        ));
        Ok(c)
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.kick.notify_one();
    }

    fn me(&self) -> &str {
        &self.conf.host
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read the whole store again, make the host follow it, and remove
    /// our endpoints that no local lease backs (a DEL while the store was
    /// out of reach). Returns the revision read.
    async fn resync(&self) -> Result<i64, EtcdError> {
        let (kvs, rev) = self.etcd.range_prefix(PREFIX).await?;
        *self.view() = View::from_kvs(kvs);
        let stale: Vec<(String, String)> = {
            let mut leases = self.leases.lock().await;
            let view = self.view().clone();
            let mut out = Vec::new();
            for (net, eps) in &view.endpoints {
                for (ip, ep) in eps {
                    let held = ip
                        .parse::<IpAddr>()
                        .is_ok_and(|a| leases.of(net).contains_key(&a));
                    if ep.host == self.me() && !held {
                        out.push((net.clone(), ip.clone()));
                    }
                }
            }
            out
        };
        for (net, ip) in stale {
            self.etcd.delete(&key(&["endpoints", &net, &ip])).await?;
        }
        self.readopt().await?;
        self.reconcile(None);
        Ok(rev)
    }

    /// After being cut off: every local lease whose block is no longer
    /// ours is claimed again if nobody took it (its endpoint published
    /// again), or else recorded as a conflict that CHECK and STATUS report.
    async fn readopt(&self) -> Result<(), EtcdError> {
        // Fresh from the store: the watch may still be catching up.
        let (kvs, _) = self.etcd.range_prefix(PREFIX).await?;
        let fresh = View::from_kvs(kvs);
        let mut leases = self.leases.lock().await;
        for net in leases.networks() {
            let ips: Vec<IpAddr> = leases.of(&net).keys().copied().collect();
            for ip in ips {
                let owner_of = |v: &View| -> Option<(String, String)> {
                    v.blocks.get(&net)?.iter().find_map(|(b, h)| {
                        ipam::parse_block(b)
                            .filter(|n| n.contains(ip))
                            .map(|_| (b.clone(), h.clone()))
                    })
                };
                match owner_of(&fresh) {
                    Some((_, h)) if h == self.me() => {
                        let published = fresh
                            .endpoints
                            .get(&net)
                            .is_some_and(|m| m.contains_key(&ip.to_string()));
                        if !published {
                            self.republish(&leases, &net, ip).await?;
                        }
                    }
                    Some((_, h)) => self.conflict(&net, ip, &h),
                    None => {
                        let Some(block) = self.block_of(&net, ip) else {
                            continue;
                        };
                        let k = key(&["blocks", &net, &store::block_key(&block)]);
                        match self.etcd.create(&k, self.me().as_bytes(), None).await? {
                            None => {
                                self.view().apply(&Event::Put(etcd::Kv {
                                    key: k,
                                    value: self.me().as_bytes().to_vec(),
                                }));
                                log::info(&format!(
                                    "cluster: block {block} of {net} claimed again"
                                ));
                                self.republish(&leases, &net, ip).await?;
                            }
                            Some(kv) => {
                                self.conflict(&net, ip, &String::from_utf8_lossy(&kv.value))
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The block of its network's subnets `ip` lies in, from the conflist
    /// (`ipam.subnet`, or `ipam.subnets` in a dual-stack network).
    fn block_of(&self, net: &str, ip: IpAddr) -> Option<IpNetwork> {
        let view = self.view();
        let ipam_conf = view
            .networks
            .get(net)?
            .get("plugins")?
            .as_array()?
            .iter()
            .find_map(|p| p.get("ipam"))?;
        let one = ipam_conf.get("subnet").and_then(Value::as_str);
        let many = ipam_conf
            .get("subnets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        one.into_iter()
            .chain(many)
            .filter_map(|s| s.parse::<IpNetwork>().ok())
            .find_map(|s| ipam::block_containing(s, ip))
    }

    /// The store key of the block `ip` lies in, if the view knows it.
    fn block_key_of(&self, net: &str, ip: IpAddr) -> Option<String> {
        let v = self.view();
        v.blocks.get(net)?.keys().find_map(|b| {
            ipam::parse_block(b)
                .filter(|n| n.contains(ip))
                .map(|_| key(&["blocks", net, b]))
        })
    }

    fn conflict(&self, net: &str, ip: IpAddr, holder: &str) {
        let new = self
            .conflicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((net.to_string(), ip));
        if new {
            log::error(&format!(
                "cluster: {ip} of {net} was reclaimed while this host was cut off \
                 (its block is now {holder}'s): the container holding it must be re-created"
            ));
        }
    }

    async fn republish(&self, leases: &Leases, net: &str, ip: IpAddr) -> Result<(), EtcdError> {
        if let Some(rec) = leases.endpoint(net, ip) {
            let k = key(&["endpoints", net, &ip.to_string()]);
            self.etcd.put(&k, &rec, None).await?;
            self.view()
                .apply(&Event::Put(etcd::Kv { key: k, value: rec }));
        }
        Ok(())
    }

    /// Release a gone host's endpoints and blocks, and its membership.
    /// Only blocks still naming it are deleted (a transaction each).
    async fn reclaim(&self, host: &str) -> Result<(), EtcdError> {
        let (kvs, _) = self.etcd.range_prefix(PREFIX).await?;
        let v = View::from_kvs(kvs);
        if v.alive.contains_key(host) {
            return Ok(());
        }
        for (net, eps) in &v.endpoints {
            for (ip, e) in eps {
                if e.host == host {
                    self.etcd.delete(&key(&["endpoints", net, ip])).await?;
                }
            }
        }
        for (net, names) in &v.names {
            for (id, r) in names {
                if r.host == host {
                    self.etcd.delete(&key(&["names", net, id])).await?;
                }
            }
        }
        for (net, blocks) in &v.blocks {
            for (b, h) in blocks {
                if h == host {
                    self.etcd
                        .delete_if(&key(&["blocks", net, b]), host.as_bytes())
                        .await?;
                }
            }
        }
        self.etcd.delete(&key(&["members", host])).await?;
        log::info(&format!(
            "cluster: released the endpoints and blocks of {host}"
        ));
        self.reschedule(host).await
    }

    /// Whether the store confirmed our lease within its TTL.
    fn in_touch(&self) -> Result<(), String> {
        let since = self
            .renewed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        if since > Duration::from_secs(self.conf.lease_ttl) {
            return Err(format!(
                "this host has been cut off from the cluster store for {}s (lease {}s): \
                 not handing out addresses",
                since.as_secs(),
                self.conf.lease_ttl
            ));
        }
        Ok(())
    }

    /// Make the host follow the view: everything, or one network's
    /// device (its first container here: the device may be new).
    fn reconcile(&self, only: Option<&str>) {
        match only {
            Some(net) => self.follow(&Dirty {
                plan: entries::Plan {
                    full: BTreeSet::from([net.to_string()]),
                    ..Default::default()
                },
                ..Dirty::default()
            }),
            None => self.follow(&Dirty::all()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, entries::Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make the host follow the parts of the view that changed: an
    /// endpoint event costs the entries it adds or removes, not a sync of
    /// the whole device.
    fn follow(&self, d: &Dirty) {
        if d.conflists {
            let networks = self.view().networks.clone();
            materialize::conflists(&self.conf.conf_dir, &networks, self.conf.advertise);
        }
        if d.names {
            let remote: Vec<cni_dns::Record> = {
                let view = self.view();
                view.names
                    .iter()
                    .filter(|(n, _)| view.networks.contains_key(*n))
                    .flat_map(|(_, m)| m.values())
                    .filter(|r| r.host != self.conf.host)
                    .map(|r| r.record.clone())
                    .chain(agent::vip_records(&view))
                    .collect()
            };
            (self.names_sink)(remote);
        }
        if d.services {
            self.agent.kick.notify_one();
        }
        if d.all_fdb {
            self.sync_all();
        } else if !d.plan.is_empty() {
            self.program(&d.plan);
        }
    }

    /// The VXLAN device of each network, by name.
    fn devices(&self) -> std::collections::BTreeMap<String, String> {
        let view = self.view();
        view.networks
            .keys()
            .filter_map(|n| Some((n.clone(), format!("vxlan{}", view.vni(n)?))))
            .collect()
    }

    /// Apply a plan: full syncs of the networks it names, changes to the
    /// others.
    fn program(&self, plan: &entries::Plan) {
        let devices = self.devices();
        let _one = self.program.lock().unwrap_or_else(|p| p.into_inner());
        let mut nl = match cni_net::netlink::Netlink::new() {
            Ok(nl) => nl,
            Err(e) => return log::error(&format!("cluster: netlink: {e}")),
        };
        for (net, dev) in &devices {
            let r = if plan.full.contains(net) {
                let want = self.entries().wanted(net);
                fdb::sync(&mut nl, dev, &want)
            } else if let Some(changes) = plan.changes.get(net) {
                fdb::apply(&mut nl, dev, changes)
            } else {
                continue;
            };
            if let Err(e) = r {
                log::error(&format!("cluster: forwarding entries of {net}: {e}"));
            }
        }
    }

    /// Rebuild the wanted entries from the view and sync every device in
    /// full: at start, after a watch restart, and periodically as a
    /// safety net for anything the incremental path missed.
    fn sync_all(&self) {
        let _one = self.program.lock().unwrap_or_else(|p| p.into_inner());
        {
            let view = self.view();
            *self.entries() = entries::Entries::from_view(self.me(), &view);
        }
        let mut nl = match cni_net::netlink::Netlink::new() {
            Ok(nl) => nl,
            Err(e) => return log::error(&format!("cluster: netlink: {e}")),
        };
        for (net, dev) in self.devices() {
            let want = self.entries().wanted(&net);
            if let Err(e) = fdb::sync(&mut nl, &dev, &want) {
                log::error(&format!("cluster: forwarding entries of {net}: {e}"));
            }
        }
    }

    async fn handle(&self, req: ClusterRequest) -> Reply {
        match req {
            ClusterRequest::Join { .. } | ClusterRequest::Leave { .. } => Reply::ok(),
            req @ (ClusterRequest::ServiceCreate { .. }
            | ClusterRequest::ServiceScale { .. }
            | ClusterRequest::ServiceRm { .. }
            | ClusterRequest::ServiceLs) => self.service_request(req).await,
            ClusterRequest::Remove { host, force } => {
                if host == self.me() {
                    return Reply::error("use `cluster leave` to take this host out");
                }
                let alive = match self.etcd.get(&key(&["hosts", &host])).await {
                    Ok(kv) => kv.is_some(),
                    Err(e) => return fail(e),
                };
                if alive && !force {
                    return Reply::error(format!(
                        "host {host} is alive (its lease is kept): use --force to remove it anyway"
                    ));
                }
                if alive {
                    if let Err(e) = self.etcd.delete(&key(&["hosts", &host])).await {
                        return fail(e);
                    }
                }
                match self.reclaim(&host).await {
                    Ok(()) => Reply::ok(),
                    Err(e) => fail(e),
                }
            }
            ClusterRequest::Stats => Reply::with_data(json!({
                "etcdCalls": self.etcd.calls.load(Ordering::Relaxed),
                "watchEvents": self.watch_events.load(Ordering::Relaxed),
                "rssKb": rss_kb(),
            })),
            ClusterRequest::Status => {
                if let Err(msg) = self.in_touch() {
                    return Reply::error_code(TRY_AGAIN, msg);
                }
                let conflicts = self
                    .conflicts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if conflicts.is_empty() {
                    match self.outbox.stalled() {
                        Some(msg) => Reply::error_code(TRY_AGAIN, msg),
                        None => Reply::ok(),
                    }
                } else {
                    let list: Vec<String> = conflicts
                        .iter()
                        .map(|(n, ip)| format!("{ip} ({n})"))
                        .collect();
                    Reply::error(format!(
                        "addresses reclaimed by the cluster while this host was cut off: {}",
                        list.join(", ")
                    ))
                }
            }
            ClusterRequest::Hosts => self.hosts().await,
            ClusterRequest::Vni { network } => self.vni(&network).await,
            ClusterRequest::VniRelease { network, vni } => {
                let k = key(&["vnis", &vni.to_string()]);
                match self.etcd.delete_if(&k, network.as_bytes()).await {
                    Ok(_) => Reply::ok(),
                    Err(e) => fail(e),
                }
            }
            ClusterRequest::NetworkPut { network, conflist } => {
                self.network_put(&network, conflist).await
            }
            ClusterRequest::NetworkRm { network } => self.network_rm(&network).await,
            ClusterRequest::IpamAdd {
                network,
                subnet,
                container_id,
                ifname,
            } => {
                let owner = Owner {
                    container_id,
                    ifname,
                };
                self.ipam_add(&network, &subnet, &owner).await
            }
            ClusterRequest::IpamDel {
                network,
                container_id,
                ifname,
            } => {
                let owner = Owner {
                    container_id,
                    ifname,
                };
                self.ipam_del(&network, &owner).await
            }
            ClusterRequest::IpamGc { network, valid } => {
                let stale: Vec<Owner> = {
                    let mut leases = self.leases.lock().await;
                    leases
                        .of(&network)
                        .values()
                        .filter(|o| {
                            !agent::is_reserved(&o.container_id, &o.ifname)
                                && !valid
                                    .iter()
                                    .any(|(c, i)| *c == o.container_id && *i == o.ifname)
                        })
                        .cloned()
                        .collect()
                };
                for o in stale {
                    let r = self.ipam_del(&network, &o).await;
                    if !r.ok {
                        return r;
                    }
                }
                Reply::ok()
            }
            ClusterRequest::IpamCheck {
                network,
                container_id,
                ifname,
                ip,
            } => {
                let owner = Owner {
                    container_id,
                    ifname,
                };
                let mut leases = self.leases.lock().await;
                let reclaimed = self
                    .conflicts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&(network.clone(), ip));
                let held = leases.find_all(&network, &owner);
                match held.iter().find(|a| **a == ip) {
                    Some(_) if reclaimed => Reply::error(format!(
                        "{ip} was reclaimed by the cluster while this host was cut off and may \
                         now be another host's: re-create the container"
                    )),
                    Some(_) => Reply::ok(),
                    None if held.is_empty() => {
                        Reply::error(format!("no lease for {owner:?} on {network}"))
                    }
                    None => Reply::error(format!("leases of {owner:?} are {held:?}, not {ip}")),
                }
            }
            ClusterRequest::Publish {
                network,
                ip,
                mac,
                container_id,
            } => {
                let rec = EndpointRec {
                    ip,
                    mac,
                    host: self.conf.host.clone(),
                    vtep: self.conf.advertise,
                    container_id,
                };
                // A store known out of reach: fail now (code 11), as the
                // synchronous put did, rather than queue behind it.
                if let Some(msg) = self.outbox.stalled() {
                    return Reply::error_code(TRY_AGAIN, msg);
                }
                let k = key(&["endpoints", &network, &ip.to_string()]);
                let bytes = serde_json::to_vec(&rec).unwrap_or_default();
                // Answered once on local disk: the pusher puts it in etcd
                // right after, a restarted daemon republishes it.
                if let Err(e) = self.leases.lock().await.set_endpoint(&network, ip, &bytes) {
                    return Reply::error(format!("keeping the endpoint of {ip}: {e}"));
                }
                let guard = self
                    .block_key_of(&network, ip)
                    .map(|b| (b, self.me().as_bytes().to_vec()));
                let landed = self.outbox.put(k.clone(), bytes.clone(), guard);
                let mut plan = entries::Plan::default();
                {
                    let mut v = self.view();
                    let k_ref = k.clone();
                    v.apply(&Event::Put(etcd::Kv {
                        key: k,
                        value: bytes,
                    }));
                    self.entries().follow_key(&v, &k_ref, &mut plan);
                }
                // The network's first container here: its device may be
                // new, it gets its entries in full.
                if !plan.is_empty() {
                    self.program(&plan);
                }
                outbox::Outbox::landed(landed, PUBLISH_SETTLE).await;
                Reply::ok()
            }
        }
    }

    async fn hosts(&self) -> Reply {
        let (kvs, _) = match self.etcd.range_prefix(PREFIX).await {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        let v = View::from_kvs(kvs);
        let rows: Vec<Value> = v
            .members
            .values()
            .map(|m| {
                json!({
                    "host": m.host,
                    "address": m.address,
                    "state": if v.alive.contains_key(&m.host) { "ready" } else { "down" },
                    "endpoints": v.endpoint_count(&m.host),
                    "self": m.host == self.conf.host,
                })
            })
            .collect();
        Reply::with_data(json!(rows))
    }

    async fn vni(&self, network: &str) -> Reply {
        let taken: BTreeSet<u32> = self.view().vnis.keys().copied().collect();
        for vni in (FIRST_VNI..=MAX_VNI).filter(|v| !taken.contains(v)) {
            match self
                .etcd
                .create(&key(&["vnis", &vni.to_string()]), network.as_bytes(), None)
                .await
            {
                Ok(None) => return Reply::with_data(json!(vni)),
                Ok(Some(_)) => continue,
                Err(e) => return fail(e),
            }
        }
        Reply::error("no free VXLAN ID left")
    }

    async fn network_put(&self, network: &str, conflist: Value) -> Reply {
        let k = key(&["networks", network]);
        let bytes = serde_json::to_vec(&conflist).unwrap_or_default();
        match self.etcd.create(&k, &bytes, None).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                return Reply::error(format!(
                    "network with name {network} already exists in the cluster"
                ))
            }
            Err(e) => return fail(e),
        }
        self.view().apply(&Event::Put(etcd::Kv {
            key: k,
            value: bytes,
        }));
        self.reconcile(None);
        Reply::ok()
    }

    async fn network_rm(&self, network: &str) -> Reply {
        let eps = match self
            .etcd
            .range_prefix(&key(&["endpoints", network, ""]))
            .await
        {
            Ok((kvs, _)) => kvs,
            Err(e) => return fail(e),
        };
        if !eps.is_empty() {
            return Reply::error(format!(
                "network {network} has active endpoints in the cluster ({})",
                eps.len()
            ));
        }
        let vni = self.view().vni(network);
        let mut steps = vec![key(&["networks", network])];
        if let Some(v) = vni {
            steps.push(key(&["vnis", &v.to_string()]));
        }
        for k in steps {
            if let Err(e) = self.etcd.delete(&k).await {
                return fail(e);
            }
        }
        if let Err(e) = self
            .etcd
            .delete_prefix(&key(&["blocks", network, ""]))
            .await
        {
            return fail(e);
        }
        self.view().networks.remove(network);
        self.leases.lock().await.drop_network(network);
        self.reconcile(None);
        Reply::ok()
    }

    async fn ipam_add(&self, network: &str, subnet: &str, owner: &Owner) -> Reply {
        let subnet = match subnet.parse::<IpNetwork>() {
            Ok(s) => ipam::normalize(s),
            Err(e) => return Reply::error(format!("subnet {subnet:?}: {e}")),
        };
        let answer = |ip: IpAddr| Reply::with_data(json!(format!("{ip}/{}", subnet.prefix())));
        let mut leases = self.leases.lock().await;
        if let Some(ip) = leases.find(network, owner, &subnet) {
            return answer(ip);
        }
        if let Err(msg) = self.in_touch() {
            return Reply::error_code(TRY_AGAIN, msg);
        }
        // Inside the blocks we hold: no round trip.
        let (mine, taken): (Vec<IpNetwork>, BTreeSet<String>) = {
            let v = self.view();
            let blocks = v.blocks.get(network).cloned().unwrap_or_default();
            let mine = blocks
                .iter()
                .filter(|(_, h)| *h == self.me())
                .filter_map(|(b, _)| ipam::parse_block(b))
                .filter(|b| subnet.contains(b.network()))
                .collect();
            (mine, blocks.keys().cloned().collect())
        };
        for b in &mine {
            match self.take_in(&mut leases, network, subnet, *b, owner) {
                Ok(Some(ip)) => return answer(ip),
                Ok(None) => {}
                Err(e) => return Reply::error(format!("writing a lease: {e}")),
            }
        }
        // Claim a new block.
        for b in ipam::blocks_of(subnet) {
            let bk = store::block_key(&b);
            if taken.contains(&bk) {
                continue;
            }
            let k = key(&["blocks", network, &bk]);
            match self.etcd.create(&k, self.me().as_bytes(), None).await {
                Ok(None) => {
                    self.view().apply(&Event::Put(etcd::Kv {
                        key: k,
                        value: self.me().as_bytes().to_vec(),
                    }));
                    log::info(&format!("cluster: claimed block {b} of {network}"));
                    match self.take_in(&mut leases, network, subnet, b, owner) {
                        Ok(Some(ip)) => return answer(ip),
                        Ok(None) => continue,
                        Err(e) => return Reply::error(format!("writing a lease: {e}")),
                    }
                }
                Ok(Some(_)) => continue,
                Err(e) => {
                    return Reply::error_code(
                        TRY_AGAIN,
                        format!("no free address in this host's blocks of {network} and {e}"),
                    )
                }
            }
        }
        Reply::error(format!("no free address left in {subnet} ({network})"))
    }

    fn take_in(
        &self,
        leases: &mut Leases,
        network: &str,
        subnet: IpNetwork,
        block: IpNetwork,
        owner: &Owner,
    ) -> std::io::Result<Option<IpAddr>> {
        // A service's virtual IP outlives the host that leased it; the
        // network's gateway and aux addresses are never handed out.
        let (vips, reserved) = {
            let view = self.view();
            (
                services::vips(&view, network),
                services::reserved_of(&view, network),
            )
        };
        for ip in ipam::usable_of(subnet, block) {
            let is_vip = matches!(ip, IpAddr::V4(a) if vips.contains(&a));
            if leases.of(network).contains_key(&ip) || is_vip || reserved.contains(&ip) {
                continue;
            }
            if leases.take(network, ip, owner)? {
                return Ok(Some(ip));
            }
        }
        Ok(None)
    }

    /// Release every address the owner holds (one per family).
    async fn ipam_del(&self, network: &str, owner: &Owner) -> Reply {
        let held = self.leases.lock().await.find_all(network, owner);
        for ip in held {
            let r = self.release(network, ip).await;
            if !r.ok {
                return r;
            }
        }
        Reply::ok()
    }

    async fn release(&self, network: &str, ip: IpAddr) -> Reply {
        let mut leases = self.leases.lock().await;
        if let Err(e) = leases.release(network, ip) {
            return Reply::error(format!("removing the lease of {ip}: {e}"));
        }
        drop(leases);
        let was_reclaimed = self
            .conflicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(network.to_string(), ip));
        if was_reclaimed {
            // The address is another host's now: its endpoint is not ours.
            return Reply::ok();
        }
        let k = key(&["endpoints", network, &ip.to_string()]);
        let ours = self
            .view()
            .endpoints
            .get(network)
            .and_then(|m| m.get(&ip.to_string()))
            .is_none_or(|e| e.host == self.me());
        if ours {
            // A put of it still queued is taken back, one in flight waited
            // for: the delete is the last word on the key.
            let _flight = self.outbox.withdraw(&k).await;
            if let Err(e) = self.etcd.delete(&k).await {
                log::error(&format!("cluster: unpublishing {ip}: {e} (retried)"));
                self.outbox.delete(k.clone());
            }
            // The entries learn it now, not at the watch's echo: the
            // network's next container here must find it uncarried (its
            // device is new then) and get a full sync.
            let mut v = self.view();
            v.apply(&Event::Delete(k.clone()));
            self.entries()
                .follow_key(&v, &k, &mut entries::Plan::default());
        }
        Reply::ok()
    }

    /// Take this host out of the store: its endpoints, blocks, liveness
    /// and membership; then the networks it materialized and its leases.
    async fn leave(&self, force: bool) -> Reply {
        let held = agent::containers_held(self).await;
        if held > 0 && !force {
            return Reply::error(format!(
                "this host still has {held} endpoint(s) on cluster networks: remove them or use --force"
            ));
        }
        // Nothing queued may land after the deletes below.
        let _flight = self.outbox.clear().await;
        let (kvs, _) = match self.etcd.range_prefix(PREFIX).await {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        let v = View::from_kvs(kvs);
        let mut gone = Vec::new();
        for (net, blocks) in &v.blocks {
            for (b, h) in blocks {
                if h == self.me() {
                    gone.push((key(&["blocks", net, b]), h.clone().into_bytes()));
                }
            }
        }
        for (net, eps) in &v.endpoints {
            for (ip, e) in eps {
                if e.host == self.me() {
                    gone.push((
                        key(&["endpoints", net, ip]),
                        serde_json::to_vec(e).unwrap_or_default(),
                    ));
                }
            }
        }
        for (net, names) in &v.names {
            for (id, r) in names {
                if r.host == self.me() {
                    gone.push((key(&["names", net, id]), Vec::new()));
                }
            }
        }
        for (k, _) in &gone {
            if let Err(e) = self.etcd.delete(k).await {
                return fail(e);
            }
        }
        for k in [key(&["hosts", self.me()]), key(&["members", self.me()])] {
            if let Err(e) = self.etcd.delete(&k).await {
                return fail(e);
            }
        }
        // A host that left is never released (no membership is left to
        // expire): its tasks go to the others now, as swarm's node leave,
        // or they would stay in the store on a host that is no member.
        if let Err(e) = self.reschedule(self.me()).await {
            log::error(&format!(
                "cluster: placing this host's tasks elsewhere: {e}"
            ));
        }
        let lease = self.lease.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(l) = lease {
            let _ = self.etcd.revoke(l).await;
        }
        self.stop();
        materialize::conflists(
            &self.conf.conf_dir,
            &Default::default(),
            self.conf.advertise,
        );
        let mut leases = self.leases.lock().await;
        for n in leases.networks() {
            leases.drop_network(&n);
        }
        leases.drop_pool();
        let _ = std::fs::remove_dir(leases.root());
        if let Err(e) = conf_file::remove() {
            return Reply::error(format!("removing the cluster file: {e}"));
        }
        log::info("cluster: left");
        Reply::ok()
    }
}

/// Renew the host's lease every third of its life; a lease that expired
/// (the store was out of reach too long) is replaced and the host put
/// back under the new one.
async fn keepalive(c: std::sync::Weak<Cluster>) {
    let mut failing = false;
    loop {
        let every = match c.upgrade() {
            Some(c) => Duration::from_millis(c.conf.lease_ttl.max(3) * 1000 / 3),
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(c) = c.upgrade() else { return };
        if c.stopped.load(Ordering::Relaxed) {
            return;
        }
        let lease = *c.lease.lock().unwrap_or_else(|p| p.into_inner());
        let Some(id) = lease else { return };
        let asked = Instant::now();
        let answer = c.etcd.keepalive(id).await;
        if failing && answer.is_ok() {
            log::info("cluster: the store answers again: watching from a fresh read");
            c.kick.notify_one();
            c.outbox.retry_now();
        }
        failing = answer.is_err();
        c.outbox.set_failing(failing);
        match answer {
            Ok(true) => *c.renewed.lock().unwrap_or_else(|p| p.into_inner()) = asked,
            Ok(false) => {
                log::error("cluster: host lease expired: registering again");
                if let Ok(new) = c.etcd.grant(c.conf.lease_ttl).await {
                    let rec = serde_json::to_vec(&HostRec {
                        host: c.conf.host.clone(),
                        address: c.conf.advertise,
                    })
                    .unwrap_or_default();
                    let member = c
                        .etcd
                        .put(&key(&["members", &c.conf.host]), &rec, None)
                        .await;
                    let alive = c
                        .etcd
                        .put(&key(&["hosts", &c.conf.host]), &rec, Some(new))
                        .await;
                    if member.is_ok() && alive.is_ok() {
                        *c.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(new);
                        *c.renewed.lock().unwrap_or_else(|p| p.into_inner()) = asked;
                        if let Err(e) = c.readopt().await {
                            log::error(&format!("cluster: re-adopting leases: {e}"));
                        }
                    }
                }
            }
            Err(e) => log::error(&format!("cluster: keepalive: {e}")),
        }
    }
}

/// Follow the store: apply each batch of events to the view and make the
/// host follow. A stream that breaks after delivering (its member died) is
/// reopened at once from the last revision on another member, so losing a
/// member costs milliseconds; a stream that cannot be opened or delivered
/// nothing, or a kick, leads to a fresh read first (with a growing pause
/// while the store stays out of reach).
async fn watch(c: std::sync::Weak<Cluster>, mut rev: i64) {
    const FIRST_PAUSE: Duration = Duration::from_millis(50);
    let mut pause = FIRST_PAUSE;
    loop {
        let Some(cl) = c.upgrade() else { return };
        if cl.stopped.load(Ordering::Relaxed) {
            return;
        }
        let stream = cl.etcd.watch(PREFIX, rev + 1).await;
        drop(cl);
        let mut delivered = false;
        let mut kicked = false;
        if let Ok(mut w) = stream {
            loop {
                let Some(cl) = c.upgrade() else { return };
                let next = tokio::select! {
                    n = w.next() => n,
                    _ = cl.kick.notified() => {
                        kicked = true;
                        Err(EtcdError::Unreachable("restarting the watch".into()))
                    }
                };
                if cl.stopped.load(Ordering::Relaxed) {
                    return;
                }
                match next {
                    Ok((mut events, r)) => {
                        pause = FIRST_PAUSE;
                        rev = rev.max(r);
                        // Take whatever else is ready now: one sync per
                        // burst, not one per event.
                        while let Ok(Ok((more, r))) =
                            tokio::time::timeout(Duration::ZERO, w.next()).await
                        {
                            rev = rev.max(r);
                            events.extend(more);
                        }
                        if events.is_empty() {
                            continue;
                        }
                        // Events flowed: a later break is a member going,
                        // not a stream that cannot work (compaction).
                        delivered = true;
                        cl.watch_events
                            .fetch_add(events.len() as u64, Ordering::Relaxed);
                        let mut dirty = Dirty::default();
                        {
                            let mut v = cl.view();
                            let mut ent = cl.entries();
                            for e in &events {
                                v.apply(e);
                                let k = match e {
                                    Event::Put(kv) => &kv.key,
                                    Event::Delete(k) => k,
                                };
                                dirty.note(k);
                                ent.follow_key(&v, k, &mut dirty.plan);
                            }
                        }
                        cl.follow(&dirty);
                    }
                    Err(e) => {
                        log::error(&format!("cluster: watch: {e}"));
                        break;
                    }
                }
            }
        }
        if delivered && !kicked {
            continue;
        }
        if !kicked {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
        let Some(cl) = c.upgrade() else { return };
        if cl.stopped.load(Ordering::Relaxed) {
            return;
        }
        match cl.resync().await {
            Ok(r) => rev = r,
            Err(e) => log::error(&format!("cluster: resync: {e}")),
        }
    }
}

/// Release hosts whose lease has been gone for longer than the grace
/// period. Every member runs this; the deletions are idempotent and a
/// block is only deleted while it still names the gone host.
async fn reaper(c: std::sync::Weak<Cluster>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(c) = c.upgrade() else { return };
        if c.stopped.load(Ordering::Relaxed) {
            return;
        }
        // A member cut off itself judges nobody.
        if c.in_touch().is_err() {
            continue;
        }
        let (down, grace) = {
            let v = c.view();
            (v.not_alive(), Duration::from_secs(v.grace()))
        };
        let due: Vec<String> = {
            let mut since = c.down_since.lock().unwrap_or_else(|p| p.into_inner());
            since.retain(|h, _| down.contains(h));
            let now = Instant::now();
            down.iter()
                .filter(|h| *h != c.me())
                .filter(|h| now.duration_since(*since.entry((*h).clone()).or_insert(now)) >= grace)
                .cloned()
                .collect()
        };
        for h in due {
            match c.reclaim(&h).await {
                Ok(()) => {
                    c.down_since
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&h);
                }
                Err(e) => log::error(&format!("cluster: releasing {h}: {e}")),
            }
        }
        // A host joined or came back: the tasks waiting for one go to it.
        if c.pending_placeable() {
            if let Err(e) = c.place_pending().await {
                log::error(&format!("cluster: placing pending tasks: {e}"));
            }
        }
    }
}

/// How often every device is synced in full, whatever the watch did.
const FULL_SYNC_EVERY: Duration = Duration::from_secs(60);

/// The safety net of incremental programming: a periodic full sync.
async fn full_sync_every(c: std::sync::Weak<Cluster>) {
    loop {
        tokio::time::sleep(FULL_SYNC_EVERY).await;
        let Some(c) = c.upgrade() else { return };
        if c.stopped.load(Ordering::Relaxed) {
            return;
        }
        c.sync_all();
    }
}

/// This process's resident memory (VmRSS), in KiB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_events_marks_only_what_it_changed() {
        let mut d = Dirty::default();
        d.note("/cni-rs/endpoints/ov/10.0.0.2");
        d.note("/cni-rs/blocks/ov/10.0.0.0_26");
        d.note("/cni-rs/hosts/h2");
        assert!(!d.conflists && !d.names && !d.all_fdb);
        d.note("/cni-rs/names/ov/c-eth0");
        assert!(d.names && !d.conflists);
        d.note("/cni-rs/networks/ov");
        assert!(d.conflists && d.all_fdb);
    }

    #[test]
    fn names_that_would_escape_a_key_or_folder_are_refused() {
        for ok in ["net1", "a.b-c_d", "0"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
        let req = ClusterRequest::IpamDel {
            network: "../etc".into(),
            container_id: "c".into(),
            ifname: "eth0".into(),
        };
        assert!(check_names(&req).is_err());
    }
}
