//! containers/dnsname's configuration, plus our two keys: `forward`
//! (false: no upstream forwarding, Docker's `--internal`) and `stateDir`
//! (the daemon's folder, for tests and unusual hosts).

use std::net::IpAddr;

use cni_dns::{names, Record, RecordKey, StateDir};
use cni_plugin::skel::Request;
use cni_spec::{CniResult, Error, Result};
use serde::Deserialize;

/// podman's default domain for the networks it creates.
pub const DEFAULT_DOMAIN: &str = "dns.podman";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    domain_name: Option<String>,
    #[serde(default)]
    forward: Option<bool>,
    #[serde(default)]
    state_dir: Option<String>,
    #[serde(default)]
    runtime_config: RuntimeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    /// The `aliases` capability: network name -> aliases.
    #[serde(default)]
    aliases: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    state_dir: Option<String>,
}

/// What the plugin needs from one call.
#[derive(Debug)]
pub struct Conf {
    pub network: String,
    pub domain: String,
    pub forward: bool,
    pub state: StateDir,
    /// Container name (K8S_POD_NAME) first, then this network's aliases.
    pub names: Vec<String>,
}

impl Conf {
    pub fn load(req: &Request) -> Result<Conf> {
        let raw: Raw = req.config.parse()?;
        let domain = raw
            .domain_name
            .unwrap_or_else(|| DEFAULT_DOMAIN.to_string());
        let domain = names::normalize(&domain)
            .map_err(|e| Error::invalid_config(format!("domainName: {e}")))?;
        let network = req.config.name.clone();
        let mut wanted: Vec<&str> = Vec::new();
        if let Some(name) = req.args.get("K8S_POD_NAME").filter(|s| !s.is_empty()) {
            wanted.push(name);
        }
        if let Some(aliases) = raw.runtime_config.aliases.get(&network) {
            wanted.extend(aliases.iter().map(String::as_str));
        }
        let mut names = Vec::new();
        for n in wanted {
            let n = names::normalize(n).map_err(Error::invalid_config)?;
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let state_dir = raw
            .runtime_config
            .state_dir
            .or(raw.state_dir)
            .filter(|s| !s.is_empty());
        Ok(Conf {
            network,
            domain,
            forward: raw.forward.unwrap_or(true),
            state: StateDir::resolve(state_dir.as_deref()),
            names,
        })
    }

    pub fn key(&self, req: &Request) -> RecordKey {
        RecordKey {
            network: self.network.clone(),
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
        }
    }

    /// The record for this attachment from the previous plugin's result.
    pub fn record(&self, req: &Request, prev: &CniResult) -> Result<Record> {
        Ok(Record {
            network: self.network.clone(),
            domain: self.domain.clone(),
            forward: self.forward,
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
            netns: req.netns_path()?.display().to_string(),
            names: self.names.clone(),
            addresses: container_addresses(prev),
        })
    }
}

/// The addresses on the container's own interfaces (those with a sandbox);
/// when the result names no interfaces, every address.
pub fn container_addresses(prev: &CniResult) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in &prev.ips {
        let in_container = match ip.interface {
            Some(i) => prev
                .interfaces
                .get(i)
                .map(|itf| itf.sandbox.as_deref().is_some_and(|s| !s.is_empty()))
                .unwrap_or(false),
            None => true,
        };
        let a = ip.address.ip();
        if in_container && !a.is_loopback() && !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_spec::{CniArgs, Command, NetConf, Version};
    use serde_json::json;

    fn request(conf: serde_json::Value, args: &str) -> Request {
        Request {
            command: Command::Add,
            container_id: "c1".into(),
            netns: Some("/var/run/netns/x".into()),
            ifname: "eth0".into(),
            args: CniArgs::parse(args).unwrap(),
            path: Vec::new(),
            config: NetConf::from_value(conf).unwrap(),
            version: Version::V1_0_0,
        }
    }

    #[test]
    fn dnsname_config_names_come_from_pod_name_and_this_networks_aliases() {
        let req = request(
            json!({"cniVersion": "1.0.0", "name": "n1", "type": "dnsname",
                   "capabilities": {"aliases": true},
                   "runtimeConfig": {"aliases": {"n1": ["WWW", "web"], "n2": ["other"]}}}),
            "IgnoreUnknown=1;K8S_POD_NAME=web",
        );
        let c = Conf::load(&req).unwrap();
        assert_eq!(c.domain, DEFAULT_DOMAIN);
        assert!(c.forward);
        assert_eq!(c.names, ["web", "www"]);
        let bad = request(
            json!({"cniVersion": "1.0.0", "name": "n1", "type": "dnsname", "domainName": "a/b"}),
            "",
        );
        assert_eq!(Conf::load(&bad).unwrap_err().code, 7);
        let bad = request(
            json!({"cniVersion": "1.0.0", "name": "n1", "type": "dnsname"}),
            "K8S_POD_NAME=../x",
        );
        assert_eq!(Conf::load(&bad).unwrap_err().code, 7);
    }

    #[test]
    fn only_container_interface_addresses_are_registered() {
        let prev = CniResult::from_value(&json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "br0"}, {"name": "eth0", "sandbox": "/var/run/netns/x"}],
            "ips": [{"interface": 0, "address": "10.0.0.1/24"},
                    {"interface": 1, "address": "10.0.0.2/24"},
                    {"interface": 1, "address": "fd00::2/64"}]}))
        .unwrap();
        let v: Vec<String> = container_addresses(&prev)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(v, ["10.0.0.2", "fd00::2"]);
    }
}
