//! What each cluster network's VXLAN device must hold, kept current event
//! by event, so that a store event costs the kernel only the entries it
//! adds or removes (one static and one neighbour entry per remote endpoint,
//! a flooding entry per other live host carrying the network) instead of a
//! dump and diff of the whole device per burst of events.
//!
//! Pure bookkeeping: it reads the view after each event and says what to
//! change ([`Plan`]); `fdb` does the netlink. Entries are reference counted
//! because two endpoints share one static entry (a dual-stack container
//! publishes one endpoint per address, both with its MAC), and a flooding
//! entry lives as long as its host has an endpoint on the network.
//!
//! Only networks this host carries (it has an endpoint there, so the
//! device exists) yield changes: the others cost memory, never netlink. A
//! network that becomes carried gets a full sync (its device may be new),
//! and so does one that a host stops carrying: the device may have learned
//! MACs behind that host from flooded frames, which only a dump finds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use cni_dns::cluster::PREFIX;
use cni_net::netlink::Mac;

use super::fdb::parse_mac;
use super::store::View;

/// One entry of a VXLAN device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    /// All-zero MAC to a host: head-end replication of broadcasts.
    Flood(IpAddr),
    /// A remote endpoint's MAC tunnelled to its host's VTEP.
    Static(Mac, IpAddr),
    /// A remote endpoint's IP -> MAC, for the device's ARP proxy.
    Neigh(IpAddr, Mac),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add(Entry),
    Del(Entry),
}

/// What to do to the devices after some events.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Networks whose device gets a full sync (dump and diff).
    pub full: BTreeSet<String>,
    /// Changes per network, in order (a removal before the addition that
    /// replaces it: a neighbour entry is keyed by its IP alone).
    pub changes: BTreeMap<String, Vec<Change>>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.changes.values().all(Vec::is_empty)
    }
}

/// A remote endpoint as the entries need it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ep {
    host: String,
    mac: Option<Mac>,
    vtep: IpAddr,
}

#[derive(Debug, Default)]
struct Net {
    eps: BTreeMap<String, Ep>,
    /// Our own endpoints: with none, the device does not exist.
    local: usize,
    /// Remote endpoints per host: the hosts that carry the network.
    hosts: BTreeMap<String, usize>,
    statics: BTreeMap<(Mac, IpAddr), usize>,
    neighbours: BTreeMap<(IpAddr, Mac), usize>,
    floods: BTreeSet<IpAddr>,
}

/// Counted set: `true` when `k` went from absent to present.
fn inc<K: Ord>(m: &mut BTreeMap<K, usize>, k: K) -> bool {
    let n = m.entry(k).or_insert(0);
    *n += 1;
    *n == 1
}

/// Counted set: `true` when `k` went from present to absent.
fn dec<K: Ord>(m: &mut BTreeMap<K, usize>, k: K) -> bool {
    match m.get_mut(&k) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            m.remove(&k);
            true
        }
        None => false,
    }
}

/// Every network's wanted entries, for this host.
#[derive(Debug)]
pub struct Entries {
    me: String,
    alive: BTreeMap<String, IpAddr>,
    nets: BTreeMap<String, Net>,
}

impl Entries {
    pub fn new(me: &str) -> Self {
        Entries {
            me: me.to_string(),
            alive: BTreeMap::new(),
            nets: BTreeMap::new(),
        }
    }

    /// Built from a whole view (at start, after a watch restart, and by the
    /// periodic full sync); what it yields is dropped: a full sync follows.
    pub fn from_view(me: &str, view: &View) -> Self {
        let mut e = Entries::new(me);
        let mut ignore = Plan::default();
        for (h, r) in &view.alive {
            e.host(h, Some(r.address), &mut ignore);
        }
        for (net, eps) in &view.endpoints {
            for (ip, rec) in eps {
                e.endpoint(net, ip, Some(rec), &mut ignore);
            }
        }
        e
    }

