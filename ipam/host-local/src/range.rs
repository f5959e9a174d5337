//! Address ranges and range sets: validation with the reference's
//! defaults, membership, overlap, and the round-robin walk the allocator
//! draws candidates from.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cni_spec::{Error, Result};
use ipnetwork::IpNetwork;

/// One pool: addresses `start..=end` of `subnet`, with `gateway` never
/// handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNetwork,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

/// The range as written in the config, before defaults and checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSpec {
    pub subnet: String,
    pub range_start: Option<String>,
    pub range_end: Option<String>,
    pub gateway: Option<String>,
}

/// Addresses as integers, so arithmetic is the same for both families.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are IPv4, as in Go's
/// `To4()`: the reference stores and compares them that way.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Parse an address, accepting `addr/prefix` as the reference's `ip.IP`
/// does (the prefix is dropped).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    let addr = t.split_once('/').map_or(t, |(a, _)| a);
    addr.parse::<IpAddr>().ok().map(canonical)
}

fn parse_field(field: &str, text: &str) -> Result<IpAddr> {
    text.trim()
        .parse::<IpAddr>()
        .map(canonical)
        .map_err(|_| Error::invalid_config(format!("{field} {text:?} is not an IP address")))
}

impl RangeSpec {
    /// Apply the reference's defaults (gateway and start `.1`, end the
    /// last address, minus broadcast for IPv4) and refuse what cannot be
    /// allocated from. `field` names the range in messages.
    pub fn resolve(&self, field: &str) -> Result<Range> {
        let subnet: IpNetwork = self.subnet.trim().parse().map_err(|_| {
            Error::invalid_config(format!(
                "{field}.subnet {:?} is not a CIDR (e.g. 10.1.0.0/24)",
                self.subnet
            ))
        })?;
        if !self.subnet.contains('/') {
            return Err(Error::invalid_config(format!(
                "{field}.subnet {:?} has no prefix length (e.g. 10.1.0.0/24)",
                self.subnet
            )));
        }
        let v4 = subnet.is_ipv4();
        let bits: u8 = if v4 { 32 } else { 128 };
        if subnet.prefix() > bits - 2 {
            return Err(Error::invalid_config(format!(
                "{field}.subnet {subnet} is too small to allocate from"
            )));
        }
        if subnet.ip() != subnet.network() {
            return Err(Error::invalid_config(format!(
                "{field}.subnet {subnet} has host bits set: for a /{} the network address is {}",
                subnet.prefix(),
                subnet.network()
            )));
        }
        let net = to_u128(subnet.network());
        let last = to_u128(subnet.broadcast());
        let first_host = from_u128(net + 1, v4);
        let same_family = |name: &str, ip: IpAddr| -> Result<IpAddr> {
            if ip.is_ipv4() != v4 {
                return Err(Error::invalid_config(format!(
                    "{field}.{name} {ip} is not of the address family of subnet {subnet}"
                )));
            }
            Ok(ip)
        };
        let in_subnet = |name: &str, ip: IpAddr| -> Result<IpAddr> {
            same_family(name, ip)?;
            if !subnet.contains(ip) {
                return Err(Error::invalid_config(format!(
                    "{field}.{name} {ip} is not in subnet {subnet}"
                )));
            }
            Ok(ip)
        };
        let gateway = match &self.gateway {
            Some(g) => same_family("gateway", parse_field(&format!("{field}.gateway"), g)?)?,
            None => first_host,
        };
        let start = match &self.range_start {
            Some(s) => in_subnet(
                "rangeStart",
                parse_field(&format!("{field}.rangeStart"), s)?,
            )?,
            None => first_host,
        };
        let end = match &self.range_end {
            Some(s) => in_subnet("rangeEnd", parse_field(&format!("{field}.rangeEnd"), s)?)?,
            None => from_u128(if v4 { last - 1 } else { last }, v4),
        };
        if to_u128(start) > to_u128(end) {
            return Err(Error::invalid_config(format!(
                "{field}: rangeStart {start} is after rangeEnd {end}"
            )));
        }
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
        })
    }
}

impl Range {
    pub fn is_ipv4(&self) -> bool {
        self.subnet.is_ipv4()
    }

