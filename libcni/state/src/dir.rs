//! Crash-safe state on disk, shared by host-local's lease store and the
//! result cache.
//!
//! Two failure modes shaped this module. Power loss after a plain
//! `write(2)` leaves zero-byte files that later block teardown (cni #1055),
//! so every write goes to a temporary file that is synced and then renamed
//! into place: a reader sees the old content or the new one, never a torn
//! one. And state directories are writable by whoever owns them, so a
//! planted symlink must never redirect a write: everything below a [`Dir`]
//! is opened relative to its descriptor with `O_NOFOLLOW`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;
use nix::fcntl::{self, OFlag, RenameFlags};

use crate::lock::{FileLock, LockMode};
use nix::sys::stat::{self, FileStat, Mode, SFlag};
use nix::unistd::{self, UnlinkatFlags};

/// How hard a write insists on reaching the disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Content and directory entry synced: survives power loss once we return.
    Full,
    /// Content synced before the rename, directory entry not: after power
    /// loss the file holds its old or its new content (never zero bytes),
    /// but the rename itself may be lost.
    Content,
    /// No sync: for caches that are validated on read and can be rebuilt.
    None,
}

/// Prefix of our temporary files. Starts with a dot so that directory
/// listings that expect data (IP addresses, cache keys) skip it.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Largest file [`Dir::read`] returns; state files are a few hundred bytes.
pub const MAX_READ: u64 = 4 << 20;

pub(crate) fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// A directory held open, so that every name below it is resolved from
/// this descriptor and never through a symlink planted in the path.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

/// One name in a directory listing, with its inode number (free from
/// `getdents`, and enough to notice a file that was replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    pub ino: u64,
}

