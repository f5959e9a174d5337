//! Attaching containers to a Linux bridge with a veth pair: the parts the
//! `bridge` and `vxlan-overlay` plugins share.
//!
//! - [`names`]: the host end's name, derived from (containerID, ifname), so
//!   DEL and GC find it without state.
//! - [`bridge`]: make sure the bridge exists and carries the gateway address;
//!   both are shared by concurrent ADDs, so "already there" is success.
//! - [`veth`]: create the pair with the container end directly in the
//!   container's namespace, enslave the host end, wait for it to come up,
//!   tear it down again; a guard removes the pair if ADD fails later.
//! - [`container`]: addresses, routes and sysctls inside the container from
//!   an IPAM result, and the CHECK of the same.
//! - [`check`]: CHECK of the pair and port against `prevResult`.
//! - [`flow`]: ADD, DEL, CHECK, STATUS and GC of such a network, once,
//!   driving the hooks of a plugin's [`flow::BridgeNetwork`].
//! - [`lock`]: the per-network lock that keeps "last container left, remove
//!   the network's rules" from racing a concurrent ADD.

pub mod bridge;
pub mod check;
pub mod container;
pub mod flow;
pub mod lock;
pub mod names;
pub mod veth;
