//! The records the daemon serves, in memory: loaded from the record
//! folder at start and on each `add`, grouped by the namespace they live
//! in. A [`Snapshot`] is what queries read: the zones of every network and,
//! per namespace, the networks its container is attached to.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cni_dns::{Record, RecordKey};

use crate::dns::zone::NetworkZone;

/// A namespace's identity: (device, inode) of its nsfs file.
pub type NsId = (u64, u64);

/// The identity of the namespace at `path` now; `None` when it is gone.
pub fn ns_id(path: &Path) -> Option<NsId> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A record and the namespace it named when loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub record: Record,
    pub ns: Option<NsId>,
}

#[derive(Debug, Default)]
pub struct Registry {
    records: BTreeMap<RecordKey, Loaded>,
    /// Other hosts' records of cluster networks: answered, never listened
    /// for (their namespaces are elsewhere).
    remote: Vec<Record>,
}

impl Registry {
    /// Add or replace; returns the record's namespace.
    pub fn insert(&mut self, record: Record) -> Option<NsId> {
        let ns = ns_id(Path::new(&record.netns));
        self.records.insert(record.key(), Loaded { record, ns });
        ns
    }

    /// Replace the other hosts' records.
    pub fn set_remote(&mut self, records: Vec<Record>) {
        self.remote = records;
    }

    /// Forget a record; returns what it was.
    pub fn remove(&mut self, key: &RecordKey) -> Option<Loaded> {
        self.records.remove(key)
    }

    /// Make a network's records exactly `records` (as read from disk),
    /// keeping what did not change.
    pub fn replace_network(&mut self, network: &str, records: Vec<Record>) {
        let keep: std::collections::BTreeSet<RecordKey> = records.iter().map(Record::key).collect();
        self.records
            .retain(|k, _| k.network != network || keep.contains(k));
        for r in records {
            if self.records.get(&r.key()).map(|l| &l.record) != Some(&r) {
                self.insert(r);
            }
        }
    }

    /// The networks that have records.
    pub fn networks(&self) -> std::collections::BTreeSet<String> {
        self.records.keys().map(|k| k.network.clone()).collect()
    }

    pub fn get(&self, key: &RecordKey) -> Option<&Loaded> {
        self.records.get(key)
    }

    /// Whether any record still lives in `ns`.
    pub fn uses(&self, ns: NsId) -> bool {
        self.records.values().any(|l| l.ns == Some(ns))
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn keys(&self) -> impl Iterator<Item = &RecordKey> {
        self.records.keys()
    }

    /// The namespaces that records live in, with the path to open each.
    pub fn namespaces(&self) -> BTreeMap<NsId, String> {
        let mut out = BTreeMap::new();
        for l in self.records.values() {
            if let Some(ns) = l.ns {
                out.entry(ns).or_insert_with(|| l.record.netns.clone());
            }
        }
        out
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut by_network: HashMap<&str, Vec<&Record>> = HashMap::new();
        let mut by_ns: HashMap<NsId, Vec<String>> = HashMap::new();
        for l in self.records.values() {
            by_network
                .entry(l.record.network.as_str())
                .or_default()
                .push(&l.record);
            if let Some(ns) = l.ns {
                let nets = by_ns.entry(ns).or_default();
                if !nets.contains(&l.record.network) {
                    nets.push(l.record.network.clone());
                }
            }
        }
        for r in &self.remote {
            by_network.entry(r.network.as_str()).or_default().push(r);
        }
        let zones = by_network
            .into_iter()
            .map(|(n, recs)| (n.to_string(), NetworkZone::build(n, recs)))
            .collect();
        Snapshot { zones, by_ns }
    }
}

/// What queries read, rebuilt on every change.
#[derive(Debug, Default)]
pub struct Snapshot {
    zones: HashMap<String, NetworkZone>,
    by_ns: HashMap<NsId, Vec<String>>,
}

impl Snapshot {
    /// The zones a container in `ns` sees: those of its own networks only.
    pub fn view(&self, ns: NsId) -> Vec<&NetworkZone> {
        self.by_ns
            .get(&ns)
            .map(|nets| nets.iter().filter_map(|n| self.zones.get(n)).collect())
            .unwrap_or_default()
    }
}
