//! One subnet spans every host of an overlay: a container on host A and one
//! on host B are on the same L2 segment and reach each other directly, so
//! both must see the same subnet (same network, same prefix). Each host's
//! IPAM then hands out a disjoint part of it: with host-local, a
//! `rangeStart`/`rangeEnd` per host (what `cnitool network create
//! --ip-range` writes). Nothing here can see the other hosts' ranges, so
//! disjointness stays the operator's (or the CLI's) job; what the plugin can
//! check is that this host's range lies in the overlay subnet, and it
//! refuses to start otherwise.
//!
//! The overlay subnet is declared with `subnet` (or `subnets`, one per
//! family). Without it, each range's own subnet is all we know, and only
//! "start and end lie in it" is checked. After IPAM ADD the addresses are
//! checked against the declared subnets too, which covers IPAM plugins
//! whose config we cannot read.

use std::net::IpAddr;

use cni_spec::{CniResult, NetConf};
use cni_spec::{Error, Result};
use ipnetwork::IpNetwork;
use serde_json::Value;

/// One host-local range as far as the subnet rules go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNetwork,
    pub start: Option<IpAddr>,
    pub end: Option<IpAddr>,
}

/// The network itself: host bits cleared.
pub fn normalise(n: IpNetwork) -> IpNetwork {
    IpNetwork::new(n.network(), n.prefix()).unwrap_or(n)
}

/// The ranges the IPAM plugin will allocate from, in host-local's format:
/// `runtimeConfig.ipRanges` (which replaces the config's ranges when the
/// runtime passes it), else `ipam.ranges`, else the legacy single range
/// (`ipam.subnet`, `rangeStart`, `rangeEnd`).
pub fn ipam_ranges(conf: &NetConf) -> Result<Vec<Range>> {
    let runtime = conf.runtime_config();
    let sets = match runtime.get("ipRanges") {
        Some(v @ Value::Array(a)) if !a.is_empty() => Some(v.clone()),
        _ => conf.ipam().and_then(|i| i.get("ranges")).cloned(),
    };
    if let Some(sets) = sets {
        let mut out = Vec::new();
        for set in sets.as_array().into_iter().flatten() {
            for r in set.as_array().into_iter().flatten() {
                out.extend(range_of(r)?);
            }
        }
        return Ok(out);
    }
    match conf.ipam() {
        Some(ipam) => Ok(range_of(&Value::Object(ipam.clone()))?
            .into_iter()
            .collect()),
        None => Ok(Vec::new()),
    }
}

/// A range object; None when it names no subnet (not host-local's format).
fn range_of(v: &Value) -> Result<Option<Range>> {
    let Some(subnet) = field(v, "subnet")? else {
        return Ok(None);
    };
    let subnet: IpNetwork = subnet
        .parse()
        .map_err(|e| Error::invalid_config(format!("ipam subnet {subnet:?}: {e}")))?;
    Ok(Some(Range {
        subnet,
        start: addr(v, "rangeStart")?,
        end: addr(v, "rangeEnd")?,
    }))
}

fn field<'a>(v: &'a Value, key: &str) -> Result<Option<&'a str>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Error::invalid_config(format!(
            "ipam {key} must be a string, got {other}"
        ))),
    }
}

fn addr(v: &Value, key: &str) -> Result<Option<IpAddr>> {
    field(v, key)?
        .map(|s| {
            s.parse()
                .map_err(|e| Error::invalid_config(format!("ipam {key} {s:?}: {e}")))
        })
        .transpose()
}

/// Every range must be one of the overlay subnets (when declared) and its
/// start and end must lie in it.
pub fn check_ranges(subnets: &[IpNetwork], ranges: &[Range]) -> Result<()> {
    for r in ranges {
        let net = normalise(r.subnet);
        if !subnets.is_empty() && !subnets.contains(&net) {
            return Err(Error::invalid_config(format!(
                "ipam range subnet {} is not the overlay subnet ({}): every host must hand \
                 out addresses of the one subnet the overlay spans, each from its own \
                 rangeStart-rangeEnd",
                r.subnet,
                list(subnets)
            )));
        }
        for (what, a) in [("rangeStart", r.start), ("rangeEnd", r.end)] {
            if let Some(a) = a {
                if !net.contains(a) {
                    return Err(Error::invalid_config(format!(
                        "ipam {what} {a} lies outside the overlay subnet {net}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The IPAM result's addresses lie in the declared subnets, with their
/// prefix (a narrower prefix would make hosts' containers off-link to each
/// other).
pub fn check_result(subnets: &[IpNetwork], result: &CniResult) -> Result<()> {
    if subnets.is_empty() {
        return Ok(());
    }
    for ip in &result.ips {
        if !subnets.contains(&normalise(ip.address)) {
            return Err(Error::invalid_config(format!(
                "IPAM returned {}, which is not in the overlay subnet ({})",
                ip.address,
                list(subnets)
            )));
        }
    }
    Ok(())
}

fn list(subnets: &[IpNetwork]) -> String {
    subnets
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> NetConf {
        NetConf::from_value(v).unwrap()
    }

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_come_from_runtime_then_ranges_then_legacy() {
        let c = conf(json!({"name": "n", "type": "t",
            "runtimeConfig": {"ipRanges": [[{"subnet": "10.9.0.0/16"}]]},
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.8.0.0/16"}]]}}));
        assert_eq!(ipam_ranges(&c).unwrap()[0].subnet, net("10.9.0.0/16"));
        let c = conf(json!({"name": "n", "type": "t",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.8.0.0/16"}], [{"subnet": "fd00::/64"}]]}}));
        assert_eq!(ipam_ranges(&c).unwrap().len(), 2);
        let c = conf(json!({"name": "n", "type": "t",
            "ipam": {"type": "host-local", "subnet": "10.7.0.0/16", "rangeStart": "10.7.1.1"}}));
        let r = ipam_ranges(&c).unwrap();
        assert_eq!(r[0].start, Some("10.7.1.1".parse().unwrap()));
        let c = conf(json!({"name": "n", "type": "t", "ipam": {"type": "dhcp"}}));
        assert!(ipam_ranges(&c).unwrap().is_empty());
        let c = conf(json!({"name": "n", "type": "t", "ipam": {"type": "x", "subnet": 7}}));
        assert_eq!(ipam_ranges(&c).unwrap_err().code, 7);
    }

    #[test]
    fn results_outside_the_subnet_are_refused() {
        let r =
            CniResult::from_slice(br#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24"}]}"#)
                .unwrap();
        assert!(check_result(&[], &r).is_ok());
        assert!(check_result(&[net("10.1.0.0/24")], &r).is_ok());
        assert_eq!(check_result(&[net("10.1.0.0/16")], &r).unwrap_err().code, 7);
    }
}