    /// Whether `ip` may be allocated from this range (the gateway aside).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.is_ipv4()
            && self.subnet.contains(ip)
            && to_u128(self.start) <= to_u128(ip)
            && to_u128(ip) <= to_u128(self.end)
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && (self.contains(other.start)
                || self.contains(other.end)
                || other.contains(self.start)
                || other.contains(self.end))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// Ranges that together yield one address per ADD, all of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

impl RangeSet {
    /// Resolve and check a set: non-empty, one family, no overlaps.
    pub fn resolve(specs: &[RangeSpec], field: &str) -> Result<RangeSet> {
        if specs.is_empty() {
            return Err(Error::invalid_config(format!(
                "{field} is an empty range set"
            )));
        }
        let ranges = specs
            .iter()
            .enumerate()
            .map(|(i, s)| s.resolve(&format!("{field}[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let v4 = ranges[0].is_ipv4();
        if ranges.iter().any(|r| r.is_ipv4() != v4) {
            return Err(Error::invalid_config(format!(
                "{field} mixes IPv4 and IPv6 ranges"
            )));
        }
        for (i, a) in ranges.iter().enumerate() {
            for (j, b) in ranges.iter().enumerate().skip(i + 1) {
                if a.overlaps(b) {
                    return Err(Error::invalid_config(format!(
                        "{field}: ranges {i} ({a}) and {j} ({b}) overlap"
                    )));
                }
            }
        }
        Ok(RangeSet(ranges))
    }

    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(ip))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// Whether `ip` lies in one of the set's subnets (allocatable or not).
    pub fn in_subnets(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|r| r.subnet.contains(ip))
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }

    /// Candidates in the reference's round-robin order: from the address
    /// after `last` (when it is in the set) through every range, wrapping,
    /// skipping gateways, each address once.
    pub fn candidates(&self, last: Option<IpAddr>) -> Candidates<'_> {
        let from_last = last.and_then(|ip| {
            self.0
                .iter()
                .position(|r| r.contains(ip))
                .map(|idx| (idx, to_u128(canonical(ip))))
        });
        match from_last {
            Some((idx, cur)) => Candidates {
                set: self,
                idx,
                cur: Some(cur),
                start: None,
                done: self.0.is_empty(),
            },
            None => Candidates {
                set: self,
                idx: 0,
                cur: None,
                start: None,
                done: self.0.is_empty(),
            },
        }
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The walk of [`RangeSet::candidates`]: yields each address with its range.
#[derive(Debug)]
pub struct Candidates<'a> {
    set: &'a RangeSet,
    idx: usize,
    /// Position as an integer; `None` before the first step from a cold start.
    cur: Option<u128>,
    /// The first address yielded; seeing it again ends the walk.
    start: Option<(usize, u128)>,
    done: bool,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = (IpAddr, &'a Range);

    fn next(&mut self) -> Option<Self::Item> {
        // The reference recurses to skip a gateway; a loop does the same
        // without growing the stack on a range full of gateways.
        while !self.done {
            let ranges = &self.set.0;
            let r = &ranges[self.idx];
            let next = match self.cur {
                None => to_u128(r.start),
                Some(c) if c == to_u128(r.end) => {
                    self.idx = (self.idx + 1) % ranges.len();
                    to_u128(ranges[self.idx].start)
                }
                Some(c) => c + 1,
            };
            self.cur = Some(next);
            match self.start {
                None => self.start = Some((self.idx, next)),
                Some(s) if s == (self.idx, next) => {
                    self.done = true;
                    return None;
                }
                Some(_) => {}
            }
            let r = &ranges[self.idx];
            if next == to_u128(r.gateway) {
                continue;
            }
            return Some((from_u128(next, r.is_ipv4()), r));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(subnet: &str) -> RangeSpec {
        RangeSpec {
            subnet: subnet.into(),
            ..Default::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_follow_the_reference() {
        let r = spec("10.1.2.0/24").resolve("ipam").unwrap();
        assert_eq!(
            (r.start, r.end, r.gateway),
            (ip("10.1.2.1"), ip("10.1.2.254"), ip("10.1.2.1"))
        );
        let r = spec("fd00::/120").resolve("ipam").unwrap();
        assert_eq!(
            (r.start, r.end, r.gateway),
            (ip("fd00::1"), ip("fd00::ff"), ip("fd00::1"))
        );
    }

    #[test]
    fn bad_ranges_are_code_7_naming_the_field() {
        let cases = [
            (spec("10.1.2.0"), "subnet"),
            (spec("nonsense"), "subnet"),
            (spec("10.1.2.5/24"), "host bits"),
            (spec("10.1.2.0/31"), "too small"),
            (
                RangeSpec {
                    range_start: Some("10.9.0.1".into()),
                    ..spec("10.1.2.0/24")
                },
                "rangeStart",
            ),
            (
                RangeSpec {
                    range_end: Some("10.1.3.1".into()),
                    ..spec("10.1.2.0/24")
                },
                "rangeEnd",
            ),
            (
                RangeSpec {
                    gateway: Some("fd00::1".into()),
                    ..spec("10.1.2.0/24")
                },
                "gateway",
            ),
            (
                RangeSpec {
                    gateway: Some("x".into()),
                    ..spec("10.1.2.0/24")
                },
                "gateway",
            ),
            (
                RangeSpec {
                    range_start: Some("10.1.2.9".into()),
                    range_end: Some("10.1.2.3".into()),
                    ..spec("10.1.2.0/24")
                },
                "after",
            ),
        ];
        for (s, word) in cases {
            let e = s.resolve("ipam.ranges[0][0]").unwrap_err();
            assert_eq!(e.code, 7, "{s:?}");
            assert!(e.msg.contains(word), "{} lacks {word}", e.msg);
            assert!(e.msg.contains("ipam.ranges[0][0]"), "{}", e.msg);
        }
    }

    #[test]
    fn sets_refuse_mixed_families_and_overlaps() {
        let e = RangeSet::resolve(&[spec("10.0.0.0/24"), spec("fd00::/64")], "s").unwrap_err();
        assert!(e.msg.contains("mixes"));
        let e = RangeSet::resolve(&[spec("10.0.0.0/24"), spec("10.0.0.0/25")], "s").unwrap_err();
        assert!(e.msg.contains("overlap"));
        assert!(RangeSet::resolve(&[], "s").is_err());
    }

    fn walk(set: &RangeSet, last: Option<&str>, n: usize) -> Vec<String> {
        set.candidates(last.map(ip))
            .take(n)
            .map(|(a, _)| a.to_string())
            .collect()
    }

    #[test]
    fn walk_skips_gateway_and_wraps_from_last_reserved() {
        let set = RangeSet::resolve(&[spec("10.0.0.0/29")], "s").unwrap();
        // .0 network, .1 gateway, .7 broadcast are never offered.
        assert_eq!(
            walk(&set, None, 99),
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        assert_eq!(
            walk(&set, Some("10.0.0.4"), 99),
            ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
        );
        // A last address outside the set starts from the beginning.
        assert_eq!(walk(&set, Some("10.9.9.9"), 1), ["10.0.0.2"]);
    }

    #[test]
    fn walk_crosses_ranges_of_a_set() {
        let a = RangeSpec {
            range_start: Some("10.0.0.5".into()),
            range_end: Some("10.0.0.6".into()),
            ..spec("10.0.0.0/24")
        };
        let b = RangeSpec {
            range_start: Some("10.0.1.1".into()),
            range_end: Some("10.0.1.2".into()),
            ..spec("10.0.1.0/24")
        };
        let set = RangeSet::resolve(&[a, b], "s").unwrap();
        // 10.0.1.1 is the second range's default gateway.
        assert_eq!(walk(&set, None, 99), ["10.0.0.5", "10.0.0.6", "10.0.1.2"]);
        assert_eq!(
            walk(&set, Some("10.0.0.6"), 99),
            ["10.0.1.2", "10.0.0.5", "10.0.0.6"]
        );
    }

    #[test]
    fn walk_ipv6_and_degenerate_ranges() {
        let set = RangeSet::resolve(&[spec("fd00::/126")], "s").unwrap();
        assert_eq!(walk(&set, None, 99), ["fd00::2", "fd00::3"]);
        let only_gw = RangeSpec {
            range_start: Some("10.0.0.1".into()),
            range_end: Some("10.0.0.1".into()),
            ..spec("10.0.0.0/24")
        };
        let set = RangeSet::resolve(&[only_gw], "s").unwrap();
        assert!(walk(&set, None, 99).is_empty());
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let set = RangeSet::resolve(&[spec("10.0.0.0/24")], "s").unwrap();
        assert!(set.contains(ip("::ffff:10.0.0.9")));
        assert_eq!(parse_ip("10.0.0.9/24"), Some(ip("10.0.0.9")));
        assert_eq!(parse_ip("nope"), None);
    }
}
