//! The file store, on-disk compatible with the reference host-local:
//!
//! ```text
//! <dataDir>/<network>/lock                 flock'ed for the whole operation
//! <dataDir>/<network>/<ip>                 "<containerID>\r\n<ifname>" (legacy: "<containerID>")
//! <dataDir>/<network>/last_reserved_ip.<n> the round-robin position of range set n
//! ```
//!
//! A user who swaps binaries keeps every lease, and either binary can run
//! beside the other: both lock the same file, and both create lease files
//! exclusively. Ours appear with their full content at once (written to a
//! temp file, then renamed into place without replacing), so a killed
//! process never leaves an empty or half-written lease.
//!
//! Lease files are not fsynced: an fsync costs about a millisecond here
//! (more than the rest of an ADD), and buys nothing, because the only
//! event that loses unsynced data, a power loss or kernel crash, also kills
//! every container whose lease it would protect. What a power loss can
//! leave (an empty lease file) names nobody, and GC releases it. Everything is opened relative to the
//! network directory without following symlinks, and file names come only
//! from parsed addresses, never from request text.

use std::io;
use std::net::IpAddr;
use std::path::Path;

use cni_spec::{Error, Result};
use cni_state::{Dir, Durability, FileLock, TEMP_PREFIX};

use super::index::{Entry, Index, Stamp};
use super::{Held, Lease, LeaseOwner, Listing, Owner, Store};
use crate::range::canonical;

pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
const LOCK: &str = "lock";
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// How many released lease files are kept for reuse: a new inode costs
/// more than the rest of an ADD on some filesystems (see
/// `Dir::create_exclusive_reusing`); a burst of DELs beyond this unlinks.
const POOL_CAP: usize = 64;

/// The file name of a lease: the address as Go's `net.IP.String()` prints
/// it (IPv4 dotted, IPv6 in RFC 5952 form, which Rust's `Display` shares).
pub fn lease_name(ip: IpAddr) -> String {
    canonical(ip).to_string()
}

/// The address a directory entry names, if it is a lease we could have
/// written (the exact canonical spelling).
fn lease_ip(name: &str) -> Option<IpAddr> {
    let ip: IpAddr = name.parse().ok()?;
    (lease_name(ip) == name).then_some(ip)
}

/// The content of a `last_reserved_ip.<n>` file; anything unreadable
/// (torn, empty, foreign) is `None`: round robin starts over.
pub fn parse_last_reserved(bytes: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse::<IpAddr>().ok())
        .map(canonical)
}

/// One locked session on one network's store.
#[derive(Debug)]
pub struct DiskStore {
    dir: Dir,
    index: Index,
    /// Parked lease files (opened on first use; None inside: unusable).
    pool: Option<Option<Dir>>,
    /// The index was found current or rebuilt in this session.
    index_ready: bool,
    /// We changed the network directory in this session.
    modified: bool,
    network: String,
    _lock: FileLock,
}

fn io_err(what: impl std::fmt::Display, e: io::Error) -> Error {
    Error::from_io(what, e)
}

impl DiskStore {
    /// Open `<data_dir>/<network>` (creating it) and take its lock.
    pub fn open(data_dir: &Path, network: &str) -> Result<DiskStore> {
        // Defence in depth: skel validated the name, but it becomes a path.
        cni_spec::validate::network_name(network)?;
        let data = Dir::create_all(data_dir, 0o755).map_err(|e| {
            io_err(
                format_args!("failed to open dataDir {}", data_dir.display()),
                e,
            )
        })?;
        let dir = data.subdir(network, Some(0o755)).map_err(|e| {
            io_err(
                format_args!(
                    "failed to open {}/{network} (a symlink there is refused)",
                    data_dir.display()
                ),
                e,
            )
        })?;
        let lock = dir.lock(LOCK).map_err(|e| {
            io_err(
                format_args!("failed to lock {}/{network}/{LOCK}", data_dir.display()),
                e,
            )
        })?;
        let index = Index::open(&data, network);
        Ok(DiskStore {
            dir,
            index,
            pool: None,
            index_ready: false,
            modified: false,
            network: network.to_string(),
            _lock: lock,
        })
    }

    fn stamp(&self) -> Result<Stamp> {
        let st = self
            .dir
            .stat()
            .map_err(|e| io_err(format_args!("failed to stat network {}", self.network), e))?;
        Ok(Stamp::of(&st))
    }

