//! Our thin synchronous rtnetlink layer. One `Netlink` owns one NETLINK_ROUTE
//! socket, bound to the namespace it was opened in, so a plugin holds one for
//! the host and one for the container and never has to switch namespaces
//! while it works.
//!
//! Every operation returns `crate::Error` (code 5, I/O) whose message names
//! the operation, the object and the kernel's reason, and keeps the errno as
//! a field of the error so callers can tell "already there" from "gone"
//! ([`errno`], [`is_exists`], [`is_not_found`]).
//!
//! Types of `netlink-packet-route` do not appear in this API: that crate
//! breaks often, and only this module should have to follow it.

mod addr;
mod bridge_vlan;
mod link;
mod neigh;
mod route;
mod socket;
pub mod sysctl;

use std::fmt;

use nix::errno::Errno;

use crate::netns::NetNs;
use cni_spec::error::{Error, Result};

pub use addr::{AddrOptions, AddrScope, Address};
pub use bridge_vlan::PortVlan;
pub use link::{
    BridgePortFlags, BridgeSpec, Link, MacvlanMode, MacvlanSpec, OperState, VethSpec, VlanSpec,
    VxlanInfo, VxlanSpec,
};
pub use neigh::{NeighFamily, NeighMode, Neighbour};
pub use route::{Route, RouteScope, RouteType, RT_TABLE_MAIN};

use crate::transport::NlError;
use socket::NlSocket;

/// A MAC address.
pub type Mac = [u8; 6];

/// A NETLINK_ROUTE socket and the operations we run over it.
#[derive(Debug)]
pub struct Netlink {
    sock: NlSocket,
}

impl Netlink {
    /// A socket in the calling thread's current network namespace.
    pub fn new() -> Result<Self> {
        let sock = NlSocket::open().map_err(|e| Error::from_io("open netlink socket", e))?;
        Ok(Netlink { sock })
    }

    /// A socket in `ns`: enter it only long enough to open the socket, which
    /// stays bound to `ns` afterwards.
    pub fn new_in(ns: &NetNs) -> Result<Self> {
        ns.run(Self::new)?
            .map_err(|e| e.context(format_args!("in netns {}", ns.path().display())))
    }

    /// Run one request; `what` names the operation and object for errors.
    fn request(
        &mut self,
        msg: netlink_packet_route::RouteNetlinkMessage,
        flags: u16,
        what: impl fmt::Display,
    ) -> Result<Vec<netlink_packet_route::RouteNetlinkMessage>> {
        self.sock.request(msg, flags).map_err(|e| to_error(e, what))
    }
}

/// Turn a socket-level failure into our error, errno kept.
fn to_error(e: NlError, what: impl fmt::Display) -> Error {
    e.into_error(what)
}

/// "File exists" for 17: the text `ip` prints, without "(os error 17)".
pub(crate) use crate::transport::errno_text;

/// An error carrying `errno` the way netlink errors do, for other modules
/// (netns, sysctl) whose callers test for "does not exist" the same way.
pub(crate) fn with_errno(err: Error, errno: i32) -> Error {
    err.with_errno(errno)
}

/// The errno behind a netlink (or netns/sysctl) error, if it had one.
pub fn errno(err: &Error) -> Option<i32> {
    err.errno
}

/// The object already exists (EEXIST): concurrent ADDs treat it as success.
pub fn is_exists(err: &Error) -> bool {
    errno(err) == Some(Errno::EEXIST as i32)
}

/// The object is gone: DEL treats it as success. The kernel says so in
/// several ways: ENODEV (link), EADDRNOTAVAIL (address), ESRCH (route),
/// ENOENT (neighbour, FDB entry, namespace path).
pub fn is_not_found(err: &Error) -> bool {
    matches!(
        errno(err).map(Errno::from_raw),
        Some(Errno::ENODEV | Errno::ENOENT | Errno::ESRCH | Errno::EADDRNOTAVAIL)
    )
}

/// "aa:bb:cc:dd:ee:ff", lower case, as `ip link` prints it.
pub fn format_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse "aa:bb:cc:dd:ee:ff" (or with '-' separators).
pub fn parse_mac(s: &str) -> Result<Mac> {
    let bad = || Error::invalid_config(format!("invalid MAC address {s:?}"));
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for byte in mac.iter_mut() {
        let p = parts.next().ok_or_else(bad)?;
        if p.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Interface names the kernel accepts: 1-15 bytes, no '/', ':' or whitespace,
/// not "." or "..". Checked before creating or renaming so a bad config gets
/// code 7 (invalid config) and a clear message instead of EINVAL.
pub fn check_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_config(format!(
            "invalid interface name {name:?}: 1-15 bytes, no '/', ':' or spaces"
        )))
    }
}

#[cfg(test)]
mod tests;
