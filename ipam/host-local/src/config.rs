//! The `ipam` block and per-request inputs, resolved into what the
//! allocator needs. Every mistake is a code-7 error naming the field
//! (code 4 for `CNI_ARGS`), as the spec asks.

use std::net::IpAddr;
use std::path::PathBuf;

use cni_spec::{CniArgs, Dns, NetConf, Route};
use cni_spec::{Error, Result};
use serde_json::{Map, Value};

use crate::range::{parse_ip, RangeSet, RangeSpec};
use crate::store::disk::DEFAULT_DATA_DIR;

/// A range set and where in the config it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledSet {
    pub label: String,
    pub set: RangeSet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    pub range_sets: Vec<LabeledSet>,
    pub routes: Vec<Route>,
    pub data_dir: PathBuf,
    pub resolv_conf: Option<PathBuf>,
    /// From `CNI_ARGS IP=`, `args.cni.ips` and `runtimeConfig.ips`, in
    /// that order, without duplicates.
    pub requested: Vec<IpAddr>,
}

fn ipam_block(conf: &NetConf) -> Result<&Map<String, Value>> {
    match conf.get("ipam") {
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(Error::invalid_config("ipam must be an object")),
        None => Err(Error::invalid_config(
            "network config has no \"ipam\" block for host-local",
        )),
    }
}

/// An optional string; `""` counts as absent (as Go's decoding of an
/// empty address does).
fn opt_str(map: &Map<String, Value>, key: &str, field: &str) -> Result<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid_config(format!(
            "{field}.{key} must be a string, got {other}"
        ))),
    }
}

/// `dataDir`, the only thing DEL and GC need: they must work even when the
/// ranges of a config were since edited into something invalid.
pub fn data_dir(conf: &NetConf) -> Result<PathBuf> {
    let ipam = ipam_block(conf)?;
    Ok(opt_str(ipam, "dataDir", "ipam")?
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)))
}

fn range_spec(v: &Value, field: &str) -> Result<RangeSpec> {
    let Value::Object(o) = v else {
        return Err(Error::invalid_config(format!("{field} must be an object")));
    };
    let subnet = opt_str(o, "subnet", field)?
        .ok_or_else(|| Error::invalid_config(format!("{field}.subnet is missing")))?;
    Ok(RangeSpec {
        subnet,
        range_start: opt_str(o, "rangeStart", field)?,
        range_end: opt_str(o, "rangeEnd", field)?,
        gateway: opt_str(o, "gateway", field)?,
    })
}

/// A list of range sets (`ipam.ranges`, `runtimeConfig.ipRanges`).
fn range_sets(v: Option<&Value>, field: &str) -> Result<Vec<LabeledSet>> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(Error::invalid_config(format!(
                "{field} must be a list of range sets (lists of ranges)"
            )))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, set)| {
            let label = format!("{field}[{i}]");
            let Value::Array(ranges) = set else {
                return Err(Error::invalid_config(format!(
                    "{label} must be a list of ranges"
                )));
            };
            let specs = ranges
                .iter()
                .enumerate()
                .map(|(j, r)| range_spec(r, &format!("{label}[{j}]")))
                .collect::<Result<Vec<_>>>()?;
            Ok(LabeledSet {
                set: RangeSet::resolve(&specs, &label)?,
                label,
            })
        })
        .collect()
}

fn ip_list(v: Option<&Value>, field: &str) -> Result<Vec<IpAddr>> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(Error::invalid_config(format!("{field} must be a list"))),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str().and_then(parse_ip).ok_or_else(|| {
                Error::invalid_config(format!("{field}[{i}] {v} is not an IP address"))
            })
        })
        .collect()
}

impl IpamConfig {
    pub fn load(conf: &NetConf, args: &CniArgs) -> Result<IpamConfig> {
        let ipam = ipam_block(conf)?;
        let rc = conf.runtime_config();

        // Order as the reference: runtime ranges, the legacy single range,
        // then `ranges`.
        let mut sets = range_sets(rc.get("ipRanges"), "runtimeConfig.ipRanges")?;
        if opt_str(ipam, "subnet", "ipam")?.is_some() {
            let spec = range_spec(&Value::Object(ipam.clone()), "ipam")?;
            sets.push(LabeledSet {
                set: RangeSet::resolve(&[spec], "ipam")?,
                label: "ipam (subnet)".into(),
            });
        }
        sets.extend(range_sets(ipam.get("ranges"), "ipam.ranges")?);
        if sets.is_empty() {
            return Err(Error::invalid_config(
                "ipam: no IP ranges specified (set \"ranges\" or \"subnet\")",
            ));
        }
        for (i, a) in sets.iter().enumerate() {
            for b in &sets[i + 1..] {
                if a.set.overlaps(&b.set) {
                    return Err(Error::invalid_config(format!(
                        "range sets {} ({}) and {} ({}) overlap",
                        a.label, a.set, b.label, b.set
                    )));
                }
            }
        }

        let routes = match ipam.get("routes") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value::<Vec<Route>>(v.clone())
                .map_err(|e| Error::invalid_config(format!("ipam.routes: {e}")))?,
        };

