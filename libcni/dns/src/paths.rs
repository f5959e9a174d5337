//! The daemon's state folder: one per host by default, one per test when
//! overridden, so parallel tests each get their own daemon.

use std::path::{Path, PathBuf};

/// Default state folder: tmpfs, so records vanish at boot with the
/// namespaces they describe.
pub const DEFAULT_DIR: &str = "/run/cni-rs/dns";

/// Environment override of the state folder (plugin and daemon).
pub const ENV_DIR: &str = "CNI_RS_DNS_DIR";

/// The daemon's files, all below one folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// `explicit` (config), else `$CNI_RS_DNS_DIR`, else [`DEFAULT_DIR`].
    pub fn resolve(explicit: Option<&str>) -> Self {
        let from_env = std::env::var(ENV_DIR).ok().filter(|s| !s.is_empty());
        match explicit.filter(|s| !s.is_empty()) {
            Some(p) => StateDir::new(p),
            None => StateDir::new(from_env.unwrap_or_else(|| DEFAULT_DIR.to_string())),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The control socket (root only, 0600).
    pub fn socket(&self) -> PathBuf {
        self.root.join("daemon.sock")
    }

    /// Held (flock) by the running daemon for its whole life.
    pub fn daemon_lock(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }

    /// Where a daemon started on demand writes its stderr.
    pub fn log_file(&self) -> PathBuf {
        self.root.join("daemon.log")
    }

    /// `records/<network>/<containerID>-<ifname>.json`.
    pub fn records(&self) -> PathBuf {
        self.root.join("records")
    }
}
