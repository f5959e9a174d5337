//! File locks, and the one folder where the suite's run-time locks live.
//!
//! Every lock is a `flock(2)` on a file: what Go's `filemutex` (used by the
//! reference host-local) takes, so ours and the reference's exclude each
//! other on the same file, and the kernel releases it when its holder dies,
//! so a killed plugin never blocks anybody.

use std::fs::{DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

use crate::dir::{errno_io, open_no_follow};

/// Where the locks that guard kernel state (a network's bridge and rules, a
/// namespace's nftables tables, a VLAN sub-interface) live: tmpfs, so they
/// vanish at boot with the state they protect.
pub const LOCK_DIR: &str = "/run/cni-rs/locks";

/// Shared locks exclude only exclusive ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// A `flock(2)` held for the life of the value.
#[derive(Debug)]
pub struct FileLock {
    file: Flock<File>,
}

impl FileLock {
    /// Block until the lock is ours. Retries on `EINTR`.
    pub fn acquire(mut file: File, mode: LockMode) -> io::Result<FileLock> {
        let arg = match mode {
            LockMode::Shared => FlockArg::LockShared,
            LockMode::Exclusive => FlockArg::LockExclusive,
        };
        loop {
            match Flock::lock(file, arg) {
                Ok(file) => return Ok(FileLock { file }),
                Err((f, Errno::EINTR)) => file = f,
                Err((_, e)) => return Err(errno_io(e)),
            }
        }
    }

    /// Open (creating) `path` without following a symlink and lock it
    /// exclusively.
    pub fn open(path: &Path) -> io::Result<FileLock> {
        let file = open_no_follow(path, OFlag::O_RDONLY | OFlag::O_CREAT, 0o600)?;
        Self::acquire(file, LockMode::Exclusive)
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}

/// Take the run-time lock `name` (a plain file name, e.g.
/// `net-mynet@cni0`) in [`LOCK_DIR`], creating the folder as needed.
pub fn lock(name: &str, mode: LockMode) -> io::Result<FileLock> {
    lock_in(Path::new(LOCK_DIR), name, mode)
}

/// [`lock`] in another folder (tests).
pub fn lock_in(dir: &Path, name: &str, mode: LockMode) -> io::Result<FileLock> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain lock name"),
        ));
    }
    let path = dir.join(name);
    let open = || open_no_follow(&path, OFlag::O_RDONLY | OFlag::O_CREAT, 0o600);
    let file = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            open()?
        }
        other => other?,
    };
    FileLock::acquire(file, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_exclude_an_exclusive_one() {
        let dir = std::env::temp_dir().join(format!("cni-state-lock-{}", std::process::id()));
        let a = lock_in(&dir, "n", LockMode::Shared).unwrap();
        let _b = lock_in(&dir, "n", LockMode::Shared).unwrap();
        let f = open_no_follow(&dir.join("n"), OFlag::O_RDONLY, 0).unwrap();
        let busy = Flock::lock(f, FlockArg::LockExclusiveNonblock);
        assert!(matches!(busy, Err((_, Errno::EWOULDBLOCK))));
        drop(a);
        assert!(lock_in(&dir, "../x", LockMode::Shared).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
