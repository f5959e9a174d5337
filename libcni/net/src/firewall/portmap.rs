//! Published ports (`portmap`): DNAT of local destinations to a container,
//! in our table `inet cni_rs_nat` (`nat_table.rs` shows the layout).
//!
//! Unlike the reference, a port is never taken over silently: under the
//! namespace's firewall lock, [`publish`] reads every rule of the table and
//! refuses a mapping that collides with another attachment's (same family,
//! protocol and port, and the same address or either one "any"), so two
//! parallel ADDs cannot both win. Every rule carries its attachment's tag,
//! so [`unpublish`] and [`gc`] remove exactly an attachment's rules, and
//! the table goes with the last of them.

use std::collections::HashSet;
use std::net::IpAddr;

use super::nat_table::{self, claim_in, owner_in, NAT_TABLE};
use super::socket::Request;
use super::tables::{self, Family, RuleInfo, RuleSpec};
use super::{ident, validate_attachment, validate_name, Session};
use cni_spec::error::{code, Error, Result};

pub use super::nat_table::{claim_of, Claim, PortMapping, Proto};

/// The table's name, for callers that inspect it.
pub const TABLE: &str = NAT_TABLE;

/// Code of "the host port is already published": plugin-specific (the
/// spec's table has no "in use"), the same code macvlan uses for an
/// address another host answers for.
pub const PORT_TAKEN: u32 = code::PLUGIN_BASE;

/// One attachment's published ports.
#[derive(Debug, Clone)]
pub struct Publication<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub ifname: &'a str,
    /// The container's addresses; a mapping applies to each of its family
    /// (a mapping with a host address only to that address's family).
    pub container_ips: &'a [IpAddr],
    pub mappings: &'a [PortMapping],
    /// Masquerade hairpin and 127.0.0.1 connections (the reference's `snat`).
    pub snat: bool,
    /// Masquerade every published connection (the reference's `masqAll`).
    pub masq_all: bool,
}

