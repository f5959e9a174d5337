//! The reference portmap's configuration, validated: every refusal is
//! code 7 (invalid configuration) except iptables/nftables match fragments
//! in `conditionsV4`/`conditionsV6`, which are code 2 (unsupported field):
//! we do not parse another tool's rule language.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

use cni_net::firewall::portmap::{claim_of, PortMapping, Proto};
use cni_spec::{Error, NetConf, Result};

/// The reference's default mark bit (Kubernetes uses 14 and 15).
const DEFAULT_MARK_BIT: i64 = 13;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    snat: Option<bool>,
    #[serde(default)]
    masq_all: bool,
    mark_masq_bit: Option<i64>,
    external_set_mark_chain: Option<String>,
    #[serde(rename = "conditionsV4")]
    conditions_v4: Option<Vec<String>>,
    #[serde(rename = "conditionsV6")]
    conditions_v6: Option<Vec<String>>,
    backend: Option<String>,
}

/// What the plugin does for one invocation.
#[derive(Debug, Clone)]
pub struct Conf {
    pub snat: bool,
    pub masq_all: bool,
    pub mappings: Vec<PortMapping>,
}

impl Conf {
    pub fn load(config: &NetConf) -> Result<Conf> {
        let raw: Raw = config.parse()?;
        if raw.mark_masq_bit.is_some() && raw.external_set_mark_chain.is_some() {
            return Err(Error::invalid_config(
                "cannot specify externalSetMarkChain and markMasqBit",
            ));
        }
        let bit = raw.mark_masq_bit.unwrap_or(DEFAULT_MARK_BIT);
        if !(0..=31).contains(&bit) {
            return Err(Error::invalid_config(format!(
                "markMasqBit must be between 0 and 31, not {bit}"
            )));
        }
        match raw.backend.as_deref() {
            None | Some("nftables") | Some("iptables") => {}
            Some(b) => {
                return Err(Error::invalid_config(format!(
                    "unrecognized backend {b:?}: expected \"nftables\" or \"iptables\" \
                     (both mean our nftables rules)"
                )))
            }
        }
        for (key, list) in [
            ("conditionsV4", &raw.conditions_v4),
            ("conditionsV6", &raw.conditions_v6),
        ] {
            if list.iter().flatten().any(|c| !c.trim().is_empty()) {
                return Err(Error::unsupported_field(format!(
                    "{key} is not supported: its iptables or nft match fragments cannot be \
                     applied to our rules; publish on a hostIP instead"
                )));
            }
        }
        let mappings = match config.runtime_config().get("portMappings") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_mappings(v)?,
        };
        Ok(Conf {
            snat: raw.snat.unwrap_or(true),
            masq_all: raw.masq_all,
            mappings,
        })
    }
}

/// `runtimeConfig.portMappings`: each entry checked, then the list checked
/// for two entries claiming the same host port.
pub fn parse_mappings(v: &Value) -> Result<Vec<PortMapping>> {
    let Some(list) = v.as_array() else {
        return Err(Error::invalid_config(
            "runtimeConfig.portMappings must be a list",
        ));
    };
    let mut out: Vec<PortMapping> = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let m = parse_one(e).map_err(|e| e.context(format_args!("portMappings[{i}]")))?;
        if let Some(prev) = out.iter().find(|p| overlaps(p, &m)) {
            return Err(Error::invalid_config(format!(
                "portMappings[{i}]: duplicate mapping of host port {}/{} (already mapped to \
                 container port {})",
                m.host_port,
                m.proto.name(),
                prev.container_port
            )));
        }
        out.push(m);
    }
    Ok(out)
}

fn parse_one(e: &Value) -> Result<PortMapping> {
    let Some(o) = e.as_object() else {
        return Err(Error::invalid_config("a port mapping must be an object"));
    };
    let port = |key: &str| -> Result<u16> {
        let v = o.get(key).unwrap_or(&Value::Null);
        v.as_i64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::invalid_config(format!("invalid {key} {v}: expected 1 to 65535")))
    };
    let proto = match o.get("protocol") {
        None | Some(Value::Null) => Proto::Tcp,
        Some(Value::String(s)) if s.is_empty() => Proto::Tcp,
        Some(Value::String(s)) => Proto::parse(s).ok_or_else(|| {
            Error::invalid_config(format!("unknown protocol {s:?}: expected tcp, udp or sctp"))
        })?,
        Some(v) => {
            return Err(Error::invalid_config(format!(
                "invalid protocol {v}: expected tcp, udp or sctp"
            )))
        }
    };
    let host_ip = match o.get("hostIP") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(parse_host_ip(s)?),
        Some(v) => return Err(Error::invalid_config(format!("invalid hostIP {v}"))),
    };
    Ok(PortMapping {
        proto,
        host_ip,
        host_port: port("hostPort")?,
        container_port: port("containerPort")?,
    })
}

