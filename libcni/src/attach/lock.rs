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

use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;

use fs2::FileExt;

use crate::error::{Error, Result};

/// Where the lock files live: tmpfs, so nothing survives a reboot.
pub const LOCK_DIR: &str = "/run/cni/attach";

/// A held lock; released on drop (closing the file releases the flock).
#[derive(Debug)]
pub struct NetworkLock {
    _file: File,
}

impl NetworkLock {
    /// Shared: held by ADDs while they ensure the network's rules.
    pub fn shared(network: &str, bridge: &str) -> Result<Self> {
        let file = open(network, bridge)?;
        file.lock_shared()
            .map_err(|e| Error::from_io(format_args!("lock network {network}"), e))?;
        Ok(NetworkLock { _file: file })
    }

    /// Exclusive: held by a DEL while it decides to remove the rules.
    pub fn exclusive(network: &str, bridge: &str) -> Result<Self> {
        let file = open(network, bridge)?;
        file.lock_exclusive()
            .map_err(|e| Error::from_io(format_args!("lock network {network}"), e))?;
        Ok(NetworkLock { _file: file })
    }
}

fn path(network: &str, bridge: &str) -> PathBuf {
    // Both are validated names without '/'.
    PathBuf::from(LOCK_DIR).join(format!("{network}@{bridge}.lock"))
}

fn open(network: &str, bridge: &str) -> Result<File> {
    let p = path(network, bridge);
    let open = || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
    };
    match open() {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(LOCK_DIR)
                .map_err(|e| Error::from_io(format_args!("create {LOCK_DIR}"), e))?;
            open().map_err(|e| Error::from_io(format_args!("open {}", p.display()), e))
        }
        Err(e) => Err(Error::from_io(format_args!("open {}", p.display()), e)),
    }
}
