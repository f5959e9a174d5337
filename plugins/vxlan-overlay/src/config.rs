//! The overlay's network configuration. Everything here is checked before
//! the plugin touches the kernel, so a bad config is code 7 and leaves no
//! trace.

use std::net::IpAddr;

use cni_net::netlink::check_ifname;
use cni_plugin::skel::Request;
use cni_spec::{Error, Result};
use ipnetwork::IpNetwork;
use serde::Deserialize;

use crate::subnet;

/// IANA's VXLAN port, and Docker's. The Linux default (8472, flannel's)
/// must be asked for explicitly.
pub const DEFAULT_PORT: u16 = 4789;

/// Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8) headers.
pub const OVERHEAD_V4: u32 = 50;
/// The same over IPv6 (40-byte header).
pub const OVERHEAD_V6: u32 = 70;

/// The largest VNI: 24 bits.
const MAX_VNI: i64 = (1 << 24) - 1;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    vni: Option<i64>,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    underlay_device: Option<String>,
    #[serde(default, rename = "localIP")]
    local_ip: Option<IpAddr>,
    #[serde(default)]
    peers: Vec<IpAddr>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    bridge: Option<String>,
    /// The one subnet the overlay spans across hosts.
    #[serde(default)]
    subnet: Option<IpNetwork>,
    /// More of them (dual stack: one per family).
    #[serde(default)]
    subnets: Vec<IpNetwork>,
    #[serde(default)]
    disable_tx_checksum_offload: bool,
    #[serde(default)]
    cluster: bool,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    pub network: String,
    pub vni: u32,
    pub port: u16,
    pub underlay_device: Option<String>,
    pub local_ip: Option<IpAddr>,
    /// Unique, in config order. May include this host's own address: it is
    /// skipped once the local address is known, so every host can be given
    /// the same list.
    pub peers: Vec<IpAddr>,
    /// None: derived from the underlay's MTU.
    pub mtu: Option<u32>,
    pub bridge: String,
    /// The VXLAN device: derived from the VNI, so DEL and GC find it.
    pub vxlan: String,
    /// Normalised (host bits cleared); empty when the config declares none.
    pub subnets: Vec<IpNetwork>,
    pub disable_tx_csum: bool,
    /// Cluster scope: the per-host daemon owns the VXLAN device's remote
    /// entries (from the store) and each endpoint is published to it.
    pub cluster: bool,
}

impl Conf {
    pub fn load(req: &Request) -> Result<Conf> {
        let raw: Raw = req.config.parse()?;
        let vni = raw
            .vni
            .ok_or_else(|| Error::invalid_config("vni is required (1-16777215)"))?;
        let vni = u32::try_from(vni)
            .ok()
            .filter(|v| (1..=MAX_VNI as u32).contains(v))
            .ok_or_else(|| Error::invalid_config(format!("vni {vni} out of range 1-{MAX_VNI}")))?;
        let port = match raw.port {
            None => DEFAULT_PORT,
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| Error::invalid_config(format!("port {p} out of range 1-65535")))?,
        };
        let bridge = raw
            .bridge
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| format!("vxbr{vni}"));
        check_ifname(&bridge).map_err(|e| e.context("bridge"))?;
        let vxlan = format!("vxlan{vni}");
        if bridge == vxlan {
            return Err(Error::invalid_config(format!(
                "bridge {bridge:?} collides with the VXLAN device's name"
            )));
        }
        let underlay_device = raw.underlay_device.filter(|d| !d.is_empty());
        if let Some(d) = &underlay_device {
            check_ifname(d).map_err(|e| e.context("underlayDevice"))?;
        }
        if let Some(m) = raw.mtu {
            if !(68..=65535).contains(&m) {
                return Err(Error::invalid_config(format!(
                    "mtu {m} out of range 68-65535"
                )));
            }
        }
        let peers = unique_peers(&raw.peers, raw.local_ip)?;
        let mut subnets: Vec<IpNetwork> = raw.subnet.into_iter().chain(raw.subnets).collect();
        for s in &mut subnets {
            *s = subnet::normalise(*s);
        }
        subnets.dedup();
        subnet::check_ranges(&subnets, &subnet::ipam_ranges(&req.config)?)?;
        Ok(Conf {
            network: req.config.name.clone(),
            vni,
            port,
            underlay_device,
            local_ip: raw.local_ip,
            peers,
            mtu: raw.mtu,
            bridge,
            vxlan,
            subnets,
            disable_tx_csum: raw.disable_tx_checksum_offload,
            cluster: raw.cluster,
        })
    }

    /// The overlay's config in a conflist (`vxlan-overlay`, the list's
    /// name and version added), validated as an ADD would be: for the
    /// per-host daemon, which makes the same devices for its routing mesh.
    pub fn from_list(list: &serde_json::Value) -> Result<Conf> {
        let plugin = list
            .get("plugins")
            .and_then(serde_json::Value::as_array)
            .and_then(|ps| {
                ps.iter().find(|p| {
                    p.get("type").and_then(serde_json::Value::as_str) == Some("vxlan-overlay")
                })
            })
            .ok_or_else(|| Error::invalid_config("the network has no vxlan-overlay plugin"))?;
        let mut conf = plugin.clone();
        conf["name"] = list.get("name").cloned().unwrap_or_default();
        conf["cniVersion"] = list
            .get("cniVersion")
            .cloned()
            .unwrap_or_else(|| "1.0.0".into());
        Conf::load(&Request {
            command: cni_plugin::skel::Command::Add,
            container_id: "mesh".into(),
            netns: None,
            ifname: "eth0".into(),
            args: cni_spec::CniArgs::default(),
            path: vec![],
            config: cni_spec::NetConf::from_value(conf)?,
            version: cni_spec::Version::V1_0_0,
        })
    }

    /// The peers other than this host, once its underlay address is known.
    pub fn remote_peers(&self, local: IpAddr) -> Vec<IpAddr> {
        self.peers.iter().copied().filter(|p| *p != local).collect()
    }
}

