//! Serialises the plugin processes that change the same namespace's
//! ruleset. Tables, chains, sets and elements could be created idempotently
//! without it, but rules cannot (adding twice gives two copies), and
//! deleting a table "when empty" must not race with someone filling it. The
//! lock file is keyed by the namespace's inode, so processes working on
//! different namespaces (tests: one fake host each) never wait for each other.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// Where the lock files live: tmpfs, so they vanish at boot with the
/// rulesets they protect.
pub(crate) const LOCK_DIR: &str = "/run/cni-rs";

/// The calling thread's namespace (a test thread that unshared has its own).
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Held while we read-modify-write our tables; released on drop.
#[derive(Debug)]
pub(crate) struct NetnsLock {
    _lock: Flock<File>,
}

/// Take the exclusive lock of the calling thread's network namespace.
pub(crate) fn lock_current_netns() -> Result<NetnsLock> {
    let md = std::fs::metadata(THREAD_NETNS)
        .map_err(|e| Error::from_io(format_args!("firewall lock: stat {THREAD_NETNS}"), e))?;
    lock_path(&lock_file(Path::new(LOCK_DIR), md.dev(), md.ino()))
}

pub(crate) fn lock_file(dir: &Path, dev: u64, ino: u64) -> PathBuf {
    dir.join(format!("nft-netns-{dev}-{ino}.lock"))
}

fn lock_path(path: &Path) -> Result<NetnsLock> {
    if let Some(dir) = path.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                Error::from_io(format_args!("firewall lock: create {}", dir.display()), e)
            })?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::from_io(format_args!("firewall lock: open {}", path.display()), e))?;
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(lock) => return Ok(NetnsLock { _lock: lock }),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => {
                return Err(Error::io(format!(
                    "firewall lock: flock {}: {}",
                    path.display(),
                    e.desc()
                )))
            }
        }
    }
}
