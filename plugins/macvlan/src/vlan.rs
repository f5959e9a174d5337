//! Docker's `parent: eth0.20`: an 802.1Q sub-interface the driver creates
//! on demand and removes when nothing uses it any more.
//!
//! CNI has no "network created/removed" events, only attachments, so the
//! VLAN link lives as long as one attachment uses it. The users are kept as
//! empty files under `/run/cni/macvlan/<host netns dev>-<ino>-<vlan>/`
//! (tmpfs: a reboot forgets them together with the links): `owned` says
//! we created the link (a link the administrator made is never removed),
//! `u:<network>:<containerID>:<ifname>` is one user (':' appears in none
//! of the three, so the name splits back). The kernel cannot tell us: the
//! macvlans sit in container namespaces, invisible from the host's.
//!
//! One lock file for all VLANs serialises the few ADD/DEL/GC that use a
//! VLAN parent; it is never removed, so there is no lock-on-unlinked-file race.

use std::collections::HashSet;
use std::path::Path;

use cni_net::netlink::{self, Link, Netlink, VlanSpec};
use cni_net::netns::NetNs;
use cni_plugin::log;
use cni_spec::Attachment;
use cni_spec::{Error, Result};
use cni_state::{Dir, Durability, FileLock, LockMode};

const STATE_ROOT: &str = "/run/cni/macvlan";
const OWNED: &str = "owned";
const USER_PREFIX: &str = "u:";

/// `eth0.20` -> (`eth0`, 20): the names Docker (and `ip link`) give VLANs.
pub fn parse_name(name: &str) -> Option<(&str, u16)> {
    let (parent, id) = name.rsplit_once('.')?;
    if parent.is_empty() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u16 = id.parse().ok()?;
    (1..=4094).contains(&id).then_some((parent, id))
}

/// The user record of one attachment.
pub fn user_of(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{USER_PREFIX}{network}:{container_id}:{ifname}")
}

/// The VLAN's state, locked for the life of the value.
pub struct VlanState {
    root: Dir,
    key: String,
    _lock: FileLock,
}

impl VlanState {
    /// Lock the state of VLAN `name` in the plugin's (host) namespace.
    pub fn lock(name: &str) -> Result<VlanState> {
        let (dev, ino) = NetNs::current()?.identity()?;
        let root = Dir::create_all(Path::new(STATE_ROOT), 0o700)
            .map_err(|e| Error::from_io(format_args!("create {STATE_ROOT}"), e))?;
        let lock = cni_state::lock::lock("macvlan-vlan", LockMode::Exclusive)
            .map_err(|e| Error::from_io(format_args!("lock macvlan-vlan"), e))?;
        Ok(VlanState {
            root,
            key: format!("{dev}-{ino}-{name}"),
            _lock: lock,
        })
    }

    fn dir(&self, create: bool) -> Result<Option<Dir>> {
        match self.root.subdir(&self.key, create.then_some(0o700)) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("open", e)),
        }
    }

    fn io(&self, what: &str, e: std::io::Error) -> Error {
        Error::from_io(format_args!("{what} {STATE_ROOT}/{}", self.key), e)
    }

    /// Whether we created the link (and so may remove it).
    pub fn owned(&self) -> Result<bool> {
        let Some(d) = self.dir(false)? else {
            return Ok(false);
        };
        Ok(d.stat_at(OWNED).map_err(|e| self.io("stat", e))?.is_some())
    }

    fn touch(&self, name: &str) -> Result<()> {
        let d = self
            .dir(true)?
            .ok_or_else(|| Error::io("state dir vanished"))?;
        d.write_atomic(name, b"", 0o600, Durability::None)
            .map_err(|e| self.io("write", e))
    }

    pub fn set_owned(&self) -> Result<()> {
        self.touch(OWNED)
    }

    pub fn add_user(&self, user: &str) -> Result<()> {
        self.touch(user)
    }

    pub fn remove_user(&self, user: &str) -> Result<()> {
        if let Some(d) = self.dir(false)? {
            d.remove(user).map_err(|e| self.io("remove user from", e))?;
        }
        Ok(())
    }

    pub fn users(&self) -> Result<Vec<String>> {
        let Some(d) = self.dir(false)? else {
            return Ok(Vec::new());
        };
        let entries = d.entries().map_err(|e| self.io("list", e))?;
        Ok(entries
            .into_iter()
            .filter_map(|e| e.name.into_string().ok())
            .filter(|n| n.starts_with(USER_PREFIX))
            .collect())
    }

    /// Drop the users of `network` that GC's valid list does not name.
    pub fn retain_users(&self, network: &str, valid: &[Attachment]) -> Result<()> {
        let keep: HashSet<String> = valid
            .iter()
            .map(|a| user_of(network, &a.container_id, &a.ifname))
            .collect();
        let prefix = format!("{USER_PREFIX}{network}:");
        for u in self.users()? {
            if u.starts_with(&prefix) && !keep.contains(&u) {
                self.remove_user(&u)?;
            }
        }
        Ok(())
    }

    /// Forget the VLAN: remove its records (the lock stays).
    fn forget(&self) -> Result<()> {
        if let Some(d) = self.dir(false)? {
            for e in d.entries().map_err(|e| self.io("list", e))? {
                if let Ok(n) = e.name.into_string() {
                    d.remove(&n).map_err(|e| self.io("remove", e))?;
                }
            }
        }
        match std::fs::remove_dir(Path::new(STATE_ROOT).join(&self.key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io("remove", e)),
            _ => Ok(()),
        }
    }

    /// Remove the link if we own it and nobody uses it any more.
    pub fn remove_if_unused(&self, nl: &mut Netlink, name: &str) -> Result<()> {
        if !self.owned()? || !self.users()?.is_empty() {
            return Ok(());
        }
        if let Some(link) = nl.link_by_name_opt(name)? {
            if link.kind.as_deref() == Some("vlan") {
                match nl.delete_link(link.index) {
                    Err(e) if !netlink::is_not_found(&e) => return Err(e),
                    _ => log::debug(&format!("removed unused vlan {name}")),
                }
            }
        }
        self.forget()
    }
}

