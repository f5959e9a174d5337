//! Docker's IPAM rules for `network create`: what `--subnet`,
//! `--ip-range`, `--gateway` and `--aux-address` may be, which default
//! pool a network without `--subnet` gets, and how a pool becomes a
//! host-local range set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use serde_json::{json, Value};

use super::model::Pool;
use cni_spec::error::{Error, Result};

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(v: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// First and last address of a network, as numbers.
fn bounds(n: &IpNetwork) -> (u128, u128) {
    let bits: u32 = if n.is_ipv4() { 32 } else { 128 };
    let host_bits = bits - u32::from(n.prefix());
    let first = to_u128(n.network());
    let span = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (first, first.saturating_add(span))
}

pub fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    if a.is_ipv4() != b.is_ipv4() {
        return false;
    }
    let (a0, a1) = bounds(a);
    let (b0, b1) = bounds(b);
    a0 <= b1 && b0 <= a1
}

fn within(inner: &IpNetwork, outer: &IpNetwork) -> bool {
    let (i0, i1) = bounds(inner);
    let (o0, o1) = bounds(outer);
    inner.is_ipv4() == outer.is_ipv4() && o0 <= i0 && i1 <= o1
}

/// The network form of a CIDR (`10.1.2.3/16` -> `10.1.0.0/16`).
pub fn canonical(n: IpNetwork) -> IpNetwork {
    IpNetwork::new(n.network(), n.prefix()).unwrap_or(n)
}

/// Check one pool with Docker's messages, filling the default gateway
/// (the subnet's first host address).
pub fn complete_pool(mut p: Pool) -> Result<Pool> {
    p.subnet = canonical(p.subnet);
    let (first, last) = bounds(&p.subnet);
    if last - first < 2 {
        return Err(Error::invalid_config(format!(
            "subnet {} is too small to hold a gateway and a container",
            p.subnet
        )));
    }
    if let Some(r) = p.ip_range {
        let r = canonical(r);
        if !within(&r, &p.subnet) {
            return Err(Error::invalid_config(format!(
                "no matching subnet for range {r}: it is outside {}",
                p.subnet
            )));
        }
        p.ip_range = Some(r);
    }
    let gw = match p.gateway {
        Some(gw) => {
            if !p.subnet.contains(gw) {
                return Err(Error::invalid_config(format!(
                    "no matching subnet for gateway {gw}: it is outside {}",
                    p.subnet
                )));
            }
            gw
        }
        None => from_u128(first + 1, p.subnet.ip()),
    };
    p.gateway = Some(gw);
    for (name, ip) in &p.aux_addresses {
        if !p.subnet.contains(*ip) {
            return Err(Error::invalid_config(format!(
                "no matching subnet for aux-address {name}={ip}: it is outside {}",
                p.subnet
            )));
        }
    }
    Ok(p)
}

/// Docker's default local pools: 172.17-31.0.0/16, then 192.168.x.0/20.
pub fn default_subnet(taken: &[IpNetwork]) -> Result<IpNetwork> {
    let candidates = (17u8..=31)
        .map(|b| IpNetwork::new(IpAddr::V4(Ipv4Addr::new(172, b, 0, 0)), 16))
        .chain(
            (0u8..16).map(|i| IpNetwork::new(IpAddr::V4(Ipv4Addr::new(192, 168, i * 16, 0)), 20)),
        );
    for c in candidates.flatten() {
        if !taken.iter().any(|t| overlaps(t, &c)) {
            return Ok(c);
        }
    }
    Err(Error::invalid_config(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
    ))
}

