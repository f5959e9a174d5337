//! Where reservations live. The allocator only talks to [`Store`], so the
//! file store of one host and a cluster-wide one (etcd, later) are
//! interchangeable. A store value is one locked session: opening it takes
//! the lock, dropping it releases the lock, and [`Store::commit`] makes
//! whatever auxiliary state it keeps consistent before that.

pub mod disk;
pub mod index;
#[cfg(test)]
pub mod memory;

use std::net::IpAddr;

use cni_spec::{Error, Result};

/// The attachment an address is reserved for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    pub id: String,
    pub ifname: String,
}

/// Who a stored reservation names. Files written by host-local before
/// interface names were recorded hold only the container ID (`ifname`
/// `None`); they still belong to that container.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseOwner {
    pub id: String,
    pub ifname: Option<String>,
}

impl LeaseOwner {
    /// The reference's file content: `<id>\r\n<ifname>`, or `<id>` alone
    /// in legacy files; surrounding whitespace is ignored, as it does.
    pub fn parse(bytes: &[u8]) -> Option<LeaseOwner> {
        let text = std::str::from_utf8(bytes).ok()?.trim();
        if text.is_empty() {
            return None;
        }
        Some(match text.split_once("\r\n") {
            Some((id, ifname)) => LeaseOwner {
                id: id.trim().to_string(),
                ifname: Some(ifname.to_string()),
            },
            None => LeaseOwner {
                id: text.to_string(),
                ifname: None,
            },
        })
    }

    pub fn is(&self, owner: &Owner) -> bool {
        self.id == owner.id && self.ifname.as_deref() == Some(owner.ifname.as_str())
    }

    pub fn is_legacy_of(&self, owner: &Owner) -> bool {
        self.id == owner.id && self.ifname.is_none()
    }
}

impl Owner {
    /// What the reference writes into a reservation file.
    pub fn file_content(&self) -> String {
        format!("{}\r\n{}", self.id.trim(), self.ifname)
    }
}

/// One stored reservation. `owner` is `None` when the record names nobody
/// we can parse (an empty file left by a crash, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: IpAddr,
    pub owner: Option<LeaseOwner>,
}

/// Addresses an attachment holds: under its exact (id, ifname), and under
/// its container ID alone (legacy records).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub exact: Vec<IpAddr>,
    pub legacy: Vec<IpAddr>,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.legacy.is_empty()
    }

    pub fn all(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.exact.iter().chain(&self.legacy).copied()
    }
}

/// Everything in the store, with the entries that could not be read.
#[derive(Debug, Default)]
pub struct Listing {
    pub leases: Vec<Lease>,
    pub problems: Vec<Error>,
}

/// Reservation storage for one network. Every method runs under the
/// session's lock.
pub trait Store {
    /// Reserve `ip` for `owner`; `Ok(false)` when it is already taken.
    fn reserve(&mut self, ip: IpAddr, owner: &Owner) -> Result<bool>;
    /// Remove one reservation, only if it still names `owner` (exact or
    /// legacy). `Ok(false)` when it did not.
    fn release(&mut self, ip: IpAddr, owner: &Owner) -> Result<bool>;
    /// Remove a listed reservation whatever it names (GC).
    fn release_lease(&mut self, lease: &Lease) -> Result<bool>;
    /// What `owner` holds.
    fn get_by_id(&mut self, owner: &Owner) -> Result<Held>;
    /// Release what `owner` holds under its exact key; only if there is
    /// nothing, what its container ID holds in legacy records (the
    /// reference's order). Returns the released addresses.
    fn release_by_id(&mut self, owner: &Owner) -> Result<Vec<IpAddr>> {
        let held = self.get_by_id(owner)?;
        let targets = if held.exact.is_empty() {
            held.legacy
        } else {
            held.exact
        };
        let mut released = Vec::new();
        for ip in targets {
            if self.release(ip, owner)? {
                released.push(ip);
            }
        }
        Ok(released)
    }
    /// Whether `ip` is reserved by anybody.
    fn is_reserved(&mut self, ip: IpAddr) -> Result<bool>;
    /// Where the round-robin walk of range set `set` continues from.
    fn last_reserved(&mut self, set: usize) -> Result<Option<IpAddr>>;
    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<()>;
    /// Every reservation (GC).
    fn list(&mut self) -> Result<Listing>;
    /// Fails (with the reason) when the store cannot take reservations.
    fn check_writable(&mut self) -> Result<()>;
    /// Bring auxiliary state (indexes) in line; call at the end of every
    /// operation that changed something, success or not.
    fn commit(&mut self) -> Result<()>;
}
