//! An in-memory [`Store`] so the allocator is tested without files.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use cni_spec::{Error, Result};

use super::{Held, Lease, LeaseOwner, Listing, Owner, Store};

#[derive(Debug, Default)]
pub struct MemoryStore {
    pub leases: BTreeMap<IpAddr, Option<LeaseOwner>>,
    pub last: HashMap<usize, IpAddr>,
    pub read_only: bool,
}

impl MemoryStore {
    pub fn insert_legacy(&mut self, ip: &str, id: &str) {
        let owner = LeaseOwner {
            id: id.into(),
            ifname: None,
        };
        self.leases.insert(ip.parse().unwrap(), Some(owner));
    }
}

impl Store for MemoryStore {
    fn reserve(&mut self, ip: IpAddr, owner: &Owner) -> Result<bool> {
        if self.read_only {
            return Err(Error::io("read-only store"));
        }
        if self.leases.contains_key(&ip) {
            return Ok(false);
        }
        let lo = LeaseOwner {
            id: owner.id.clone(),
            ifname: Some(owner.ifname.clone()),
        };
        self.leases.insert(ip, Some(lo));
        Ok(true)
    }

    fn release(&mut self, ip: IpAddr, owner: &Owner) -> Result<bool> {
        let ours =
            matches!(self.leases.get(&ip), Some(Some(o)) if o.is(owner) || o.is_legacy_of(owner));
        if ours {
            self.leases.remove(&ip);
        }
        Ok(ours)
    }

    fn release_lease(&mut self, lease: &Lease) -> Result<bool> {
        Ok(self.leases.remove(&lease.ip).is_some())
    }

    fn get_by_id(&mut self, owner: &Owner) -> Result<Held> {
        let mut held = Held::default();
        for (ip, o) in &self.leases {
            match o {
                Some(o) if o.is(owner) => held.exact.push(*ip),
                Some(o) if o.is_legacy_of(owner) => held.legacy.push(*ip),
                _ => {}
            }
        }
        Ok(held)
    }

    fn is_reserved(&mut self, ip: IpAddr) -> Result<bool> {
        Ok(self.leases.contains_key(&ip))
    }

    fn last_reserved(&mut self, set: usize) -> Result<Option<IpAddr>> {
        Ok(self.last.get(&set).copied())
    }

    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> Result<()> {
        self.last.insert(set, ip);
        Ok(())
    }

    fn list(&mut self) -> Result<Listing> {
        Ok(Listing {
            leases: self
                .leases
                .iter()
                .map(|(ip, owner)| Lease {
                    ip: *ip,
                    owner: owner.clone(),
                })
                .collect(),
            problems: Vec::new(),
        })
    }

    fn check_writable(&mut self) -> Result<()> {
        if self.read_only {
            return Err(Error::io("read-only store"));
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        Ok(())
    }
}
