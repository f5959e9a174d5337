//! A clustered fake host for the cluster tests, the scale run and the
//! bench: its own config, cache, daemon state folder and cluster file
//! (CNI_CLUSTER_CONF), cnitool run inside it, and readers of what the
//! cluster made there (conflists, forwarding entries, leases).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::etcd::EtcdCluster;
use crate::underlay::{host_ip, Underlay};
use crate::{our_binary, FakeHost, Invocation, Netns, Outcome, TempDir};

/// One clustered host: where cnitool, the plugins and the daemon keep
/// their files.
pub struct Site<'a> {
    pub host: &'a FakeHost,
    pub name: String,
    pub ip: String,
    pub dir: TempDir,
}

impl<'a> Site<'a> {
    pub fn new(u: &'a Underlay, i: usize) -> Self {
        Site {
            host: &u.hosts[i],
            name: format!("h{i}"),
            ip: host_ip(i),
            dir: TempDir::new(&format!("cl{i}")),
        }
    }

    pub fn confdir(&self) -> PathBuf {
        self.dir.join("net.d")
    }

    pub fn envs(&self) -> Vec<(&'static str, String)> {
        let bin_dir = our_binary("cnitool").parent().unwrap().to_path_buf();
        vec![
            ("NETCONFPATH", self.confdir().display().to_string()),
            (
                "CNI_CACHE_DIR",
                self.dir.join("cache").display().to_string(),
            ),
            (
                "CNI_RS_DNS_DIR",
                self.dir.join("daemon").display().to_string(),
            ),
            (
                "CNI_CLUSTER_CONF",
                self.dir.join("cluster.json").display().to_string(),
            ),
            ("CNI_PATH", format!("{}:/usr/lib/cni", bin_dir.display())),
        ]
    }

    pub fn cnitool(&self, args: &[&str]) -> Output {
        self.cnitool_env(args, &[])
    }

    pub fn cnitool_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new("nsenter");
        c.envs(env.iter().copied());
        c.arg(format!("--net={}", self.host.path_str()))
            .arg(our_binary("cnitool"))
            .args(args);
        for (k, v) in self.envs() {
            c.env(k, v);
        }
        c.output().expect("spawn cnitool")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cnitool(args);
        assert!(
            out.status.success(),
            "{}: cnitool {args:?} failed:\nstdout: {}\nstderr: {}\ndaemon log: {}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.daemon_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon").join("daemon.log")).unwrap_or_default()
    }

    pub fn join(&self, etcd: &EtcdCluster, init: bool) {
        self.join_with(etcd, init, &[]);
    }

    pub fn join_with(&self, etcd: &EtcdCluster, init: bool, extra: &[&str]) {
        let verb = if init { "init" } else { "join" };
        let store = etcd.store_url();
        let mut args = vec![
            "cluster",
            verb,
            "--store",
            &store,
            "--advertise",
            "eth0",
            "--name",
            &self.name,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// The pid of this host's daemon.
    pub fn daemon_pid(&self) -> Option<u32> {
        let want = format!("CNI_RS_DNS_DIR={}", self.dir.join("daemon").display());
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let exe = std::fs::read_link(e.path().join("exe")).ok()?;
            if !exe.to_string_lossy().contains("cni-rs-daemon") {
                return None;
            }
            let env = std::fs::read(e.path().join("environ")).ok()?;
            env.split(|b| *b == 0)
                .any(|kv| kv == want.as_bytes())
                .then_some(pid)
        })
    }

    /// Run the network's plugin directly (to read its CNI error code).
    pub fn plugin(&self, cmd: &str, net: &str, id: &str, ctr: &Netns) -> Outcome {
        self.invocation(cmd, net, id, ctr).run()
    }

    /// The network's main plugin (vxlan-overlay) as a runtime calls it on
    /// this host, with this host's environment.
    pub fn invocation(&self, cmd: &str, net: &str, id: &str, ctr: &Netns) -> Invocation {
        let list = self.conflist(net).expect("conflist");
        let mut conf = list["plugins"][0].clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        conf["name"] = list["name"].clone();
        self.with_env(Invocation::ours("vxlan-overlay").cni(
            cmd,
            self.host,
            id,
            &ctr.path_str(),
            "eth0",
            &conf,
        ))
    }

    /// `inv` with this host's environment (state folders, cluster file).
    pub fn with_env(&self, mut inv: Invocation) -> Invocation {
        for (k, v) in self.envs() {
            inv = inv.env(k, &v);
        }
        inv
    }

    /// Files in this host's cluster-ipam lease folder of `net`.
    pub fn lease_files(&self, net: &str) -> usize {
        std::fs::read_dir(self.dir.join("daemon").join("cluster-ipam").join(net))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn conflist(&self, net: &str) -> Option<Value> {
        let b = std::fs::read(self.confdir().join(format!("{net}.conflist"))).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// ADD through cnitool; the container's address.
    pub fn add(&self, net: &str, ctr: &Netns) -> String {
        let out = self.ok(&["add", net, &ctr.path_str()]);
        let v: Value = serde_json::from_str(&out).expect("cnitool add prints the result");
        let cidr = v["ips"][0]["address"]
            .as_str()
            .expect("an address")
            .to_string();
        cidr.split('/').next().unwrap().to_string()
    }

    /// ADD with a container name (dnsname's K8S_POD_NAME).
    pub fn add_named(&self, net: &str, ctr: &Netns, name: &str) -> String {
        let args = format!("IgnoreUnknown=1;K8S_POD_NAME={name}");
        let out = self.cnitool_env(&["add", net, &ctr.path_str()], &[("CNI_ARGS", &args)]);
        assert!(
            out.status.success(),
            "add {name}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.daemon_log()
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("result");
        let cidr = v["ips"][0]["address"]
            .as_str()
            .expect("an address")
            .to_string();
        cidr.split('/').next().unwrap().to_string()
    }

    pub fn del(&self, net: &str, ctr: &Netns) {
        self.ok(&["del", net, &ctr.path_str()]);
    }

    /// Remote entries of the network's VXLAN device: (mac, dst).
    pub fn fdb(&self, vni: u64) -> BTreeSet<(String, String)> {
        let out = self
            .host
            .exec(&["bridge", "-j", "fdb", "show", "dev", &format!("vxlan{vni}")]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some((
                    e["mac"].as_str()?.to_string(),
                    e["dst"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// Neighbour entries of the network's VXLAN device: (ip, mac), the
    /// permanent ones (those the daemon programs for its ARP proxy).
    pub fn neighbours(&self, vni: u64) -> BTreeSet<(String, String)> {
        let out = self
            .host
            .exec(&["ip", "-j", "neigh", "show", "dev", &format!("vxlan{vni}")]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                e["state"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == "PERMANENT"))
            })
            .filter_map(|e| {
                Some((
                    e["dst"].as_str()?.to_string(),
                    e["lladdr"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// This host's daemon counters (`cnitool cluster stats`).
    pub fn stats(&self) -> Value {
        serde_json::from_str(&self.ok(&["cluster", "stats"])).unwrap_or(Value::Null)
    }
}

/// Poll `f` until it holds; panics after `within`.
pub fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The MAC of a container's eth0.
pub fn mac_of(ns: &Netns) -> String {
    let out = ns.exec_ok(&["cat", "/sys/class/net/eth0/address"]);
    out.trim().to_string()
}