    /// Make the index trustworthy: keep it if its stamp matches the
    /// directory, otherwise rebuild it from the lease files.
    fn ensure_index(&mut self) -> Result<()> {
        if self.index_ready {
            return Ok(());
        }
        let stamp = self.stamp()?;
        if !self.index.is_current(&stamp) {
            self.rebuild_index()?;
        }
        self.index_ready = true;
        Ok(())
    }

    fn rebuild_index(&mut self) -> Result<()> {
        cni_plugin::log::debug(&format!("rebuilding the lease index of {}", self.network));
        let listing = self.list()?;
        self.index.rebuild(&listing.leases);
        self.index_ready = true;
        Ok(())
    }

    fn read_owner(&self, ip: IpAddr) -> Result<Option<Option<LeaseOwner>>> {
        let name = lease_name(ip);
        match self.dir.read(&name) {
            Ok(Some(bytes)) => Ok(Some(LeaseOwner::parse(&bytes))),
            Ok(None) => Ok(None),
            Err(e) => Err(io_err(format_args!("failed to read lease {name}"), e)),
        }
    }

    /// The network directory and the pool of parked lease files.
    fn dir_and_pool(&mut self) -> (&Dir, Option<&Dir>) {
        let index = &self.index;
        let pool = self.pool.get_or_insert_with(|| index.pool()).as_ref();
        (&self.dir, pool)
    }

    fn remove_lease(&mut self, ip: IpAddr) -> Result<bool> {
        let name = lease_name(ip);
        let removed = match self.dir_and_pool() {
            (dir, Some(pool)) => dir.park_or_remove(&name, pool, POOL_CAP),
            (dir, None) => dir.remove(&name),
        }
        .map_err(|e| io_err(format_args!("failed to remove lease {name}"), e))?;
        self.modified |= removed;
        Ok(removed)
    }

    fn held_from_index(&mut self, owner: &Owner) -> Result<(Held, bool)> {
        let entries = match self.index.entries_of(&owner.id) {
            Ok(e) => e,
            // A bucket that does not parse (a writer killed halfway): stale.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok((Held::default(), true)),
            Err(e) => return Err(io_err("failed to read the lease index", e)),
        };
        let mut held = Held::default();
        let mut stale = false;
        for e in entries {
            let file_owner = self.read_owner(e.ip)?;
            let indexed = LeaseOwner {
                id: e.id.clone(),
                ifname: e.ifname.clone(),
            };
            if file_owner != Some(Some(indexed.clone())) {
                stale = true;
                continue;
            }
            if indexed.is(owner) {
                held.exact.push(e.ip);
            } else if indexed.is_legacy_of(owner) {
                held.legacy.push(e.ip);
            }
        }
        Ok((held, stale))
    }
}

impl Store for DiskStore {
    fn reserve(&mut self, ip: IpAddr, owner: &Owner) -> Result<bool> {
        self.ensure_index()?;
        let name = lease_name(ip);
        // A cheap look first: walking past taken addresses then costs one
        // fstatat each, not a file creation. The exclusive create below
        // still decides.
        if self.is_reserved(ip)? {
            return Ok(false);
        }
        let content = owner.file_content();
        let created = match self.dir_and_pool() {
            (dir, Some(pool)) => {
                dir.create_exclusive_reusing(pool, &name, content.as_bytes(), 0o600)
            }
            (dir, None) => dir.create_exclusive(&name, content.as_bytes(), 0o600, Durability::None),
        }
        .map_err(|e| io_err(format_args!("failed to reserve {name}"), e))?;
        if created {
            cni_plugin::fault::point("host-local.add.after-reserve");
            self.modified = true;
            self.index
                .add(Entry {
                    ip,
                    id: owner.id.clone(),
                    ifname: Some(owner.ifname.clone()),
                })
                .map_err(|e| io_err("failed to update the lease index", e))?;
        }
        Ok(created)
    }

    fn release(&mut self, ip: IpAddr, owner: &Owner) -> Result<bool> {
        self.ensure_index()?;
        match self.read_owner(ip)? {
            Some(Some(o)) if o.is(owner) || o.is_legacy_of(owner) => {}
            _ => return Ok(false),
        }
        let removed = self.remove_lease(ip)?;
        cni_plugin::fault::point("host-local.del.after-release");
        self.index
            .remove(ip, &owner.id)
            .map_err(|e| io_err("failed to update the lease index", e))?;
        Ok(removed)
    }

