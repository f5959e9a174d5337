//! Starting a process the way the benchmark and the tests need it:
//! directly with fork/exec (no shell, no `ip netns exec`), optionally moved
//! into a network namespace between fork and exec, stdin/stdout/stderr in
//! memory files (so nothing has to be pumped while the child runs), reaped
//! with `wait4` to get its peak RSS.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// What a finished process left behind.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// From just before fork to just after the process was reaped.
    pub elapsed: Duration,
    /// Peak resident set size of the process, KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    /// True when the watchdog had to kill it.
    pub timed_out: bool,
}

fn memfd(name: &str) -> std::io::Result<File> {
    let cname = std::ffi::CString::new(name).expect("no NUL in memfd name");
    // SAFETY: cname is a valid C string; the returned fd is owned by the File.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Arrange for `cmd` to join the network namespace open at `netns_fd` in the
/// child, between fork and exec. The fd must stay open until spawn returns.
pub fn enter_netns_before_exec(cmd: &mut Command, netns_fd: RawFd) {
    enter_ns_before_exec(cmd, netns_fd, libc::CLONE_NEWNET);
}

/// Like `enter_netns_before_exec`, for any namespace type (`CLONE_NEWNS`:
/// a mount namespace, for a program that hard-codes machine paths).
pub fn enter_ns_before_exec(cmd: &mut Command, ns_fd: RawFd, nstype: libc::c_int) {
    // SAFETY: setns is async-signal-safe (a plain syscall) and touches only
    // the child; the closure captures plain integers.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns_fd, nstype) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A started process, not yet reaped.
pub struct Running {
    pid: libc::pid_t,
    start: Instant,
    out: File,
    err: File,
    watchdog: Option<(mpsc::Sender<()>, Arc<AtomicBool>)>,
    // Kept so std does not consider the child "forgotten"; we reap it ourselves.
    _child: std::process::Child,
}

/// Start `cmd` with `stdin` as its standard input and memory files as its
/// standard output and error. With `timeout`, a watchdog kills it after that.
pub fn spawn(
    cmd: &mut Command,
    stdin: &[u8],
    timeout: Option<Duration>,
) -> std::io::Result<Running> {
    let mut input = memfd("cni-stdin")?;
    input.write_all(stdin)?;
    input.seek(SeekFrom::Start(0))?;
    let out = memfd("cni-stdout")?;
    let err = memfd("cni-stderr")?;
    cmd.stdin(Stdio::from(input))
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(err.try_clone()?));
    let start = Instant::now();
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let watchdog = timeout.map(|t| {
        let (tx, rx) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let fired2 = fired.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(t) {
                fired2.store(true, Ordering::SeqCst);
                // SAFETY: the child is not reaped until the waiter is told,
                // so this pid still names it.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        (tx, fired)
    });
    // The parent's copies of the child's stdio were moved into `cmd` and are
    // closed when `cmd` drops; ours (out, err) are separate descriptors.
    Ok(Running {
        pid,
        start,
        out,
        err,
        watchdog,
        _child: child,
    })
}

impl Running {
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Reap the process (only this pid: safe with other threads' children).
    pub fn wait(mut self) -> std::io::Result<Finished> {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain data; zeroed is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: pointers are to live locals; pid is our unreaped child.
            let r = unsafe { libc::wait4(self.pid, &mut status, 0, &mut usage) };
            if r == self.pid {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let elapsed = self.start.elapsed();
        let timed_out = match self.watchdog.take() {
            Some((tx, fired)) => {
                let _ = tx.send(());
                fired.load(Ordering::SeqCst)
            }
            None => false,
        };
        Ok(Finished {
            status: ExitStatus::from_raw(status),
            stdout: read_all(&mut self.out)?,
            stderr: read_all(&mut self.err)?,
            elapsed,
            max_rss_kib: usage.ru_maxrss.max(0) as u64,
            timed_out,
        })
    }
}

fn read_all(f: &mut File) -> std::io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(0))?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// Start all commands one right after the other and reap each as it ends;
/// each result's `elapsed` runs from its own start to its own end. Each
/// process gets its own waiter thread right after it starts, so the measured
/// end is when that process ended, not when a sequential reaper got to it.
pub fn run_concurrently(cmds: Vec<(Command, Vec<u8>)>) -> std::io::Result<Vec<Finished>> {
    let mut handles = Vec::with_capacity(cmds.len());
    for (mut cmd, stdin) in cmds {
        let r = spawn(&mut cmd, &stdin, None)?;
        handles.push(std::thread::spawn(move || r.wait()));
    }
    handles
        .into_iter()
        .map(|h| h.join().expect("waiter thread panicked"))
        .collect()
}

/// The raw fd of an open file, for `enter_netns_before_exec`.
pub fn raw(f: &File) -> RawFd {
    f.as_raw_fd()
}
