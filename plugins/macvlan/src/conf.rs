//! The macvlan network config: the reference plugin's keys, plus `dad`.
//!
//! Each key is read on its own so that a bad value is reported with the
//! key's name (code 7), which serde's derive does not do for type errors.

use std::time::Duration;

use cni_net::arp::ProbeOptions;
use cni_net::netlink::{parse_mac, Mac, MacvlanMode};
use cni_plugin::skel::Request;
use cni_spec::Dns;
use cni_spec::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Longest probe run we accept, so a typo cannot stall ADD for minutes.
const MAX_PROBES: u32 = 10;
const MAX_INTERVAL_MS: u64 = 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct Conf {
    /// None: the interface of the default route.
    pub master: Option<String>,
    pub mode: MacvlanMode,
    /// None (or `0` in the config): the master's MTU.
    pub mtu: Option<u32>,
    /// From `runtimeConfig.mac`, else CNI_ARGS `MAC`, else `mac`.
    pub mac: Option<Mac>,
    /// The master lives in the container's namespace, not the host's.
    pub link_in_container: bool,
    pub bc_queue_len: Option<u32>,
    /// ARP probing before the address is configured (`"dad"`).
    pub dad: Option<ProbeOptions>,
    pub dns: Dns,
}

/// `"dad": true` or `"dad": {"probes": 3, "intervalMs": 50}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum DadField {
    On(bool),
    Tuned {
        #[serde(default)]
        probes: Option<u32>,
        #[serde(default, rename = "intervalMs")]
        interval_ms: Option<u64>,
    },
}

impl Conf {
    /// Everything ADD and CHECK need.
    pub fn load(req: &Request) -> Result<Conf> {
        let raw = &req.config.raw;
        let master = Self::master_of(raw)?;
        let mode = match field::<String>(raw, "mode")? {
            None => MacvlanMode::Bridge,
            Some(m) => MacvlanMode::parse(&m).map_err(|e| e.context("invalid \"mode\""))?,
        };
        let mtu = field::<u32>(raw, "mtu")?.filter(|m| *m != 0);
        let bc_queue_len = field::<u32>(raw, "bcqueuelen")?.filter(|n| *n != 0);
        Ok(Conf {
            master,
            mode,
            mtu,
            mac: mac_of(req)?,
            link_in_container: Self::link_in_container_of(raw)?,
            bc_queue_len,
            dad: dad_of(raw)?,
            dns: field::<Dns>(raw, "dns")?.unwrap_or_default(),
        })
    }

    /// `master`, with an empty string meaning "not set" (as the reference).
    pub fn master_of(raw: &Map<String, Value>) -> Result<Option<String>> {
        Ok(field::<String>(raw, "master")?.filter(|m| !m.is_empty()))
    }

    pub fn link_in_container_of(raw: &Map<String, Value>) -> Result<bool> {
        Ok(field::<bool>(raw, "linkInContainer")?.unwrap_or(false))
    }
}

/// One key, typed; absent or null is None; a wrong type names the key.
fn field<T: DeserializeOwned>(raw: &Map<String, Value>, key: &str) -> Result<Option<T>> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| Error::invalid_config(format!("invalid \"{key}\": {e}"))),
    }
}

/// The reference's order: `runtimeConfig.mac` wins over CNI_ARGS `MAC`,
/// which wins over the config's `mac`.
fn mac_of(req: &Request) -> Result<Option<Mac>> {
    let rc = req.config.runtime_config();
    let (source, text) = if let Some(m) = field::<String>(&rc, "mac")?.filter(|m| !m.is_empty()) {
        ("runtimeConfig.mac", m)
    } else if let Some(m) = req.args.get("MAC").filter(|m| !m.is_empty()) {
        ("CNI_ARGS MAC", m.to_string())
    } else if let Some(m) = field::<String>(&req.config.raw, "mac")?.filter(|m| !m.is_empty()) {
        ("mac", m)
    } else {
        return Ok(None);
    };
    let mac = parse_mac(&text).map_err(|e| e.context(format_args!("invalid {source}")))?;
    if mac[0] & 1 != 0 {
        return Err(Error::invalid_config(format!(
            "invalid {source}: {text} is a multicast address"
        )));
    }
    Ok(Some(mac))
}

