//! The bridge plugin's network configuration: every option of the reference
//! bridge, plus `isolation` (Docker's rule that containers on two different
//! bridge networks cannot reach each other; on unless switched off).

use std::collections::BTreeSet;

use cni_net::netlink::{check_ifname, parse_mac, Mac};
use cni_plugin::skel::Request;
use cni_spec::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

/// The bridge name when the config gives none (the reference's default).
pub const DEFAULT_BRIDGE: &str = "cni0";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    is_gateway: bool,
    #[serde(default)]
    is_default_gateway: bool,
    #[serde(default)]
    force_address: bool,
    #[serde(default)]
    ip_masq: bool,
    /// Accepted for compatibility; our rules always live in nftables tables
    /// of our own.
    #[serde(default)]
    ip_masq_backend: Option<String>,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    hairpin_mode: bool,
    #[serde(default)]
    promisc_mode: bool,
    #[serde(default)]
    vlan: i64,
    #[serde(default)]
    vlan_trunk: Vec<Trunk>,
    #[serde(default)]
    preserve_default_vlan: Option<bool>,
    #[serde(default, rename = "enabledad")]
    enable_dad: bool,
    #[serde(default)]
    macspoofchk: bool,
    #[serde(default)]
    disable_container_interface: bool,
    #[serde(default)]
    port_isolation: bool,
    #[serde(default)]
    isolation: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Trunk {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default, rename = "minID")]
    min_id: Option<i64>,
    #[serde(default, rename = "maxID")]
    max_id: Option<i64>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    pub network: String,
    pub bridge: String,
    /// `isGateway` (also set by `isDefaultGateway`).
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub ip_masq: bool,
    pub mtu: Option<u32>,
    pub hairpin: bool,
    pub promisc: bool,
    /// Access VLAN; 0: none.
    pub vlan: u16,
    /// Tagged VLANs, sorted, unique.
    pub trunk: Vec<u16>,
    pub preserve_default_vlan: bool,
    pub enable_dad: bool,
    pub macspoofchk: bool,
    pub disable_container_interface: bool,
    pub port_isolation: bool,
    /// Docker's inter-network isolation.
    pub isolation: bool,
    /// Container MAC: runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC.
    pub mac: Option<Mac>,
    /// An `ipam` block with a type: L3. Without: an L2-only port.
    pub l3: bool,
}

impl Conf {
    pub fn load(req: &Request) -> Result<Conf> {
        let raw: Raw = req.config.parse()?;
        let bridge = raw
            .bridge
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        check_ifname(&bridge).map_err(|e| e.context("bridge"))?;
        if raw.hairpin_mode && raw.promisc_mode {
            return Err(Error::invalid_config(
                "cannot set hairpinMode and promiscMode at the same time",
            ));
        }
        let l3 = req.config.ipam_type.is_some();
        if raw.disable_container_interface && l3 {
            return Err(Error::invalid_config(
                "cannot use IPAM when disableContainerInterface is set",
            ));
        }
        if let Some(b) = raw.ip_masq_backend.as_deref() {
            if !matches!(b, "" | "iptables" | "nftables") {
                return Err(Error::invalid_config(format!(
                    "ipMasqBackend {b:?}: expected \"iptables\" or \"nftables\""
                )));
            }
        }
        let vlan = u16::try_from(raw.vlan)
            .ok()
            .filter(|v| *v <= 4094)
            .ok_or_else(|| {
                Error::invalid_config(format!(
                    "invalid VLAN ID {} (must be between 0 and 4094)",
                    raw.vlan
                ))
            })?;
        Ok(Conf {
            network: req.config.name.clone(),
            bridge,
            is_gateway: raw.is_gateway || raw.is_default_gateway,
            is_default_gateway: raw.is_default_gateway,
            force_address: raw.force_address,
            ip_masq: raw.ip_masq,
            mtu: (raw.mtu != 0).then_some(raw.mtu),
            hairpin: raw.hairpin_mode,
            promisc: raw.promisc_mode,
            vlan,
            trunk: collect_trunk(&raw.vlan_trunk)?,
            preserve_default_vlan: raw.preserve_default_vlan.unwrap_or(true),
            enable_dad: raw.enable_dad,
            macspoofchk: raw.macspoofchk,
            disable_container_interface: raw.disable_container_interface,
            port_isolation: raw.port_isolation,
            isolation: raw.isolation.unwrap_or(true),
            mac: container_mac(req)?,
            l3,
        })
    }

    /// VLAN options need a VLAN-filtering bridge.
    pub fn wants_vlans(&self) -> bool {
        self.vlan != 0 || !self.trunk.is_empty()
    }
}

fn trunk_id(v: i64, what: &str) -> Result<u16> {
    u16::try_from(v)
        .ok()
        .filter(|v| (1..=4094).contains(v))
        .ok_or_else(|| Error::invalid_config(format!("incorrect trunk {what} parameter {v}")))
}

