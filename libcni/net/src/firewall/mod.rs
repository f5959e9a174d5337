//! nftables rules for bridge networks with Docker's semantics, in tables we
//! own (`inet cni_rs`, `bridge cni_rs`; `tables.rs` shows the layout), spoken
//! over NETLINK_NETFILTER directly: one exec of `nft` costs more than a
//! whole bridge ADD may take.
//!
//! What is per network and what per container:
//! - per network, made once by [`ensure_network`] and removed by
//!   [`remove_network`] (or [`gc`] with no valid attachment): masquerade of
//!   the network's subnets leaving through any other interface than its
//!   bridge, and Docker's two-stage isolation between isolated bridges;
//! - per container, only when the bridge asks for a MAC spoof check:
//!   two set elements carrying the attachment's identity, removed by
//!   [`del_container`] or [`gc`]. Masquerade needs nothing per container
//!   (the subnet rule covers every address), so a plain ADD or DEL does no
//!   nftables change at all once the network's rules exist.
//!
//! Every function works on the calling thread's current network namespace.
//! Changes are atomic nf_tables transactions; processes changing the same
//! namespace are serialised by a file lock (`lock.rs`), because rules,
//! unlike tables, chains and set elements, cannot be added idempotently.
//! Existence is decided from one dump of our table: every rule and element
//! carries an owner tag in its comment (`ident.rs`).
//!
//! Costs to know: adding is a fraction of a millisecond; any transaction
//! that deletes something waits for an RCU grace period in the kernel
//! (10-20 ms here), so DEL callers run [`del_container`] concurrently with
//! the veth deletion, and functions skip the transaction when nothing is
//! there to delete.

pub mod conntrack;
mod expr;
mod ident;
mod lock;
mod nat_table;
mod nl;
pub mod portmap;
pub mod services;
mod socket;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use ipnetwork::IpNetwork;
use nix::errno::Errno;

use crate::netlink::{check_ifname, format_mac, Mac};
use crate::transport::NlError;
use cni_spec::error::{Error, Result};
use lock::NetnsLock;
use socket::{NfSocket, Request};
use tables::{ElemInfo, Family, RuleInfo, RuleSpec};

pub use tables::TABLE;

/// The firewall side of one bridge network on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFirewall {
    /// The network's name (the conflist `name`): owner of the rules.
    pub network: String,
    /// The network's bridge device.
    pub bridge: String,
    /// Subnets to masquerade (host bits are ignored).
    pub subnets: Vec<IpNetwork>,
    /// Masquerade traffic from `subnets` leaving through another interface.
    pub masquerade: bool,
    /// Drop forwarded traffic between this bridge and other isolated ones.
    pub isolate: bool,
}

/// Make the network's rules exactly what `fw` describes: add missing ones,
/// remove ones left by an older config of the same network. Idempotent and
/// safe to call from many processes at once; when all is in place it costs
/// one dump and changes nothing.
pub fn ensure_network(fw: &NetworkFirewall) -> Result<()> {
    validate_network(fw)?;
    let desired = desired_rules(fw);
    let mut s = Session::open(true)?;
    let existing = s.rules(Family::Inet)?;
    let mut present: HashSet<(&str, &str)> = HashSet::new();
    let mut stale: Vec<&RuleInfo> = Vec::new();
    for r in &existing {
        let Some(c) = r.comment.as_deref() else {
            continue;
        };
        if !ident::of_network(c, &fw.network) {
            continue;
        }
        let wanted = desired.iter().any(|d| d.chain == r.chain && d.comment == c);
        // A second copy (never made by us, but repairable) is stale too.
        if !wanted || !present.insert((r.chain.as_str(), c)) {
            stale.push(r);
        }
    }
    let missing: Vec<&RuleSpec> = desired
        .iter()
        .filter(|d| !present.contains(&(d.chain, d.comment.as_str())))
        .collect();
    if missing.is_empty() && stale.is_empty() {
        return Ok(());
    }
    let mut reqs = Vec::new();
    if desired.is_empty() && stale.len() == existing.len() {
        reqs.push(tables::del_table(Family::Inet));
    } else {
        if !missing.is_empty() {
            let chains = s.chains(Family::Inet)?;
            tables::declare_inet(&mut reqs, &chains);
        }
        reqs.extend(stale.iter().map(|r| tables::del_rule(Family::Inet, r)));
        reqs.extend(missing.iter().map(|r| tables::new_rule(r)));
    }
    s.apply(&reqs)
}

