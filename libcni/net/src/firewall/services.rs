//! Service load balancing without IPVS: a virtual IP and published ports
//! spread over a service's tasks by `numgen inc` and a map per service, in
//! our NAT table beside the published ports of single containers:
//!
//! ```text
//! table inet cni_rs_nat {
//!     map svc_<id> { type mark : ipv4_addr; elements = { 0 : 10.0.0.3, 1 : 10.0.0.4 } }
//!     chain svc-prerouting { type nat hook prerouting priority dstnat - 1; jump services }
//!     chain svc-output     { type nat hook output priority dstnat - 1; jump services }
//!     chain services {
//!         meta nfproto ipv4 ip daddr 10.0.0.2 counter dnat ip to numgen inc mod 2 map @svc_<id>
//!         fib daddr type local meta nfproto ipv4 meta l4proto tcp th dport 8080 counter
//!             dnat ip to numgen inc mod 2 map @svc_<id> : 80
//!     }
//!     chain postrouting { ...
//!         meta nfproto ipv4 ct original ip daddr 10.0.0.2 counter masquerade
//!         meta nfproto ipv4 ip saddr 127.0.0.1 ct status dnat counter masquerade
//!     }
//! }
//! ```
//!
//! Base chains of their own, one step before `dstnat`, so a service's VIP
//! and ports are decided before any container's `hostports` rule, whatever
//! the order rules were added in (the first NAT binding of a connection
//! wins). Conntrack keeps every connection on the task it was sent to; a
//! change of tasks is one transaction (map flushed and refilled, the rules
//! whose modulus changed replaced), so no packet sees half an update.
//!
//! Connections to the VIP are masqueraded: clients and tasks share the
//! network, so without it a task would answer a client directly, from its
//! own address, and the client would drop the reply (it covers a task
//! reaching its own VIP too). Published ports are not: an outside caller's
//! replies go back through the host anyway; only the host's own
//! 127.0.0.1 is, as no task could answer it.
//!
//! Every rule's comment starts with the service's tag (`ident.rs`, network
//! part [`SERVICES_OWNER`]); published ports carry `portmap`'s claim
//! (`pm ip tcp/8080@*`), so a container asking for a service's port is
//! refused, and a service asking for a container's port too.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::expr;
use super::ident;
use super::nat_table::{self, claim_in, owner_in, Claim, Proto, NAT_TABLE};
use super::portmap::PORT_TAKEN;
use super::socket::Request;
use super::tables::{self, Family, RuleInfo, RuleSpec, NFPROTO_IPV4, NF_INET_LOCAL_OUT};
use super::tables::{NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST};
use super::Session;
use cni_spec::error::{Error, Result};

/// The network part of every service tag: services are not owned by one
/// network's plugins, so a plugin's GC of a network never takes them.
pub const SERVICES_OWNER: &str = "cni-rs-services";

const SERVICES: &str = "services";
const SVC_PREROUTING: &str = "svc-prerouting";
const SVC_OUTPUT: &str = "svc-output";
const JUMP_PREROUTING: &str = "cni-rs services: connections from outside";
const JUMP_OUTPUT: &str = "cni-rs services: connections from this host";

/// One published port of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServicePort {
    pub proto: Proto,
    pub published: u16,
    pub target: u16,
}

/// Everything the rules of one service depend on.
#[derive(Debug, Clone)]
pub struct ServiceRules<'a> {
    /// The service ID: lower-case letters and digits.
    pub id: &'a str,
    /// Shown in comments only.
    pub name: &'a str,
    pub vip: Option<Ipv4Addr>,
    /// Task addresses, in slot order.
    pub backends: &'a [Ipv4Addr],
    pub ports: &'a [ServicePort],
    /// The routing mesh (a cluster's overlay): connections translated to
    /// a task and leaving through this bridge take this host's address on
    /// it, so a task on another host answers through the host that
    /// translated them (the overlay has no gateway, and a plain masquerade
    /// could pick an address the task cannot reach).
    pub mesh: Option<Mesh<'a>>,
}