    fn release_lease(&mut self, lease: &Lease) -> Result<bool> {
        self.ensure_index()?;
        // Under the lock the file cannot have changed since it was listed;
        // the check guards against a caller holding an old listing.
        match self.read_owner(lease.ip)? {
            Some(o) if o == lease.owner => {}
            _ => return Ok(false),
        }
        let removed = self.remove_lease(lease.ip)?;
        if let Some(o) = &lease.owner {
            self.index
                .remove(lease.ip, &o.id)
                .map_err(|e| io_err("failed to update the lease index", e))?;
        }
        Ok(removed)
    }

    fn get_by_id(&mut self, owner: &Owner) -> Result<Held> {
        self.ensure_index()?;
        let (held, stale) = self.held_from_index(owner)?;
        if !stale {
            return Ok(held);
        }
        // The index named a file that says otherwise: somebody changed the
        // store without our noticing. Trust the files.
        self.rebuild_index()?;
        Ok(self.held_from_index(owner)?.0)
    }

    fn is_reserved(&mut self, ip: IpAddr) -> Result<bool> {
        let name = lease_name(ip);
        self.dir
            .stat_at(&name)
            .map(|s| s.is_some())
            .map_err(|e| io_err(format_args!("failed to look up {name}"), e))
    }

    fn last_reserved(&mut self, set: usize) -> Result<Option<IpAddr>> {
        // Only a hint for round robin: an unreadable file means "start over".
        let name = format!("{LAST_RESERVED_PREFIX}{set}");
        Ok(match self.dir.read(&name) {
            Ok(Some(bytes)) => parse_last_reserved(&bytes),
            _ => None,
        })
    }

    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<()> {
        let name = format!("{LAST_RESERVED_PREFIX}{set}");
        let text = lease_name(ip);
        self.modified = true;
        // In place, as the reference does: a hint read under the lock. If
        // something else sits there (a planted symlink, a directory), we
        // replace the entry, never follow it; and a hint that cannot be
        // written only costs round robin, not the ADD.
        let res = self
            .dir
            .write_in_place(&name, text.as_bytes(), 0o600)
            .or_else(|_| {
                self.dir.remove(&name)?;
                self.dir.write_in_place(&name, text.as_bytes(), 0o600)
            });
        if let Err(e) = res {
            cni_plugin::log::error(&format!("failed to write {name}: {e}"));
        }
        Ok(())
    }

