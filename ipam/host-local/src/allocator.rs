//! Allocation policy, independent of where reservations are stored: one
//! address per range set, requested addresses first, otherwise round robin
//! from the last reserved one; all or nothing.

use std::collections::HashSet;
use std::net::IpAddr;

use cni_plugin::rollback::Guarded;
use cni_spec::error::{code, ErrorList};
use cni_spec::{Attachment, CniResult, IpConfig};
use cni_spec::{Error, Result};
use ipnetwork::IpNetwork;

use crate::config::LabeledSet;
use crate::range::{canonical, Range};
use crate::store::{Owner, Store};

/// No free address, or a requested one is taken: plugin-specific code.
pub const ADDRESS_UNAVAILABLE: u32 = code::PLUGIN_BASE;
/// CHECK found the reservations differ from what the runtime expects.
pub const CHECK_MISMATCH: u32 = code::PLUGIN_BASE + 1;

fn unavailable(msg: String) -> Error {
    Error::new(ADDRESS_UNAVAILABLE, msg)
}

fn ip_config(ip: IpAddr, range: &Range) -> IpConfig {
    IpConfig {
        interface: None,
        // The prefix comes from a valid subnet of the same family.
        address: IpNetwork::new(ip, range.subnet.prefix()).unwrap_or_else(|_| IpNetwork::from(ip)),
        gateway: Some(range.gateway),
    }
}

/// Give `owner` one address from every range set.
///
/// An attachment that already holds an address in a set gets that same
/// address back rather than a second one: a runtime that retries ADD
/// after a crash or timeout (without DEL) then converges instead of
/// failing with the reference's "duplicate allocation" (plugins PR #328,
/// podman #18753), and a repeated ADD never leaks. A requested address
/// that differs from the held one is refused: honouring it would need a
/// DEL first.
pub fn allocate(
    store: &mut dyn Store,
    sets: &[LabeledSet],
    owner: &Owner,
    requested: &[IpAddr],
) -> Result<Vec<IpConfig>> {
    // All or nothing: unless every set got its address, give back what
    // this call took, keep what the attachment held before.
    let mut taken = Guarded::new((store, Vec::new()), |(store, new)| {
        for ip in new.drain(..) {
            if let Err(e) = store.release(ip, owner) {
                cni_plugin::log::error(&format!("rollback: failed to release {ip}: {e}"));
            }
        }
    });
    let (store, new) = &mut *taken;
    let ips = allocate_inner(&mut **store, sets, owner, requested, new)?;
    taken.commit();
    Ok(ips)
}

fn allocate_inner(
    store: &mut dyn Store,
    sets: &[LabeledSet],
    owner: &Owner,
    requested: &[IpAddr],
    new: &mut Vec<IpAddr>,
) -> Result<Vec<IpConfig>> {
    let held = store.get_by_id(owner)?;
    let mut remaining: Vec<IpAddr> = requested.iter().map(|ip| canonical(*ip)).collect();
    let mut out = Vec::with_capacity(sets.len());

    for (idx, LabeledSet { label, set }) in sets.iter().enumerate() {
        let wanted = remaining
            .iter()
            .position(|ip| set.contains(*ip))
            .map(|i| remaining.remove(i));

        if let Some(ip) = held.exact.iter().copied().find(|ip| set.contains(*ip)) {
            if let Some(w) = wanted.filter(|w| *w != ip) {
                return Err(unavailable(format!(
                    "container {} ifname {} already holds {ip} in range set {label}; \
                     requested {w} needs a DEL first",
                    owner.id, owner.ifname
                )));
            }
            let range = set
                .range_for(ip)
                .ok_or_else(|| Error::internal("held address left its range"))?;
            out.push(ip_config(ip, range));
            continue;
        }
        if let Some(ip) = held.legacy.iter().copied().find(|ip| set.contains(*ip)) {
            return Err(unavailable(format!(
                "{ip} is reserved for container {} by an older host-local (no interface name \
                 recorded); duplicate allocation is not allowed, DEL it first",
                owner.id
            )));
        }

        let (ip, range) = match wanted {
            Some(ip) => {
                let range = set
                    .range_for(ip)
                    .ok_or_else(|| Error::internal("requested address left its range"))?;
                if ip == range.gateway {
                    return Err(unavailable(format!(
                        "requested IP {ip} is the gateway of range set {label}"
                    )));
                }
                if !store.reserve(ip, owner)? {
                    return Err(unavailable(format!(
                        "requested IP {ip} is not available in range set {label} ({set})"
                    )));
                }
                (ip, range)
            }
            None => {
                let last = store.last_reserved(idx)?;
                let mut found = None;
                for (ip, range) in set.candidates(last) {
                    if store.reserve(ip, owner)? {
                        found = Some((ip, range));
                        break;
                    }
                }
                found.ok_or_else(|| {
                    unavailable(format!(
                        "no IP addresses available in range set {label} ({set}): the pool is exhausted"
                    ))
                })?
            }
        };
        new.push(ip);
        store.set_last_reserved(idx, ip)?;
        out.push(ip_config(ip, range));
    }

    if !remaining.is_empty() {
        let list: Vec<String> = remaining.iter().map(ToString::to_string).collect();
        return Err(unavailable(format!(
            "failed to allocate all requested IPs: {} not in any range set",
            list.join(", ")
        )));
    }
    Ok(out)
}