/// This host's end of a routing mesh: the overlay bridge and its address.
#[derive(Debug, Clone, Copy)]
pub struct Mesh<'a> {
    pub bridge: &'a str,
    pub address: Ipv4Addr,
}

fn validate_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(Error::invalid_config(format!(
            "service ID {id:?} must be 1 to 64 lower-case letters and digits"
        )));
    }
    Ok(())
}

fn tag(id: &str) -> String {
    ident::ctr_tag(SERVICES_OWNER, id, "svc")
}

/// The map of a service's tasks.
pub fn map_name(id: &str) -> String {
    format!("svc_{id}")
}

fn is_service_rule(comment: &str) -> bool {
    ident::of_network(comment, SERVICES_OWNER)
}

fn is_jump(comment: &str) -> bool {
    comment == JUMP_PREROUTING || comment == JUMP_OUTPUT
}

fn comment(tag: &str, what: &str, name: &str) -> String {
    ident::truncate(format!("{tag} {what} [{name}]"))
}

/// What a published port claims: every local IPv4 address.
fn claim(p: &ServicePort) -> Claim {
    Claim {
        v6: false,
        proto: p.proto,
        port: p.published,
        host_ip: None,
    }
}

/// `numgen inc mod n map @svc_<id>` into register 1.
fn pick_backend(id: &str, n: u32) -> [expr::Expr; 2] {
    [
        expr::numgen_inc(expr::REG_1, n),
        expr::map_lookup(&map_name(id), expr::REG_1, expr::REG_1),
    ]
}

fn ipv4() -> [expr::Expr; 2] {
    [
        expr::meta(expr::META_NFPROTO, expr::REG_1),
        expr::cmp(expr::CMP_EQ, expr::REG_1, &[NFPROTO_IPV4]),
    ]
}

fn rule(chain: &'static str, comment: String, exprs: Vec<expr::Expr>) -> RuleSpec {
    RuleSpec {
        family: Family::Inet,
        table: NAT_TABLE,
        chain,
        comment,
        exprs,
    }
}