impl Dir {
    /// Open an existing directory by path. The path itself may go through
    /// symlinks (an administrator may link `/var/lib/cni` elsewhere); what
    /// lies below is opened with [`Dir::subdir`].
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)?;
        // SAFETY: open returned a fresh descriptor that nothing else owns.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Open a path, creating missing directories (mode `mode`) like
    /// `mkdir -p`.
    pub fn create_all(path: &Path, mode: u32) -> io::Result<Dir> {
        match Self::open(path) {
            Ok(d) => Ok(d),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(mode)
                    .create(path)?;
                Self::open(path)
            }
            Err(e) => Err(e),
        }
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A subdirectory, never through a symlink (`ELOOP`/`ENOTDIR` if the
    /// name is one). Created with `mode` when `create` is set and missing.
    pub fn subdir(&self, name: &str, create: Option<u32>) -> io::Result<Dir> {
        check_name(name)?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let open = || fcntl::openat(Some(self.raw()), name, flags, Mode::empty());
        let fd = match open() {
            Err(Errno::ENOENT) if create.is_some() => {
                let mode = Mode::from_bits_truncate(create.unwrap_or(0o755));
                match stat::mkdirat(Some(self.raw()), name, mode) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(errno_io(e)),
                }
                open()
            }
            other => other,
        }
        .map_err(errno_io)?;
        // SAFETY: openat returned a fresh descriptor that nothing else owns.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Open a regular file below this directory without following a
    /// symlink; `O_NOFOLLOW` and `O_CLOEXEC` are always added.
    pub fn open_file(&self, name: &str, flags: OFlag, mode: u32) -> io::Result<File> {
        check_name(name)?;
        let fd = fcntl::openat(
            Some(self.raw()),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(errno_io)?;
        // SAFETY: openat returned a fresh descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(file)
    }

    /// The content of a regular file; `None` when it does not exist. A
    /// symlink fails with `ELOOP`, anything but a regular file with
    /// `InvalidData`.
    pub fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let mut f = match self.open_file(name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !f.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name} is not a regular file"),
            ));
        }
        let mut buf = Vec::new();
        (&mut f).take(MAX_READ + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > MAX_READ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name} is larger than {MAX_READ} bytes"),
            ));
        }
        Ok(Some(buf))
    }

    /// Replace `name` with `bytes` atomically: temp file, optional sync,
    /// rename over the old one. Readers see the old or the new content.
    pub fn write_atomic(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        durability: Durability,
    ) -> io::Result<()> {
        check_name(name)?;
        let tmp = self.write_temp(bytes, mode, durability)?;
        let res = fcntl::renameat(Some(self.raw()), tmp.as_str(), Some(self.raw()), name)
            .map_err(errno_io);
        if res.is_err() {
            let _ = self.remove(&tmp);
        }
        res?;
        if durability == Durability::Full {
            self.sync()?;
        }
        Ok(())
    }

    /// Overwrite `name` (created if missing) with `bytes` in place: no
    /// temp file, no rename, no new inode. Not atomic: for hints and caches
    /// that are read under a lock and validated (a torn or stale content
    /// must be harmless). Cheaper than [`Dir::write_atomic`] where renaming
    /// over an existing file makes ext4 start writeback (`auto_da_alloc`).
    pub fn write_in_place(&self, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let f = self.open_file(name, OFlag::O_WRONLY | OFlag::O_CREAT, mode)?;
        if !f.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name} is not a regular file"),
            ));
        }
        f.write_all_at(bytes, 0)?;
        f.set_len(bytes.len() as u64)
    }

    /// Create `name` holding `bytes` only if no file of that name exists,
    /// with the content complete from the first moment it is visible
    /// (`O_EXCL` semantics plus atomic content). `Ok(false)` when the name
    /// is taken, by anything, symlinks included.
    pub fn create_exclusive(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        durability: Durability,
    ) -> io::Result<bool> {
        check_name(name)?;
        let created = match self.create_unnamed(name, bytes, mode, durability)? {
            Some(created) => created,
            None => {
                let tmp = self.write_temp(bytes, mode, durability)?;
                let res = self.link_noreplace(&tmp, name);
                let _ = self.remove(&tmp);
                res?
            }
        };
        if created && durability == Durability::Full {
            self.sync()?;
        }
        Ok(created)
    }

    /// [`Dir::create_exclusive`] without durability, reusing a file parked
    /// in `pool` by [`Dir::park_or_remove`] when there is one. Why: a new
    /// inode is most of a small write's cost on some filesystems (0.7 ms on
    /// an ext4 without journal, whose allocator reads the inode table past
    /// recently deleted inodes); rewriting a parked file and renaming it in
    /// without replacing costs ~30 µs. Same guarantees: the content is
    /// complete when the name appears, and a taken name is `Ok(false)`.
    /// Callers serialise every user of `pool` (one lock) and park only
    /// files of the mode they create.
    pub fn create_exclusive_reusing(
        &self,
        pool: &Dir,
        name: &str,
        bytes: &[u8],
        mode: u32,
    ) -> io::Result<bool> {
        check_name(name)?;
        match self.take_parked(pool, name, bytes)? {
            Some(created) => Ok(created),
            None => self.create_exclusive(name, bytes, mode, Durability::None),
        }
    }

    /// Fill a parked file with `bytes` and rename it to `name`; `None`
    /// when the pool is empty or the filesystem cannot rename without
    /// replacing.
    fn take_parked(&self, pool: &Dir, name: &str, bytes: &[u8]) -> io::Result<Option<bool>> {
        use std::os::unix::fs::FileExt;
        let Some(parked) = pool
            .entries()?
            .into_iter()
            .find_map(|e| e.name.into_string().ok())
        else {
            return Ok(None);
        };
        let file = match pool.open_file(&parked, OFlag::O_WRONLY, 0) {
            Ok(f) if f.metadata()?.is_file() => f,
            // Not one of ours (a symlink, a directory): take it out of the way.
            _ => {
                let _ = pool.remove(&parked);
                return Ok(None);
            }
        };
        file.write_all_at(bytes, 0)?;
        file.set_len(bytes.len() as u64)?;
        drop(file);
        let flags = RenameFlags::RENAME_NOREPLACE;
        match fcntl::renameat2(
            Some(pool.raw()),
            parked.as_str(),
            Some(self.raw()),
            name,
            flags,
        ) {
            Ok(()) => Ok(Some(true)),
            Err(Errno::EEXIST) => Ok(Some(false)),
            Err(Errno::EINVAL) | Err(Errno::ENOSYS) => Ok(None),
            Err(e) => Err(errno_io(e)),
        }
    }

    /// Remove the file `name`, or rather park it in `pool` (a directory on
    /// the same filesystem) for [`Dir::create_exclusive_reusing`] while the
    /// pool holds fewer than `cap` files. `Ok(false)` if it was not there.
    pub fn park_or_remove(&self, name: &str, pool: &Dir, cap: usize) -> io::Result<bool> {
        check_name(name)?;
        match self.stat_at(name)? {
            None => return Ok(false),
            // Only regular files are parked; anything else is removed (or
            // refused, for a directory) as before.
            Some(st) if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() => {
                return self.remove(name)
            }
            Some(_) => {}
        }
        if pool.entries()?.len() < cap {
            let flags = RenameFlags::RENAME_NOREPLACE;
            match fcntl::renameat2(Some(self.raw()), name, Some(pool.raw()), name, flags) {
                Ok(()) => return Ok(true),
                Err(Errno::ENOENT) => return Ok(false),
                // Taken in the pool, no NOREPLACE here...: just remove it.
                Err(_) => {}
            }
        }
        self.remove(name)
    }

    /// The fast path of [`Dir::create_exclusive`]: an unnamed `O_TMPFILE`
    /// inode, filled, then linked in (one directory operation, and no temp
    /// name left behind if we die). `None` where the filesystem or a
    /// missing `/proc` does not allow it.
    fn create_unnamed(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        durability: Durability,
    ) -> io::Result<Option<bool>> {
        let flags = OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        let fd = match fcntl::openat(Some(self.raw()), ".", flags, Mode::from_bits_truncate(mode)) {
            Ok(fd) => fd,
            Err(Errno::EOPNOTSUPP) | Err(Errno::EISDIR) | Err(Errno::EINVAL) => return Ok(None),
            Err(e) => return Err(errno_io(e)),
        };
        // SAFETY: a fresh descriptor we own.
        let mut file = unsafe { File::from_raw_fd(fd) };
        file.write_all(bytes)?;
        if durability != Durability::None {
            file.sync_data()?;
        }
        let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        match unistd::linkat(
            None,
            proc_path.as_str(),
            Some(self.raw()),
            name,
            fcntl::AtFlags::AT_SYMLINK_FOLLOW,
        ) {
            Ok(()) => Ok(Some(true)),
            Err(Errno::EEXIST) => Ok(Some(false)),
            Err(Errno::ENOENT) if !Path::new("/proc/self/fd").exists() => Ok(None),
            Err(e) => Err(errno_io(e)),
        }
    }

    /// `renameat2(RENAME_NOREPLACE)`, or `linkat` where the filesystem
    /// does not support the flag; both fail with `EEXIST` if `to` exists.
    /// The caller removes `from` either way (a no-op after the rename).
    fn link_noreplace(&self, from: &str, to: &str) -> io::Result<bool> {
        let d = Some(self.raw());
        match fcntl::renameat2(d, from, d, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(true),
            Err(Errno::EEXIST) => return Ok(false),
            Err(Errno::EINVAL) | Err(Errno::ENOSYS) => {}
            Err(e) => return Err(errno_io(e)),
        }
        match unistd::linkat(d, from, d, to, nix::fcntl::AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(errno_io(e)),
        }
    }

    /// A new uniquely named temp file holding `bytes`, synced per
    /// `durability`. Returns its name.
    fn write_temp(&self, bytes: &[u8], mode: u32, durability: Durability) -> io::Result<String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let mut attempt = 0;
        let (name, mut file) = loop {
            let name = format!(
                "{TEMP_PREFIX}{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            match self.open_file(&name, flags, mode) {
                Ok(f) => break (name, f),
                // A stale temp of an earlier process with our pid.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let res = file.write_all(bytes).and_then(|_| match durability {
            Durability::None => Ok(()),
            Durability::Content | Durability::Full => file.sync_data(),
        });
        if let Err(e) = res {
            drop(file);
            let _ = self.remove(&name);
            return Err(e);
        }
        Ok(name)
    }

    /// Remove a file (never a directory). `Ok(false)` if it was not there.
    pub fn remove(&self, name: &str) -> io::Result<bool> {
        check_name(name)?;
        match unistd::unlinkat(Some(self.raw()), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(errno_io(e)),
        }
    }

    /// `fstat` of the directory itself.
    pub fn stat(&self) -> io::Result<FileStat> {
        stat::fstat(self.raw()).map_err(errno_io)
    }

    /// `fstatat` of a name below, without following a symlink; `None`
    /// when it does not exist.
    pub fn stat_at(&self, name: &str) -> io::Result<Option<FileStat>> {
        check_name(name)?;
        match stat::fstatat(Some(self.raw()), name, fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(s) => Ok(Some(s)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(errno_io(e)),
        }
    }

    /// Whether files can be created here (space, inodes, a writable
    /// mount). An unnamed `O_TMPFILE` proves it without adding an entry,
    /// so the directory's mtime (which callers may watch) stays put.
    pub fn check_writable(&self) -> io::Result<()> {
        let flags = OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
        match fcntl::openat(
            Some(self.raw()),
            ".",
            flags,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => {
                // SAFETY: a fresh descriptor we own; dropping closes it.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
                Ok(())
            }
            Err(Errno::EOPNOTSUPP) | Err(Errno::EISDIR) => unistd::faccessat(
                Some(self.raw()),
                ".",
                unistd::AccessFlags::W_OK,
                fcntl::AtFlags::empty(),
            )
            .map_err(errno_io),
            Err(e) => Err(errno_io(e)),
        }
    }

    /// Make renames and removals in this directory durable.
    pub fn sync(&self) -> io::Result<()> {
        unistd::fsync(self.raw()).map_err(errno_io)
    }

    /// Every name in the directory except `.` and `..`, with inode numbers.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        // nix's Dir owns the descriptor it is given and shares its file
        // offset with ours: give it a fresh one.
        let fd = fcntl::openat(
            Some(self.raw()),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(|e| {
            let _ = unistd::close(fd);
            errno_io(e)
        })?;
        let mut out = Vec::new();
        for ent in dir.iter() {
            let ent = ent.map_err(errno_io)?;
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            out.push(Entry {
                name: OsStr::from_bytes(name).to_os_string(),
                ino: ent.ino(),
            });
        }
        Ok(out)
    }

    /// Take an exclusive `flock` on `name` below this directory (created
    /// if missing), waiting for other holders. Released on drop.
    pub fn lock(&self, name: &str) -> io::Result<FileLock> {
        let file = self.open_file(name, OFlag::O_RDONLY | OFlag::O_CREAT, 0o600)?;
        FileLock::acquire(file, LockMode::Exclusive)
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Names below a [`Dir`] are single components: no separator, no `..`.
/// Callers build names from parsed values, this is the backstop.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        ));
    }
    Ok(())
}

