//! Docker's network object (CNM) as we keep it: in the network's own
//! conflist, under a `cnm` key that CNI runtimes pass through untouched,
//! so one file serves containerd and `cnitool network inspect` alike.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The CNM drivers we map onto plugins: the built-in ones, and Docker's
/// third-party ("remote") drivers, which here are any CNI plugin on
/// CNI_PATH. Kept in the conflist as the plain driver name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Driver {
    Bridge,
    Macvlan,
    Overlay,
    Host,
    Null,
    Remote(Remote),
}

/// A third-party driver: the CNI plugin's type, and the spec versions it
/// answered to VERSION when the network was created (empty once read back
/// from a conflist, whose own versions then apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub plugin: String,
    pub versions: Vec<String>,
}

impl Driver {
    /// The driver built into cnitool by that name, if any.
    pub fn builtin(s: &str) -> Option<Driver> {
        Some(match s {
            "bridge" => Driver::Bridge,
            "macvlan" => Driver::Macvlan,
            "overlay" => Driver::Overlay,
            "host" => Driver::Host,
            "null" | "none" => Driver::Null,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Macvlan => "macvlan",
            Driver::Overlay => "overlay",
            Driver::Host => "host",
            Driver::Null => "null",
            Driver::Remote(r) => &r.plugin,
        }
    }

    /// `local` for single-host drivers, `swarm` for the overlay.
    pub fn scope(&self) -> &'static str {
        match self {
            Driver::Overlay => "swarm",
            _ => "local",
        }
    }
}

impl From<Driver> for String {
    fn from(d: Driver) -> String {
        d.as_str().to_string()
    }
}

impl From<String> for Driver {
    fn from(s: String) -> Driver {
        Driver::builtin(&s).unwrap_or(Driver::Remote(Remote {
            plugin: s,
            versions: Vec::new(),
        }))
    }
}

/// One `--subnet` with its `--ip-range`, `--gateway` and `--aux-address`es.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub subnet: IpNetwork,
    #[serde(rename = "ipRange", default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<IpNetwork>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(
        rename = "auxAddresses",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// A user-visible network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    #[serde(skip)]
    pub name: String,
    pub driver: Driver,
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub ipv6: bool,
    #[serde(default)]
    pub ipam: Vec<Pool>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Pre-created networks (`bridge`, `host`, `none`) cannot be removed.
    #[serde(skip)]
    pub builtin: bool,
    /// Cluster scope: stored in etcd, materialized on every host by the
    /// daemon (which only ever touches conflists marked so).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster: bool,
}

impl Network {
    /// Docker's network ID is 64 hex digits; ours is sha256 of the name, so
    /// it is stable and needs no store.
    pub fn id(&self) -> String {
        network_id(&self.name)
    }

    pub fn short_id(&self) -> String {
        self.id()[..12].to_string()
    }

    pub fn scope(&self) -> &'static str {
        self.driver.scope()
    }

    pub fn option(&self, keys: &[&str]) -> Option<&str> {
        keys.iter()
            .find_map(|k| self.options.get(*k))
            .map(String::as_str)
    }
}

pub fn network_id(name: &str) -> String {
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Now as RFC 3339 UTC, without pulling in a date crate.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_sha256() {
        let n = Network {
            name: "bridge".into(),
            driver: Driver::Bridge,
            created: String::new(),
            internal: false,
            ipv6: false,
            ipam: vec![],
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
            builtin: true,
            cluster: false,
        };
        assert_eq!(n.id().len(), 64);
        assert_eq!(n.short_id(), &network_id("bridge")[..12]);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_781_106), "2026-11-27T12:05:06Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn drivers() {
        assert_eq!(Driver::builtin("none"), Some(Driver::Null));
        assert_eq!(Driver::builtin("overlay").unwrap().scope(), "swarm");
        assert_eq!(Driver::builtin("ptp"), None);
    }

    #[test]
    fn drivers_are_kept_as_their_plain_name() {
        let ptp = Driver::Remote(Remote {
            plugin: "ptp".into(),
            versions: vec!["1.0.0".into()],
        });
        assert_eq!(serde_json::to_value(&ptp).unwrap(), "ptp");
        assert_eq!(serde_json::to_value(Driver::Null).unwrap(), "null");
        let back: Driver = serde_json::from_value("ptp".into()).unwrap();
        assert_eq!(back.as_str(), "ptp");
        let bridge: Driver = serde_json::from_value("bridge".into()).unwrap();
        assert_eq!(bridge, Driver::Bridge);
    }
}