    /// Follow one changed key, reading its new value from the view the
    /// event was just applied to.
    pub fn follow_key(&mut self, view: &View, key: &str, plan: &mut Plan) {
        let rest = key.strip_prefix(PREFIX).unwrap_or(key);
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["endpoints", net, ip] => {
                let rec = view.endpoints.get(*net).and_then(|m| m.get(*ip));
                self.endpoint(net, ip, rec, plan);
            }
            ["hosts", h] => self.host(h, view.alive.get(*h).map(|r| r.address), plan),
            _ => {}
        }
    }

    /// Whether the device of `net` exists here (we have an endpoint on it).
    pub fn carried(&self, net: &str) -> bool {
        self.nets.get(net).is_some_and(|n| n.local > 0)
    }

    /// An endpoint's record changed to `rec` (`None`: removed).
    pub fn endpoint(
        &mut self,
        net: &str,
        ip: &str,
        rec: Option<&super::store::EndpointRec>,
        plan: &mut Plan,
    ) {
        let new = rec.map(|r| Ep {
            host: r.host.clone(),
            mac: parse_mac(&r.mac),
            vtep: r.vtep,
        });
        let ip_addr = rec.map(|r| r.ip).or_else(|| ip.parse().ok());
        let n = self.nets.entry(net.to_string()).or_default();
        let old = match &new {
            Some(e) => n.eps.insert(ip.to_string(), e.clone()),
            None => n.eps.remove(ip),
        };
        if old == new {
            return;
        }
        let was_carried = n.local > 0;
        let mut changes = Vec::new();
        let mut hosts_changed = false;
        if let Some(o) = old {
            if o.host == self.me {
                n.local = n.local.saturating_sub(1);
            } else {
                hosts_changed |= dec(&mut n.hosts, o.host.clone());
                if let (Some(mac), Some(a)) = (o.mac, ip_addr) {
                    if dec(&mut n.neighbours, (a, mac)) {
                        changes.push(Change::Del(Entry::Neigh(a, mac)));
                    }
                }
                if let Some(mac) = o.mac {
                    if dec(&mut n.statics, (mac, o.vtep)) {
                        changes.push(Change::Del(Entry::Static(mac, o.vtep)));
                    }
                }
            }
        }
        if let Some(e) = new {
            if e.host == self.me {
                n.local += 1;
            } else {
                hosts_changed |= inc(&mut n.hosts, e.host.clone());
                if let Some(mac) = e.mac {
                    if inc(&mut n.statics, (mac, e.vtep)) {
                        changes.push(Change::Add(Entry::Static(mac, e.vtep)));
                    }
                    if let Some(a) = ip_addr {
                        if inc(&mut n.neighbours, (a, mac)) {
                            changes.push(Change::Add(Entry::Neigh(a, mac)));
                        }
                    }
                }
            }
        }
        if hosts_changed {
            changes.extend(flood_changes(n, &self.alive));
        }
        let carried = n.local > 0;
        if carried && (!was_carried || host_left(&changes)) {
            plan.full.insert(net.to_string());
            plan.changes.remove(net);
        } else if carried && !plan.full.contains(net) && !changes.is_empty() {
            plan.changes
                .entry(net.to_string())
                .or_default()
                .extend(changes);
        }
    }

    /// A host's liveness changed (`None`: its lease is gone).
    pub fn host(&mut self, host: &str, address: Option<IpAddr>, plan: &mut Plan) {
        let old = match address {
            Some(a) => self.alive.insert(host.to_string(), a),
            None => self.alive.remove(host),
        };
        if old == address || host == self.me {
            return;
        }
        for (name, n) in &mut self.nets {
            if !n.hosts.contains_key(host) {
                continue;
            }
            let changes = flood_changes(n, &self.alive);
            if n.local > 0 && host_left(&changes) {
                plan.full.insert(name.clone());
                plan.changes.remove(name);
            } else if n.local > 0 && !plan.full.contains(name) && !changes.is_empty() {
                plan.changes
                    .entry(name.clone())
                    .or_default()
                    .extend(changes);
            }
        }
    }

    /// The whole wanted content of `net`'s device, for a full sync.
    pub fn wanted(&self, net: &str) -> Wanted {
        let Some(n) = self.nets.get(net) else {
            return Wanted::default();
        };
        Wanted {
            floods: n.floods.clone(),
            statics: n.statics.keys().copied().collect(),
            neighbours: n.neighbours.keys().copied().collect(),
        }
    }

    /// Remote endpoints and flooding entries summed over networks (the
    /// scale run reads them).
    pub fn counts(&self) -> (usize, usize, usize) {
        self.nets.values().fold((0, 0, 0), |(s, ne, f), n| {
            (
                s + n.statics.len(),
                ne + n.neighbours.len(),
                f + n.floods.len(),
            )
        })
    }
}

/// One device's wanted entries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub floods: BTreeSet<IpAddr>,
    pub statics: BTreeSet<(Mac, IpAddr)>,
    pub neighbours: BTreeSet<(IpAddr, Mac)>,
}

/// A host stopped carrying the network (or died): its flooding entry goes.
fn host_left(changes: &[Change]) -> bool {
    changes
        .iter()
        .any(|c| matches!(c, Change::Del(Entry::Flood(_))))
}

