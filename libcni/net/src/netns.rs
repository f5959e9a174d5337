//! Network namespace handles. A `NetNs` is an open namespace file
//! (`/var/run/netns/<name>`, `/proc/<pid>/ns/net`); holding the fd keeps the
//! namespace alive while we work in it, even if the runtime unmounts it.
//!
//! Plugins enter a namespace only briefly (to open a netlink socket, to write
//! a sysctl) with [`NetNs::run`], which always switches the calling thread
//! back. Namespace switches are per thread, so this is safe in a
//! multi-threaded test process as well as in a one-shot plugin.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use crate::netlink::{errno, errno_text, with_errno};
use cni_spec::error::{code, Error, Result};

/// The calling thread's own namespace (not `/proc/self`, which is the main
/// thread's and differs in a thread that unshared).
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

// `NS_GET_NSTYPE` = `_IO(0xb7, 0x3)`: which kind of namespace an fd is.
nix::ioctl_none!(ns_get_nstype, 0xb7, 0x3);

/// An open network namespace.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Open and check a namespace path. A path that does not exist gives an
    /// error for which [`is_not_exist`] is true (DEL treats that as done);
    /// a path that is not a network namespace gives `invalid_netns`.
    pub fn open(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| {
            let n = e.raw_os_error().unwrap_or(Errno::EIO as i32);
            let msg = if n == Errno::ENOENT as i32 {
                format!("netns {} does not exist", path.display())
            } else {
                format!("open netns {}: {}", path.display(), errno_text(n))
            };
            with_errno(Error::invalid_netns(msg), n)
        })?;
        check_is_netns(&file, path)?;
        Ok(NetNs {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Like [`NetNs::open`], but a missing path is `Ok(None)`.
    pub fn open_if_exists(path: impl AsRef<Path>) -> Result<Option<NetNs>> {
        match NetNs::open(path) {
            Ok(ns) => Ok(Some(ns)),
            Err(e) if is_not_exist(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The calling thread's current network namespace.
    pub fn current() -> Result<NetNs> {
        NetNs::open(THREAD_NETNS)
    }

    /// The path this handle was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (device, inode) of the namespace: two handles with the same identity
    /// are the same namespace, whatever paths they were opened from.
    pub fn identity(&self) -> Result<(u64, u64)> {
        let md = self
            .file
            .metadata()
            .map_err(|e| Error::from_io(format_args!("stat netns {}", self.path.display()), e))?;
        Ok((md.dev(), md.ino()))
    }

    /// Whether both handles refer to the same namespace.
    pub fn same_as(&self, other: &NetNs) -> Result<bool> {
        Ok(self.identity()? == other.identity()?)
    }

    /// Whether this is the calling thread's current namespace. The skeleton
    /// refuses a CNI_NETNS equal to the plugin's own: configuring it would
    /// change the host.
    pub fn is_current(&self) -> Result<bool> {
        self.same_as(&NetNs::current()?)
    }

    /// Run `f` inside this namespace on the calling thread, then switch back,
    /// also when `f` panics. Entering costs a syscall or two; when this is
    /// already the current namespace nothing is switched.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let orig = NetNs::current()?;
        if self.same_as(&orig)? {
            return Ok(f());
        }
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
            with_errno(
                Error::io(format!("enter netns {}: {}", self.path.display(), e.desc())),
                e as i32,
            )
        })?;
        let _back = Restore(orig);
        Ok(f())
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for NetNs {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Switches the thread back to its original namespace when dropped.
struct Restore(NetNs);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(e) = setns(self.0.file.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Going on in the wrong namespace would configure the wrong
            // network (possibly the host's); stopping is the only safe move.
            eprintln!(
                "fatal: cannot return to netns {}: {}",
                self.0.path.display(),
                e.desc()
            );
            std::process::abort();
        }
    }
}

/// True if `err` says the namespace path does not exist (DEL: nothing to do).
pub fn is_not_exist(err: &Error) -> bool {
    err.code == code::INVALID_NETNS && errno(err) == Some(Errno::ENOENT as i32)
}

fn check_is_netns(file: &File, path: &Path) -> Result<()> {
    let st = fstatfs(file).map_err(|e| {
        Error::invalid_netns(format!("statfs netns {}: {}", path.display(), e.desc()))
    })?;
    if st.filesystem_type() != NSFS_MAGIC {
        return Err(Error::invalid_netns(format!(
            "{} is not a network namespace (not a namespace file)",
            path.display()
        )));
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns an int.
    let kind = unsafe { ns_get_nstype(file.as_raw_fd()) }.map_err(|e| {
        Error::invalid_netns(format!(
            "cannot tell the namespace type of {}: {}",
            path.display(),
            e.desc()
        ))
    })?;
    if kind != CloneFlags::CLONE_NEWNET.bits() {
        return Err(Error::invalid_netns(format!(
            "{} is a namespace, but not a network namespace",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_is_not_exist() {
        let e = NetNs::open("/nonexistent/netns/x").unwrap_err();
        assert_eq!(e.code, code::INVALID_NETNS);
        assert!(is_not_exist(&e), "{e:?}");
        assert!(e.msg.contains("does not exist"), "{}", e.msg);
        assert!(NetNs::open_if_exists("/nonexistent/netns/x")
            .unwrap()
            .is_none());
    }

    #[test]
    fn regular_file_is_not_a_netns() {
        let e = NetNs::open("/proc/self/status").unwrap_err();
        assert_eq!(e.code, code::INVALID_NETNS);
        assert!(!is_not_exist(&e));
        assert!(e.msg.contains("not a network namespace"), "{}", e.msg);
    }

    #[test]
    fn other_namespace_kind_is_rejected() {
        let e = NetNs::open("/proc/self/ns/uts").unwrap_err();
        assert_eq!(e.code, code::INVALID_NETNS);
        assert!(e.msg.contains("not a network namespace"), "{}", e.msg);
    }

    #[test]
    fn current_is_current() {
        let ns = NetNs::current().unwrap();
        assert!(ns.is_current().unwrap());
        let v = ns.run(|| 7).unwrap();
        assert_eq!(v, 7);
    }

    /// Needs root: unshares a fresh netns in a child thread.
    #[test]
    fn root_run_switches_and_returns() {
        crate::testing::require_root();
        std::thread::spawn(|| {
            let outer = NetNs::current().unwrap();
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).unwrap();
            let inner = NetNs::current().unwrap();
            assert!(!inner.same_as(&outer).unwrap());
            let tid = nix::unistd::gettid();
            let by_path = NetNs::open(format!("/proc/self/task/{tid}/ns/net")).unwrap();
            assert!(by_path.same_as(&inner).unwrap());
            let seen = outer
                .run(|| NetNs::current().unwrap().identity().unwrap())
                .unwrap();
            assert_eq!(seen, outer.identity().unwrap());
            // Back home after run, also after a panic inside it.
            assert!(inner.is_current().unwrap());
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                outer.run(|| panic!("boom")).unwrap();
            }));
            assert!(r.is_err());
            assert!(inner.is_current().unwrap());
        })
        .join()
        .unwrap();
    }
}
