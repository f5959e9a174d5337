//! A per-network file lock between ADD and the last DEL.
//!
//! The last DEL of a network removes its shared firewall rules once no
//! container port is left on the bridge. Without a lock, an ADD could attach
//! its port and find the rules present just before that DEL removes them,
//! leaving the new container without masquerade or isolation. So: ADD
//! attaches its port first, then ensures the rules under a shared lock
//! (ADDs do not wait for each other); DEL counts ports and removes the rules
//! under an exclusive lock. Either DEL sees the new port, or ADD's ensure
//! runs after the removal and puts the rules back.

use cni_spec::error::{Error, Result};
use cni_state::lock::{self, FileLock, LockMode};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct NetworkLock {
    _lock: FileLock,
}

impl NetworkLock {
    /// Shared: held by ADDs while they ensure the network's rules.
    pub fn shared(network: &str, bridge: &str) -> Result<Self> {
        Self::take(network, bridge, LockMode::Shared)
    }

    /// Exclusive: held by a DEL while it decides to remove the rules.
    pub fn exclusive(network: &str, bridge: &str) -> Result<Self> {
        Self::take(network, bridge, LockMode::Exclusive)
    }

    fn take(network: &str, bridge: &str, mode: LockMode) -> Result<Self> {
        // Both are validated names without '/'.
        lock::lock(&format!("net-{network}@{bridge}"), mode)
            .map(|l| NetworkLock { _lock: l })
            .map_err(|e| Error::from_io(format_args!("lock network {network}"), e))
    }
}
