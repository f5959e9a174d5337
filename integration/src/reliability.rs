//! Shared by the reliability suites: one bridge network (with masquerade,
//! isolation and the MAC spoof check, so every kind of state a bridge ADD
//! makes is present) on a fake host with a private IPAM data dir, and a
//! snapshot of everything of ours on that host, to compare before and
//! after a fault.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::netns::unique_ifname;
use crate::state::{link_names, nft_rules};
use crate::{proc, require_root, unique_id, FakeHost, Invocation, Netns, Outcome, TempDir};
use serde_json::{json, Value};

pub const OUR_TABLE: &str = "cni_rs";

pub struct Net {
    pub host: FakeHost,
    pub data: TempDir,
    pub name: String,
    pub bridge: String,
    pub conf: Value,
}

/// A container: its namespace and a valid id.
pub struct Ctr {
    pub ns: Netns,
    pub id: String,
}

impl Ctr {
    pub fn new(tag: &str) -> Ctr {
        Ctr {
            ns: Netns::new(&format!("c{tag}")),
            id: unique_id(tag),
        }
    }
}

/// Everything of ours on the host: host veths, lease files, rules in our
/// nftables table (without their handles, which change when re-made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub veths: BTreeSet<String>,
    pub leases: BTreeSet<String>,
    pub rules: BTreeSet<String>,
}

impl Snapshot {
    pub fn is_empty(&self) -> bool {
        self.veths.is_empty() && self.leases.is_empty() && self.rules.is_empty()
    }
}

impl Net {
    /// This network as the only conflist in `<dir>/net.d`, for cnitool.
    #[allow(dead_code)]
    pub fn write_conflist(&self, dir: &Path) {
        let mut plugin = self.conf.clone();
        let obj = plugin
            .as_object_mut()
            .expect("a plugin config is an object");
        obj.remove("cniVersion");
        obj.remove("name");
        std::fs::create_dir_all(dir.join("net.d")).unwrap();
        std::fs::write(
            dir.join("net.d/10-net.conflist"),
            serde_json::to_vec(
                &json!({"cniVersion": "1.1.0", "name": self.name, "plugins": [plugin]}),
            )
            .unwrap(),
        )
        .unwrap();
    }

    pub fn new(tag: &str, subnet: &str) -> Net {
        require_root();
        let host = FakeHost::new(tag);
        let data = TempDir::new(tag);
        let name = format!("n{}", unique_id(tag));
        let bridge = unique_ifname("br");
        let conf = json!({
            "cniVersion": "1.1.0",
            "name": name,
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "ipMasq": true,
            "macspoofchk": true,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data.path()},
        });
        Net {
            host,
            data,
            name,
            bridge,
            conf,
        }
    }

    pub fn with_prev(&self, prev: &Value) -> Value {
        let mut c = self.conf.clone();
        c["prevResult"] = prev.clone();
        c
    }

    /// A bridge call for container `c` (eth0) with `conf` on stdin.
    pub fn inv(&self, cmd: &str, c: &Ctr, conf: &Value) -> Invocation {
        Invocation::ours("bridge").cni(cmd, &self.host, &c.id, &c.ns.path_str(), "eth0", conf)
    }

    /// Like [`Net::inv`], with the fault-injecting build of our plugins
    /// (the bridge and the host-local it delegates to).
    pub fn inv_faulty(&self, cmd: &str, c: &Ctr, conf: &Value) -> Invocation {
        let dir = crate::paths::fault_bin_dir();
        Invocation::new(crate::paths::fault_binary("bridge"))
            .cni(cmd, &self.host, &c.id, &c.ns.path_str(), "eth0", conf)
            .cni_path(&format!(
                "{}:{}",
                dir.display(),
                crate::paths::ref_bin_dir().display()
            ))
    }

    pub fn add(&self, c: &Ctr) -> Value {
        self.inv("ADD", c, &self.conf).run().expect_ok_json()
    }

    pub fn del(&self, c: &Ctr, prev: Option<&Value>) -> Outcome {
        let conf = prev.map_or_else(|| self.conf.clone(), |p| self.with_prev(p));
        self.inv("DEL", c, &conf).run()
    }

    pub fn net_dir(&self) -> PathBuf {
        self.data.join(&self.name)
    }

    pub fn leases(&self) -> BTreeSet<String> {
        lease_files(&self.net_dir())
    }

    pub fn snapshot(&self) -> Snapshot {
        let veths = link_names(&self.host)
            .into_iter()
            .filter(|n| is_our_veth(n))
            .collect();
        let rules = nft_rules(&self.host)
            .into_iter()
            .filter(|r| r["table"] == OUR_TABLE)
            .map(|mut r| {
                if let Some(o) = r.as_object_mut() {
                    o.remove("handle");
                }
                r.to_string()
            })
            .collect();
        Snapshot {
            veths,
            leases: self.leases(),
            rules,
        }
    }
}

pub fn is_our_veth(n: &str) -> bool {
    n.strip_prefix("veth")
        .is_some_and(|r| r.len() == 8 && r.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// host-local's lease files in a network directory (addresses only).
pub fn lease_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The first address of a result, without prefix.
pub fn ip_of(result: &Value) -> String {
    let a = result["ips"][0]["address"].as_str().expect("an address");
    a.split('/').next().unwrap_or_default().to_string()
}

/// How a call that was meant to be stopped ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Killed by a signal (our fault point, or the timer).
    Killed,
    /// Exited with an error (a delegate it ran was killed).
    Failed,
    /// Ran to the end: the fault was not reached.
    Completed,
}

pub fn stopped(out: &Outcome) -> Stopped {
    if out.exit_code().is_none() {
        Stopped::Killed
    } else if out.success() {
        Stopped::Completed
    } else {
        Stopped::Failed
    }
}

/// Run `inv` and SIGKILL it after `after` (a runtime's timeout); returns
/// whether it was killed before it finished.
pub fn run_killed_after(inv: &Invocation, after: Duration) -> bool {
    let (mut cmd, file) = inv.to_command().expect("preparing the plugin call");
    let running = proc::spawn(&mut cmd, inv.stdin_bytes(), Some(after)).expect("spawning");
    drop(file);
    let finished = running.wait().expect("waiting");
    finished.timed_out
}
