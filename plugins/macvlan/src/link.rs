//! The container's macvlan link: creation (with rollback), removal, and the
//! checks of CHECK.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use cni_net::ifconfig;
use cni_net::netlink::{self, format_mac, Mac, MacvlanSpec, Netlink};
use cni_net::netns::{self, NetNs};
use cni_plugin::log;
use cni_plugin::rollback::Guarded;
use cni_plugin::skel::Request;
use cni_spec::{CniResult, Interface};
use cni_spec::{Error, Result};
use nix::errno::Errno;

use crate::conf::Conf;

/// A macvlan in the container's namespace. Holds the container's netlink
/// socket for the steps that configure it.
pub struct ContainerLink {
    nl: Netlink,
    index: u32,
    name: String,
    mac: Mac,
}

/// A new [`ContainerLink`], deleted on drop unless committed.
pub type NewContainerLink = Guarded<ContainerLink, fn(&mut ContainerLink)>;

impl ContainerLink {
    /// Create the macvlan on `parent` (an index in the namespace of
    /// `master_nl`) directly in `ns`, under a random temporary name: the
    /// kernel checks the name against the creating namespace too, so the
    /// final name could clash with a host link. Then rename it in `ns`.
    pub fn create(
        conf: &Conf,
        master_nl: &mut Netlink,
        parent: u32,
        ns: &NetNs,
        req: &Request,
    ) -> Result<NewContainerLink> {
        let mut nl = Netlink::new_in(ns)?;
        let mut spec = MacvlanSpec {
            name: temp_name(),
            parent,
            mode: conf.mode,
            mtu: conf.mtu,
            mac: conf.mac,
            netns: Some(ns),
            bc_queue_len: conf.bc_queue_len,
        };
        if let Err(e) = master_nl.create_macvlan(&spec) {
            // A temporary name left by a crashed ADD: one more try.
            if !netlink::is_exists(&e) {
                return Err(explain_create_error(e, conf));
            }
            spec.name = temp_name();
            master_nl
                .create_macvlan(&spec)
                .map_err(|e| explain_create_error(e, conf))?;
        }
        let tmp = nl.link_by_name(&spec.name)?;
        let mut link: NewContainerLink = Guarded::new(
            ContainerLink {
                nl,
                index: tmp.index,
                name: spec.name.clone(),
                mac: tmp.mac.unwrap_or_default(),
            },
            ContainerLink::remove,
        );
        link.nl.rename_link(tmp.index, &req.ifname).map_err(|e| {
            if netlink::is_exists(&e) {
                Error::io(format!(
                    "container already has an interface named {}",
                    req.ifname
                ))
            } else {
                e
            }
        })?;
        link.name = req.ifname.clone();
        Ok(link)
    }

    pub fn set_up(&mut self) -> Result<()> {
        self.nl.set_link_up(self.index)
    }

    /// Addresses, up, routes: the IPAM result applied (all of its IPs are
    /// this link's, interface 0 of the result).
    pub fn configure(&mut self, result: &CniResult) -> Result<()> {
        ifconfig::configure(&mut self.nl, self.index, result, 0)
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// The result's entry for this link.
    pub fn interface(&self, ns: &NetNs) -> Interface {
        Interface {
            name: self.name.clone(),
            mac: Some(format_mac(&self.mac)),
            sandbox: Some(ns.path().display().to_string()),
            ..Default::default()
        }
    }

    /// The undo of [`ContainerLink::create`].
    fn remove(&mut self) {
        if let Err(e) = self.nl.delete_link(self.index) {
            if !netlink::is_not_found(&e) {
                log::error(&format!("rollback: delete {}: {e}", self.name));
            }
        }
    }
}

/// `mv` + 8 random hex digits. RandomState is seeded from the OS's random
/// source once per process, which is all the randomness this needs.
fn temp_name() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("mv{:08x}", h.finish() as u32)
}

/// Kernel refusals that are really config errors, said in config terms.
fn explain_create_error(e: Error, conf: &Conf) -> Error {
    match netlink::errno(&e).map(Errno::from_raw) {
        Some(Errno::EADDRINUSE) if conf.mac.is_some() => Error::invalid_config(format!(
            "invalid \"mac\": {} is already used by another macvlan of this master",
            conf.mac.map(|m| format_mac(&m)).unwrap_or_default()
        )),
        Some(Errno::EBUSY) => {
            e.context("the master is in use by a passthru macvlan, or passthru needs it to itself")
        }
        _ => e,
    }
}

/// DEL: remove the container's link; a missing namespace or link is done.
pub fn delete(req: &Request) -> Result<()> {
    let Some(path) = &req.netns else {
        return Ok(());
    };
    let ns = match NetNs::open(path) {
        Ok(ns) => ns,
        Err(e) if netns::is_not_exist(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut nl = Netlink::new_in(&ns)?;
    match nl.delete_link_by_name(&req.ifname) {
        Err(e) if !netlink::is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// CHECK: the link is a macvlan in the configured mode with the MAC of the
/// result.
pub fn verify(nl: &mut Netlink, conf: &Conf, iface: &Interface) -> Result<()> {
    let link = nl
        .link_by_name(&iface.name)
        .map_err(|e| e.context("container interface of prevResult"))?;
    if link.kind.as_deref() != Some("macvlan") {
        return Err(Error::io(format!(
            "container interface {} is not a macvlan",
            link.name
        )));
    }
    if link.macvlan_mode != Some(conf.mode) {
        return Err(Error::io(format!(
            "container interface {} is in macvlan mode {:?}, the config says {:?}",
            link.name, link.macvlan_mode, conf.mode
        )));
    }
    if let Some(want) = &iface.mac {
        let have = link.mac.map(|m| format_mac(&m)).unwrap_or_default();
        if !want.eq_ignore_ascii_case(&have) {
            return Err(Error::io(format!(
                "container interface {} has MAC {have}, prevResult says {want}",
                link.name
            )));
        }
    }
    Ok(())
}
