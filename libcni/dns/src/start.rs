//! Finding the daemon, and starting it when it is not running: race-free
//! when many plugins start at once (one start lock, re-checked under it),
//! and fully detached (own session, no inherited stdio), so the runtime that
//! waits for the plugin's stdout is never held up by the daemon.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cni_state::lock::{self, LockMode};

use crate::control::{self, Request};
use crate::paths::{StateDir, ENV_DIR};

/// The daemon's binary name.
pub const DAEMON_BIN: &str = "cni-rs-daemon";

/// The name of the run-time lock held while a daemon is being started.
pub const START_LOCK: &str = "dns-daemon-start";

/// How long one reply may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a plugin waits for a daemon it started to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the daemon is not there.
#[derive(Debug)]
pub enum StartError {
    /// No `cni-rs-daemon` next to the plugin or on CNI_PATH.
    NoBinary(String),
    /// It could not be started or did not answer in time.
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::NoBinary(m) | StartError::Failed(m) => f.write_str(m),
        }
    }
}

/// The daemon binary: beside the running plugin (`/proc/self/exe`), then on
/// CNI_PATH.
pub fn find_daemon(cni_path: &[PathBuf]) -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(DAEMON_BIN)));
    beside
        .into_iter()
        .chain(cni_path.iter().map(|d| d.join(DAEMON_BIN)))
        .find(|p| p.is_file())
}

/// Whether a daemon answers on this state folder's socket.
pub fn is_running(state: &StateDir) -> bool {
    matches!(control::call(&state.socket(), &Request::Ping, CALL_TIMEOUT), Ok(r) if r.ok)
}

/// Make sure a daemon serves `state`, starting one if needed.
pub fn ensure_running(state: &StateDir, cni_path: &[PathBuf]) -> Result<(), StartError> {
    if is_running(state) {
        return Ok(());
    }
    let bin = find_daemon(cni_path).ok_or_else(|| {
        StartError::NoBinary(format!(
            "{DAEMON_BIN} not found beside the plugin nor on CNI_PATH"
        ))
    })?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let _start = lock::lock(START_LOCK, LockMode::Exclusive)
            .map_err(|e| StartError::Failed(format!("taking the daemon start lock: {e}")))?;
        // Somebody else may have started it while we waited for the lock.
        if is_running(state) {
            return Ok(());
        }
        let mut child = spawn(&bin, state)
            .map_err(|e| StartError::Failed(format!("starting {}: {e}", bin.display())))?;
        while Instant::now() < deadline {
            if is_running(state) {
                return Ok(());
            }
            // A copy that found a daemon still exiting gives up at once;
            // start another once that one is gone.
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if Instant::now() >= deadline {
            return Err(StartError::Failed(format!(
                "{} did not open {} in time (see {})",
                bin.display(),
                state.socket().display(),
                state.log_file().display()
            )));
        }
    }
}

fn spawn(bin: &Path, state: &StateDir) -> io::Result<std::process::Child> {
    std::fs::create_dir_all(state.root())?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.log_file())?;
    let mut cmd = Command::new(bin);
    // The call's variables mean nothing to the daemon (ours, CNI_RS_*, stay).
    for k in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
    ] {
        cmd.env_remove(k);
    }
    cmd.env(ENV_DIR, state.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe; it only detaches the child from
    // the plugin's session so the runtime's signals do not reach it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}
