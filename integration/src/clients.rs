//! Shared by the `clients_*` tests:
//! the real runtimes' prerequisites, the Go libcni driver, plugin folders a
//! client is pointed at, a busybox root filesystem, a private sandbox for
//! clients that insist on the machine's own paths, and leak checks.
//!
//! Every client runs inside a fake host's network namespace. Clients that
//! hard-code `/etc/cni/net.d`, `/opt/cni/bin`, `/var/lib/cni` or `/run` run
//! in a `Sandbox`: a new mount and PID namespace where those paths are
//! replaced by private ones; dropping it kills everything started inside.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use crate::paths::{our_bin_dir, ref_bin_dir, workspace_root, Binary};
use crate::state::{link_names, nft_ruleset};
use crate::Netns;
use serde_json::Value;

/// Fails, naming the Debian package, when `path` does not exist.
pub fn need(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} not found: install Debian's {package} (`just deps` installs every package \
         the tests use)"
    );
}

/// Runs `cmd`; panics with its output unless it succeeds; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert_success(&format!("{cmd:?}"), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the tests must never change on the machine itself: the root
/// namespace's forwarding switch and the runtimes' default CNI folders.
/// Take it at the start of a test, `assert_unchanged` at the end.
pub struct Machine {
    before: Vec<String>,
}

impl Machine {
    pub fn snapshot() -> Machine {
        Machine {
            before: Self::read(),
        }
    }

    fn read() -> Vec<String> {
        let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut v = vec![format!("root ns net.ipv4.ip_forward={forward}")];
        for dir in ["/etc/cni/net.d", "/opt/cni/bin", "/var/lib/cni"] {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_else(|_| vec!["<absent>".into()]);
            names.sort();
            v.push(format!("{dir}: {names:?}"));
        }
        v
    }

    pub fn assert_unchanged(&self) {
        assert_eq!(Self::read(), self.before, "the machine itself was changed");
    }
}

// ---------------------------------------------------------------- plugins

/// The plugins a client is given: `<dir>/<type>` for each entry, a symlink
/// to our binary or the reference one. A client that searches several
/// folders finds exactly these.
pub fn plugin_dir(dir: &Path, plugins: &[(&str, Binary)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (ty, which) in plugins {
        let target = which.path(ty);
        assert!(
            target.is_file(),
            "{} not found ({} {ty}): `just build` builds ours, `just deps` installs the reference",
            target.display(),
            which.label()
        );
        symlink(&target, dir.join(ty)).unwrap();
    }
    dir.to_path_buf()
}

/// Like `plugin_dir`, but each plugin is a small wrapper that runs the real
/// binary and appends one line per call to `log`: what the client passed
/// (command, container id, netns, ifname) and the exit status.
pub fn spy_plugin_dir(dir: &Path, plugins: &[(&str, Binary)], log: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (ty, which) in plugins {
        let target = which.path(ty);
        assert!(target.is_file(), "{} not found", target.display());
        let script = format!(
            "#!/bin/sh\n\"{}\"\nrc=$?\n\
             echo \"{ty}|$CNI_COMMAND|$CNI_CONTAINERID|$CNI_NETNS|$CNI_IFNAME|$rc\" >> \"{}\"\n\
             exit $rc\n",
            target.display(),
            log.display()
        );
        let p = dir.join(ty);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir.to_path_buf()
}

/// One plugin call a spy recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpyCall {
    pub plugin: String,
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub status: i32,
}

pub fn spy_calls(log: &Path) -> Vec<SpyCall> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            assert_eq!(f.len(), 6, "bad spy line {l:?}");
            SpyCall {
                plugin: f[0].into(),
                command: f[1].into(),
                container_id: f[2].into(),
                netns: f[3].into(),
                ifname: f[4].into(),
                status: f[5].parse().unwrap(),
            }
        })
        .collect()
}

/// Ours first, then the reference plugins: the search path a runtime gets.
pub fn ours_then_reference() -> String {
    format!("{}:{}", our_bin_dir().display(), ref_bin_dir().display())
}

// ------------------------------------------------------------- Go libcni