impl Publication<'_> {
    fn tag(&self) -> String {
        ident::ctr_tag(self.network, self.container_id, self.ifname)
    }

    /// The rules this publication asks for, without duplicates.
    fn desired(&self) -> Vec<RuleSpec> {
        let tag = self.tag();
        let readable = nat_table::readable(self.network, self.container_id, self.ifname);
        let mut out = Vec::new();
        for ip in self.container_ips {
            let mut any = false;
            for m in self.mappings {
                if m.host_ip.is_some_and(|h| h.is_ipv6() != ip.is_ipv6()) {
                    continue;
                }
                any = true;
                out.push(nat_table::dnat_rule(&tag, &readable, m, ip));
            }
            if any && self.snat {
                out.extend(nat_table::masq_rules(&tag, &readable, ip, self.masq_all));
            }
        }
        let mut seen = HashSet::new();
        out.retain(|r| seen.insert(r.comment.clone()));
        out
    }

    /// The host ports this publication claims.
    pub fn claims(&self) -> Vec<Claim> {
        let mut out: Vec<Claim> = Vec::new();
        for ip in self.container_ips {
            for m in self.mappings {
                if m.host_ip.is_some_and(|h| h.is_ipv6() != ip.is_ipv6()) {
                    continue;
                }
                let c = claim_of(m, ip.is_ipv6());
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }
}

/// Make the attachment's rules exactly what `p` asks for, refusing (code
/// [`PORT_TAKEN`], nothing changed) ports another attachment publishes.
/// Idempotent: a repeated ADD changes nothing.
///
/// `host_check` runs once those claims are found free, under the same lock,
/// before anything is written: the caller's refusal of ports a host socket
/// holds. In that order a port another container publishes is refused
/// naming that container, even when the runtime also holds the port open
/// for it (podman's conmon keeps a listening socket per published port,
/// which a socket check alone could only report as "a socket of the host").
pub fn publish(p: &Publication, host_check: impl FnOnce(&[Claim]) -> Result<()>) -> Result<()> {
    validate_attachment(p.network, p.container_id, p.ifname)?;
    let desired = p.desired();
    let claims = p.claims();
    let mut s = Session::open(true)?;
    let existing = s.rules_in(NAT_TABLE)?;

    let mut taken = Vec::new();
    for r in &existing {
        let Some(c) = r.comment.as_deref() else {
            continue;
        };
        if ident::of_container(c, p.network, p.container_id, p.ifname) {
            continue;
        }
        let Some(other) = claim_in(c) else {
            continue;
        };
        if let Some(mine) = claims.iter().find(|m| m.collides(&other)) {
            taken.push(format!(
                "host port {mine} is already published by {} (as {other})",
                owner_in(c)
            ));
        }
    }
    if !taken.is_empty() {
        taken.dedup();
        return Err(Error::new(PORT_TAKEN, taken.join("; ")));
    }
    host_check(&claims)?;

    let mut reqs = Vec::new();
    let mut wanted = desired.clone();
    wanted.extend(nat_table::jump_rules());
    let mut present: HashSet<(&str, &str)> = HashSet::new();
    let mut stale: Vec<&RuleInfo> = Vec::new();
    for r in &existing {
        let Some(c) = r.comment.as_deref() else {
            continue;
        };
        let shared = is_jump(c);
        if !shared && !ident::of_container(c, p.network, p.container_id, p.ifname) {
            continue;
        }
        let want = wanted.iter().any(|d| d.chain == r.chain && d.comment == c);
        if !want || !present.insert((r.chain.as_str(), c)) {
            stale.push(r);
        }
    }
    let missing: Vec<&RuleSpec> = wanted
        .iter()
        .filter(|d| !present.contains(&(d.chain, d.comment.as_str())))
        .collect();
    if desired.is_empty() && stale.is_empty() {
        // Nothing to publish for this container's families.
        return Ok(());
    }
    if !missing.is_empty() {
        let chains = s.chains_in(NAT_TABLE)?;
        nat_table::declare(&mut reqs, &chains);
    }
    reqs.extend(stale.iter().map(|r| tables::del_rule(Family::Inet, r)));
    reqs.extend(missing.iter().map(|r| tables::new_rule(r)));
    s.apply(&reqs)
}

/// CHECK: every rule of `p` and the shared jumps are in place, and no
/// other rule of this attachment.
pub fn check(p: &Publication) -> Result<()> {
    validate_attachment(p.network, p.container_id, p.ifname)?;
    let desired = p.desired();
    let mut s = Session::open(false)?;
    let existing = s.rules_in(NAT_TABLE)?;
    let has = |d: &RuleSpec| {
        existing
            .iter()
            .any(|r| r.chain == d.chain && r.comment.as_deref() == Some(d.comment.as_str()))
    };
    let mut problems: Vec<String> = Vec::new();
    if !desired.is_empty() {
        for j in nat_table::jump_rules() {
            if !has(&j) {
                problems.push(format!("missing rule in inet {NAT_TABLE} {}", j.chain));
            }
        }
    }
    for d in &desired {
        if !has(d) {
            problems.push(format!(
                "missing rule in inet {NAT_TABLE} {}: {:?}",
                d.chain, d.comment
            ));
        }
    }
    for r in &existing {
        let Some(c) = r.comment.as_deref() else {
            continue;
        };
        if ident::of_container(c, p.network, p.container_id, p.ifname)
            && !desired.iter().any(|d| d.chain == r.chain && d.comment == c)
        {
            problems.push(format!(
                "unexpected rule in inet {NAT_TABLE} {}: {c:?}",
                r.chain
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::io(format!(
        "published ports of container {:?} ifname {:?}: {}",
        p.container_id,
        p.ifname,
        problems.join("; ")
    )))
}

/// A claim given up by [`unpublish`] or [`gc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    pub claim: Claim,
    /// Whether its rule ever translated a connection (its counter): only
    /// then can conntrack hold entries it made. Walking conntrack costs
    /// milliseconds (the kernel's table is one for all namespaces), so a
    /// DEL of a port nobody used skips it.
    pub used: bool,
}

/// Remove the attachment's rules (the table with the last of them).
/// Returns the claims released, so the caller can flush their conntrack
/// entries. Nothing there is success, with no transaction.
pub fn unpublish(network: &str, container_id: &str, ifname: &str) -> Result<Vec<Released>> {
    validate_attachment(network, container_id, ifname)?;
    let mut s = Session::open(true)?;
    remove(&mut s, |c| {
        ident::of_container(c, network, container_id, ifname)
    })
}

/// GC: remove the rules of `network`'s attachments not in `valid`
/// (container ID, ifname). Returns the claims released.
pub fn gc(network: &str, valid: &[(&str, &str)]) -> Result<Vec<Released>> {
    validate_name(network)?;
    let keep: HashSet<String> = valid
        .iter()
        .map(|(id, ifname)| ident::ctr_key(id, ifname))
        .collect();
    let mut s = Session::open(true)?;
    remove(&mut s, |c| {
        ident::container_key_of(c, network).is_some_and(|k| !keep.contains(k))
    })
}

/// Every claim published in this namespace, with its owner (for callers
/// that want to show what is taken).
pub fn published() -> Result<Vec<(Claim, String)>> {
    let mut s = Session::open(false)?;
    Ok(s.rules_in(NAT_TABLE)?
        .iter()
        .filter_map(|r| {
            let c = r.comment.as_deref()?;
            Some((claim_in(c)?, owner_in(c)))
        })
        .collect())
}

fn is_jump(comment: &str) -> bool {
    comment == nat_table::JUMP_PREROUTING || comment == nat_table::JUMP_OUTPUT
}

/// Delete the rules whose comment `pick` selects; the whole table when only
/// the shared jumps would be left.
fn remove(s: &mut Session, pick: impl Fn(&str) -> bool) -> Result<Vec<Released>> {
    let rules = s.rules_in(NAT_TABLE)?;
    let mine: Vec<&RuleInfo> = rules
        .iter()
        .filter(|r| r.comment.as_deref().is_some_and(&pick))
        .collect();
    if mine.is_empty() {
        return Ok(Vec::new());
    }
    let mut claims: Vec<Released> = Vec::new();
    for r in &mine {
        let Some(claim) = r.comment.as_deref().and_then(claim_in) else {
            continue;
        };
        // A counter we cannot read counts as used: flushing is harmless.
        let used = r.packets.is_none_or(|n| n > 0);
        match claims.iter_mut().find(|c| c.claim == claim) {
            Some(c) => c.used |= used,
            None => claims.push(Released { claim, used }),
        }
    }
    let others = rules
        .iter()
        .filter(|r| !r.comment.as_deref().is_some_and(|c| pick(c) || is_jump(c)))
        .count();
    let reqs: Vec<Request> = if others == 0 {
        vec![tables::del_table_named(Family::Inet, NAT_TABLE)]
    } else {
        mine.iter()
            .map(|r| tables::del_rule(Family::Inet, r))
            .collect()
    };
    s.apply(&reqs)?;
    Ok(claims)
}
