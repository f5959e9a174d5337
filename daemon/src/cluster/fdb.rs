//! Programming a network's VXLAN device from the store: one flooding
//! entry per other host carrying the network (head-end replication of
//! broadcast and unknown unicast), one static entry per remote endpoint
//! (its MAC tunnelled to its host) and one neighbour entry per remote
//! endpoint (its IP -> MAC, which the device's ARP proxy answers from, so
//! ARP is never flooded): Docker's and flannel's model, no reliance on
//! learning. Entries the store no longer names are removed.
//!
//! Two ways: [`apply`] makes the changes a few store events call for
//! (what the watch does), [`sync`] dumps the device and brings it to the
//! whole wanted set (at start, after a watch restart, periodically).

use std::collections::BTreeSet;

use cni_net::netlink::{self, Mac, NeighFamily, NeighMode, Neighbour, Netlink};
use cni_spec::Result;

use super::entries::{Change, Entry, Wanted};

const FLOOD: Mac = [0; 6];

pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// Make `changes` on `vxlan`, in order: an entry already there (or
/// already gone) is fine. A missing device is nothing to do (its last
/// container went; the next one's publish syncs it in full).
pub fn apply(nl: &mut Netlink, vxlan: &str, changes: &[Change]) -> Result<()> {
    let Some(dev) = nl.link_by_name_opt(vxlan)? else {
        return Ok(());
    };
    let i = dev.index;
    for c in changes {
        let r = match *c {
            Change::Add(Entry::Flood(r)) => {
                nl.add_neigh(&Neighbour::vxlan_fdb(i, FLOOD, r), NeighMode::Append)
            }
            Change::Add(Entry::Static(mac, r)) => {
                nl.add_neigh(&Neighbour::vxlan_fdb(i, mac, r), NeighMode::Replace)
            }
            Change::Add(Entry::Neigh(ip, mac)) => {
                nl.add_neigh(&Neighbour::static_entry(i, ip, mac), NeighMode::Replace)
            }
            Change::Del(Entry::Flood(r)) => nl.del_neigh(&Neighbour::vxlan_fdb(i, FLOOD, r)),
            Change::Del(Entry::Static(mac, r)) => nl.del_neigh(&Neighbour::vxlan_fdb(i, mac, r)),
            Change::Del(Entry::Neigh(ip, mac)) => {
                nl.del_neigh(&Neighbour::static_entry(i, ip, mac))
            }
        };
        match r {
            Err(e) if !netlink::is_exists(&e) && !netlink::is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Bring `vxlan`'s remote entries to exactly `want`. A missing device is
/// nothing to do (no container of the network here yet).
pub fn sync(nl: &mut Netlink, vxlan: &str, want: &Wanted) -> Result<()> {
    let (floods, statics, neighbours) = (&want.floods, &want.statics, &want.neighbours);
    let Some(dev) = nl.link_by_name_opt(vxlan)? else {
        return Ok(());
    };
    let entries = nl.neighbours(NeighFamily::Bridge, Some(dev.index))?;
    let mut have_flood = BTreeSet::new();
    let mut have_static = BTreeSet::new();
    for e in &entries {
        let (Some(remote), Some(mac)) = (e.ip, e.mac) else {
            continue;
        };
        let wanted = if mac == FLOOD {
            floods.contains(&remote)
        } else {
            statics.contains(&(mac, remote))
        };
        if wanted {
            if mac == FLOOD {
                have_flood.insert(remote);
            } else {
                have_static.insert((mac, remote));
            }
            continue;
        }
        match nl.del_neigh(&Neighbour::vxlan_fdb(dev.index, mac, remote)) {
            Err(err) if !netlink::is_not_found(&err) => return Err(err),
            _ => {}
        }
    }
    for r in floods.difference(&have_flood) {
        match nl.add_neigh(
            &Neighbour::vxlan_fdb(dev.index, FLOOD, *r),
            NeighMode::Append,
        ) {
            Err(e) if !netlink::is_exists(&e) => return Err(e),
            _ => {}
        }
    }
    for (mac, r) in statics.difference(&have_static) {
        nl.add_neigh(
            &Neighbour::vxlan_fdb(dev.index, *mac, *r),
            NeighMode::Replace,
        )?;
    }
    let mut have_neigh = BTreeSet::new();
    for fam in [NeighFamily::Inet, NeighFamily::Inet6] {
        for e in nl.neighbours(fam, Some(dev.index))? {
            let (Some(ip), Some(mac)) = (e.ip, e.mac) else {
                continue;
            };
            if neighbours.contains(&(ip, mac)) {
                have_neigh.insert((ip, mac));
            } else if e.permanent {
                match nl.del_neigh(&Neighbour::static_entry(dev.index, ip, mac)) {
                    Err(err) if !netlink::is_not_found(&err) => return Err(err),
                    _ => {}
                }
            }
        }
    }
    for (ip, mac) in neighbours.difference(&have_neigh) {
        nl.add_neigh(
            &Neighbour::static_entry(dev.index, *ip, *mac),
            NeighMode::Replace,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(parse_mac("02:42:0a:00:00:01"), Some([2, 0x42, 10, 0, 0, 1]));
        assert_eq!(parse_mac("02:42:0a:00:00"), None);
        assert_eq!(parse_mac("02:42:0a:00:00:01:07"), None);
        assert_eq!(parse_mac("zz:42:0a:00:00:01"), None);
    }
}
