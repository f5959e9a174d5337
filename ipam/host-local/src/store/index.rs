//! The owner index that keeps ADD and DEL from reading every lease file.
//!
//! The reference finds an attachment's addresses by opening every file of
//! the network (cost grows with the number of leases). We keep, beside the
//! compatible files, one small "bucket" file per container ID hash listing
//! that container's addresses, so a lookup opens one file.
//!
//! Location: `<dataDir>/.host-local-index/<network>/`. Not inside
//! `<dataDir>/<network>/`: the reference walks that directory recursively
//! and compares every file's content with the container ID it is
//! releasing, so anything we put there costs it time and risks being
//! mistaken for a lease. The name starts with a dot and so can never be a
//! network name (those start with a letter or digit).
//!
//! Index files are rewritten in place (no fsync, no rename): they are a
//! cache. The stamp includes the kernel's boot ID, so after a power loss
//! (where unsynced writes may be lost or reordered) the first run rebuilds
//! the index from the lease files; a process killed halfway leaves a stamp
//! that no longer matches, or a bucket that does not parse, and either
//! means a rebuild.
//!
//! Buckets: 256 fixed files chosen by a hash of the container ID, so an
//! ADD never creates a file in the index once the buckets exist.
//!
//! Freshness: after every change we record a stamp of the network
//! directory (inode, mtime, ctime, size, link count). Any file created or
//! removed there (by us, by the reference, by an administrator) changes
//! its mtime and ctime, so a stamp that no longer matches means the index
//! may be stale and is rebuilt from the lease files under the lock. Since
//! Linux 6.13 (multigrain timestamps) a change right after our `fstat` is
//! guaranteed a new timestamp; on older kernels a change by another
//! program within the same clock tick could go unseen, which is why every
//! address the index names is checked against its lease file before it is
//! used or released (a mismatch forces a rebuild).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;

use cni_state::Dir;
use nix::sys::stat::FileStat;
use serde::{Deserialize, Serialize};

use super::Lease;

/// Directory below `dataDir` that holds the indexes of all networks.
pub const INDEX_DIR: &str = ".host-local-index";
const STAMP: &str = "stamp";
const BUCKET_PREFIX: &str = "b-";
const STAMP_VERSION: &str = "host-local-index-v1";
/// Lease files a DEL parks for the next ADD to reuse (see [`Index::pool`]).
const POOL: &str = "free";

/// One indexed reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub ip: IpAddr,
    pub id: String,
    /// `None` for legacy records holding only the container ID.
    #[serde(default)]
    pub ifname: Option<String>,
}

/// What identifies one state of the network directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(String);

impl Stamp {
    pub fn of(st: &FileStat) -> Stamp {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        Stamp(format!(
            "{STAMP_VERSION} {} {} {} {}.{} {}.{} {} {}",
            boot.trim(),
            st.st_dev,
            st.st_ino,
            st.st_mtime,
            st.st_mtime_nsec,
            st.st_ctime,
            st.st_ctime_nsec,
            st.st_size,
            st.st_nlink
        ))
    }
}

/// A stable bucket name for a container ID (FNV-1a: it must not change
/// between builds, unlike std's hasher). IDs sharing a bucket are told
/// apart by the entries themselves.
pub fn bucket_name(id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{BUCKET_PREFIX}{:02x}", h & 0xff)
}

/// The content of a bucket file. A torn one fails to parse, and the
/// caller then rebuilds the index from the lease files.
pub fn parse_bucket(bytes: &[u8]) -> serde_json::Result<Vec<Entry>> {
    serde_json::from_slice(bytes)
}

/// The index of one network. `dir` is `None` when the index directory is
/// unusable (read-only, say): the index then lives in memory only, built
/// from a scan each time, which is exactly the reference's cost.
#[derive(Debug)]
pub struct Index {
    dir: Option<Dir>,
    buckets: HashMap<String, Vec<Entry>>,
    dirty: HashSet<String>,
    /// After a rebuild: every bucket is in memory, and files of buckets
    /// that no longer exist must go.
    rebuilt: bool,
}

impl Index {
    /// Open (creating) `<data>/.host-local-index/<network>`.
    pub fn open(data: &Dir, network: &str) -> Index {
        let dir = data
            .subdir(INDEX_DIR, Some(0o700))
            .and_then(|d| d.subdir(network, Some(0o700)))
            .ok();
        Index {
            dir,
            buckets: HashMap::new(),
            dirty: HashSet::new(),
            rebuilt: false,
        }
    }