/// One host-local range set for a pool: addresses from `--ip-range` (or
/// the whole subnet), without the network and broadcast addresses, with
/// the aux addresses cut out (host-local skips the gateway itself).
pub fn range_set(p: &Pool) -> Vec<Value> {
    let (sub0, sub1) = bounds(&p.subnet);
    let (mut lo, mut hi) = p.ip_range.as_ref().map(bounds).unwrap_or((sub0, sub1));
    if lo == sub0 {
        lo += 1;
    }
    if p.subnet.is_ipv4() && hi == sub1 {
        hi -= 1;
    }
    let mut holes: Vec<u128> = p
        .aux_addresses
        .values()
        .map(|ip| to_u128(*ip))
        .filter(|v| (lo..=hi).contains(v))
        .collect();
    holes.sort_unstable();
    holes.dedup();
    let like = p.subnet.ip();
    let mut out = Vec::new();
    let mut start = lo;
    for h in holes
        .into_iter()
        .chain(std::iter::once(hi.saturating_add(1)))
    {
        if h > start {
            let end = (h - 1).min(hi);
            let mut r = json!({
                "subnet": p.subnet.to_string(),
                "rangeStart": from_u128(start, like).to_string(),
                "rangeEnd": from_u128(end, like).to_string(),
            });
            if let Some(gw) = p.gateway {
                r["gateway"] = json!(gw.to_string());
            }
            out.push(r);
        }
        start = h.saturating_add(1);
        if start > hi {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pool(subnet: &str) -> Pool {
        Pool {
            subnet: subnet.parse().unwrap(),
            ip_range: None,
            gateway: None,
            aux_addresses: BTreeMap::new(),
        }
    }

    #[test]
    fn gateway_and_range_must_be_inside() {
        let p = complete_pool(pool("10.5.3.7/24")).unwrap();
        assert_eq!(p.subnet.to_string(), "10.5.3.0/24");
        assert_eq!(p.gateway.unwrap().to_string(), "10.5.3.1");
        let mut bad = pool("10.5.0.0/24");
        bad.gateway = Some("10.6.0.1".parse().unwrap());
        assert!(complete_pool(bad)
            .unwrap_err()
            .msg
            .contains("gateway 10.6.0.1"));
        let mut bad = pool("10.5.0.0/24");
        bad.ip_range = Some("10.5.1.0/25".parse().unwrap());
        assert!(complete_pool(bad)
            .unwrap_err()
            .msg
            .contains("range 10.5.1.0/25"));
        assert!(complete_pool(pool("10.0.0.0/31")).is_err());
    }

    #[test]
    fn overlap_rules() {
        let a: IpNetwork = "10.0.0.0/16".parse().unwrap();
        assert!(overlaps(&a, &"10.0.5.0/24".parse().unwrap()));
        assert!(!overlaps(&a, &"10.1.0.0/16".parse().unwrap()));
        assert!(!overlaps(&a, &"fd00::/64".parse().unwrap()));
        assert!(overlaps(
            &"::/0".parse().unwrap(),
            &"fd00::/64".parse().unwrap()
        ));
    }

    #[test]
    fn default_pool_skips_taken() {
        let taken: Vec<IpNetwork> = vec![
            "172.17.0.0/16".parse().unwrap(),
            "172.18.5.0/24".parse().unwrap(),
        ];
        assert_eq!(default_subnet(&taken).unwrap().to_string(), "172.19.0.0/16");
    }

    #[test]
    fn range_sets_follow_ip_range_and_skip_aux() {
        let mut p = pool("10.1.0.0/16");
        p.ip_range = Some("10.1.2.0/24".parse().unwrap());
        p.aux_addresses
            .insert("a".into(), "10.1.2.10".parse().unwrap());
        let p = complete_pool(p).unwrap();
        let r = range_set(&p);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["rangeStart"], "10.1.2.0");
        assert_eq!(r[0]["rangeEnd"], "10.1.2.9");
        assert_eq!(r[1]["rangeStart"], "10.1.2.11");
        assert_eq!(r[1]["rangeEnd"], "10.1.2.255");
        assert_eq!(r[1]["gateway"], "10.1.0.1");
        let whole = range_set(&complete_pool(pool("192.168.9.0/24")).unwrap());
        assert_eq!(whole[0]["rangeStart"], "192.168.9.1");
        assert_eq!(whole[0]["rangeEnd"], "192.168.9.254");
        let v6 = range_set(&complete_pool(pool("fd00:1::/120")).unwrap());
        assert_eq!(v6[0]["rangeEnd"], "fd00:1::ff");
    }
}
