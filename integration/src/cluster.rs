//! Cluster scope for the cluster tests, the scale run and the bench: a
//! [`Cluster`] (fake hosts on one underlay, etcd inside some of them),
//! clustered hosts ([`Site`]: each with its own config, cache, daemon state
//! folder and cluster file, CNI_CLUSTER_CONF, cnitool run inside it, and
//! readers of what the cluster made there) and one [`Overlay`] network
//! created once and seen on every site. One place for the setup every
//! scenario shares, so each reads as what it checks.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::etcd::{EtcdCluster, EtcdTls};
use crate::underlay::{host_ip, Underlay};
use crate::{our_binary, unique_id, FakeHost, Invocation, Netns, Outcome, TempDir};

/// Fake hosts on one underlay with etcd inside the first of them, and the
/// `cluster init|join` flags every site of it uses. Sites borrow it; etcd
/// goes before the underlay (field order).
pub struct Cluster {
    pub etcd: EtcdCluster,
    pub u: Underlay,
    init_flags: Vec<String>,
    join_flags: Vec<String>,
}

/// What a [`Cluster`] is made of: `Cluster::build("tag").hosts(4).start()`.
pub struct ClusterBuilder {
    tag: String,
    hosts: usize,
    members: usize,
    tls: bool,
    lease_ttl: Option<u32>,
    grace_period: Option<u32>,
}

impl ClusterBuilder {
    /// Fake hosts on the underlay (default 3).
    pub fn hosts(mut self, n: usize) -> Self {
        self.hosts = n;
        self
    }

    /// etcd members, in hosts 0.. (default 1).
    pub fn members(mut self, n: usize) -> Self {
        self.members = n;
        self
    }

    /// etcd over TLS with client certificates; sites join with them.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// `--lease-ttl` for every site (seconds).
    pub fn lease_ttl(mut self, secs: u32) -> Self {
        self.lease_ttl = Some(secs);
        self
    }

    /// `--grace-period` for the cluster (given to `init`, seconds).
    pub fn grace_period(mut self, secs: u32) -> Self {
        self.grace_period = Some(secs);
        self
    }

    /// The underlay and etcd, running and healthy.
    pub fn start(self) -> Cluster {
        let u = Underlay::new(self.hosts, &self.tag);
        let members: Vec<(&crate::Netns, String)> = (0..self.members)
            .map(|i| (&*u.hosts[i], host_ip(i)))
            .collect();
        let tls = self.tls.then(|| {
            let ips: Vec<String> = members.iter().map(|(_, ip)| ip.clone()).collect();
            EtcdTls::new(&ips)
        });
        let etcd = EtcdCluster::start_with(&members, tls);
        let mut join_flags = Vec::new();
        if let Some(t) = etcd.tls() {
            for (flag, file) in [
                ("--cacert", "ca.pem"),
                ("--cert", "client.pem"),
                ("--key", "client.key"),
            ] {
                join_flags.extend([flag.to_string(), t.file(file)]);
            }
        }
        if let Some(ttl) = self.lease_ttl {
            join_flags.extend(["--lease-ttl".to_string(), ttl.to_string()]);
        }
        let mut init_flags = join_flags.clone();
        if let Some(grace) = self.grace_period {
            init_flags.extend(["--grace-period".to_string(), grace.to_string()]);
        }
        Cluster {
            etcd,
            u,
            init_flags,
            join_flags,
        }
    }
}

impl Cluster {
    /// Names of its namespaces start with `tag`.
    pub fn build(tag: &str) -> ClusterBuilder {
        ClusterBuilder {
            tag: tag.to_string(),
            hosts: 3,
            members: 1,
            tls: false,
            lease_ttl: None,
            grace_period: None,
        }
    }

    /// Sites on the hosts `on`, not yet members.
    pub fn sites(&self, on: impl IntoIterator<Item = usize>) -> Vec<Site<'_>> {
        on.into_iter().map(|i| Site::new(&self.u, i)).collect()
    }

    /// Sites on the hosts `on`: the first runs `cluster init`, the others
    /// `cluster join`.
    pub fn joined(&self, on: impl IntoIterator<Item = usize>) -> Vec<Site<'_>> {
        let sites = self.sites(on);
        for (i, s) in sites.iter().enumerate() {
            self.join(s, i == 0);
        }
        sites
    }

    /// `cluster init` (or `join`) on `site` with this cluster's flags.
    pub fn join(&self, site: &Site, init: bool) {
        let flags = if init {
            &self.init_flags
        } else {
            &self.join_flags
        };
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        site.join_with(&self.etcd, init, &flags);
    }

    /// Keys of ours left in the store apart from the cluster marker (none
    /// once every host left and every network is gone).
    pub fn store_left(&self) -> Vec<(String, String)> {
        self.etcd
            .get_prefix("/cni-rs/")
            .into_iter()
            .filter(|(k, _)| k != "/cni-rs/cluster")
            .collect()
    }
}

/// An overlay network of the cluster: its name and the VNI it assigned.
pub struct Overlay {
    pub net: String,
    pub vni: u64,
}

impl Overlay {
    /// `network create -d overlay --subnet SUBNET` on the first site, seen
    /// on every site.
    pub fn create(sites: &[Site], tag: &str, subnet: &str) -> Overlay {
        Self::create_on(sites, 0, tag, &["--subnet", subnet])
    }

    /// `network create -d overlay ARGS NAME` (NAME unique, after `tag`) on
    /// `sites[on]`; waits until every site holds the conflist.
    pub fn create_on(sites: &[Site], on: usize, tag: &str, args: &[&str]) -> Overlay {
        let net = unique_id(tag);
        let mut create = vec!["network", "create", "-d", "overlay"];
        create.extend_from_slice(args);
        create.push(&net);
        sites[on].ok(&create);
        for s in sites {
            wait_until("the conflist everywhere", Duration::from_secs(10), || {
                s.conflist(&net).is_some()
            });
        }
        let vni = sites[on].conflist(&net).unwrap()["plugins"][0]["vni"]
            .as_u64()
            .expect("the cluster assigned a VNI");
        Overlay { net, vni }
    }
}

/// The first address of a CNI result, without its prefix length.
pub fn first_ip(result: &Value) -> String {
    ip_of(result, 0)
}

/// Address `i` of a CNI result, without its prefix length.
pub fn ip_of(result: &Value, i: usize) -> String {
    let cidr = result["ips"][i]["address"].as_str().expect("an address");
    cidr.split('/').next().unwrap_or(cidr).to_string()
}

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

    /// Kill this host's daemon with SIGKILL (a crash); its pid.
    pub fn kill_daemon(&self) -> u32 {
        let pid = self
            .daemon_pid()
            .unwrap_or_else(|| panic!("{}'s daemon runs", self.name));
        let killed = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        assert!(
            killed.is_ok_and(|s| s.success()),
            "kill {}'s daemon",
            self.name
        );
        pid
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
        first_ip(&v)
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
        first_ip(&v)
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
