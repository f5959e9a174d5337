//! Shared code of the plugin suite: the CNI wire types, the plugin skeleton,
//! namespace and netlink helpers, and (later) the runtime and CNM mapping.

pub mod arp;
pub mod attach;
pub mod cnm;
pub mod error;
pub mod fault;
pub mod firewall;
pub mod ifconfig;
pub mod invoke;
pub mod ipam;
pub mod log;
pub mod netlink;
pub mod netns;
pub mod runtime;
pub mod skel;
pub mod spec;
pub mod store;

pub use error::{Error, Result};