    /// The network's pool of parked lease files (`free/` in its index
    /// directory, out of the reference's sight), created if missing;
    /// `None` where the index directory is unusable.
    pub fn pool(&self) -> Option<Dir> {
        self.dir.as_ref()?.subdir(POOL, Some(0o700)).ok()
    }

    /// Whether the recorded stamp equals `stamp`.
    pub fn is_current(&self, stamp: &Stamp) -> bool {
        let Some(dir) = &self.dir else {
            return false;
        };
        matches!(dir.read(STAMP), Ok(Some(b)) if b == stamp.0.as_bytes())
    }

    /// Replace the whole index with `leases` (written on [`Index::save`]).
    pub fn rebuild(&mut self, leases: &[Lease]) {
        self.buckets.clear();
        for lease in leases {
            if let Some(o) = &lease.owner {
                self.buckets
                    .entry(bucket_name(&o.id))
                    .or_default()
                    .push(Entry {
                        ip: lease.ip,
                        id: o.id.clone(),
                        ifname: o.ifname.clone(),
                    });
            }
        }
        self.dirty = self.buckets.keys().cloned().collect();
        self.rebuilt = true;
    }

    pub fn needs_save(&self) -> bool {
        self.rebuilt || !self.dirty.is_empty()
    }

    fn bucket(&mut self, id: &str) -> io::Result<&mut Vec<Entry>> {
        let name = bucket_name(id);
        if !self.buckets.contains_key(&name) {
            let entries = match (&self.dir, self.rebuilt) {
                (Some(dir), false) => match dir.read(&name)? {
                    Some(bytes) => parse_bucket(&bytes).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("index {name}: {e}"))
                    })?,
                    None => Vec::new(),
                },
                _ => Vec::new(),
            };
            self.buckets.insert(name.clone(), entries);
        }
        Ok(self.buckets.entry(name).or_default())
    }

    /// The entries of container `id` (all interfaces, legacy included).
    pub fn entries_of(&mut self, id: &str) -> io::Result<Vec<Entry>> {
        Ok(self
            .bucket(id)?
            .iter()
            .filter(|e| e.id == id)
            .cloned()
            .collect())
    }

    pub fn add(&mut self, entry: Entry) -> io::Result<()> {
        let name = bucket_name(&entry.id);
        let b = self.bucket(&entry.id)?;
        b.retain(|e| e.ip != entry.ip);
        b.push(entry);
        self.dirty.insert(name);
        Ok(())
    }

    pub fn remove(&mut self, ip: IpAddr, id: &str) -> io::Result<()> {
        let name = bucket_name(id);
        let b = self.bucket(id)?;
        let before = b.len();
        b.retain(|e| e.ip != ip);
        if b.len() != before {
            self.dirty.insert(name);
        }
        Ok(())
    }

    /// Write changed buckets, then the stamp that vouches for them. The
    /// stamp goes last: a crash before it leaves the old stamp, which no
    /// longer matches the directory, so the next run rebuilds.
    pub fn save(&mut self, stamp: &Stamp) -> io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        if self.rebuilt {
            // Drop the stamp first so a crash halfway never vouches for a
            // half-written index, then every old bucket.
            dir.remove(STAMP)?;
            for e in dir.entries()? {
                let Some(name) = e.name.to_str() else {
                    continue;
                };
                if (name.starts_with(BUCKET_PREFIX) && !self.buckets.contains_key(name))
                    || name.starts_with(cni_state::TEMP_PREFIX)
                {
                    dir.remove(name)?;
                }
            }
        }
        for name in self.dirty.drain() {
            match self.buckets.get(&name) {
                Some(b) => {
                    let bytes = serde_json::to_vec(b).map_err(io::Error::other)?;
                    dir.write_in_place(&name, &bytes, 0o600)?;
                }
                None => {
                    dir.remove(&name)?;
                }
            }
        }
        cni_plugin::fault::point("host-local.index.before-stamp");
        dir.write_in_place(STAMP, stamp.0.as_bytes(), 0o600)?;
        self.rebuilt = false;
        Ok(())
    }

    /// Make the next run rebuild (used when we changed the network
    /// directory without having validated the index first).
    pub fn invalidate(&self) -> io::Result<()> {
        if let Some(dir) = &self.dir {
            dir.remove(STAMP)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_are_stable() {
        // Fixed values: a change would orphan every index on disk.
        assert_eq!(bucket_name(""), "b-25");
        assert_eq!(bucket_name("a"), "b-8c");
    }
}
