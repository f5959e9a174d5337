//! What we keep in etcd, and this host's view of it (built from one range
//! read and kept current by the watch). Every key lives under `/cni-rs/`:
//!
//! | key | value | lifetime |
//! |---|---|---|
//! | `cluster` | `{gracePeriod}` | from `cluster init` |
//! | `members/<host>` | `{host, address}` | join to leave |
//! | `hosts/<host>` | `{host, address}` | the host's lease: alive |
//! | `networks/<name>` | the conflist | create to rm |
//! | `vnis/<vni>` | network name | create to rm |
//! | `blocks/<net>/<a.b.c.d_len>` | owning host | first ADD to leave |
//! | `endpoints/<net>/<ip>` | `{ip, mac, host, vtep, containerID}` | ADD to DEL |
//! | `names/<net>/<containerID>-<ifname>` | `{host, record}` (dnsname's) | ADD to DEL |
//! | `services/<name>` | the service (cni-cnm's, no tasks) | create to rm |
//! | `tasks/<name>/<slot>` | `{slot, id, name, host, address}` (host empty, `pending` reason: no host may take it) | placed to scaled down or rm |
//! | `ports/<proto>/<port>` | the service publishing it | create to rm |

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use cni_dns::cluster::PREFIX;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::etcd::{Event, Kv};

