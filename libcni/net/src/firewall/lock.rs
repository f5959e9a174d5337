//! Serialises the plugin processes that change the same namespace's
//! ruleset. Tables, chains, sets and elements could be created idempotently
//! without it, but rules cannot (adding twice gives two copies), and
//! deleting a table "when empty" must not race with someone filling it. The
//! lock file is keyed by the namespace's inode, so processes working on
//! different namespaces (tests: one fake host each) never wait for each other.

use std::os::unix::fs::MetadataExt;

use cni_spec::error::{Error, Result};
use cni_state::lock::{self, FileLock, LockMode};

/// The calling thread's namespace (a test thread that unshared has its own).
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Held while we read-modify-write our tables; released on drop.
#[derive(Debug)]
pub(crate) struct NetnsLock {
    _lock: FileLock,
}

/// Take the exclusive lock of the calling thread's network namespace.
pub(crate) fn lock_current_netns() -> Result<NetnsLock> {
    let md = std::fs::metadata(THREAD_NETNS)
        .map_err(|e| Error::from_io(format_args!("firewall lock: stat {THREAD_NETNS}"), e))?;
    let name = lock_name(md.dev(), md.ino());
    lock::lock(&name, LockMode::Exclusive)
        .map(|l| NetnsLock { _lock: l })
        .map_err(|e| Error::from_io(format_args!("firewall lock {name}"), e))
}

/// The lock of one namespace, named by its identity.
pub(crate) fn lock_name(dev: u64, ino: u64) -> String {
    format!("nft-netns-{dev}-{ino}")
}