/// Flooding goes to the live hosts that carry the network: bring `n`'s
/// set to that and say what changed.
fn flood_changes(n: &mut Net, alive: &BTreeMap<String, IpAddr>) -> Vec<Change> {
    let want: BTreeSet<IpAddr> = n
        .hosts
        .keys()
        .filter_map(|h| alive.get(h).copied())
        .collect();
    let mut out: Vec<Change> = n
        .floods
        .difference(&want)
        .map(|a| Change::Del(Entry::Flood(*a)))
        .collect();
    out.extend(
        want.difference(&n.floods)
            .map(|a| Change::Add(Entry::Flood(*a))),
    );
    n.floods = want;
    out
}

#[cfg(test)]
mod tests {
    use super::super::store::EndpointRec;
    use super::*;

    fn rec(ip: &str, mac: &str, host: &str, vtep: &str) -> EndpointRec {
        EndpointRec {
            ip: ip.parse().unwrap(),
            mac: mac.into(),
            host: host.into(),
            vtep: vtep.parse().unwrap(),
            container_id: "c".into(),
        }
    }

    const M1: &str = "02:00:00:00:00:01";
    const M2: &str = "02:00:00:00:00:02";

    fn mac(s: &str) -> Mac {
        parse_mac(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_network_without_our_endpoints_costs_no_netlink_until_we_join_it() {
        let mut e = Entries::new("me");
        let mut p = Plan::default();
        e.host("h2", Some(ip("192.0.2.2")), &mut p);
        e.endpoint(
            "ov",
            "10.0.0.2",
            Some(&rec("10.0.0.2", M2, "h2", "192.0.2.2")),
            &mut p,
        );
        assert!(p.is_empty(), "{p:?}");
        assert!(!e.carried("ov"));
        // Our first endpoint: the device is new, a full sync of it.
        e.endpoint(
            "ov",
            "10.0.0.1",
            Some(&rec("10.0.0.1", M1, "me", "192.0.2.1")),
            &mut p,
        );
        assert_eq!(p.full, BTreeSet::from(["ov".to_string()]));
        assert!(p.changes.is_empty());
        let w = e.wanted("ov");
        assert_eq!(w.floods, BTreeSet::from([ip("192.0.2.2")]));
        assert_eq!(w.statics, BTreeSet::from([(mac(M2), ip("192.0.2.2"))]));
        assert_eq!(w.neighbours, BTreeSet::from([(ip("10.0.0.2"), mac(M2))]));
    }

    #[test]
    fn each_remote_endpoint_adds_and_removes_its_own_entries_only() {
        let mut e = Entries::new("me");
        let mut p = Plan::default();
        e.host("h2", Some(ip("192.0.2.2")), &mut p);
        e.endpoint(
            "ov",
            "10.0.0.1",
            Some(&rec("10.0.0.1", M1, "me", "192.0.2.1")),
            &mut p,
        );
        let mut p = Plan::default();
        let r2 = rec("10.0.0.2", M2, "h2", "192.0.2.2");
        e.endpoint("ov", "10.0.0.2", Some(&r2), &mut p);
        let (vtep, m2) = (ip("192.0.2.2"), mac(M2));
        assert_eq!(
            p.changes["ov"],
            vec![
                Change::Add(Entry::Static(m2, vtep)),
                Change::Add(Entry::Neigh(ip("10.0.0.2"), m2)),
                Change::Add(Entry::Flood(vtep)),
            ]
        );
        // The same record again (our own put echoed, a resent event): nothing.
        let mut p = Plan::default();
        e.endpoint("ov", "10.0.0.2", Some(&r2), &mut p);
        assert!(p.is_empty());
        // A second address of the same container shares the static entry.
        let mut p = Plan::default();
        let r6 = rec("fd00::2", M2, "h2", "192.0.2.2");
        e.endpoint("ov", "fd00::2", Some(&r6), &mut p);
        assert_eq!(
            p.changes["ov"],
            vec![Change::Add(Entry::Neigh(ip("fd00::2"), m2))]
        );
        let mut p = Plan::default();
        e.endpoint("ov", "10.0.0.2", None, &mut p);
        assert_eq!(
            p.changes["ov"],
            vec![Change::Del(Entry::Neigh(ip("10.0.0.2"), m2))]
        );
        // The host's last endpoint: its flooding entry goes, and what the
        // device learned behind that host with it: a full sync.
        let mut p = Plan::default();
        e.endpoint("ov", "fd00::2", None, &mut p);
        assert_eq!(p.full, BTreeSet::from(["ov".to_string()]));
        assert!(p.changes.is_empty());
        assert_eq!(e.wanted("ov"), Wanted::default());
        assert_eq!(e.counts(), (0, 0, 0));
    }

    #[test]
    fn an_address_taken_over_by_another_container_swaps_its_entries() {
        let mut e = Entries::new("me");
        let mut p = Plan::default();
        e.endpoint(
            "ov",
            "10.0.0.1",
            Some(&rec("10.0.0.1", M1, "me", "192.0.2.1")),
            &mut p,
        );
        e.endpoint(
            "ov",
            "10.0.0.9",
            Some(&rec("10.0.0.9", M1, "h2", "192.0.2.2")),
            &mut p,
        );
        let mut p = Plan::default();
        e.endpoint(
            "ov",
            "10.0.0.9",
            Some(&rec("10.0.0.9", M2, "h3", "192.0.2.3")),
            &mut p,
        );
        let c = &p.changes["ov"];
        // Removals first: the neighbour entry is keyed by its IP.
        assert_eq!(c[0], Change::Del(Entry::Neigh(ip("10.0.0.9"), mac(M1))));
        assert!(c.contains(&Change::Add(Entry::Neigh(ip("10.0.0.9"), mac(M2)))));
        assert!(c.contains(&Change::Del(Entry::Static(mac(M1), ip("192.0.2.2")))));
        assert!(c.contains(&Change::Add(Entry::Static(mac(M2), ip("192.0.2.3")))));
        // h2 and h3 are not alive (no hosts/ key): no flooding to them.
        assert!(!c.iter().any(|c| matches!(
            c,
            Change::Add(Entry::Flood(_)) | Change::Del(Entry::Flood(_))
        )));
    }

    #[test]
    fn a_host_going_syncs_only_its_networks_and_coming_back_adds_its_flooding_entry() {
        let mut e = Entries::new("me");
        let mut p = Plan::default();
        e.host("h2", Some(ip("192.0.2.2")), &mut p);
        for net in ["a", "b"] {
            e.endpoint(
                net,
                "10.0.0.1",
                Some(&rec("10.0.0.1", M1, "me", "192.0.2.1")),
                &mut p,
            );
        }
        e.endpoint(
            "a",
            "10.0.0.2",
            Some(&rec("10.0.0.2", M2, "h2", "192.0.2.2")),
            &mut p,
        );
        let mut p = Plan::default();
        e.host("h2", None, &mut p);
        assert_eq!(p.full, BTreeSet::from(["a".to_string()]));
        assert!(p.changes.is_empty());
        assert!(e.wanted("a").floods.is_empty());
        let mut p = Plan::default();
        e.host("h2", Some(ip("192.0.2.2")), &mut p);
        assert_eq!(
            p.changes["a"],
            vec![Change::Add(Entry::Flood(ip("192.0.2.2")))]
        );
    }

    #[test]
    fn built_from_a_view_it_wants_what_the_view_names() {
        let mut v = View::default();
        let put = |v: &mut View, k: &str, val: String| {
            v.apply(&super::super::etcd::Event::Put(super::super::etcd::Kv {
                key: format!("{PREFIX}{k}"),
                value: val.into_bytes(),
            }))
        };
        put(
            &mut v,
            "hosts/h2",
            r#"{"host":"h2","address":"192.0.2.2"}"#.into(),
        );
        for (i, host) in [(1, "me"), (2, "h2"), (3, "h3")] {
            let r = rec(&format!("10.0.0.{i}"), M2, host, &format!("192.0.2.{i}"));
            put(
                &mut v,
                &format!("endpoints/ov/10.0.0.{i}"),
                serde_json::to_string(&r).unwrap(),
            );
        }
        let e = Entries::from_view("me", &v);
        assert!(e.carried("ov"));
        let w = e.wanted("ov");
        assert_eq!(w.floods, BTreeSet::from([ip("192.0.2.2")]));
        assert_eq!(w.statics.len(), 2);
        assert_eq!(w.neighbours.len(), 2);
        // An event read back from the view after applying it.
        let mut e = e;
        let mut p = Plan::default();
        v.apply(&super::super::etcd::Event::Delete(format!(
            "{PREFIX}endpoints/ov/10.0.0.3"
        )));
        e.follow_key(&v, &format!("{PREFIX}endpoints/ov/10.0.0.3"), &mut p);
        // h3 is not alive: no flooding entry, just its two entries.
        assert_eq!(p.changes["ov"].len(), 2, "{p:?}");
    }
}