/// GC: release every reservation whose attachment is not in `valid`.
/// Legacy records (container ID only) stay if any valid attachment has
/// that ID. Unreadable entries are reported, and the rest still runs.
pub fn gc(store: &mut dyn Store, valid: &[Attachment]) -> Result<()> {
    let keep: HashSet<(&str, &str)> = valid
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    let ids: HashSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
    let listing = store.list()?;
    let mut errors = ErrorList::new();
    for p in listing.problems {
        errors.push(p);
    }
    for lease in &listing.leases {
        let kept = match &lease.owner {
            Some(o) => match &o.ifname {
                Some(ifname) => keep.contains(&(o.id.as_str(), ifname.as_str())),
                None => ids.contains(o.id.as_str()),
            },
            None => false,
        };
        if !kept {
            cni_plugin::log::debug(&format!("gc: releasing {} ({:?})", lease.ip, lease.owner));
            errors.check(
                store
                    .release_lease(lease)
                    .map_err(|e| e.context(format!("gc: {}", lease.ip))),
            );
        }
    }
    errors.into_result()
}

/// CHECK: `owner` holds a reservation, and the addresses of our range
/// sets in `prev` are exactly the ones it holds there.
pub fn check(
    store: &mut dyn Store,
    sets: &[LabeledSet],
    owner: &Owner,
    prev: Option<&CniResult>,
) -> Result<()> {
    let held = store.get_by_id(owner)?;
    if held.is_empty() {
        return Err(Error::new(
            CHECK_MISMATCH,
            format!(
                "host-local: no address is reserved for container {} ifname {}",
                owner.id, owner.ifname
            ),
        ));
    }
    let Some(prev) = prev else {
        return Ok(());
    };
    let ours = |ip: &IpAddr| sets.iter().any(|s| s.set.in_subnets(*ip));
    let held_ours: HashSet<IpAddr> = held.all().filter(ours).collect();
    let prev_ours: HashSet<IpAddr> = prev
        .ips
        .iter()
        .map(|c| canonical(c.address.ip()))
        .filter(ours)
        .collect();
    if let Some(ip) = prev_ours.difference(&held_ours).next() {
        return Err(Error::new(
            CHECK_MISMATCH,
            format!(
                "prevResult lists {ip}, but it is not reserved for container {} ifname {}",
                owner.id, owner.ifname
            ),
        ));
    }
    if let Some(ip) = held_ours.difference(&prev_ours).next() {
        return Err(Error::new(
            CHECK_MISMATCH,
            format!(
                "{ip} is reserved for container {} ifname {}, but prevResult does not list it",
                owner.id, owner.ifname
            ),
        ));
    }
    Ok(())
}