/// The Go driver (`integration/clients/golibcni`), built once per test
/// process from Debian's packaged libcni sources (GOPATH mode, offline)
/// into `target/clients/`.
pub fn go_driver() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            need("/usr/bin/go", "golang-go");
            need(
                "/usr/share/gocode/src/github.com/containernetworking/cni/libcni",
                "golang-github-appc-cni-dev",
            );
            let src = workspace_root().join("integration/clients/golibcni");
            let out_dir = our_bin_dir().parent().unwrap().join("clients");
            std::fs::create_dir_all(&out_dir).unwrap();
            let out = out_dir.join("golibcni");
            // Build beside, then rename: parallel test processes never see
            // a half-written binary.
            let tmp = out_dir.join(format!("golibcni.{}", std::process::id()));
            ok(Command::new("go")
                .args(["build", "-o"])
                .arg(&tmp)
                .arg(".")
                .current_dir(&src)
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOFLAGS", "")
                .env("GOCACHE", out_dir.join("go-cache"))
                .env("GOPROXY", "off")
                .env("CGO_ENABLED", "0"));
            std::fs::rename(&tmp, &out).unwrap();
            out
        })
        .clone()
}

/// The version of the libcni the Go driver is built against (Debian's).
pub fn packaged_libcni_version() -> String {
    ok(Command::new("dpkg-query").args(["-W", "-f=${Version}", "golang-github-appc-cni-dev"]))
}

// ---------------------------------------------------------------- busybox

/// A root filesystem of Debian's static busybox: `/bin/busybox`, a symlink
/// per applet, and the empty folders a runtime mounts over.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    // Debian's `busybox` also has /bin/busybox, but linked dynamically.
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "busybox-static"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        status.ends_with(" installed"),
        "Debian's busybox-static is not installed (`just deps` installs it)"
    );
    let root = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "run", "var"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let list = ok(Command::new("/bin/busybox").arg("--list"));
    for applet in list.lines().filter(|a| *a != "busybox") {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    root
}

// ---------------------------------------------------------------- sandbox

/// A private mount and PID namespace inside a fake host's network
/// namespace, for clients that hard-code the machine's paths. Inside it:
/// `/etc/cni/net.d` is `conf_dir`, `/opt/cni/bin` is `bin_dir`, `/run` and
/// `/dev/shm` are fresh tmpfs, and `/var/lib` is an overlay whose writes
/// land in `<work>/varlib` (so a client's `/var/lib/cni` is ours to read).
/// Its PID 1 is `sandbox-init.sh`; dropping the sandbox kills it, which
/// kills everything started inside and releases every mount.
pub struct Sandbox {
    unshare: Child,
    init_pid: i32,
    pub work: PathBuf,
    daemons: Vec<Child>,
    /// Cgroups (relative to each hierarchy) to remove once all is killed.
    pub cgroups: Vec<String>,
}

impl Sandbox {
    pub fn new(host: &Netns, work: &Path, conf_dir: &Path, bin_dir: &Path) -> Sandbox {
        let init = workspace_root().join("integration/clients/sandbox-init.sh");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", host.path_str()))
            .args([
                "unshare",
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
                "--kill-child",
            ])
            .arg(init)
            .arg(conf_dir)
            .arg(bin_dir)
            .arg(work)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // If this test process dies, unshare dies, and --kill-child takes
        // the whole namespace with it.
        // SAFETY: prctl is async-signal-safe; it only touches the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut unshare = cmd.spawn().expect("spawning nsenter/unshare");
        // nsenter execs unshare in place, so this pid is unshare's; its one
        // child is the sandbox's PID 1.
        let mut line = String::new();
        BufReader::new(unshare.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut sb = Sandbox {
            init_pid: 0,
            unshare,
            work: work.to_path_buf(),
            daemons: vec![],
            cgroups: vec![],
        };
        assert_eq!(
            line.trim(),
            "ready",
            "sandbox-init.sh failed to set up (see its stderr above)"
        );
        let pid = sb.unshare.id();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .expect("reading unshare's children");
        sb.init_pid = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("unshare has no child");
        sb
    }

    /// `program` run inside the sandbox (its mounts, PID and network
    /// namespace), environment inherited from the test plus what the caller adds.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.init_pid.to_string(), "-m", "-p", "-n", "--"])
            .arg(program);
        cmd
    }