impl ServiceRules<'_> {
    fn desired(&self) -> Vec<RuleSpec> {
        let tag = tag(self.id);
        let n = self.backends.len() as u32;
        let mut out = Vec::new();
        if let Some(vip) = self.vip {
            if n > 0 {
                let mut e = ipv4().to_vec();
                e.extend([
                    expr::payload(expr::PAYLOAD_NETWORK, 16, 4, expr::REG_1),
                    expr::cmp(expr::CMP_EQ, expr::REG_1, &vip.octets()),
                    expr::counter(),
                ]);
                e.extend(pick_backend(self.id, n));
                e.push(expr::dnat_addr(NFPROTO_IPV4, expr::REG_1));
                out.push(rule(
                    SERVICES,
                    comment(&tag, &format!("vip {vip} n={n}"), self.name),
                    e,
                ));
            }
            let mut e = ipv4().to_vec();
            e.extend([
                expr::ct_original_daddr_v4(expr::REG_1),
                expr::cmp(expr::CMP_EQ, expr::REG_1, &vip.octets()),
                expr::counter(),
                expr::masquerade(),
            ]);
            out.push(rule(
                nat_table::POSTROUTING,
                comment(&tag, &format!("masq-vip {vip}"), self.name),
                e,
            ));
        }
        if n > 0 && !self.ports.is_empty() {
            // The host's own 127.0.0.1:PORT leaves through the bridge once
            // translated: only with a source the tasks can answer.
            let mut e = ipv4().to_vec();
            e.extend([
                expr::payload(expr::PAYLOAD_NETWORK, 12, 4, expr::REG_1),
                expr::cmp(expr::CMP_EQ, expr::REG_1, &Ipv4Addr::LOCALHOST.octets()),
            ]);
            e.extend(expr::ct_status_dnat(expr::REG_1));
            e.extend([expr::counter(), expr::masquerade()]);
            out.push(rule(
                nat_table::POSTROUTING,
                comment(&tag, "masq-localhost", self.name),
                e,
            ));
        }
        if let (Some(m), true) = (self.mesh, n > 0) {
            let mut e = ipv4().to_vec();
            e.extend([
                expr::meta(expr::META_OIFNAME, expr::REG_1),
                expr::cmp(expr::CMP_EQ, expr::REG_1, &expr::ifname_bytes(m.bridge)),
            ]);
            e.extend(expr::ct_status_dnat(expr::REG_1));
            e.extend([
                expr::counter(),
                expr::immediate(expr::REG_1, &m.address.octets()),
                expr::snat_addr(NFPROTO_IPV4, expr::REG_1),
            ]);
            out.push(rule(
                nat_table::POSTROUTING,
                comment(&tag, &format!("mesh {} {}", m.bridge, m.address), self.name),
                e,
            ));
        }
        if n > 0 {
            for p in self.ports {
                let mut e = vec![
                    expr::fib_daddr_type(expr::REG_1),
                    expr::cmp(expr::CMP_EQ, expr::REG_1, &expr::RTN_LOCAL.to_ne_bytes()),
                ];
                e.extend(ipv4());
                e.extend([
                    expr::meta(expr::META_L4PROTO, expr::REG_1),
                    expr::cmp(expr::CMP_EQ, expr::REG_1, &[proto_number(p.proto)]),
                    expr::payload(expr::PAYLOAD_TRANSPORT, 2, 2, expr::REG_1),
                    expr::cmp(expr::CMP_EQ, expr::REG_1, &p.published.to_be_bytes()),
                    expr::counter(),
                ]);
                e.extend(pick_backend(self.id, n));
                e.extend([
                    expr::immediate(expr::REG_2, &p.target.to_be_bytes()),
                    expr::dnat(NFPROTO_IPV4, expr::REG_1, expr::REG_2),
                ]);
                let what = format!(
                    "pm ip {}/{}@* to={} n={n}",
                    p.proto.name(),
                    p.published,
                    p.target
                );
                out.push(rule(SERVICES, comment(&tag, &what, self.name), e));
            }
        }
        let mut seen = HashSet::new();
        out.retain(|r| seen.insert(r.comment.clone()));
        out
    }
}

fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Sctp => 132,
    }
}

/// The ports among `ports` that another owner (a container's `portmap`,
/// another service) publishes, as messages. Empty: all free.
fn taken(existing: &[RuleInfo], id: &str, ports: &[ServicePort]) -> Vec<String> {
    let mine = tag(id);
    let mut out = Vec::new();
    for r in existing {
        let Some(c) = r.comment.as_deref() else {
            continue;
        };
        if c.starts_with(&mine) {
            continue;
        }
        let Some(other) = claim_in(c) else { continue };
        for p in ports {
            let want = claim(p);
            if want.collides(&other) {
                let msg = format!(
                    "port '{}' is already in use by {} (as {other})",
                    p.published,
                    owner_in(c)
                );
                if !out.contains(&msg) {
                    out.push(msg);
                }
            }
        }
    }
    out
}

/// Refuse (code [`PORT_TAKEN`]) ports another owner publishes, without
/// changing anything: for callers that check before they create.
pub fn check_ports_free(id: &str, ports: &[ServicePort]) -> Result<()> {
    validate_id(id)?;
    let mut s = Session::open(false)?;
    let existing = s.rules_in(NAT_TABLE)?;
    let t = taken(&existing, id, ports);
    if t.is_empty() {
        Ok(())
    } else {
        Err(Error::new(PORT_TAKEN, t.join("; ")))
    }
}