        let mut requested = Vec::new();
        if let Some(text) = args.get("IP") {
            for part in text.split(',').filter(|p| !p.trim().is_empty()) {
                let ip = parse_ip(part).ok_or_else(|| {
                    Error::invalid_env(format!(
                        "CNI_ARGS IP={text:?}: {part:?} is not an IP address"
                    ))
                })?;
                requested.push(ip);
            }
        }
        requested.extend(ip_list(conf.cni_arg("ips"), "args.cni.ips")?);
        requested.extend(ip_list(rc.get("ips"), "runtimeConfig.ips")?);
        let mut seen = std::collections::HashSet::new();
        requested.retain(|ip| seen.insert(*ip));

        Ok(IpamConfig {
            range_sets: sets,
            routes,
            data_dir: data_dir(conf)?,
            resolv_conf: opt_str(ipam, "resolvConf", "ipam")?.map(PathBuf::from),
            requested,
        })
    }

    /// The result's `dns` block from `resolvConf`, if set.
    pub fn dns(&self) -> Result<Dns> {
        let Some(path) = &self.resolv_conf else {
            return Ok(Dns::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::from_io(
                format_args!("ipam.resolvConf: failed to read {}", path.display()),
                e,
            )
        })?;
        Ok(crate::dns::parse_resolv_conf(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(v: Value, args: &str) -> Result<IpamConfig> {
        let conf = NetConf::from_value(v).unwrap();
        IpamConfig::load(&conf, &CniArgs::parse(args).unwrap())
    }

    fn net(ipam: Value) -> Value {
        json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge", "ipam": ipam})
    }

    #[test]
    fn reads_every_option_in_reference_order() {
        let c = load(
            json!({
                "cniVersion": "1.0.0", "name": "n", "type": "bridge",
                "ipam": {
                    "type": "host-local",
                    "subnet": "10.9.0.0/24", "gateway": "10.9.0.254",
                    "ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.20"}],
                               [{"subnet": "fd00::/64"}]],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.0.1"}],
                    "dataDir": "/tmp/x", "resolvConf": "/etc/resolv.conf"
                },
                "runtimeConfig": {"ipRanges": [[{"subnet": "10.2.0.0/16"}]], "ips": ["10.1.0.15/24"]},
                "args": {"cni": {"ips": ["fd00::9"]}}
            }),
            "IgnoreUnknown=1;IP=10.2.0.7,10.2.0.8",
        )
        .unwrap();
        let labels: Vec<&str> = c.range_sets.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "runtimeConfig.ipRanges[0]",
                "ipam (subnet)",
                "ipam.ranges[0]",
                "ipam.ranges[1]"
            ]
        );
        assert_eq!(c.range_sets[1].set.0[0].gateway.to_string(), "10.9.0.254");
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        let req: Vec<String> = c.requested.iter().map(|i| i.to_string()).collect();
        assert_eq!(req, ["10.2.0.7", "10.2.0.8", "fd00::9", "10.1.0.15"]);
    }

    #[test]
    fn defaults_and_errors() {
        let c = load(
            net(json!({"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}]]})),
            "",
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.requested.is_empty());

        let bad = [
            (json!({"type": "host-local"}), "no IP ranges"),
            (
                json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/25"}]]}),
                "overlap",
            ),
            (
                json!({"ranges": [[{"subnet": 5}]]}),
                "ipam.ranges[0][0].subnet",
            ),
            (
                json!({"ranges": [[{"rangeStart": "10.0.0.1"}]]}),
                "subnet is missing",
            ),
            (
                json!({"ranges": [{"subnet": "10.1.0.0/24"}]}),
                "ipam.ranges[0] must be a list",
            ),
            (
                json!({"ranges": [[{"subnet": "10.1.0.0/24"}]], "routes": [{"dst": "x"}]}),
                "ipam.routes",
            ),
            (
                json!({"ranges": [[{"subnet": "10.1.0.0/24"}]], "dataDir": 1}),
                "dataDir",
            ),
        ];
        for (ipam, word) in bad {
            let e = load(net(ipam.clone()), "").unwrap_err();
            assert_eq!(e.code, 7, "{ipam}");
            assert!(e.msg.contains(word), "{:?} lacks {word}", e.msg);
        }
        let ok = json!({"ranges": [[{"subnet": "10.1.0.0/24"}]]});
        let e = load(net(ok.clone()), "IP=banana").unwrap_err();
        assert_eq!(e.code, 4);
        let mut v = net(ok);
        v["runtimeConfig"] = json!({"ips": ["nope"]});
        assert!(load(v, "")
            .unwrap_err()
            .msg
            .contains("runtimeConfig.ips[0]"));
        let no_ipam = json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"});
        assert_eq!(load(no_ipam, "").unwrap_err().code, 7);
    }
}