    /// Starts a long-running program inside; it dies with the sandbox.
    pub fn spawn_daemon(&mut self, mut cmd: Command, log: &Path) {
        let f = std::fs::File::create(log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        self.daemons.push(cmd.spawn().expect("spawning daemon"));
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.init_pid > 0 {
            // SAFETY: plain kill(2) of the sandbox's PID 1, which we started.
            unsafe { libc::kill(self.init_pid, libc::SIGKILL) };
        }
        // unshare exits once its child (PID 1) is gone, and PID 1 is gone
        // once every process of its namespace is.
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        for d in &mut self.daemons {
            let _ = d.kill();
            let _ = d.wait();
        }
        for c in &self.cgroups {
            remove_cgroups(c);
        }
    }
}

// ------------------------------------------------------------ leak checks

/// Everything a network's containers could leave on a fake host after
/// their DEL: links other than `lo` and `keep`, addresses still leased in
/// `lease_dir` (host-local's dataDir/<network>), result cache entries in
/// `cache_dir`, and rules or set elements in our nftables tables `cni_rs`.
/// Empty when nothing leaked.
pub fn leftovers(host: &Netns, keep: &[&str], lease_dir: &Path, cache_dir: &Path) -> Vec<String> {
    let mut left = Vec::new();
    for l in link_names(host) {
        if l != "lo" && !keep.contains(&l.as_str()) {
            left.push(format!("link {l}"));
        }
    }
    for e in std::fs::read_dir(lease_dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<std::net::IpAddr>().is_ok() {
            left.push(format!("lease {}", e.path().display()));
        }
    }
    for e in std::fs::read_dir(cache_dir.join("results"))
        .into_iter()
        .flatten()
        .flatten()
    {
        left.push(format!("cache entry {}", e.path().display()));
    }
    for obj in nft_ruleset(host) {
        if let Some(r) = obj.get("rule") {
            if r["table"] == "cni_rs" {
                left.push(format!("nft rule {r}"));
            }
        }
        if let Some(s) = obj.get("set") {
            if s["table"] == "cni_rs" && s.get("elem").is_some_and(|e| e != &Value::Null) {
                left.push(format!("nft set elements {s}"));
            }
        }
    }
    left
}

/// Checks a CNI ADD result a client printed: the version asked for, the
/// interface `ifname` in `netns`, one IPv4 address on it within `prefix`
/// (e.g. "10.88.0."), 0.4.0's `version` field only in 0.4.0. Returns the
/// address without its prefix length.
pub fn container_ip(
    result: &Value,
    cni_version: &str,
    netns: &str,
    ifname: &str,
    prefix: &str,
) -> String {
    assert_eq!(result["cniVersion"], cni_version, "{result}");
    let ifaces = result["interfaces"]
        .as_array()
        .unwrap_or_else(|| panic!("no interfaces: {result}"));
    let idx = ifaces
        .iter()
        .position(|i| i["name"] == ifname && i["sandbox"] == netns)
        .unwrap_or_else(|| panic!("no interface {ifname} in {netns}: {result}"));
    let ips = result["ips"]
        .as_array()
        .unwrap_or_else(|| panic!("no ips: {result}"));
    assert_eq!(ips.len(), 1, "{result}");
    let ip = &ips[0];
    assert_eq!(ip["interface"], idx, "{result}");
    if cni_version == "0.4.0" {
        assert_eq!(
            ip["version"], "4",
            "0.4.0 results carry ips[].version: {result}"
        );
    } else {
        assert!(
            ip.get("version").is_none(),
            "{cni_version} results have no ips[].version: {result}"
        );
    }
    let addr = ip["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address: {result}"));
    assert!(
        addr.starts_with(prefix),
        "{addr} not in {prefix}*: {result}"
    );
    addr.split('/').next().unwrap().to_string()
}

// ------------------------------------------------ Go libcni and cnitool

/// A fake host where Go's libcni (through the driver) and our cnitool run
/// network config lists from a private config, cache and plugin folder.
pub struct GoCni {
    pub host: crate::FakeHost,
    pub dir: crate::TempDir,
    /// CNI_PATH for both clients.
    pub cni_path: String,
}