/// STATUS: the store takes writes and every range set has a free address
/// (an ADD needs one from each). Both failures are code 50.
pub fn status(store: &mut dyn Store, sets: &[LabeledSet]) -> Result<()> {
    store
        .check_writable()
        .map_err(|e| Error::not_available(e.msg))?;
    for LabeledSet { label, set } in sets {
        let mut free = false;
        for (ip, _) in set.candidates(None) {
            if !store.is_reserved(ip)? {
                free = true;
                break;
            }
        }
        if !free {
            return Err(Error::not_available(format!(
                "no IP addresses available in range set {label} ({set}): the pool is exhausted"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::{RangeSet, RangeSpec};
    use crate::store::memory::MemoryStore;

    fn set(label: &str, subnet: &str, start: Option<&str>, end: Option<&str>) -> LabeledSet {
        let spec = RangeSpec {
            subnet: subnet.into(),
            range_start: start.map(Into::into),
            range_end: end.map(Into::into),
            gateway: None,
        };
        LabeledSet {
            label: label.into(),
            set: RangeSet::resolve(&[spec], label).unwrap(),
        }
    }

    fn owner(id: &str) -> Owner {
        Owner {
            id: id.into(),
            ifname: "eth0".into(),
        }
    }

    fn addrs(ips: &[IpConfig]) -> Vec<String> {
        ips.iter().map(|c| c.address.to_string()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn round_robin_dual_stack_with_gateway() {
        let sets = [
            set("a", "10.0.0.0/24", None, None),
            set("b", "fd00::/64", None, None),
        ];
        let mut st = MemoryStore::default();
        let r = allocate(&mut st, &sets, &owner("c1"), &[]).unwrap();
        assert_eq!(addrs(&r), ["10.0.0.2/24", "fd00::2/64"]);
        assert_eq!(r[0].gateway, Some(ip("10.0.0.1")));
        let r = allocate(&mut st, &sets, &owner("c2"), &[]).unwrap();
        assert_eq!(addrs(&r), ["10.0.0.3/24", "fd00::3/64"]);
        // Released addresses are not reused before the pool wraps.
        st.release_by_id(&owner("c1")).unwrap();
        let r = allocate(&mut st, &sets, &owner("c3"), &[]).unwrap();
        assert_eq!(addrs(&r), ["10.0.0.4/24", "fd00::4/64"]);
    }

    #[test]
    fn repeated_add_returns_the_held_address() {
        let sets = [set("a", "10.0.0.0/24", None, None)];
        let mut st = MemoryStore::default();
        let first = allocate(&mut st, &sets, &owner("c1"), &[]).unwrap();
        let again = allocate(&mut st, &sets, &owner("c1"), &[]).unwrap();
        assert_eq!(first, again);
        assert_eq!(st.leases.len(), 1);
        let other_if = Owner {
            ifname: "eth1".into(),
            ..owner("c1")
        };
        assert_eq!(
            addrs(&allocate(&mut st, &sets, &other_if, &[]).unwrap()),
            ["10.0.0.3/24"]
        );
        let e = allocate(&mut st, &sets, &owner("c1"), &[ip("10.0.0.9")]).unwrap_err();
        assert_eq!(e.code, ADDRESS_UNAVAILABLE);
    }

    #[test]
    fn requested_ips_all_or_nothing() {
        let sets = [
            set("a", "10.0.0.0/24", None, None),
            set("b", "10.1.0.0/24", None, None),
        ];
        let mut st = MemoryStore::default();
        let r = allocate(
            &mut st,
            &sets,
            &owner("c1"),
            &[ip("10.1.0.9"), ip("10.0.0.7")],
        )
        .unwrap();
        assert_eq!(addrs(&r), ["10.0.0.7/24", "10.1.0.9/24"]);
        // One requested address outside every set: nothing is kept.
        let e = allocate(
            &mut st,
            &sets,
            &owner("c2"),
            &[ip("10.0.0.8"), ip("192.168.0.1")],
        )
        .unwrap_err();
        assert!(e.msg.contains("192.168.0.1"), "{}", e.msg);
        assert_eq!(st.leases.len(), 2);
        // Taken, and gateway.
        let e = allocate(&mut st, &sets, &owner("c3"), &[ip("10.0.0.7")]).unwrap_err();
        assert!(e.msg.contains("not available"));
        let e = allocate(&mut st, &sets, &owner("c3"), &[ip("10.0.0.1")]).unwrap_err();
        assert!(e.msg.contains("gateway"));
        assert_eq!(st.leases.len(), 2);
    }

    #[test]
    fn exhaustion_rolls_back_earlier_sets() {
        let sets = [
            set("a", "10.0.0.0/24", None, None),
            set("b", "10.1.0.0/24", Some("10.1.0.5"), Some("10.1.0.5")),
        ];
        let mut st = MemoryStore::default();
        allocate(&mut st, &sets, &owner("c1"), &[]).unwrap();
        let e = allocate(&mut st, &sets, &owner("c2"), &[]).unwrap_err();
        assert_eq!(e.code, ADDRESS_UNAVAILABLE);
        assert!(e.msg.contains("exhausted"));
        assert_eq!(st.leases.len(), 2, "the address from set a was given back");
        assert_eq!(status(&mut st, &sets).unwrap_err().code, 50);
        st.release_by_id(&owner("c1")).unwrap();
        status(&mut st, &sets).unwrap();
        st.read_only = true;
        assert_eq!(status(&mut st, &sets).unwrap_err().code, 50);
    }

    #[test]
    fn legacy_records_are_released_and_block_duplicates() {
        let sets = [set("a", "10.0.0.0/24", None, None)];
        let mut st = MemoryStore::default();
        st.insert_legacy("10.0.0.50", "c1");
        assert!(allocate(&mut st, &sets, &owner("c1"), &[]).is_err());
        assert_eq!(st.release_by_id(&owner("c1")).unwrap(), [ip("10.0.0.50")]);
        assert!(st.leases.is_empty());
    }

    #[test]
    fn gc_keeps_valid_attachments_only() {
        let sets = [set("a", "10.0.0.0/24", None, None)];
        let mut st = MemoryStore::default();
        for id in ["c1", "c2", "c3"] {
            allocate(&mut st, &sets, &owner(id), &[]).unwrap();
        }
        st.insert_legacy("10.0.0.60", "c1");
        st.insert_legacy("10.0.0.61", "c9");
        st.leases.insert(ip("10.0.0.62"), None);
        let valid = [Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }];
        gc(&mut st, &valid).unwrap();
        let left: Vec<String> = st.leases.keys().map(ToString::to_string).collect();
        assert_eq!(left, ["10.0.0.2", "10.0.0.60"]);
        gc(&mut st, &[]).unwrap();
        assert!(st.leases.is_empty());
    }

    #[test]
    fn check_compares_with_prev_result() {
        let sets = [set("a", "10.0.0.0/24", None, None)];
        let mut st = MemoryStore::default();
        assert_eq!(
            check(&mut st, &sets, &owner("c1"), None).unwrap_err().code,
            CHECK_MISMATCH
        );
        let ips = allocate(&mut st, &sets, &owner("c1"), &[]).unwrap();
        let mut prev = CniResult {
            ips: ips.clone(),
            ..Default::default()
        };
        check(&mut st, &sets, &owner("c1"), Some(&prev)).unwrap();
        // Addresses of other IPAMs in prevResult are not ours to judge.
        prev.ips.push(IpConfig {
            interface: None,
            address: "192.168.5.5/24".parse().unwrap(),
            gateway: None,
        });
        check(&mut st, &sets, &owner("c1"), Some(&prev)).unwrap();
        prev.ips[0].address = "10.0.0.99/24".parse().unwrap();
        let e = check(&mut st, &sets, &owner("c1"), Some(&prev)).unwrap_err();
        assert!(e.msg.contains("10.0.0.99"));
    }
}