fn dad_of(raw: &Map<String, Value>) -> Result<Option<ProbeOptions>> {
    let defaults = ProbeOptions::default();
    let (probes, interval_ms) = match field::<DadField>(raw, "dad")? {
        None | Some(DadField::On(false)) => return Ok(None),
        Some(DadField::On(true)) => return Ok(Some(defaults)),
        Some(DadField::Tuned {
            probes,
            interval_ms,
        }) => (probes, interval_ms),
    };
    let probes = probes.unwrap_or(defaults.probes);
    if !(1..=MAX_PROBES).contains(&probes) {
        return Err(Error::invalid_config(format!(
            "invalid \"dad.probes\": {probes}, must be 1-{MAX_PROBES}"
        )));
    }
    let interval = match interval_ms {
        None => defaults.interval,
        Some(ms) if (1..=MAX_INTERVAL_MS).contains(&ms) => Duration::from_millis(ms),
        Some(ms) => {
            return Err(Error::invalid_config(format!(
                "invalid \"dad.intervalMs\": {ms}, must be 1-{MAX_INTERVAL_MS}"
            )))
        }
    };
    Ok(Some(ProbeOptions { probes, interval }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_plugin::skel::Command;
    use cni_spec::version::Version;
    use cni_spec::{CniArgs, NetConf};
    use serde_json::json;

    fn req(conf: Value, args: &str) -> Request {
        let mut base = json!({"cniVersion": "1.0.0", "name": "n", "type": "macvlan"});
        base.as_object_mut()
            .unwrap()
            .extend(conf.as_object().unwrap().clone());
        Request {
            command: Command::Add,
            container_id: "c1".into(),
            netns: None,
            ifname: "eth0".into(),
            args: CniArgs::parse(args).unwrap(),
            path: vec![],
            config: NetConf::from_value(base).unwrap(),
            version: Version::V1_0_0,
        }
    }

    fn load(conf: Value) -> Result<Conf> {
        Conf::load(&req(conf, ""))
    }

    #[test]
    fn defaults() {
        let c = load(json!({})).unwrap();
        assert_eq!(c.master, None);
        assert_eq!(c.mode, MacvlanMode::Bridge);
        assert_eq!(
            (c.mtu, c.mac, c.bc_queue_len, c.dad),
            (None, None, None, None)
        );
        assert!(!c.link_in_container);
        assert_eq!(load(json!({"master": "", "mtu": 0})).unwrap().master, None);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (conf, key) in [
            (json!({"mode": "bogus"}), "\"mode\""),
            (json!({"mode": 3}), "\"mode\""),
            (json!({"mtu": -1}), "\"mtu\""),
            (json!({"mtu": "big"}), "\"mtu\""),
            (json!({"master": 5}), "\"master\""),
            (json!({"mac": "zz"}), "mac"),
            (json!({"mac": "01:00:5e:00:00:01"}), "multicast"),
            (json!({"linkInContainer": "yes"}), "\"linkInContainer\""),
            (json!({"bcqueuelen": -5}), "\"bcqueuelen\""),
            (json!({"dad": {"probes": 0}}), "dad.probes"),
            (json!({"dad": {"intervalMs": 5000}}), "dad.intervalMs"),
            (json!({"dad": "maybe"}), "\"dad\""),
        ] {
            let e = load(conf.clone()).unwrap_err();
            assert_eq!(e.code, 7, "{conf}: {e:?}");
            assert!(e.msg.contains(key), "{conf}: {} lacks {key}", e.msg);
        }
    }

    #[test]
    fn mac_precedence_runtime_config_then_cni_args_then_conf() {
        let conf =
            json!({"mac": "02:00:00:00:00:01", "runtimeConfig": {"mac": "02:00:00:00:00:03"}});
        let c = Conf::load(&req(conf, "MAC=02:00:00:00:00:02")).unwrap();
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 3]));
        let c = Conf::load(&req(
            json!({"mac": "02:00:00:00:00:01"}),
            "IgnoreUnknown=1;MAC=02:00:00:00:00:02",
        ))
        .unwrap();
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 2]));
        let c = load(json!({"mac": "02:00:00:00:00:01"})).unwrap();
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 1]));
        let e = Conf::load(&req(json!({}), "MAC=nope")).unwrap_err();
        assert!(e.msg.contains("CNI_ARGS MAC"), "{}", e.msg);
    }

    #[test]
    fn dad_forms() {
        assert_eq!(load(json!({"dad": false})).unwrap().dad, None);
        assert_eq!(
            load(json!({"dad": true})).unwrap().dad,
            Some(ProbeOptions::default())
        );
        let d = load(json!({"dad": {"probes": 2, "intervalMs": 30}}))
            .unwrap()
            .dad
            .unwrap();
        assert_eq!((d.probes, d.interval), (2, Duration::from_millis(30)));
    }

    #[test]
    fn options_are_read() {
        let c = load(json!({"master": "eth1", "mode": "passthru", "mtu": 1400,
                            "linkInContainer": true, "bcqueuelen": 100}))
        .unwrap();
        assert_eq!(c.master.as_deref(), Some("eth1"));
        assert_eq!(c.mode, MacvlanMode::Passthru);
        assert_eq!(c.mtu, Some(1400));
        assert!(c.link_in_container);
        assert_eq!(c.bc_queue_len, Some(100));
    }
}