/// Remove everything `network` owns: its rules, its containers' elements,
/// and our tables once nothing else is left in them. Nothing there is
/// success. The caller decides that the network's last container left; it
/// must keep a concurrent ADD of the same network from calling
/// [`ensure_network`] between that decision and this call (a per-network
/// lock of its own), or the ADD's container would lose its masquerade.
pub fn remove_network(network: &str) -> Result<()> {
    validate_name(network)?;
    let mut s = Session::open(true)?;
    let mut reqs = plan_inet_removal(&mut s, network)?;
    reqs.extend(plan_bridge_removal(&mut s, |c| {
        ident::of_network(c, network)
    })?);
    s.apply(&reqs)
}

/// CHECK: the network's rules are all there, and no outdated ones.
pub fn check_network(fw: &NetworkFirewall) -> Result<()> {
    validate_network(fw)?;
    let desired = desired_rules(fw);
    let mut s = Session::open(false)?;
    let existing = s.rules(Family::Inet)?;
    let mut problems = Vec::new();
    for d in &desired {
        if !existing
            .iter()
            .any(|r| r.chain == d.chain && r.comment.as_deref() == Some(d.comment.as_str()))
        {
            problems.push(format!(
                "missing rule in inet {TABLE} {}: {:?}",
                d.chain, d.comment
            ));
        }
    }
    for r in &existing {
        let Some(c) = r.comment.as_deref() else {
            continue;
        };
        if ident::of_network(c, &fw.network)
            && !desired.iter().any(|d| d.chain == r.chain && d.comment == c)
        {
            problems.push(format!(
                "unexpected rule in inet {TABLE} {}: {c:?}",
                r.chain
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::io(format!(
            "firewall of network {:?}: {}",
            fw.network,
            problems.join("; ")
        )))
    }
}

/// Whether any rule of `network` is in place (for callers deciding whether
/// a network is set up on this host).
pub fn network_rules_present(network: &str) -> Result<bool> {
    validate_name(network)?;
    let mut s = Session::open(false)?;
    Ok(s.rules(Family::Inet)?.iter().any(|r| {
        r.comment
            .as_deref()
            .is_some_and(|c| ident::of_network(c, network))
    }))
}

/// macspoofchk: frames entering the bridge from `host_veth` must carry
/// `mac` as source. Idempotent.
pub fn add_spoofcheck(
    network: &str,
    container_id: &str,
    ifname: &str,
    host_veth: &str,
    mac: &Mac,
) -> Result<()> {
    validate_attachment(network, container_id, ifname)?;
    check_ifname(host_veth)?;
    let comment = ident::container_comment(network, container_id, ifname);
    let mut s = Session::open(true)?;
    let rules = s.rules(Family::Bridge)?;
    let mut reqs = Vec::new();
    let rule_present = rules
        .iter()
        .any(|r| r.comment.as_deref() == Some(ident::SPOOFCHECK_RULE_COMMENT));
    if !rule_present {
        tables::declare_bridge(&mut reqs);
        reqs.push(tables::new_rule(&tables::spoofcheck_rule()));
    }
    reqs.push(tables::new_elems(
        Family::Bridge,
        tables::SPOOF_PORTS,
        &[(tables::port_key(host_veth), comment.clone())],
    ));
    reqs.push(tables::new_elems(
        Family::Bridge,
        tables::SPOOF_ALLOWED,
        &[(tables::allowed_key(host_veth, mac), comment)],
    ));
    s.apply(&reqs)
}

/// CHECK of a spoof check made by [`add_spoofcheck`].
pub fn check_spoofcheck(
    network: &str,
    container_id: &str,
    ifname: &str,
    host_veth: &str,
    mac: &Mac,
) -> Result<()> {
    validate_attachment(network, container_id, ifname)?;
    check_ifname(host_veth)?;
    let mut s = Session::open(false)?;
    let rule_present = s
        .rules(Family::Bridge)?
        .iter()
        .any(|r| r.comment.as_deref() == Some(ident::SPOOFCHECK_RULE_COMMENT));
    let mine = |els: Option<Vec<ElemInfo>>, key: Vec<u8>| {
        els.unwrap_or_default().iter().any(|e| {
            e.key == key
                && e.comment
                    .as_deref()
                    .is_some_and(|c| ident::of_container(c, network, container_id, ifname))
        })
    };
    let port = mine(s.elems(tables::SPOOF_PORTS)?, tables::port_key(host_veth));
    let allowed = mine(
        s.elems(tables::SPOOF_ALLOWED)?,
        tables::allowed_key(host_veth, mac),
    );
    if rule_present && port && allowed {
        return Ok(());
    }
    Err(Error::io(format!(
        "macspoofchk for {host_veth} ({}) of container {container_id:?} ifname {ifname:?} \
         is not in place in bridge {TABLE} (rule: {rule_present}, port: {port}, mac: {allowed})",
        format_mac(mac)
    )))
}

/// Remove every per-container object of this attachment. Nothing there is
/// success, and then no transaction (and no kernel wait) happens.
pub fn del_container(network: &str, container_id: &str, ifname: &str) -> Result<()> {
    validate_attachment(network, container_id, ifname)?;
    let mut s = Session::open(true)?;
    let reqs = plan_bridge_removal(&mut s, |c| {
        ident::of_container(c, network, container_id, ifname)
    })?;
    s.apply(&reqs)
}

/// GC: remove the per-container objects of `network` whose attachment is
/// not in `valid` (container ID, ifname); with no valid attachment left,
/// the network's own rules go too.
pub fn gc(network: &str, valid: &[(&str, &str)]) -> Result<()> {
    validate_name(network)?;
    let keep: HashSet<String> = valid
        .iter()
        .map(|(id, ifname)| ident::ctr_key(id, ifname))
        .collect();
    let mut s = Session::open(true)?;
    let mut reqs = if valid.is_empty() {
        plan_inet_removal(&mut s, network)?
    } else {
        Vec::new()
    };
    reqs.extend(plan_bridge_removal(&mut s, |c| {
        ident::container_key_of(c, network).is_some_and(|k| !keep.contains(k))
    })?);
    s.apply(&reqs)
}

/// The rules `fw` asks for, without duplicates.
fn desired_rules(fw: &NetworkFirewall) -> Vec<RuleSpec> {
    let mut out: Vec<RuleSpec> = Vec::new();
    if fw.masquerade {
        for subnet in &fw.subnets {
            out.push(tables::masquerade_rule(&fw.network, &fw.bridge, subnet));
        }
    }
    if fw.isolate {
        out.push(tables::isolate_out_rule(&fw.network, &fw.bridge));
        out.push(tables::isolate_in_rule(&fw.network, &fw.bridge));
    }
    let mut seen = HashSet::new();
    out.retain(|r| seen.insert(r.comment.clone()));
    out
}

/// Deletion of `network`'s rules: the whole inet table if they are all
/// that is in it.
fn plan_inet_removal(s: &mut Session, network: &str) -> Result<Vec<Request>> {
    let rules = s.rules(Family::Inet)?;
    let mine: Vec<&RuleInfo> = rules
        .iter()
        .filter(|r| {
            r.comment
                .as_deref()
                .is_some_and(|c| ident::of_network(c, network))
        })
        .collect();
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    if mine.len() == rules.len() {
        return Ok(vec![tables::del_table(Family::Inet)]);
    }
    Ok(mine
        .iter()
        .map(|r| tables::del_rule(Family::Inet, r))
        .collect())
}

/// Deletion of the spoof-check elements whose comment `pick` selects: the
/// whole bridge table if no element would be left.
fn plan_bridge_removal(s: &mut Session, pick: impl Fn(&str) -> bool) -> Result<Vec<Request>> {
    let Some(ports) = s.elems(tables::SPOOF_PORTS)? else {
        return Ok(Vec::new());
    };
    let allowed = s.elems(tables::SPOOF_ALLOWED)?.unwrap_or_default();
    let picked = |els: &[ElemInfo]| -> Vec<usize> {
        els.iter()
            .enumerate()
            .filter(|(_, e)| e.comment.as_deref().is_some_and(&pick))
            .map(|(i, _)| i)
            .collect()
    };
    let (p, a) = (picked(&ports), picked(&allowed));
    if p.is_empty() && a.is_empty() {
        return Ok(Vec::new());
    }
    if p.len() == ports.len() && a.len() == allowed.len() {
        return Ok(vec![tables::del_table(Family::Bridge)]);
    }
    let mut reqs = Vec::new();
    for (set, els, idx) in [
        (tables::SPOOF_PORTS, &ports, &p),
        (tables::SPOOF_ALLOWED, &allowed, &a),
    ] {
        if !idx.is_empty() {
            let chosen: Vec<&ElemInfo> = idx.iter().map(|&i| &els[i]).collect();
            reqs.push(tables::del_elems(Family::Bridge, set, &chosen));
        }
    }
    Ok(reqs)
}

/// A socket on the current namespace, and its lock when we will change
/// things (a read-only check needs none: transactions are atomic).
struct Session {
    sock: NfSocket,
    _lock: Option<NetnsLock>,
}

impl Session {
    fn open(locked: bool) -> Result<Session> {
        let lock = if locked {
            Some(lock::lock_current_netns()?)
        } else {
            None
        };
        let sock = NfSocket::open()
            .map_err(|e| Error::from_io("nftables: open NETLINK_NETFILTER socket", e))?;
        Ok(Session { sock, _lock: lock })
    }

    /// The rules of our table of `family` (none if it does not exist).
    fn rules(&mut self, family: Family) -> Result<Vec<RuleInfo>> {
        let what = format!("list rules of {} {TABLE}", family.name());
        let objs = self
            .sock
            .dump(tables::GETRULE, family.proto(), &tables::rule_dump_filter())
            .map_err(|e| to_error(e, &what))?;
        Ok(objs.iter().filter_map(|o| tables::parse_rule(o)).collect())
    }

    /// The chains of our table of `family` (none if it does not exist).
    fn chains(&mut self, family: Family) -> Result<Vec<String>> {
        let what = format!("list chains of {} {TABLE}", family.name());
        let objs = self
            .sock
            .dump(tables::GETCHAIN, family.proto(), &[])
            .map_err(|e| to_error(e, &what))?;
        Ok(objs.iter().filter_map(|o| tables::parse_chain(o)).collect())
    }

    /// The rules of our inet table `table` (none if it does not exist).
    fn rules_in(&mut self, table: &'static str) -> Result<Vec<RuleInfo>> {
        let what = format!("list rules of inet {table}");
        let objs = self
            .sock
            .dump(
                tables::GETRULE,
                Family::Inet.proto(),
                &tables::rule_dump_filter_in(table),
            )
            .map_err(|e| to_error(e, &what))?;
        Ok(objs
            .iter()
            .filter_map(|o| tables::parse_rule_in(o, table))
            .collect())
    }

    /// The chains of our inet table `table` (none if it does not exist).
    fn chains_in(&mut self, table: &str) -> Result<Vec<String>> {
        let what = format!("list chains of inet {table}");
        let objs = self
            .sock
            .dump(tables::GETCHAIN, Family::Inet.proto(), &[])
            .map_err(|e| to_error(e, &what))?;
        Ok(objs
            .iter()
            .filter_map(|o| tables::parse_chain_in(o, table))
            .collect())
    }

    /// The names of the sets and maps of our inet table `table`.
    fn sets_in(&mut self, table: &str) -> Result<Vec<String>> {
        let what = format!("list sets of inet {table}");
        match self.sock.dump(tables::GETSET, Family::Inet.proto(), &[]) {
            Ok(objs) => Ok(objs
                .iter()
                .filter_map(|o| tables::parse_set_in(o, table))
                .collect()),
            Err(NlError::Kernel { errno, .. }) if errno == Errno::ENOENT as i32 => Ok(Vec::new()),
            Err(e) => Err(to_error(e, &what)),
        }
    }

    /// The elements of a set of the bridge table; None if it is missing.
    fn elems(&mut self, set: &str) -> Result<Option<Vec<ElemInfo>>> {
        let what = format!("list elements of bridge {TABLE} {set}");
        match self.sock.dump(
            tables::GETSETELEM,
            Family::Bridge.proto(),
            &tables::elem_dump_filter(set),
        ) {
            Ok(objs) => Ok(Some(
                objs.iter().flat_map(|o| tables::parse_elems(o)).collect(),
            )),
            Err(NlError::Kernel { errno, .. }) if errno == Errno::ENOENT as i32 => Ok(None),
            Err(e) => Err(to_error(e, &what)),
        }
    }

    fn apply(&mut self, reqs: &[Request]) -> Result<()> {
        self.sock.batch(reqs)
    }
}

/// Our error for a failed exchange: code 5 naming the object and the
/// kernel's reason, the errno kept (`crate::netlink::errno`).
fn to_error(e: NlError, what: &str) -> Error {
    e.into_error(format_args!("nftables: {what}"))
}

fn validate_name(network: &str) -> Result<()> {
    if network.is_empty() {
        return Err(Error::invalid_config("firewall: empty network name"));
    }
    Ok(())
}

fn validate_network(fw: &NetworkFirewall) -> Result<()> {
    validate_name(&fw.network)?;
    check_ifname(&fw.bridge)
}

fn validate_attachment(network: &str, container_id: &str, ifname: &str) -> Result<()> {
    validate_name(network)?;
    if container_id.is_empty() || ifname.is_empty() {
        return Err(Error::invalid_config(
            "firewall: container ID and interface name must not be empty",
        ));
    }
    Ok(())
}
