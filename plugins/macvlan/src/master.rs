//! The master (Docker: parent) link the macvlans hang off: named in the
//! config, or the interface of the default route; a missing `parent.id`
//! name is an 802.1Q sub-interface created on demand (see [`crate::vlan`]).

use cni_net::netlink::{Link, Netlink, RT_TABLE_MAIN};
use cni_plugin::log;
use cni_plugin::rollback::Undo;
use cni_spec::{Error, Result};

use crate::conf::Conf;
use crate::vlan;

/// The master's name: the configured one, else the default route's link
/// in the namespace of `nl` (IPv4 first, then IPv6, as the reference).
pub fn name(conf: &Conf, nl: &mut Netlink) -> Result<String> {
    if let Some(m) = &conf.master {
        return Ok(m.clone());
    }
    for v6 in [false, true] {
        for r in nl.routes(Some(v6))? {
            if r.dst.is_none() && r.table.unwrap_or(RT_TABLE_MAIN) == RT_TABLE_MAIN {
                if let Some(oif) = r.oif {
                    return Ok(nl.link_by_index(oif)?.name);
                }
            }
        }
    }
    Err(Error::invalid_config(
        "\"master\" is not set and there is no default route to take it from",
    ))
}

/// The master link, found or (for a VLAN name on the host) created; drop
/// releases a VLAN claim unless [`Master::commit`] is called.
pub struct Master {
    pub link: Link,
    /// Removes the VLAN user record this attachment added.
    claim: Option<Undo<'static>>,
}

impl Master {
    /// Look up the master in the namespace of `nl`. `vlan_user` is the
    /// attachment's record for VLAN tracking; None where VLANs are not
    /// created (the master in the container, with `linkInContainer`).
    pub fn find(conf: &Conf, nl: &mut Netlink, vlan_user: Option<&str>) -> Result<Master> {
        let name = name(conf, nl)?;
        if let Some(user) = vlan_user.filter(|_| vlan::parse_name(&name).is_some()) {
            let (link, claimed) = vlan::acquire(nl, &name, user)?;
            let claim = claimed.then(|| release_claim(name, user.to_string()));
            return Ok(Master { link, claim });
        }
        match nl.link_by_name_opt(&name)? {
            Some(link) => Ok(Master { link, claim: None }),
            None => Err(Error::invalid_config(format!(
                "\"master\" {name:?} does not exist"
            ))),
        }
    }

    /// The requested MTU must fit the master's (the reference's rule).
    pub fn check_mtu(&self, mtu: Option<u32>) -> Result<()> {
        match mtu {
            Some(m) if m > self.link.mtu => Err(Error::invalid_config(format!(
                "invalid \"mtu\" {m}: larger than the MTU {} of master {}",
                self.link.mtu, self.link.name
            ))),
            _ => Ok(()),
        }
    }

    /// ADD succeeded: keep the VLAN claim.
    pub fn commit(self) {
        if let Some(claim) = self.claim {
            claim.commit();
        }
    }
}

/// The undo of a VLAN claim by `user`.
fn release_claim(vlan_name: String, user: String) -> Undo<'static> {
    Undo::boxed(move || {
        let res = Netlink::new().and_then(|mut nl| vlan::release(&mut nl, &vlan_name, &user));
        if let Err(e) = res {
            log::error(&format!("rollback: release vlan {vlan_name}: {e}"));
        }
    })
}

/// STATUS: can an ADD find (or create) the master?
pub fn available(conf: &Conf, nl: &mut Netlink) -> Result<()> {
    let name = name(conf, nl)?;
    if nl.link_by_name_opt(&name)?.is_some() {
        return Ok(());
    }
    if let Some((parent, _)) = vlan::parse_name(&name) {
        if nl.link_by_name_opt(parent)?.is_some() {
            return Ok(());
        }
    }
    Err(Error::not_available(format!(
        "master {name:?} does not exist"
    )))
}
