//! One file per attachment (network, container, interface): the names the
//! container answers to on that network and its addresses. Written
//! atomically by the plugin, read by the daemon at start and on each
//! `add`: the files, not the daemon's memory, are the truth.

use std::io;
use std::net::IpAddr;
use std::path::Path;

use cni_state::{Dir, Durability};
use serde::{Deserialize, Serialize};

use crate::names;

/// Largest number of record files read from one network folder; a
/// resolver for more containers than this on one host is not our case.
pub const MAX_RECORDS_PER_NETWORK: usize = 65536;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub network: String,
    /// Search domain of the network, e.g. `dns.podman`.
    pub domain: String,
    /// Whether names outside our records are forwarded upstream.
    #[serde(default = "yes")]
    pub forward: bool,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    /// The container's namespace path: where the daemon listens.
    pub netns: String,
    /// Container name first, then the aliases; normalised (lower case).
    pub names: Vec<String>,
    pub addresses: Vec<IpAddr>,
}

fn yes() -> bool {
    true
}

/// What identifies a record: one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordKey {
    pub network: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl RecordKey {
    /// `<containerID>-<ifname>.json`. Both parts were validated by the
    /// plugin skeleton (no `/`, not `.`/`..`); the store re-checks.
    pub fn file_name(&self) -> String {
        format!("{}-{}.json", self.container_id, self.ifname)
    }

    /// Every part must be usable as (part of) a file name.
    pub fn validate(&self) -> Result<(), String> {
        for (what, v) in [
            ("network", &self.network),
            ("containerID", &self.container_id),
            ("ifname", &self.ifname),
        ] {
            if v.is_empty()
                || v == "."
                || v == ".."
                || v.starts_with('.')
                || v.len() > 255
                || v.contains(['/', '\0'])
            {
                return Err(format!("record {what} {v:?} is not a valid name"));
            }
        }
        Ok(())
    }
}

impl Record {
    pub fn key(&self) -> RecordKey {
        RecordKey {
            network: self.network.clone(),
            container_id: self.container_id.clone(),
            ifname: self.ifname.clone(),
        }
    }

    /// A record read from disk is checked as if it came from a stranger:
    /// names valid, keys usable as file names.
    pub fn validate(&self) -> Result<(), String> {
        self.key().validate()?;
        names::normalize(&self.domain)?;
        for n in &self.names {
            if names::normalize(n)? != *n {
                return Err(format!("name {n:?} is not normalised"));
            }
        }
        Ok(())
    }
}

/// The `records/` folder.
#[derive(Debug, Clone)]
pub struct RecordStore {
    root: std::path::PathBuf,
}

impl RecordStore {
    pub fn new(root: impl Into<std::path::PathBuf>) -> Self {
        RecordStore { root: root.into() }
    }

    fn network_dir(&self, network: &str, create: bool) -> io::Result<Option<Dir>> {
        let root = if create {
            Dir::create_all(&self.root, 0o700)?
        } else {
            match Dir::open(&self.root) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        match root.subdir(network, create.then_some(0o700)) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write (or replace) a record atomically.
    pub fn write(&self, r: &Record) -> io::Result<()> {
        r.validate().map_err(invalid)?;
        let dir = self
            .network_dir(&r.network, true)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "records folder"))?;
        let bytes = serde_json::to_vec(r).map_err(|e| invalid(e.to_string()))?;
        // Content durability: a record is rebuilt by the next ADD anyway,
        // but must never be torn.
        dir.write_atomic(&r.key().file_name(), &bytes, 0o600, Durability::Content)
    }

    /// Remove a record; `Ok(false)` when it was not there.
    pub fn remove(&self, key: &RecordKey) -> io::Result<bool> {
        key.validate().map_err(invalid)?;
        match self.network_dir(&key.network, false)? {
            Some(dir) => dir.remove(&key.file_name()),
            None => Ok(false),
        }
    }

    /// One record; `None` when absent.
    pub fn read(&self, key: &RecordKey) -> io::Result<Option<Record>> {
        key.validate().map_err(invalid)?;
        let Some(dir) = self.network_dir(&key.network, false)? else {
            return Ok(None);
        };
        match dir.read(&key.file_name())? {
            Some(bytes) => parse(&bytes, Some(key)).map(Some),
            None => Ok(None),
        }
    }

    /// Every record of a network; files that do not parse are skipped and
    /// returned as errors beside the good ones.
    pub fn read_network(&self, network: &str) -> io::Result<(Vec<Record>, Vec<String>)> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let Some(dir) = self.network_dir(network, false)? else {
            return Ok((good, bad));
        };
        for e in dir.entries()?.into_iter().take(MAX_RECORDS_PER_NETWORK) {
            let name = e.name.to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            match dir.read(&name).and_then(|b| match b {
                Some(b) => parse(&b, None).map(Some),
                None => Ok(None),
            }) {
                Ok(Some(r)) if r.network == network => good.push(r),
                Ok(Some(_)) => bad.push(format!("{network}/{name}: names another network")),
                Ok(None) => {}
                Err(err) => bad.push(format!("{network}/{name}: {err}")),
            }
        }
        Ok((good, bad))
    }

    /// When a network's folder last changed (inode, mtime seconds and
    /// nanoseconds): every write and removal renames or unlinks in it, so
    /// an unchanged stamp means unchanged records. `None` without a folder.
    pub fn network_stamp(&self, network: &str) -> io::Result<Option<(u64, i64, i64)>> {
        Ok(self.network_dir(network, false)?.and_then(|d| {
            d.stat()
                .ok()
                .map(|st| (st.st_ino, st.st_mtime, st.st_mtime_nsec))
        }))
    }

    /// The networks that have a folder.
    pub fn networks(&self) -> io::Result<Vec<String>> {
        let root = match Dir::open(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(root
            .entries()?
            .into_iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect())
    }

    /// Every record on the host.
    pub fn read_all(&self) -> io::Result<(Vec<Record>, Vec<String>)> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for n in self.networks()? {
            let (g, b) = self.read_network(&n)?;
            good.extend(g);
            bad.extend(b);
        }
        Ok((good, bad))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn parse(bytes: &[u8], expect: Option<&RecordKey>) -> io::Result<Record> {
    let r: Record = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    r.validate().map_err(invalid)?;
    if let Some(k) = expect {
        if r.key() != *k {
            return Err(invalid("record file names another attachment"));
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> Record {
        Record {
            network: "n1".into(),
            domain: "dns.podman".into(),
            forward: true,
            container_id: id.into(),
            ifname: "eth0".into(),
            netns: "/var/run/netns/x".into(),
            names: vec!["web".into()],
            addresses: vec!["10.0.0.2".parse().unwrap()],
        }
    }

    #[test]
    fn write_read_remove_round_trip_and_refuse_traversal() {
        let dir = std::env::temp_dir().join(format!("cni-dns-rec-{}", std::process::id()));
        let store = RecordStore::new(&dir);
        store.write(&rec("c1")).unwrap();
        store.write(&rec("c2")).unwrap();
        assert_eq!(store.read(&rec("c1").key()).unwrap(), Some(rec("c1")));
        assert_eq!(store.read_all().unwrap().0.len(), 2);
        assert!(store.remove(&rec("c1").key()).unwrap());
        assert!(!store.remove(&rec("c1").key()).unwrap());
        let mut evil = rec("c3");
        evil.network = "..".into();
        assert!(store.write(&evil).is_err());
        let mut evil = rec("c3");
        evil.names = vec!["../../x".into()];
        assert!(store.write(&evil).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
