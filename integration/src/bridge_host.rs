//! The bridge plugin's test host: a fake host namespace with its own IPAM
//! data dir and network names unique to the test, containers as namespaces,
//! the bridge binary called as a runtime calls it, and readers of what it
//! left behind (veths, our nftables rules, leases). Shared by the
//! `bridge_*` test files.

use serde_json::{json, Value};

use crate::reliability::lease_files;
pub use crate::reliability::{ip_of, is_our_veth};
use crate::state::{link_names, nft_rules, nft_tables};
use crate::{require_root, unique_id, FakeHost, Invocation, Netns, Outcome, TempDir};

pub const OUR_TABLE: &str = "cni_rs";

/// A fake host with its own IPAM data dir and a network name unique to the
/// test (the plugin's lock files are keyed by it).
pub struct Host {
    pub host: FakeHost,
    pub data: TempDir,
    tag: String,
}

/// A container: its namespace and id.
pub struct Ctr {
    pub ns: Netns,
    pub id: String,
}

impl Host {
    pub fn new(tag: &str) -> Self {
        require_root();
        Host {
            host: FakeHost::new(tag),
            data: TempDir::new(tag),
            tag: tag.to_string(),
        }
    }

    /// A unique, valid network name for this test.
    pub fn net_name(&self, suffix: &str) -> String {
        format!("n{}{suffix}", unique_id(&self.tag))
    }

    /// A bridge config on `subnet` with host-local IPAM, plus `extra` keys.
    pub fn conf(&self, name: &str, bridge: &str, subnet: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": name,
            "type": "bridge",
            "bridge": bridge,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": self.data.path()},
        });
        merge(&mut c, extra);
        c
    }

    pub fn ctr(&self, tag: &str) -> Ctr {
        Ctr {
            ns: Netns::new(&format!("c{tag}")),
            id: unique_id(tag),
        }
    }

    pub fn inv(&self, cmd: &str, c: &Ctr, conf: &Value) -> Invocation {
        Invocation::ours("bridge").cni(cmd, &self.host, &c.id, &c.ns.path_str(), "eth0", conf)
    }

    pub fn call(&self, cmd: &str, c: &Ctr, conf: &Value) -> Outcome {
        self.inv(cmd, c, conf).run()
    }

    pub fn add(&self, c: &Ctr, conf: &Value) -> Value {
        self.call("ADD", c, conf).expect_ok_json()
    }

    /// DEL with the ADD result as prevResult, as a runtime sends it.
    pub fn del(&self, c: &Ctr, conf: &Value, result: &Value) {
        self.call("DEL", c, &with_prev(conf, result))
            .expect_ok_silent();
    }

    /// The lease files host-local keeps for `network`.
    pub fn leases(&self, network: &str) -> Vec<String> {
        lease_files(&self.data.join(network)).into_iter().collect()
    }

    /// Host veths of ours (derived names).
    pub fn our_veths(&self) -> Vec<String> {
        link_names(&self.host)
            .into_iter()
            .filter(|n| is_our_veth(n))
            .collect()
    }

    /// Our nftables tables in the host.
    pub fn our_tables(&self) -> Vec<(String, String)> {
        nft_tables(&self.host)
            .into_iter()
            .filter(|(_, n)| n == OUR_TABLE)
            .collect()
    }

    /// Comments of our rules in the host.
    pub fn our_rule_comments(&self) -> Vec<String> {
        nft_rules(&self.host)
            .iter()
            .filter(|r| r["table"] == OUR_TABLE)
            .filter_map(|r| r["comment"].as_str().map(String::from))
            .collect()
    }

    pub fn has_masquerade(&self, subnet: &str) -> bool {
        self.our_rule_comments()
            .iter()
            .any(|c| c.contains("masq") && c.contains(subnet))
    }

    /// Nothing of ours on the host: no veth, no rules, no leases.
    pub fn assert_clean(&self, network: &str) {
        assert!(
            self.our_veths().is_empty(),
            "veths left: {:?}",
            self.our_veths()
        );
        assert!(
            self.our_tables().is_empty(),
            "nft tables left: {:?}",
            self.our_tables()
        );
        assert!(
            self.leases(network).is_empty(),
            "leases left: {:?}",
            self.leases(network)
        );
    }
}

/// Add the keys of `extra` to the object `c`.
pub fn merge(c: &mut Value, extra: Value) {
    if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
        for (k, v) in e {
            o.insert(k, v);
        }
    }
}

/// `conf` with `result` as its prevResult, as a runtime sends DEL and CHECK.
pub fn with_prev(conf: &Value, result: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = result.clone();
    c
}

/// `ip -d -j link show` of one link: its bridge-port data.
pub fn port_data(ns: &Netns, name: &str) -> Value {
    let out = ns.ip_ok(&["-d", "-j", "link", "show", "dev", name]);
    let v: Value = serde_json::from_str(&out).expect("ip -j output");
    v[0]["linkinfo"]["info_slave_data"].clone()
}

/// The machine's own ip_forward, only read: tests assert it never changes.
pub fn root_ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap_or_default()
        .trim()
        .to_string()
}