/// Make the service's rules and map exactly what `svc` describes, in one
/// transaction. Ports another owner publishes are refused (code
/// [`PORT_TAKEN`]) and nothing changes.
pub fn apply(svc: &ServiceRules) -> Result<()> {
    validate_id(svc.id)?;
    let desired = svc.desired();
    let mut s = Session::open(true)?;
    let existing = s.rules_in(NAT_TABLE)?;
    let t = taken(&existing, svc.id, svc.ports);
    if !t.is_empty() {
        return Err(Error::new(PORT_TAKEN, t.join("; ")));
    }
    let mine = tag(svc.id);
    let mut present: HashSet<(&str, &str)> = HashSet::new();
    let mut stale: Vec<&RuleInfo> = Vec::new();
    let mut jumps_present = HashSet::new();
    for r in &existing {
        let Some(c) = r.comment.as_deref() else {
            continue;
        };
        if is_jump(c) {
            jumps_present.insert(c);
            continue;
        }
        if !c.starts_with(&mine) {
            continue;
        }
        let want = desired.iter().any(|d| d.chain == r.chain && d.comment == c);
        if !want || !present.insert((r.chain.as_str(), c)) {
            stale.push(r);
        }
    }

    let mut reqs = Vec::new();
    let chains = s.chains_in(NAT_TABLE)?;
    nat_table::declare(&mut reqs, &chains);
    declare(&mut reqs, &chains);
    for j in jump_rules() {
        if !jumps_present.contains(j.comment.as_str()) {
            reqs.push(tables::new_rule(&j));
        }
    }
    let map = map_name(svc.id);
    reqs.push(tables::new_index_map_in(Family::Inet, NAT_TABLE, &map, 1));
    reqs.push(tables::flush_set_in(Family::Inet, NAT_TABLE, &map));
    if !svc.backends.is_empty() {
        let elems: Vec<(Vec<u8>, Vec<u8>)> = svc
            .backends
            .iter()
            .enumerate()
            .map(|(i, a)| ((i as u32).to_ne_bytes().to_vec(), a.octets().to_vec()))
            .collect();
        reqs.push(tables::new_map_elems_in(
            Family::Inet,
            NAT_TABLE,
            &map,
            &elems,
        ));
    }
    reqs.extend(stale.iter().map(|r| tables::del_rule(Family::Inet, r)));
    reqs.extend(
        desired
            .iter()
            .filter(|d| !present.contains(&(d.chain, d.comment.as_str())))
            .map(tables::new_rule),
    );
    s.apply(&reqs)
}

/// Remove a service's rules and map; with the last service, our chains
/// and jumps, and the table when nothing else is in it. Nothing there is
/// success.
pub fn remove(id: &str) -> Result<()> {
    validate_id(id)?;
    let mine = tag(id);
    let mut s = Session::open(true)?;
    let rules = s.rules_in(NAT_TABLE)?;
    let map = map_name(id);
    let sets = s.sets_in(NAT_TABLE)?;
    let has_map = sets.contains(&map);
    let ours: Vec<&RuleInfo> = rules
        .iter()
        .filter(|r| r.comment.as_deref().is_some_and(|c| c.starts_with(&mine)))
        .collect();
    let other_services = rules.iter().any(|r| {
        r.comment
            .as_deref()
            .is_some_and(|c| is_service_rule(c) && !c.starts_with(&mine))
    });
    let other_maps = sets.iter().any(|n| n.starts_with("svc_") && *n != map);
    if ours.is_empty() && !has_map {
        return Ok(());
    }
    let mut reqs: Vec<Request> = Vec::new();
    if other_services || other_maps {
        reqs.extend(ours.iter().map(|r| tables::del_rule(Family::Inet, r)));
        if has_map {
            reqs.push(tables::del_set_in(Family::Inet, NAT_TABLE, &map));
        }
        return s.apply(&reqs);
    }
    // The last service: does anything but portmap's shared jumps remain?
    let others = rules.iter().any(|r| {
        r.comment.as_deref().is_none_or(|c| {
            !is_service_rule(c)
                && !is_jump(c)
                && c != nat_table::JUMP_PREROUTING
                && c != nat_table::JUMP_OUTPUT
        })
    });
    if !others {
        reqs.push(tables::del_table_named(Family::Inet, NAT_TABLE));
        return s.apply(&reqs);
    }
    for r in &rules {
        if r.comment
            .as_deref()
            .is_some_and(|c| c.starts_with(&mine) || is_jump(c))
        {
            reqs.push(tables::del_rule(Family::Inet, r));
        }
    }
    if has_map {
        reqs.push(tables::del_set_in(Family::Inet, NAT_TABLE, &map));
    }
    let chains = s.chains_in(NAT_TABLE)?;
    for c in [SVC_PREROUTING, SVC_OUTPUT, SERVICES] {
        if chains.iter().any(|x| x == c) {
            reqs.push(tables::del_chain_in(Family::Inet, NAT_TABLE, c));
        }
    }
    s.apply(&reqs)
}

