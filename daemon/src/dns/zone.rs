//! What one network answers: every name of its records, with and without
//! the network's domain, and the reverse (PTR) names of their addresses.
//! Built once per change from the records, read by every query.

use std::collections::HashMap;
use std::net::IpAddr;

use cni_dns::Record;

#[derive(Debug, Default, Clone)]
pub struct NetworkZone {
    pub network: String,
    /// Whether names outside the records go upstream (false: Docker's
    /// `--internal`). When the network's records disagree, forwarding wins
    /// only if every record allows it.
    pub forward: bool,
    /// The domains of the network's records (normally one).
    pub domains: Vec<String>,
    /// Lower-case name (bare and with domain) -> addresses.
    names: HashMap<String, Vec<IpAddr>>,
    /// Address -> fully qualified container names.
    ptr: HashMap<IpAddr, Vec<String>>,
}

impl NetworkZone {
    pub fn build<'a>(network: &str, records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut z = NetworkZone {
            network: network.to_string(),
            forward: true,
            ..Default::default()
        };
        for r in records {
            z.forward &= r.forward;
            if !z.domains.contains(&r.domain) {
                z.domains.push(r.domain.clone());
            }
            for n in &r.names {
                let fqdn = format!("{n}.{}", r.domain);
                for key in [n.clone(), fqdn.clone()] {
                    let v = z.names.entry(key).or_default();
                    for a in &r.addresses {
                        if !v.contains(a) {
                            v.push(*a);
                        }
                    }
                }
            }
            // PTR names the container, not its aliases (as Docker does).
            if let Some(n) = r.names.first() {
                let fqdn = format!("{n}.{}", r.domain);
                for a in &r.addresses {
                    let v = z.ptr.entry(*a).or_default();
                    if !v.contains(&fqdn) {
                        v.push(fqdn.clone());
                    }
                }
            }
        }
        z
    }

    /// Addresses of a lower-case name without trailing dot.
    pub fn lookup(&self, name: &str) -> Option<&[IpAddr]> {
        self.names.get(name).map(Vec::as_slice)
    }

    /// Names of an address.
    pub fn reverse(&self, addr: &IpAddr) -> Option<&[String]> {
        self.ptr.get(addr).map(Vec::as_slice)
    }

    /// Whether `name` is one of our domains or below one.
    pub fn owns(&self, name: &str) -> bool {
        self.domains.iter().any(|d| {
            name == d || (name.ends_with(d.as_str()) && name[..name.len() - d.len()].ends_with('.'))
        })
    }

    pub fn is_apex(&self, name: &str) -> bool {
        self.domains.iter().any(|d| d == name)
    }
}