fn collect_trunk(trunks: &[Trunk]) -> Result<Vec<u16>> {
    let mut set = BTreeSet::new();
    for t in trunks {
        match (t.min_id, t.max_id) {
            (Some(min), Some(max)) => {
                let (min, max) = (trunk_id(min, "minID")?, trunk_id(max, "maxID")?);
                if max < min {
                    return Err(Error::invalid_config(
                        "minID is greater than maxID in trunk parameter",
                    ));
                }
                set.extend(min..=max);
            }
            (None, None) => {}
            _ => {
                return Err(Error::invalid_config(
                    "minID and maxID should be configured simultaneously in vlanTrunk",
                ))
            }
        }
        if let Some(id) = t.id {
            set.insert(trunk_id(id, "id")?);
        }
    }
    Ok(set.into_iter().collect())
}

/// runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC, as the reference reads it.
fn container_mac(req: &Request) -> Result<Option<Mac>> {
    let runtime = req.config.runtime_config().get("mac").cloned();
    let args = req.config.cni_arg("mac").cloned();
    let env = req.args.get("MAC").map(|s| Value::String(s.to_string()));
    let Some(v) = runtime.or(args).or(env) else {
        return Ok(None);
    };
    match v {
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => parse_mac(&s).map(Some),
        other => Err(Error::invalid_config(format!(
            "mac must be a string, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_plugin::skel::Command;
    use cni_spec::{CniArgs, NetConf, Version};
    use serde_json::json;

    fn req(conf: Value, cni_args: &str) -> Request {
        Request {
            command: Command::Add,
            container_id: "c1".into(),
            netns: None,
            ifname: "eth0".into(),
            args: CniArgs::parse(cni_args).unwrap(),
            path: vec![],
            config: NetConf::from_value(conf).unwrap(),
            version: Version::V1_0_0,
        }
    }

    fn base(extra: Value) -> Value {
        let mut v = json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    fn load(extra: Value) -> Result<Conf> {
        Conf::load(&req(base(extra), ""))
    }

    #[test]
    fn defaults_match_the_reference_plus_isolation() {
        let c = load(json!({})).unwrap();
        assert_eq!(c.bridge, "cni0");
        assert!(!c.is_gateway && !c.ip_masq && !c.l3 && c.mtu.is_none());
        assert!(c.isolation);
        assert!(c.preserve_default_vlan);
        let c = load(
            json!({"isDefaultGateway": true, "isolation": false, "ipam": {"type": "host-local"}}),
        )
        .unwrap();
        assert!(c.is_gateway && c.is_default_gateway && !c.isolation && c.l3);
    }

    #[test]
    fn conflicting_options_are_config_errors() {
        for bad in [
            json!({"hairpinMode": true, "promiscMode": true}),
            json!({"disableContainerInterface": true, "ipam": {"type": "host-local"}}),
            json!({"vlan": 4095}),
            json!({"vlan": -1}),
            json!({"vlanTrunk": [{"minID": 10}]}),
            json!({"vlanTrunk": [{"minID": 20, "maxID": 10}]}),
            json!({"vlanTrunk": [{"id": 0}]}),
            json!({"bridge": "a/b"}),
            json!({"bridge": "much-too-long-bridge"}),
            json!({"ipMasqBackend": "pf"}),
            json!({"mtu": "big"}),
            json!({"isGateway": "yes"}),
            json!({"runtimeConfig": {"mac": "zz"}}),
        ] {
            assert_eq!(load(bad.clone()).unwrap_err().code, 7, "{bad}");
        }
    }

    #[test]
    fn trunks_are_merged_sorted_unique() {
        let c =
            load(json!({"vlanTrunk": [{"id": 5}, {"minID": 3, "maxID": 6}, {"id": 100}]})).unwrap();
        assert_eq!(c.trunk, vec![3, 4, 5, 6, 100]);
        assert!(c.wants_vlans());
    }

    #[test]
    fn mac_precedence_runtime_then_args_then_env() {
        let env = "MAC=02:00:00:00:00:03";
        let all = base(json!({
            "runtimeConfig": {"mac": "02:00:00:00:00:01"},
            "args": {"cni": {"mac": "02:00:00:00:00:02"}}
        }));
        let mac = |v: Value, e: &str| Conf::load(&req(v, e)).unwrap().mac.unwrap()[5];
        assert_eq!(mac(all, env), 1);
        assert_eq!(
            mac(
                base(json!({"args": {"cni": {"mac": "02:00:00:00:00:02"}}})),
                env
            ),
            2
        );
        assert_eq!(mac(base(json!({})), env), 3);
        assert!(Conf::load(&req(base(json!({})), "")).unwrap().mac.is_none());
    }
}
