//! The daemon's state and its operations: records (from the record folder)
//! and one listener per namespace that has records. Every control request
//! and the periodic sweep go through here, under one lock; queries never
//! take it (they read the snapshot in [`Shared`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use cni_dns::control::{Reply, Request};
use cni_dns::{RecordKey, RecordStore, StateDir};
use hickory_proto::rr::RecordType;

use crate::dns::answer::{self, Action, Transport};
use crate::listeners::{self, Listener, Shared};
use crate::log;
use crate::records::{ns_id, NsId, Registry};

pub struct Service {
    store: RecordStore,
    registry: Registry,
    listeners: BTreeMap<NsId, Listener>,
    /// Per network folder, the stamp it had when last read in full.
    stamps: BTreeMap<String, (u64, i64, i64)>,
    pub shared: Arc<Shared>,
}

/// Whether a folder's mtime (seconds) is over a second old.
fn settled(mtime: i64) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    now - mtime >= 2
}

impl Service {
    pub fn new(state: &StateDir, shared: Arc<Shared>) -> Self {
        Service {
            store: RecordStore::new(state.records()),
            registry: Registry::default(),
            listeners: BTreeMap::new(),
            stamps: BTreeMap::new(),
            shared,
        }
    }

    /// Read every record file: how a restarted daemon (after a `kill -9`)
    /// serves again what the old one served.
    pub fn load_all(&mut self) {
        match self.store.read_all() {
            Ok((records, bad)) => {
                for b in bad {
                    log::error(&format!("skipping record {b}"));
                }
                for r in records {
                    self.registry.insert(r);
                }
            }
            Err(e) => log::error(&format!("reading records: {e}")),
        }
        self.reconcile();
    }

    pub fn handle(&mut self, req: Request) -> Reply {
        match req {
            Request::Ping => Reply::ok(),
            Request::Add { key } => self.add(&key),
            Request::Del { key } => {
                self.registry.remove(&key);
                self.reconcile();
                Reply::ok()
            }
            Request::Check { key } => self.check(&key),
            Request::Cluster { .. } => Reply::error("cluster requests go to the cluster side"),
        }
    }

    fn add(&mut self, key: &RecordKey) -> Reply {
        let record = match self.store.read(key) {
            Ok(Some(r)) => r,
            Ok(None) => return Reply::error(format!("no record file for {key:?}")),
            Err(e) => return Reply::error(format!("reading the record of {key:?}: {e}")),
        };
        let Some(ns) = self.registry.insert(record.clone()) else {
            self.reconcile();
            // A name with no namespace of its own (a service's VIP) is
            // served to the network's containers and needs no listener.
            if record.netns.is_empty() {
                return Reply::ok();
            }
            return Reply::error(format!("netns {} does not exist", record.netns));
        };
        self.reconcile();
        if self.listeners.contains_key(&ns) {
            Reply::ok()
        } else {
            Reply::error(format!("cannot listen in netns {}", record.netns))
        }
    }

    fn check(&mut self, key: &RecordKey) -> Reply {
        if self.registry.get(key).is_none() {
            // Written but never announced (a plugin killed in between).
            if let Reply {
                ok: false, error, ..
            } = self.add(key)
            {
                return Reply::error(error.unwrap_or_default());
            }
        }
        let Some(loaded) = self.registry.get(key) else {
            return Reply::error("record vanished");
        };
        let Some(ns) = loaded.ns else {
            return Reply::error(format!("netns {} does not exist", loaded.record.netns));
        };
        let mut reply = Reply::ok();
        reply.serving = self.listeners.contains_key(&ns);
        if let Some(name) = loaded.record.names.first() {
            for t in [RecordType::A, RecordType::AAAA] {
                let q = answer::query_bytes(&format!("{name}."), t, 1);
                if let Action::Reply(b) = self.shared.answer(&q, ns, Transport::Tcp) {
                    reply.addresses.extend(answer::reply_addresses(&b));
                }
            }
        }
        reply
    }

    /// Make listeners match the records: open what is missing, close what
    /// no record needs or whose namespace is gone or replaced, then publish
    /// a new snapshot.
    pub fn reconcile(&mut self) {
        let wanted = self.registry.namespaces();
        self.listeners.retain(|ns, l| {
            let keep = wanted.contains_key(ns) && ns_id(std::path::Path::new(&l.path)) == Some(*ns);
            if !keep {
                log::info(&format!("closing the listener in {}", l.path));
            }
            keep
        });
        for (ns, path) in wanted {
            if self.listeners.contains_key(&ns) || ns_id(std::path::Path::new(&path)) != Some(ns) {
                continue;
            }
            match listeners::open(&path, self.shared.clone()) {
                Ok(l) if l.ns == ns => {
                    self.listeners.insert(ns, l);
                }
                Ok(_) => log::error(&format!("netns {path} changed while opening it")),
                Err(e) => log::error(&format!("listening in netns {path}: {e}")),
            }
        }
        self.shared.set_snapshot(self.registry.snapshot());
    }

    /// The periodic check: pick up record files written behind our back
    /// (a plugin killed between writing and telling us), drop records whose
    /// file is gone, and drop listeners of vanished namespaces. A network
    /// folder is read again only when it changed.
    pub fn sweep(&mut self) {
        if let Ok(on_disk) = self.store.networks() {
            let mut networks = self.registry.networks();
            networks.extend(on_disk);
            self.stamps.retain(|n, _| networks.contains(n));
            for n in networks {
                let stamp = self.store.network_stamp(&n).ok().flatten();
                if stamp.is_some() && self.stamps.get(&n) == stamp.as_ref() {
                    continue;
                }
                let Ok((records, _)) = self.store.read_network(&n) else {
                    continue;
                };
                self.registry.replace_network(&n, records);
                // The mtime clock is coarse: a change in the same tick as
                // this read would keep the stamp. Trust only settled ones.
                match stamp {
                    Some(s) if settled(s.1) => {
                        self.stamps.insert(n, s);
                    }
                    _ => {
                        self.stamps.remove(&n);
                    }
                }
            }
        }
        self.reconcile();
    }

    /// A record as loaded (for publishing it to the cluster).
    pub fn record(&self, key: &RecordKey) -> Option<cni_dns::Record> {
        self.registry.get(key).map(|l| l.record.clone())
    }

    /// The other hosts' records of cluster networks, from the store.
    pub fn set_remote(&mut self, records: Vec<cni_dns::Record>) {
        self.registry.set_remote(records);
        self.shared.set_snapshot(self.registry.snapshot());
    }

    pub fn is_idle(&self) -> bool {
        self.registry.is_empty()
    }

    pub fn record_count(&self) -> usize {
        self.registry.len()
    }

    pub fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    /// Close every listener (at exit).
    pub fn close_all(&mut self) {
        self.listeners.clear();
    }
}