/// Open a file by path without following a symlink in its last component;
/// `O_CLOEXEC` is always added.
pub fn open_no_follow(path: &Path, flags: OFlag, mode: u32) -> io::Result<File> {
    let fd = fcntl::open(
        path,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(errno_io)?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Path-based [`Dir::write_atomic`] for callers that hold no [`Dir`]
/// (the result cache): the parent directory must exist.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durability: Durability,
) -> io::Result<()> {
    let (dir, name) = split_path(path)?;
    Dir::open(dir)?.write_atomic(name, bytes, mode, durability)
}

fn split_path(path: &Path) -> io::Result<(&Path, &str)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Tmp(std::path::PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let p = std::env::temp_dir().join(format!(
                "libcni-store-{tag}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Tmp(p)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn names(d: &Dir) -> Vec<String> {
        let mut v: Vec<String> = d
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let t = Tmp::new("wa");
        let d = Dir::open(&t.0).unwrap();
        d.write_atomic("f", b"one", 0o640, Durability::Full)
            .unwrap();
        d.write_atomic("f", b"two", 0o640, Durability::None)
            .unwrap();
        assert_eq!(d.read("f").unwrap().unwrap(), b"two");
        assert_eq!(names(&d), vec!["f"]);
        d.write_in_place("h", b"longer", 0o600).unwrap();
        d.write_in_place("h", b"s", 0o600).unwrap();
        assert_eq!(d.read("h").unwrap().unwrap(), b"s");
        d.remove("h").unwrap();
        let mode = std::fs::metadata(t.0.join("f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        write_atomic(&t.0.join("g"), b"x", 0o600, Durability::Content).unwrap();
        assert_eq!(std::fs::read(t.0.join("g")).unwrap(), b"x");
    }

    #[test]
    fn create_exclusive_refuses_existing_names_and_symlinks() {
        let t = Tmp::new("ce");
        let d = Dir::open(&t.0).unwrap();
        assert!(d
            .create_exclusive("a", b"1", 0o600, Durability::Content)
            .unwrap());
        assert!(!d
            .create_exclusive("a", b"2", 0o600, Durability::Content)
            .unwrap());
        assert_eq!(d.read("a").unwrap().unwrap(), b"1");
        std::os::unix::fs::symlink("/nonexistent-target", t.0.join("s")).unwrap();
        assert!(!d
            .create_exclusive("s", b"2", 0o600, Durability::None)
            .unwrap());
        assert!(!Path::new("/nonexistent-target").exists());
        assert_eq!(names(&d), vec!["a", "s"]);
    }

    #[test]
    fn parked_files_are_reused_with_new_content_and_never_replace() {
        let t = Tmp::new("pk");
        let d = Dir::open(&t.0).unwrap();
        let pool = d.subdir("pool", Some(0o700)).unwrap();
        assert!(d
            .create_exclusive_reusing(&pool, "a", b"first-long", 0o600)
            .unwrap());
        assert!(d.park_or_remove("a", &pool, 1).unwrap());
        assert!(!d.park_or_remove("a", &pool, 1).unwrap(), "already gone");
        assert_eq!(names(&pool), vec!["a"]);
        // A taken name: false, the parked file stays for the next one.
        d.write_in_place("b", b"theirs", 0o600).unwrap();
        assert!(!d.create_exclusive_reusing(&pool, "b", b"x", 0o600).unwrap());
        assert_eq!(d.read("b").unwrap().unwrap(), b"theirs");
        let ino = pool.stat_at("a").unwrap().unwrap().st_ino;
        assert!(d
            .create_exclusive_reusing(&pool, "c", b"two", 0o600)
            .unwrap());
        assert_eq!(d.read("c").unwrap().unwrap(), b"two", "old content cut off");
        assert_eq!(
            d.stat_at("c").unwrap().unwrap().st_ino,
            ino,
            "the same inode"
        );
        assert!(names(&pool).is_empty());
        // A full pool: removed, not parked.
        assert!(d.park_or_remove("c", &pool, 1).unwrap());
        assert!(d.park_or_remove("b", &pool, 1).unwrap());
        assert_eq!(names(&pool), vec!["c"]);
        assert_eq!(names(&d), vec!["pool"]);
    }

    #[test]
    fn symlinks_are_never_followed() {
        let t = Tmp::new("nf");
        let target = Tmp::new("nf-target");
        std::fs::write(target.0.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(target.0.join("secret"), t.0.join("link")).unwrap();
        std::os::unix::fs::symlink(&target.0, t.0.join("dirlink")).unwrap();
        let d = Dir::open(&t.0).unwrap();
        assert!(d.read("link").is_err());
        assert!(d.subdir("dirlink", Some(0o755)).is_err());
        assert!(d.lock("link").is_err());
        assert!(open_no_follow(&t.0.join("link"), OFlag::O_RDONLY, 0).is_err());
        assert!(d.read("../x").is_err());
        assert_eq!(std::fs::read(target.0.join("secret")).unwrap(), b"s");
    }

    #[test]
    fn subdir_creates_and_lock_excludes() {
        let t = Tmp::new("lk");
        let d = Dir::open(&t.0).unwrap();
        let sub = d.subdir("net", Some(0o755)).unwrap();
        let l1 = sub.lock("lock").unwrap();
        // A second open file description must not get the lock meanwhile.
        let f = sub.open_file("lock", OFlag::O_RDONLY, 0).unwrap();
        let busy = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock);
        let Err((f, Errno::EWOULDBLOCK)) = busy else {
            panic!("a second lock was granted");
        };
        drop(l1);
        let _l2 = FileLock::acquire(f, LockMode::Exclusive).unwrap();
        assert!(sub.stat_at("lock").unwrap().is_some());
        assert!(sub.stat_at("nope").unwrap().is_none());
        assert!(Dir::create_all(&t.0.join("a/b/c"), 0o700).is_ok());
    }
}