/// Our chains that `existing` lacks (table and portmap's chains are
/// declared by `nat_table::declare`).
fn declare(out: &mut Vec<Request>, existing: &[String]) {
    let has = |n: &str| existing.iter().any(|c| c == n);
    if !has(SERVICES) {
        out.push(tables::new_chain_in(
            Family::Inet,
            NAT_TABLE,
            SERVICES,
            None,
        ));
    }
    for (name, hook) in [
        (SVC_PREROUTING, NF_INET_PRE_ROUTING),
        (SVC_OUTPUT, NF_INET_LOCAL_OUT),
    ] {
        if !has(name) {
            out.push(tables::new_chain_in(
                Family::Inet,
                NAT_TABLE,
                name,
                Some(("nat", hook, NF_IP_PRI_NAT_DST - 1)),
            ));
        }
    }
}

fn jump_rules() -> [RuleSpec; 2] {
    let jump = |chain, text: &str| {
        rule(
            chain,
            text.to_string(),
            vec![expr::verdict(expr::NFT_JUMP, Some(SERVICES))],
        )
    };
    [
        jump(SVC_PREROUTING, JUMP_PREROUTING),
        jump(SVC_OUTPUT, JUMP_OUTPUT),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc<'a>(backends: &'a [Ipv4Addr], ports: &'a [ServicePort]) -> ServiceRules<'a> {
        ServiceRules {
            id: "abc123",
            name: "web",
            vip: Some(Ipv4Addr::new(10, 0, 0, 2)),
            backends,
            ports,
            mesh: None,
        }
    }

    #[test]
    fn rules_follow_the_task_count_and_claim_published_ports() {
        let b = [Ipv4Addr::new(10, 0, 0, 3), Ipv4Addr::new(10, 0, 0, 4)];
        let p = [ServicePort {
            proto: Proto::Tcp,
            published: 8080,
            target: 80,
        }];
        let rules = svc(&b, &p).desired();
        assert_eq!(rules.len(), 4);
        assert!(rules[0].comment.contains("vip 10.0.0.2 n=2"));
        let pm = rules.iter().find(|r| r.comment.contains("pm ")).unwrap();
        assert_eq!(claim_in(&pm.comment), Some(claim(&p[0])));
        // No task: only the masquerade stays, nothing points at an empty map.
        let none = svc(&[], &p).desired();
        assert_eq!(none.len(), 1);
        assert!(none[0].comment.contains("masq-vip"));
        // The routing mesh: one more rule, translated traffic leaving
        // through the overlay takes this host's mesh address.
        let mesh = ServiceRules {
            mesh: Some(Mesh {
                bridge: "vxbr4096",
                address: Ipv4Addr::new(10, 0, 0, 9),
            }),
            ..svc(&b, &p)
        };
        let with = mesh.desired();
        assert_eq!(with.len(), 5);
        let m = with.iter().find(|r| r.comment.contains("mesh ")).unwrap();
        assert_eq!(m.chain, nat_table::POSTROUTING);
        assert!(
            m.comment.contains("mesh vxbr4096 10.0.0.9"),
            "{}",
            m.comment
        );
        let idle = ServiceRules {
            backends: &[],
            ..mesh
        };
        assert!(!idle.desired().iter().any(|r| r.comment.contains("mesh ")));
    }

    #[test]
    fn ids_are_checked() {
        for bad in ["", "ABC", "a b", "a/b", &"a".repeat(65)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_id("x7k2").is_ok());
    }
}
