//! Named network namespaces that clean up after themselves.
//!
//! Names are `cni<pid>-<counter>-<tag>`, so tests in one process (threads)
//! and in parallel processes (nextest) never collide, and a namespace left
//! behind by a killed test process can be recognised and removed: the first
//! namespace a process creates sweeps those whose creator pid is gone.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};

use anyhow::{bail, Context, Result};

const NETNS_DIR: &str = "/var/run/netns";

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();
/// `ip netns add` mounts /var/run/netns on first use; two concurrent first
/// calls can race. Serialise creation within the process.
static CREATE: Mutex<()> = Mutex::new(());

fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn unique_name(tag: &str) -> String {
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(10)
        .collect::<String>()
        .to_ascii_lowercase();
    format!("cni{}-{}-{}", std::process::id(), next_id(), tag)
}

/// A link name unique to this process and call, at most 15 bytes (IFNAMSIZ-1).
/// `prefix` is cut to 4 bytes.
pub fn unique_ifname(prefix: &str) -> String {
    let prefix: String = prefix.chars().take(4).collect();
    let name = format!("{prefix}{:x}x{:x}", std::process::id(), next_id());
    assert!(
        name.len() <= 15,
        "derived link name {name} is over 15 bytes"
    );
    name
}

/// Run `ip` with arguments; error with its stderr when it fails.
pub fn ip(args: &[&str]) -> Result<String> {
    run_cmd(Command::new("ip").args(args))
}

fn run_cmd(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip_batch(lines: &[String]) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["-force", "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("spawning ip -batch")?;
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for l in lines {
            writeln!(stdin, "{l}")?;
        }
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("ip -batch failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Remove namespaces named `cni<pid>-…` whose creator process no longer exists.
fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("cni") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// A named network namespace (`/var/run/netns/<name>`), deleted on drop with
/// everything in it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// False for namespaces a `NetnsPool` deletes in bulk.
    owned: bool,
}

impl Netns {
    /// Create a fresh namespace; `tag` (letters and digits, cut to 10) shows
    /// in the name to tell namespaces apart when debugging.
    pub fn new(tag: &str) -> Self {
        Self::try_new(tag).unwrap_or_else(|e| panic!("creating a network namespace: {e:#}"))
    }

    pub fn try_new(tag: &str) -> Result<Self> {
        SWEEP.call_once(sweep_stale);
        let name = unique_name(tag);
        {
            let _g = CREATE.lock().unwrap_or_else(|p| p.into_inner());
            ip(&["netns", "add", &name])?;
        }
        Ok(Netns { name, owned: true })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/var/run/netns/<name>`: what a runtime passes as CNI_NETNS.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    pub fn path_str(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }

    /// Open the namespace file (for setns).
    pub fn open(&self) -> std::io::Result<File> {
        File::open(self.path())
    }

    /// Run a command inside the namespace (`ip netns exec <name> cmd…`).
    pub fn exec(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .unwrap_or_else(|e| panic!("spawning ip netns exec {} {cmd:?}: {e}", self.name))
    }

    /// Like `exec`, but fails (with the command's stderr) unless it succeeds;
    /// returns its stdout.
    pub fn exec_ok(&self, cmd: &[&str]) -> String {
        let out = self.exec(cmd);
        assert!(
            out.status.success(),
            "in netns {}: {cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `ip -n <name> args…` (iproute2 enters the namespace itself,
    /// cheaper than `ip netns exec`).
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Like `ip`, but panics on failure.
    pub fn ip_ok(&self, args: &[&str]) -> String {
        self.ip(args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Run a closure on a thread that has joined this namespace (sockets it
    /// opens live in the namespace). Panics in `f` propagate.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = self.open().expect("opening netns file");
        let h = std::thread::spawn(move || {
            enter(&file).expect("setns into test namespace");
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// Read a sysctl inside the namespace, e.g. `net.ipv4.ip_forward`.
    pub fn sysctl(&self, key: &str) -> String {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.exec_ok(&["cat", &path]).trim().to_string()
    }

    /// Set a sysctl inside the namespace.
    pub fn set_sysctl(&self, key: &str, value: &str) {
        // Through /proc rather than sysctl(8): procps may not be installed.
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.exec_ok(&[
            "sh",
            "-c",
            "printf '%s' \"$1\" > \"$2\"",
            "sh",
            value,
            &path,
        ]);
    }

    /// Set a link up inside the namespace.
    pub fn link_up(&self, link: &str) {
        self.ip_ok(&["link", "set", link, "up"]);
    }
}

/// Join the network namespace open at `file`, for the calling thread only.
pub fn enter(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open fd; CLONE_NEWNET affects only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.owned {
            if let Err(e) = ip(&["netns", "del", &self.name]) {
                eprintln!("warning: deleting netns {}: {e:#}", self.name);
            }
        }
    }
}

/// A fake host: a namespace standing in for the machine a runtime runs on.
/// Plugins run inside it, so whatever they do "on the host" stays here.
/// `lo` is up; `net.ipv4.ip_forward` stays as the kernel made it (0) unless
/// the test sets it with `set_ip_forward`.
#[derive(Debug)]
pub struct FakeHost {
    ns: Netns,
}

impl FakeHost {
    pub fn new(tag: &str) -> Self {
        let ns = Netns::new(&format!("h{tag}"));
        ns.link_up("lo");
        FakeHost { ns }
    }

    pub fn set_ip_forward(&self, on: bool) {
        self.ns
            .set_sysctl("net.ipv4.ip_forward", if on { "1" } else { "0" });
    }

    pub fn ip_forward(&self) -> bool {
        self.ns.sysctl("net.ipv4.ip_forward") == "1"
    }
}

impl std::ops::Deref for FakeHost {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

impl AsRef<Netns> for FakeHost {
    fn as_ref(&self) -> &Netns {
        &self.ns
    }
}

impl AsRef<Netns> for Netns {
    fn as_ref(&self) -> &Netns {
        self
    }
}

/// Many namespaces made and removed in one `ip -batch` each (the benchmark
/// needs hundreds of fresh container namespaces, created before timing).
#[derive(Debug)]
pub struct NetnsPool {
    items: Vec<Netns>,
}

impl NetnsPool {
    pub fn new(tag: &str, n: usize) -> Result<Self> {
        SWEEP.call_once(sweep_stale);
        let items: Vec<Netns> = (0..n)
            .map(|_| Netns {
                name: unique_name(tag),
                owned: false,
            })
            .collect();
        let pool = NetnsPool { items };
        let lines: Vec<String> = pool
            .items
            .iter()
            .map(|ns| format!("netns add {}", ns.name))
            .collect();
        {
            let _g = CREATE.lock().unwrap_or_else(|p| p.into_inner());
            ip_batch(&lines)?;
        }
        Ok(pool)
    }

    pub fn get(&self, i: usize) -> &Netns {
        &self.items[i]
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl Drop for NetnsPool {
    fn drop(&mut self) {
        let lines: Vec<String> = self
            .items
            .iter()
            .map(|ns| format!("netns del {}", ns.name))
            .collect();
        if let Err(e) = ip_batch(&lines) {
            eprintln!("warning: deleting namespace pool: {e:#}");
        }
    }
}
