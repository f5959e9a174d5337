//! ADD results. One canonical form (the 1.1.0 shape) in memory; the wire
//! form of every version is produced from it and parsed into it, so a
//! plugin never deals with versions.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::version::Version;
use crate::error::{Error, Result};

/// An interface the plugin created or knows about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// 1.1.0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path for container interfaces; absent for host ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// 1.1.0 only.
    #[serde(
        default,
        rename = "socketPath",
        skip_serializing_if = "Option::is_none"
    )]
    pub socket_path: Option<String>,
    /// 1.1.0 only.
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// An address and the interface (index into `interfaces`) it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// Address with prefix length, host bits kept ("10.1.0.5/24").
    pub address: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

impl IpConfig {
    pub fn is_ipv4(&self) -> bool {
        self.address.is_ipv4()
    }
}

/// A route to install in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// 1.1.0 only, like the four below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

impl Route {
    pub fn new(dst: IpNetwork, gw: Option<IpAddr>) -> Self {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }

    fn strip_1_1_fields(&mut self) {
        self.mtu = None;
        self.advmss = None;
        self.priority = None;
        self.table = None;
        self.scope = None;
    }
}

/// The result's DNS block (note: different names from `runtimeConfig.dns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// The canonical ADD result (1.1.0 shape). IPAM results leave
/// `interfaces` empty and `ips[].interface` unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