/// Peers are unicast addresses of one family (that of `localIP`, when it is
/// given): a VXLAN device sends from one local address.
fn unique_peers(peers: &[IpAddr], local: Option<IpAddr>) -> Result<Vec<IpAddr>> {
    let mut out: Vec<IpAddr> = Vec::new();
    for p in peers {
        if p.is_unspecified() || p.is_multicast() || p.is_loopback() {
            return Err(Error::invalid_config(format!(
                "peer {p} is not a unicast underlay address"
            )));
        }
        let family = local.or_else(|| out.first().copied());
        if family.is_some_and(|f| f.is_ipv4() != p.is_ipv4()) {
            return Err(Error::invalid_config(format!(
                "peer {p}: all peers and localIP must be of one address family"
            )));
        }
        if !out.contains(p) {
            out.push(*p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_plugin::skel::Command;
    use cni_spec::{CniArgs, NetConf, Version};
    use serde_json::{json, Value};

    fn load(extra: Value) -> Result<Conf> {
        let mut v = json!({"cniVersion": "1.0.0", "name": "ov", "type": "vxlan-overlay"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Conf::load(&Request {
            command: Command::Add,
            container_id: "c1".into(),
            netns: None,
            ifname: "eth0".into(),
            args: CniArgs::default(),
            path: vec![],
            config: NetConf::from_value(v).unwrap(),
            version: Version::V1_0_0,
        })
    }

    #[test]
    fn defaults_are_derived_from_the_vni() {
        let c = load(json!({"vni": 4096})).unwrap();
        assert_eq!(c.port, 4789);
        assert_eq!(c.bridge, "vxbr4096");
        assert_eq!(c.vxlan, "vxlan4096");
        assert!(c.peers.is_empty() && c.mtu.is_none() && !c.disable_tx_csum);
        let c = load(json!({"vni": 16777215})).unwrap();
        assert!(c.vxlan.len() <= 15 && c.bridge.len() <= 15);
    }

    #[test]
    fn peers_are_deduplicated_and_self_is_skipped() {
        let c = load(json!({"vni": 1, "peers": ["192.0.2.1", "192.0.2.2", "192.0.2.1"]})).unwrap();
        assert_eq!(c.peers.len(), 2);
        let me: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            c.remote_peers(me),
            vec!["192.0.2.2".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn bad_values_are_config_errors() {
        for bad in [
            json!({}),
            json!({"vni": 0}),
            json!({"vni": -1}),
            json!({"vni": 16777216}),
            json!({"vni": "7"}),
            json!({"vni": 1, "port": 0}),
            json!({"vni": 1, "port": 70000}),
            json!({"vni": 1, "mtu": 20}),
            json!({"vni": 1, "bridge": "much-too-long-bridge"}),
            json!({"vni": 1, "bridge": "vxlan1"}),
            json!({"vni": 1, "underlayDevice": "a/b"}),
            json!({"vni": 1, "peers": ["192.0.2.1", "2001:db8::1"]}),
            json!({"vni": 1, "localIP": "2001:db8::1", "peers": ["192.0.2.1"]}),
            json!({"vni": 1, "peers": ["224.0.0.1"]}),
            json!({"vni": 1, "peers": ["not-an-ip"]}),
            json!({"vni": 1, "subnet": "10.0.0.0/33"}),
            json!({"vni": 1, "disableTxChecksumOffload": "yes"}),
        ] {
            assert_eq!(load(bad.clone()).unwrap_err().code, 7, "{bad}");
        }
    }

    #[test]
    fn ipam_range_outside_the_overlay_subnet_is_refused() {
        let ok = json!({"vni": 1, "subnet": "10.10.0.0/16", "ipam": {"type": "host-local",
            "ranges": [[{"subnet": "10.10.0.0/16", "rangeStart": "10.10.1.1", "rangeEnd": "10.10.1.254"}]]}});
        assert_eq!(load(ok).unwrap().subnets[0].to_string(), "10.10.0.0/16");
        for bad in [
            json!({"vni": 1, "subnet": "10.10.0.0/16", "ipam": {"type": "host-local",
                "ranges": [[{"subnet": "10.11.0.0/16"}]]}}),
            json!({"vni": 1, "subnet": "10.10.0.0/16", "ipam": {"type": "host-local",
                "ranges": [[{"subnet": "10.10.1.0/24"}]]}}),
            json!({"vni": 1, "subnet": "10.10.0.0/16", "ipam": {"type": "host-local",
                "subnet": "10.10.0.0/16", "rangeStart": "10.11.0.1"}}),
            json!({"vni": 1, "ipam": {"type": "host-local",
                "ranges": [[{"subnet": "10.10.0.0/24", "rangeEnd": "10.10.1.9"}]]}}),
        ] {
            assert_eq!(load(bad.clone()).unwrap_err().code, 7, "{bad}");
        }
    }
}