pub fn key(parts: &[&str]) -> String {
    format!("{PREFIX}{}", parts.join("/"))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRec {
    pub host: String,
    pub address: IpAddr,
}

/// A container's names, published for the resolvers of the other hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRec {
    pub host: String,
    pub record: cni_dns::Record,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRec {
    pub ip: IpAddr,
    pub mac: String,
    pub host: String,
    /// The host's VXLAN endpoint: where frames for `mac` are tunnelled.
    pub vtep: IpAddr,
    #[serde(rename = "containerID")]
    pub container_id: String,
}

/// A block's key part: `10.1.0.64_26` (no `/` inside a key segment).
pub fn block_key(b: &ipnetwork::IpNetwork) -> String {
    format!("{}_{}", b.network(), b.prefix())
}

/// How long a host's lease may stay expired before the cluster releases
/// its endpoints and blocks, unless `cluster init --grace-period` says.
pub const DEFAULT_GRACE: u64 = 30;

#[derive(Debug, Default, Clone)]
pub struct View {
    /// Seconds, from the cluster marker.
    pub grace: Option<u64>,
    pub members: BTreeMap<String, HostRec>,
    pub alive: BTreeMap<String, HostRec>,
    pub networks: BTreeMap<String, Value>,
    pub vnis: BTreeMap<u32, String>,
    /// network -> block -> owning host
    pub blocks: BTreeMap<String, BTreeMap<String, String>>,
    /// network -> ip -> endpoint
    pub endpoints: BTreeMap<String, BTreeMap<String, EndpointRec>>,
    /// network -> containerID-ifname -> names
    pub names: BTreeMap<String, BTreeMap<String, NameRec>>,
    /// name -> service (see `services`)
    pub services: BTreeMap<String, cni_cnm::services::model::Service>,
    /// service name -> slot -> task
    pub tasks: BTreeMap<String, BTreeMap<u64, cni_cnm::services::cluster::ClusterTask>>,
}

impl View {
    pub fn from_kvs(kvs: Vec<Kv>) -> View {
        let mut v = View::default();
        for kv in kvs {
            v.apply(&Event::Put(kv));
        }
        v
    }

    pub fn apply(&mut self, e: &Event) {
        let (key, value) = match e {
            Event::Put(kv) => (kv.key.as_str(), Some(kv.value.as_slice())),
            Event::Delete(k) => (k.as_str(), None),
        };
        let Some(rest) = key.strip_prefix(PREFIX) else {
            return;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match (parts.as_slice(), value) {
            (["cluster"], Some(v)) => {
                self.grace = serde_json::from_slice::<Value>(v)
                    .ok()
                    .and_then(|c| c.get("gracePeriod")?.as_u64());
            }
            (["members", h], Some(v)) => {
                if let Ok(r) = serde_json::from_slice(v) {
                    self.members.insert(h.to_string(), r);
                }
            }
            (["members", h], None) => {
                self.members.remove(*h);
            }
            (["hosts", h], Some(v)) => {
                if let Ok(r) = serde_json::from_slice(v) {
                    self.alive.insert(h.to_string(), r);
                }
            }
            (["hosts", h], None) => {
                self.alive.remove(*h);
            }
            (["networks", n], Some(v)) => {
                if let Ok(c) = serde_json::from_slice(v) {
                    self.networks.insert(n.to_string(), c);
                }
            }
            (["networks", n], None) => {
                self.networks.remove(*n);
            }
            (["vnis", id], v) => {
                if let Ok(id) = id.parse::<u32>() {
                    match v {
                        Some(v) => {
                            self.vnis
                                .insert(id, String::from_utf8_lossy(v).into_owned());
                        }
                        None => {
                            self.vnis.remove(&id);
                        }
                    }
                }
            }
            (["blocks", n, b], v) => {
                let m = self.blocks.entry(n.to_string()).or_default();
                match v {
                    Some(v) => {
                        m.insert(b.to_string(), String::from_utf8_lossy(v).into_owned());
                    }
                    None => {
                        m.remove(*b);
                    }
                }
            }
            (["names", n, id], v) => {
                let m = self.names.entry(n.to_string()).or_default();
                match v.map(serde_json::from_slice::<NameRec>) {
                    Some(Ok(r)) => {
                        m.insert(id.to_string(), r);
                    }
                    Some(Err(_)) => {}
                    None => {
                        m.remove(*id);
                    }
                }
            }
            (["services", n], v) => match v.map(serde_json::from_slice) {
                Some(Ok(svc)) => {
                    self.services.insert(n.to_string(), svc);
                }
                Some(Err(_)) => {}
                None => {
                    self.services.remove(*n);
                }
            },
            (["tasks", n, slot], v) => {
                let Ok(slot) = slot.parse::<u64>() else {
                    return;
                };
                let m = self.tasks.entry(n.to_string()).or_default();
                match v.map(serde_json::from_slice) {
                    Some(Ok(t)) => {
                        m.insert(slot, t);
                    }
                    Some(Err(_)) => {}
                    None => {
                        m.remove(&slot);
                    }
                }
                if m.is_empty() {
                    self.tasks.remove(*n);
                }
            }
            (["endpoints", n, ip], v) => {
                let m = self.endpoints.entry(n.to_string()).or_default();
                match v.map(serde_json::from_slice::<EndpointRec>) {
                    Some(Ok(r)) => {
                        m.insert(ip.to_string(), r);
                    }
                    Some(Err(_)) => {}
                    None => {
                        m.remove(*ip);
                    }
                }
            }
            _ => {}
        }
    }

    /// The network's VXLAN ID, from its stored conflist.
    pub fn vni(&self, network: &str) -> Option<u32> {
        self.networks
            .get(network)?
            .get("plugins")?
            .as_array()?
            .iter()
            .find_map(|p| p.get("vni")?.as_u64())
            .and_then(|v| u32::try_from(v).ok())
    }

    pub fn grace(&self) -> u64 {
        self.grace.unwrap_or(DEFAULT_GRACE)
    }

    /// Hosts that own blocks or endpoints but are not alive.
    pub fn not_alive(&self) -> BTreeSet<String> {
        let owners = self
            .members
            .keys()
            .cloned()
            .chain(self.blocks.values().flat_map(|m| m.values().cloned()))
            .chain(
                self.endpoints
                    .values()
                    .flat_map(|m| m.values().map(|e| e.host.clone())),
            )
            .chain(
                self.names
                    .values()
                    .flat_map(|m| m.values().map(|e| e.host.clone())),
            );
        owners.filter(|h| !self.alive.contains_key(h)).collect()
    }

    pub fn endpoint_count(&self, host: &str) -> usize {
        self.endpoints
            .values()
            .flat_map(|m| m.values())
            .filter(|e| e.host == host)
            .count()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A watch event that puts `v` at `k` (also used by the services
    /// module's tests).
    pub(in crate::cluster) fn put(k: &str, v: &str) -> Event {
        Event::Put(Kv {
            key: k.into(),
            value: v.as_bytes().to_vec(),
        })
    }

    #[test]
    fn the_view_follows_puts_and_deletes() {
        let mut v = View::default();
        v.apply(&put("/cni-rs/blocks/ov/10.0.0.0_26", "h1"));
        v.apply(&put(
            "/cni-rs/networks/ov",
            r#"{"plugins":[{"type":"vxlan-overlay","vni":4096}]}"#,
        ));
        v.apply(&put(
            "/cni-rs/endpoints/ov/10.0.0.1",
            r#"{"ip":"10.0.0.1","mac":"02:00:00:00:00:01","host":"h1","vtep":"192.0.2.1","containerID":"c"}"#,
        ));
        assert_eq!(v.blocks["ov"]["10.0.0.0_26"], "h1");
        assert_eq!(v.vni("ov"), Some(4096));
        assert_eq!(v.endpoint_count("h1"), 1);
        v.apply(&Event::Delete("/cni-rs/endpoints/ov/10.0.0.1".into()));
        v.apply(&put("/elsewhere/x", "y"));
        assert_eq!(v.endpoint_count("h1"), 0);
    }
}