/// The VLAN link `name` (`parent.id`) for attachment `user`, created on the
/// parent if missing. Returns the link, and whether `user` was recorded
/// (only for links we own).
pub fn acquire(nl: &mut Netlink, name: &str, user: &str) -> Result<(Link, bool)> {
    let Some((parent, id)) = parse_name(name) else {
        return Err(Error::invalid_config(format!(
            "\"master\" {name:?} does not exist"
        )));
    };
    let state = VlanState::lock(name)?;
    let link = match nl.link_by_name_opt(name)? {
        Some(l) => l,
        None => create(nl, &state, name, parent, id)?,
    };
    if !state.owned()? {
        return Ok((link, false));
    }
    state.add_user(user)?;
    Ok((link, true))
}

fn create(nl: &mut Netlink, state: &VlanState, name: &str, parent: &str, id: u16) -> Result<Link> {
    let Some(p) = nl.link_by_name_opt(parent)? else {
        return Err(Error::invalid_config(format!(
            "\"master\" {name:?} does not exist, nor does its VLAN parent {parent:?}"
        )));
    };
    let spec = VlanSpec {
        name: name.to_string(),
        parent: p.index,
        id,
        mtu: None,
    };
    nl.create_vlan(&spec).map_err(|e| {
        if netlink::errno(&e) == Some(nix::errno::Errno::EOPNOTSUPP as i32) {
            e.context(format_args!(
                "\"master\" {name:?}: this kernel has no 802.1Q VLAN support (module 8021q)"
            ))
        } else {
            e
        }
    })?;
    state.set_owned()?;
    let link = nl.link_by_name(name)?;
    nl.set_link_up(link.index)?;
    log::debug(&format!("created vlan {name} (id {id} on {parent})"));
    Ok(link)
}

/// Undo [`acquire`] for `user`: forget it and remove the link when it was
/// the last. Links we did not create are left alone.
pub fn release(nl: &mut Netlink, name: &str, user: &str) -> Result<()> {
    let state = VlanState::lock(name)?;
    if !state.owned()? {
        return Ok(());
    }
    state.remove_user(user)?;
    state.remove_if_unused(nl, name)
}

/// GC: drop users of `network` not in `valid`, then the link if unused.
pub fn gc(nl: &mut Netlink, name: &str, network: &str, valid: &[Attachment]) -> Result<()> {
    let state = VlanState::lock(name)?;
    if !state.owned()? {
        return Ok(());
    }
    state.retain_users(network, valid)?;
    state.remove_if_unused(nl, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_names() {
        assert_eq!(parse_name("eth0.20"), Some(("eth0", 20)));
        assert_eq!(parse_name("bond0.1.4094"), Some(("bond0.1", 4094)));
        for bad in [
            "eth0",
            "eth0.",
            ".20",
            "eth0.0",
            "eth0.4095",
            "eth0.2x",
            "eth0.+2",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn user_records_split_back() {
        let u = user_of("net1", "c.1-x_y", "eth0");
        assert_eq!(u, "u:net1:c.1-x_y:eth0");
        assert!(u.starts_with(&format!("{USER_PREFIX}net1:")));
    }
}