/// The 0.3.0 to 1.1.0 wire shape.
#[derive(Serialize, Deserialize)]
struct Current {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

/// The 0.1.0 / 0.2.0 per-family block.
#[derive(Serialize, Deserialize)]
struct LegacyIp {
    ip: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
}

#[derive(Serialize, Deserialize)]
struct Legacy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<LegacyIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<LegacyIp>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

impl CniResult {
    /// Parse a result of any version (a `prevResult`, an IPAM plugin's
    /// output, a cached result). A missing `cniVersion` is read as 0.1.0,
    /// as Go's libcni does.
    pub fn from_value(value: &Value) -> Result<CniResult> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::decode("result is not a JSON object"))?;
        let version = match obj.get("cniVersion") {
            None => Version::V0_1_0,
            Some(Value::String(s)) => s.parse::<Version>()?,
            Some(_) => return Err(Error::decode("result cniVersion is not a string")),
        };
        if version.is_legacy() {
            let legacy: Legacy = serde_json::from_value(value.clone())
                .map_err(|e| Error::decode(format!("failed to decode {version} result: {e}")))?;
            return Ok(Self::from_legacy(legacy));
        }
        let cur: Current = serde_json::from_value(value.clone())
            .map_err(|e| Error::decode(format!("failed to decode {version} result: {e}")))?;
        Ok(CniResult {
            interfaces: cur.interfaces,
            ips: cur.ips,
            routes: cur.routes,
            dns: cur.dns,
        })
    }

    pub fn from_slice(bytes: &[u8]) -> Result<CniResult> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("failed to decode result: {e}")))?;
        Self::from_value(&v)
    }

    fn from_legacy(l: Legacy) -> CniResult {
        let mut r = CniResult {
            dns: l.dns,
            ..Default::default()
        };
        for block in [l.ip4, l.ip6].into_iter().flatten() {
            r.ips.push(IpConfig {
                interface: None,
                address: block.ip,
                gateway: block.gateway,
            });
            r.routes.extend(block.routes);
        }
        r
    }

    /// The wire form for `version`. Fields the version does not know are
    /// dropped (1.1's interface and route extras below 1.1.0); the only
    /// conversion that can fail is to 0.1.0/0.2.0, which hold one address
    /// per family.
    pub fn to_value(&self, version: Version) -> Result<Value> {
        let mut map = if version.is_legacy() {
            self.to_legacy_map(version)?
        } else {
            self.to_current_map(version)
        };
        map.insert(
            "cniVersion".into(),
            Value::String(version.as_str().to_string()),
        );
        // Put cniVersion first for readability, as Go does.
        let mut out = Map::new();
        if let Some(v) = map.remove("cniVersion") {
            out.insert("cniVersion".into(), v);
        }
        out.extend(map);
        Ok(Value::Object(out))
    }

    fn to_current_map(&self, version: Version) -> Map<String, Value> {
        let mut cur = Current {
            interfaces: self.interfaces.clone(),
            ips: self.ips.clone(),
            routes: self.routes.clone(),
            dns: self.dns.clone(),
        };
        if version < Version::V1_1_0 {
            for i in &mut cur.interfaces {
                i.mtu = None;
                i.socket_path = None;
                i.pci_id = None;
            }
            for r in &mut cur.routes {
                r.strip_1_1_fields();
            }
        }
        let Ok(Value::Object(mut map)) = serde_json::to_value(&cur) else {
            unreachable!("result types always serialise to an object")
        };
        if version.is_0_3_or_0_4() {
            if let Some(Value::Array(ips)) = map.get_mut("ips") {
                for (ip, cfg) in ips.iter_mut().zip(&self.ips) {
                    if let Value::Object(o) = ip {
                        let fam = if cfg.is_ipv4() { "4" } else { "6" };
                        o.insert("version".into(), Value::String(fam.into()));
                    }
                }
            }
        }
        map
    }

    fn to_legacy_map(&self, version: Version) -> Result<Map<String, Value>> {
        let mut l = Legacy {
            ip4: None,
            ip6: None,
            dns: self.dns.clone(),
        };
        for ip in &self.ips {
            let slot = if ip.is_ipv4() { &mut l.ip4 } else { &mut l.ip6 };
            if slot.is_some() {
                return Err(Error::incompatible_version(format!(
                    "cannot convert result to {version}: it holds more than one IPv{} address",
                    if ip.is_ipv4() { 4 } else { 6 }
                )));
            }
            *slot = Some(LegacyIp {
                ip: ip.address,
                gateway: ip.gateway,
                routes: Vec::new(),
            });
        }
        for r in &self.routes {
            let mut r = r.clone();
            r.strip_1_1_fields();
            let slot = if r.dst.is_ipv4() {
                &mut l.ip4
            } else {
                &mut l.ip6
            };
            match slot {
                Some(b) => b.routes.push(r),
                None => {
                    return Err(Error::incompatible_version(format!(
                    "cannot convert result to {version}: route to {} has no address of its family",
                    r.dst
                )))
                }
            }
        }
        let Ok(Value::Object(map)) = serde_json::to_value(&l) else {
            unreachable!("result types always serialise to an object")
        };
        Ok(map)
    }

    /// Convert between two versions in one step (parse + render).
    pub fn convert(value: &Value, to: Version) -> Result<Value> {
        Self::from_value(value)?.to_value(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "cni0".into(),
                    mac: Some("0a:58:0a:01:00:01".into()),
                    mtu: Some(1500),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("0a:58:0a:01:00:05".into()),
                    sandbox: Some("/var/run/netns/c1".into()),
                    pci_id: Some("0000:00:1f.0".into()),
                    ..Default::default()
                },
            ],
            ips: vec![
                IpConfig {
                    interface: Some(1),
                    address: "10.1.0.5/24".parse().unwrap(),
                    gateway: Some("10.1.0.1".parse().unwrap()),
                },
                IpConfig {
                    interface: Some(1),
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: None,
                },
            ],
            routes: vec![Route {
                mtu: Some(1400),
                table: Some(100),
                ..Route::new(
                    "0.0.0.0/0".parse().unwrap(),
                    Some("10.1.0.1".parse().unwrap()),
                )
            }],
            dns: Dns {
                nameservers: vec!["10.1.0.1".into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn v1_1_keeps_new_fields_v1_0_drops_them() {
        let r = sample();
        let v11 = r.to_value(Version::V1_1_0).unwrap();
        assert_eq!(v11["cniVersion"], "1.1.0");
        assert_eq!(v11["interfaces"][0]["mtu"], 1500);
        assert_eq!(v11["interfaces"][1]["pciID"], "0000:00:1f.0");
        assert_eq!(v11["routes"][0]["table"], 100);
        assert!(v11["ips"][0].get("version").is_none());

        let v10 = r.to_value(Version::V1_0_0).unwrap();
        assert!(v10["interfaces"][0].get("mtu").is_none());
        assert!(v10["interfaces"][1].get("pciID").is_none());
        assert!(v10["routes"][0].get("table").is_none());
        assert!(v10["ips"][0].get("version").is_none());
        assert_eq!(v10["ips"][0]["address"], "10.1.0.5/24");
    }

    #[test]
    fn v0_3_and_0_4_carry_ip_version() {
        for v in [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0] {
            let out = sample().to_value(v).unwrap();
            assert_eq!(out["cniVersion"], v.as_str());
            assert_eq!(out["ips"][0]["version"], "4");
            assert_eq!(out["ips"][1]["version"], "6");
            assert_eq!(out["ips"][0]["interface"], 1);
        }
    }

    #[test]
    fn every_supported_pair_round_trips_the_common_fields() {
        let mut base = sample();
        for i in &mut base.interfaces {
            i.mtu = None;
            i.pci_id = None;
        }
        for r in &mut base.routes {
            r.mtu = None;
            r.table = None;
        }
        for from in super::super::version::SUPPORTED {
            for to in super::super::version::SUPPORTED {
                let wire = base.to_value(*from).unwrap();
                let conv = CniResult::convert(&wire, *to).unwrap();
                assert_eq!(conv["cniVersion"], to.as_str());
                assert_eq!(
                    CniResult::from_value(&conv).unwrap(),
                    base,
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn legacy_conversion_fails_with_two_addresses_per_family() {
        let mut r = sample();
        r.ips.push(IpConfig {
            interface: Some(1),
            address: "10.2.0.5/24".parse().unwrap(),
            gateway: None,
        });
        let e = r.to_value(Version::V0_2_0).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.msg.contains("more than one IPv4"));
    }

    #[test]
    fn legacy_results_parse_and_render() {
        let v = json!({
            "cniVersion": "0.2.0",
            "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1",
                     "routes": [{"dst": "0.0.0.0/0"}]},
            "dns": {"nameservers": ["1.1.1.1"]}
        });
        let r = CniResult::from_value(&v).unwrap();
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.routes.len(), 1);
        let back = r.to_value(Version::V0_2_0).unwrap();
        assert_eq!(back["ip4"]["ip"], "10.0.0.2/24");
        assert_eq!(back["ip4"]["routes"][0]["dst"], "0.0.0.0/0");
        let up = r.to_value(Version::V1_0_0).unwrap();
        assert_eq!(up["ips"][0]["gateway"], "10.0.0.1");
    }

    #[test]
    fn bad_results_are_decode_errors() {
        assert_eq!(CniResult::from_value(&json!([])).unwrap_err().code, 6);
        let bad_ip = json!({"cniVersion": "1.0.0", "ips": [{"address": "nope"}]});
        assert_eq!(CniResult::from_value(&bad_ip).unwrap_err().code, 6);
        let bad_ver = json!({"cniVersion": "5.0.0"});
        assert_eq!(CniResult::from_value(&bad_ver).unwrap_err().code, 1);
    }

    #[test]
    fn empty_parts_are_omitted() {
        let v = CniResult::default().to_value(Version::V1_0_0).unwrap();
        assert_eq!(v, json!({"cniVersion": "1.0.0"}));
    }
}