/// A literal address a host can own. An IPv4-mapped IPv6 address means its
/// IPv4 address (as the reference reads it).
fn parse_host_ip(s: &str) -> Result<IpAddr> {
    let ip: IpAddr = s.parse().map_err(|_| {
        Error::invalid_config(format!(
            "invalid hostIP {s:?}: expected an IPv4 or IPv6 address"
        ))
    })?;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let not_unicast = match ip {
        IpAddr::V4(a) => a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => a.is_multicast(),
    };
    if not_unicast {
        return Err(Error::invalid_config(format!(
            "invalid hostIP {s:?}: not a unicast address"
        )));
    }
    if ip == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST) {
        // A rule for it could never carry a connection (see dnat_rule).
        return Err(Error::invalid_config(format!(
            "invalid hostIP {s:?}: connections to ::1 cannot be translated to a container \
             (IPv6 has no route_localnet); publish on 127.0.0.1 instead"
        )));
    }
    Ok(ip)
}

/// Whether two mappings claim the same host port in some family.
fn overlaps(a: &PortMapping, b: &PortMapping) -> bool {
    let families = |m: &PortMapping| match m.host_ip {
        Some(ip) => vec![ip.is_ipv6()],
        None => vec![false, true],
    };
    families(a)
        .into_iter()
        .filter(|v6| families(b).contains(v6))
        .any(|v6| claim_of(a, v6).collides(&claim_of(b, v6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Vec<PortMapping>> {
        parse_mappings(&v)
    }

    #[test]
    fn accepts_the_conventions_and_defaults_tcp() {
        let m = parse(json!([
            {"hostPort": 8080, "containerPort": 80},
            {"hostPort": 8080, "containerPort": 80, "protocol": "udp"},
            {"hostPort": 53, "containerPort": 53, "protocol": "UDP", "hostIP": "::ffff:10.0.0.1"},
        ]))
        .unwrap();
        assert_eq!(m[0].proto, Proto::Tcp);
        assert_eq!(m[2].host_ip, Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn refuses_hostile_entries_with_code_7() {
        for bad in [
            json!([{"hostPort": 0, "containerPort": 80}]),
            json!([{"hostPort": 65536, "containerPort": 80}]),
            json!([{"hostPort": -1, "containerPort": 80}]),
            json!([{"hostPort": 80, "containerPort": 80.5}]),
            json!([{"hostPort": "80", "containerPort": 80}]),
            json!([{"hostPort": 80}]),
            json!([{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]),
            json!([{"hostPort": 80, "containerPort": 80, "protocol": 6}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": "../"}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": "10.0.0.1/24"}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": "eth0"}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": "224.0.0.1"}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": 1}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": "::1"}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": "ff02::1"}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": "fe80::1%eth0"}]),
            json!([{"hostPort": 80, "containerPort": 80}, {"hostPort": 80, "containerPort": 81}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": "10.0.0.1"},
                   {"hostPort": 80, "containerPort": 81}]),
            json!([{"hostPort": 80, "containerPort": 80, "hostIP": "0.0.0.0"},
                   {"hostPort": 80, "containerPort": 81, "hostIP": "10.0.0.1"}]),
            json!({"hostPort": 80}),
            json!([7]),
        ] {
            let e = parse(bad.clone()).expect_err(&bad.to_string());
            assert_eq!(e.code, 7, "{bad}: {e}");
        }
    }

    #[test]
    fn distinct_addresses_and_families_do_not_collide() {
        parse(json!([
            {"hostPort": 80, "containerPort": 80, "hostIP": "10.0.0.1"},
            {"hostPort": 80, "containerPort": 81, "hostIP": "10.0.0.2"},
            {"hostPort": 80, "containerPort": 82, "hostIP": "::"},
        ]))
        .unwrap();
    }
}