impl GoCni {
    /// `plugins`: what the clients find, in a folder of their own.
    pub fn new(tag: &str, plugins: &[(&str, Binary)]) -> GoCni {
        let host = crate::FakeHost::new(tag);
        let dir = crate::TempDir::new(tag);
        std::fs::create_dir_all(dir.join("net.d")).unwrap();
        let bin = plugin_dir(&dir.join("bin"), plugins);
        GoCni {
            host,
            dir,
            cni_path: bin.display().to_string(),
        }
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.dir.join("net.d")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join("cache")
    }

    /// host-local's dataDir for the conflists of the test.
    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.join("ipam")
    }

    /// Writes `<conf_dir>/<name>.conflist`.
    pub fn write_conflist(&self, conflist: &Value) {
        let name = conflist["name"].as_str().unwrap();
        std::fs::write(
            self.conf_dir().join(format!("{name}.conflist")),
            serde_json::to_vec_pretty(conflist).unwrap(),
        )
        .unwrap();
    }

    fn in_host(&self, program: &Path) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.host.path_str()))
            .arg(program)
            .env("CNI_PATH", &self.cni_path)
            .env("CNI_CACHE_DIR", self.cache_dir())
            .env_remove("CNI_CONTAINERID")
            .env_remove("CNI_IFNAME")
            .env_remove("CNI_ARGS");
        cmd
    }

    /// The Go driver: `verb` (add, check, del, cached) of network `net` for
    /// the container `ctr`.
    pub fn go(&self, verb: &str, net: &str, ctr: &Netns) -> Output {
        self.go_if(verb, net, ctr, "eth0")
    }

    /// Like `go`, with the interface name the runtime asks for.
    pub fn go_if(&self, verb: &str, net: &str, ctr: &Netns, ifname: &str) -> Output {
        self.in_host(&go_driver())
            .env("CNI_IFNAME", ifname)
            .arg(verb)
            .arg(self.conf_dir())
            .arg(net)
            .arg(ctr.path())
            .output()
            .expect("spawning the Go driver")
    }

    pub fn go_ok(&self, verb: &str, net: &str, ctr: &Netns) -> String {
        let out = self.go(verb, net, ctr);
        assert_success(&format!("Go libcni {verb} {net} {}", ctr.path_str()), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn go_add(&self, net: &str, ctr: &Netns) -> Value {
        let out = self.go_ok("add", net, ctr);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("Go ADD result: {e}: {out}"))
    }

    pub fn go_cached(&self, net: &str, ctr: &Netns) -> Value {
        let out = self.go_ok("cached", net, ctr);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("Go cached result: {e}: {out}"))
    }

    /// Our cnitool with the same folders.
    pub fn cnitool(&self, args: &[&str]) -> Output {
        self.in_host(&crate::our_binary("cnitool"))
            .args(args)
            .env("NETCONFPATH", self.conf_dir())
            .output()
            .expect("spawning cnitool")
    }

    pub fn cnitool_ok(&self, args: &[&str]) -> String {
        let out = self.cnitool(args);
        assert_success(&format!("cnitool {args:?}"), &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the network `net` left on the host (see `leftovers`).
    pub fn leftovers(&self, net: &str, keep: &[&str]) -> Vec<String> {
        leftovers(
            &self.host,
            keep,
            &self.ipam_dir().join(net),
            &self.cache_dir(),
        )
    }
}

/// The parts of two results that must agree whoever printed them.
pub fn same_attachment(a: &Value, b: &Value) -> bool {
    ["cniVersion", "interfaces", "ips"]
        .iter()
        .all(|k| a[k] == b[k])
}

/// Removes the (empty) cgroup `name` that runc made under every hierarchy
/// of /sys/fs/cgroup for a test's containers, deepest first. Only empty
/// cgroups can be removed, so a cgroup still in use is left alone.
pub fn remove_cgroups(name: &str) {
    fn rm(dir: &Path) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rm(&e.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    assert!(!name.is_empty() && !name.contains(".."));
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let d = h.path().join(name.trim_start_matches('/'));
        if d.is_dir() {
            rm(&d);
        }
    }
}