    fn list(&mut self) -> Result<Listing> {
        let entries = self
            .dir
            .entries()
            .map_err(|e| io_err(format_args!("failed to list network {}", self.network), e))?;
        let mut listing = Listing::default();
        for e in entries {
            let Some(name) = e.name.to_str() else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                // A temp file of a writer that died: we hold the lock, so
                // no live writer owns it.
                if self.dir.remove(name).unwrap_or(false) {
                    self.modified = true;
                }
                continue;
            }
            let Some(ip) = lease_ip(name) else {
                // lock, last_reserved_ip.*, and anything foreign.
                continue;
            };
            match self.dir.read(name) {
                Ok(Some(bytes)) => listing.leases.push(Lease {
                    ip,
                    owner: LeaseOwner::parse(&bytes),
                }),
                Ok(None) => {}
                Err(err) => listing.problems.push(io_err(
                    format_args!(
                        "skipped {}/{name} (not a regular lease file; symlinks are not followed)",
                        self.network
                    ),
                    err,
                )),
            }
        }
        Ok(listing)
    }

    fn check_writable(&mut self) -> Result<()> {
        self.dir.check_writable().map_err(|e| {
            Error::io(format!(
                "the store of network {} is not writable: {e}",
                self.network
            ))
        })
    }

    fn commit(&mut self) -> Result<()> {
        if !(self.modified || self.index.needs_save()) {
            return Ok(());
        }
        let res = if self.index_ready {
            let stamp = self.stamp()?;
            self.index.save(&stamp)
        } else {
            self.index.invalidate()
        };
        res.map_err(|e| io_err("failed to write the lease index", e))?;
        self.modified = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let p = std::env::temp_dir().join(format!(
                "hl-disk-{tag}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Tmp(p)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn owner(id: &str) -> Owner {
        Owner {
            id: id.into(),
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn lease_names_match_go_net_ip_string() {
        // Expected values are what Go's net.IP.String() prints.
        for (input, go) in [
            ("10.0.0.5", "10.0.0.5"),
            ("::ffff:10.0.0.5", "10.0.0.5"),
            ("fd00:0:0:0:0:0:0:1", "fd00::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("::1.2.3.4", "::102:304"),
            ("FD00::ABCD", "fd00::abcd"),
        ] {
            assert_eq!(lease_name(ip(input)), go, "{input}");
        }
        assert_eq!(lease_ip("fd00::1"), Some(ip("fd00::1")));
        assert_eq!(lease_ip("fd00:0::1"), None);
        assert_eq!(lease_ip("lock"), None);
    }

    #[test]
    fn reference_format_and_index_round_trip() {
        let t = Tmp::new("rt");
        let mut s = DiskStore::open(&t.0, "net1").unwrap();
        assert!(s.reserve(ip("10.0.0.2"), &owner("c1")).unwrap());
        assert!(!s.reserve(ip("10.0.0.2"), &owner("c2")).unwrap());
        s.set_last_reserved(0, ip("10.0.0.2")).unwrap();
        s.commit().unwrap();
        drop(s);
        let net = t.0.join("net1");
        assert_eq!(std::fs::read(net.join("10.0.0.2")).unwrap(), b"c1\r\neth0");
        assert_eq!(
            std::fs::read(net.join("last_reserved_ip.0")).unwrap(),
            b"10.0.0.2"
        );
        assert!(net.join("lock").exists());

        // A file the reference wrote meanwhile is seen (stamp mismatch).
        std::fs::write(net.join("10.0.0.3"), "c1\r\neth0").unwrap();
        std::fs::write(net.join("10.0.0.4"), "c1").unwrap();
        let mut s = DiskStore::open(&t.0, "net1").unwrap();
        let held = s.get_by_id(&owner("c1")).unwrap();
        let mut exact = held.exact.clone();
        exact.sort();
        assert_eq!(exact, [ip("10.0.0.2"), ip("10.0.0.3")]);
        assert_eq!(held.legacy, [ip("10.0.0.4")]);
        assert_eq!(s.release_by_id(&owner("c1")).unwrap().len(), 2);
        s.commit().unwrap();
        drop(s);
        let mut s = DiskStore::open(&t.0, "net1").unwrap();
        assert_eq!(s.release_by_id(&owner("c1")).unwrap(), [ip("10.0.0.4")]);
        s.commit().unwrap();
    }

    #[test]
    fn a_stale_index_is_caught_by_the_lease_file() {
        let t = Tmp::new("stale");
        let mut s = DiskStore::open(&t.0, "n").unwrap();
        assert!(s.reserve(ip("10.0.0.2"), &owner("c1")).unwrap());
        s.commit().unwrap();
        drop(s);
        // Rewrite the file in place (the directory's mtime does not
        // change): the index still says c1, the file says c2.
        std::fs::write(t.0.join("n/10.0.0.2"), "c2\r\neth0").unwrap();
        let mut s = DiskStore::open(&t.0, "n").unwrap();
        assert!(s.get_by_id(&owner("c1")).unwrap().is_empty());
        assert!(s.release_by_id(&owner("c1")).unwrap().is_empty());
        assert_eq!(s.get_by_id(&owner("c2")).unwrap().exact, [ip("10.0.0.2")]);
        s.commit().unwrap();
    }

    #[test]
    fn planted_symlinks_are_not_followed() {
        let t = Tmp::new("sym");
        let victim = Tmp::new("victim");
        std::fs::write(victim.0.join("passwd"), "root").unwrap();
        std::fs::create_dir_all(t.0.join("n")).unwrap();
        std::os::unix::fs::symlink(victim.0.join("passwd"), t.0.join("n/10.0.0.2")).unwrap();
        let mut s = DiskStore::open(&t.0, "n").unwrap();
        assert!(!s.reserve(ip("10.0.0.2"), &owner("c1")).unwrap());
        let listing = s.list().unwrap();
        assert!(listing.leases.is_empty());
        assert_eq!(listing.problems.len(), 1);
        s.commit().unwrap();
        drop(s);
        assert_eq!(std::fs::read(victim.0.join("passwd")).unwrap(), b"root");
        // The network directory itself as a symlink is refused.
        std::os::unix::fs::symlink(&victim.0, t.0.join("evil")).unwrap();
        assert_eq!(DiskStore::open(&t.0, "evil").unwrap_err().code, 5);
        assert_eq!(DiskStore::open(&t.0, "../x").unwrap_err().code, 7);
    }
}
